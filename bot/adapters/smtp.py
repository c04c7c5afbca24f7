"""aiosmtplib adapter: send queued mail; classify failures as transient or permanent.

Outcomes are returned as values (like aiosmtpd handlers do), so the outbox decides what
to retry: 4xx replies and connection errors are transient, 5xx replies are permanent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from bot.adapters.imap import tls_context
from bot.config import SmtpSection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    """One mail to send: who from, who to, the bytes."""

    key: int
    sender: str
    recipients: list[str]
    raw: bytes


@dataclass(frozen=True)
class SendResult:
    key: int
    status: str  # "sent" | "transient" | "permanent"
    error: str | None = None


def send_all(settings: SmtpSection, password: str, envelopes: Sequence[Envelope],
             on_result: Callable[[SendResult], None]) -> None:
    """Send every envelope over one SMTP session; never raises for SMTP trouble.

    ``on_result`` is called right after each attempt, so the caller can record a send
    before the next one starts (a crash then duplicates at most the mail in flight).
    """
    if envelopes:
        asyncio.run(_send_all(settings, password, list(envelopes), on_result))


async def _send_all(settings: SmtpSection, password: str, envelopes: list[Envelope],
                    on_result: Callable[[SendResult], None]) -> None:
    client = _client(settings)
    try:
        await client.connect()
        if settings.username:
            await client.login(settings.username, password)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        error = f"connect: {_describe(exc)}"
        status = "permanent" if _is_permanent(exc) and settings.username else "transient"
        for envelope in envelopes:
            on_result(SendResult(envelope.key, status, error))
        return
    try:
        for envelope in envelopes:
            on_result(await _send_one(client, envelope))
    finally:
        await _quit(client)


async def _send_one(client: aiosmtplib.SMTP, envelope: Envelope) -> SendResult:
    if not client.is_connected:
        return SendResult(envelope.key, "transient", "connection lost")
    try:
        errors, _ = await client.sendmail(envelope.sender, envelope.recipients, envelope.raw)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return SendResult(envelope.key, _status_of(exc.recipients), _describe(exc))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return SendResult(envelope.key, "permanent" if _is_permanent(exc) else "transient",
                          _describe(exc))
    if errors:  # some recipients refused, others accepted: do not resend to the accepted ones
        log.warning("outbox %s: some recipients refused: %s", envelope.key, sorted(errors))
    return SendResult(envelope.key, "sent")


def _client(settings: SmtpSection) -> aiosmtplib.SMTP:
    # Loading the CA store costs ~20 ms: only do it when TLS is used.
    context = (tls_context(settings.verify_tls, settings.ca_file)
               if settings.security != "none" else None)
    return aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=settings.timeout_seconds,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        tls_context=context)


def _status_of(refusals: list[aiosmtplib.SMTPRecipientRefused]) -> str:
    return "permanent" if all(r.code >= 500 for r in refusals) else "transient"


def _is_permanent(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    return isinstance(code, int) and 500 <= code < 600


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
