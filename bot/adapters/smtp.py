"""aiosmtplib adapter: send queued mail; classify failures as transient or permanent.

Outcomes are returned as values (like aiosmtpd handlers do), so the outbox decides what
to retry. Only a refusal that concerns ONE mail is permanent: a 5xx answer to RCPT (every
recipient refused) or to DATA. Everything that concerns the session is transient, whatever
its code: a refused connection, TLS trouble, a refused login (535/534/530/454, or an
XOAUTH2 token the server rejects), a refused sender. Such a failure means "the server is
not taking mail now" (:attr:`SendResult.failure` says which kind), and the outbox keeps
the mail and backs off - a rotated password must not lose a single mail.

A recipient whose address is internationalised (non-ASCII, RFC 6531) is sent with the
SMTPUTF8 extension when the server offers it; otherwise that mail fails permanently with
``failure="smtputf8"`` so staff can answer by other means.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from bot.adapters.imap import tls_context
from bot.adapters.oauth import OAuthLogin
from bot.config import SmtpSection

log = logging.getLogger(__name__)

# Replies to AUTH (and to MAIL FROM on servers that require it) that mean "not logged in":
# 454 temporary authentication failure, 530 authentication required, 534 mechanism too
# weak, 535 credentials invalid, 538 encryption required.
AUTH_CODES = frozenset({454, 530, 534, 535, 538})
# ``failure`` values of a SendResult:
AUTH = "auth"            # the server refused our login: an outage until it accepts it again
SESSION = "session"      # no session (connect, TLS, EHLO, sender refused, connection lost)
SMTPUTF8 = "smtputf8"    # internationalised recipient, server without SMTPUTF8 (permanent)


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
    failure: str = ""  # "" | AUTH | SESSION | SMTPUTF8 (see the module docstring)

    @property
    def outage(self) -> bool:
        """True when the server took no mail at all (not a problem of this one mail)."""
        return self.failure in (AUTH, SESSION)


# Return False to stop the session: no further envelope is sent (e.g. the store cannot
# record what was sent, so sending more would risk duplicates after a restart).
ResultCallback = Callable[[SendResult], bool | None]


def send_all(settings: SmtpSection, password: str | OAuthLogin, envelopes: Sequence[Envelope],
             on_result: ResultCallback) -> None:
    """Send every envelope over one SMTP session; never raises for SMTP trouble.

    ``on_result`` is called right after each attempt, so the caller can record a send
    before the next one starts (a crash then duplicates at most the mail in flight); when
    it returns False the session ends and the remaining envelopes are not attempted.
    """
    if envelopes:
        asyncio.run(_send_all(settings, password, list(envelopes), on_result))


async def _send_all(settings: SmtpSection, password: str | OAuthLogin, envelopes: list[Envelope],
                    on_result: ResultCallback) -> None:
    client = _client(settings)
    failure = await _open_session(client, settings, password)
    if failure is not None:
        _report_all(envelopes, failure, on_result)
        client.close()
        return
    try:
        await _send_each(client, envelopes, on_result)
    finally:
        await _quit(client)


async def _send_each(client: aiosmtplib.SMTP, envelopes: list[Envelope],
                     on_result: ResultCallback) -> None:
    for index, envelope in enumerate(envelopes):
        result = await _send_one(client, envelope)
        if on_result(result) is False:
            return  # the caller cannot record more: send nothing else
        if result.outage:  # the server stopped taking mail: the rest waits, untried
            _report_all(envelopes[index + 1:], result, on_result)
            return


def _report_all(envelopes: list[Envelope], failure: SendResult,
                on_result: ResultCallback) -> None:
    """The same (session) failure for every envelope, until the caller says stop."""
    for envelope in envelopes:
        if on_result(SendResult(envelope.key, failure.status, failure.error,
                                failure.failure)) is False:
            return


async def _open_session(client: aiosmtplib.SMTP, settings: SmtpSection,
                        password: str | OAuthLogin) -> SendResult | None:
    """Connect (and log in); None when ready, else the failure every envelope shares."""
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return SendResult(0, "transient", f"connect: {_describe(exc)}", SESSION)
    if not settings.username and not isinstance(password, OAuthLogin):
        return None
    try:
        if isinstance(password, OAuthLogin):  # smtp.auth = "oauth2"
            await password.smtp(client, settings.host, settings.port)
        else:
            await client.login(settings.username, password)
    # Any error of the login step (including a token provider's, for XOAUTH2) is an
    # authentication outage: transient, never a reason to give up on the mail.
    except Exception as exc:  # noqa: BLE001
        return SendResult(0, "transient", f"login: {_describe(exc)}", AUTH)
    return None


async def _send_one(client: aiosmtplib.SMTP, envelope: Envelope) -> SendResult:
    if not client.is_connected:
        return SendResult(envelope.key, "transient", "connection lost", SESSION)
    try:
        options = await _mail_options(client, envelope)
        if options is None:
            return SendResult(envelope.key, "permanent", _NO_SMTPUTF8, SMTPUTF8)
        errors, _ = await client.sendmail(envelope.sender, envelope.recipients, envelope.raw,
                                          mail_options=options)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _refused(envelope.key, exc)
    except aiosmtplib.SMTPDataError as exc:  # the server refused this message's content
        return SendResult(envelope.key, "permanent" if _is_permanent(exc) else "transient",
                          _describe(exc))
    except ValueError as exc:  # an address aiosmtplib cannot write: this mail only
        return SendResult(envelope.key, "permanent", _describe(exc))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return SendResult(envelope.key, "transient", _describe(exc), _session_failure(exc))
    if errors:  # some recipients refused, others accepted: do not resend to the accepted ones
        log.warning("outbox %s: some recipients refused: %s", envelope.key, sorted(errors))
    return SendResult(envelope.key, "sent")


_NO_SMTPUTF8 = ("the recipient address is internationalised (non-ASCII) and the SMTP "
                "server does not offer SMTPUTF8: staff must answer by other means")


async def _mail_options(client: aiosmtplib.SMTP, envelope: Envelope) -> list[str] | None:
    """MAIL FROM options: SMTPUTF8 for a non-ASCII address; None if it is needed but the
    server does not offer it."""
    if all(a.isascii() for a in (envelope.sender, *envelope.recipients)):
        return []
    if client.last_ehlo_response is None:
        await client.ehlo()
    if not client.supports_extension("smtputf8"):
        return None
    return ["SMTPUTF8", "BODY=8BITMIME"] if client.supports_extension("8bitmime") \
        else ["SMTPUTF8"]


def _session_failure(exc: BaseException) -> str:
    """Which outage a failure outside RCPT/DATA means: AUTH or SESSION."""
    return AUTH if getattr(exc, "code", None) in AUTH_CODES else SESSION


def _client(settings: SmtpSection) -> aiosmtplib.SMTP:
    # Loading the CA store costs ~20 ms: only do it when TLS is used.
    context = (tls_context(settings.verify_tls, settings.ca_file)
               if settings.security != "none" else None)
    return aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=settings.timeout_seconds,
        use_tls=settings.security == "tls",
        start_tls=settings.security == "starttls",
        tls_context=context)


def _refused(key: int, exc: aiosmtplib.SMTPRecipientsRefused) -> SendResult:
    """Every recipient refused: permanent if all said 5xx about the recipient; an
    authentication reply (e.g. 530 at RCPT) is an outage, not a verdict on the address."""
    codes = {r.code for r in exc.recipients}
    if codes and codes <= AUTH_CODES:
        return SendResult(key, "transient", _describe(exc), AUTH)
    status = "permanent" if all(code >= 500 for code in codes) else "transient"
    return SendResult(key, status, _describe(exc))


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
