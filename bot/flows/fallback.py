"""No silent loss: what becomes of a mail the normal path could not handle.

- A human mail whose handling raised (any exception) still becomes a ticket, read from its
  header block alone: category question, ``needs_review = 1``, body
  ``[could not be read: <error class>]``, the usual staff notification, and the generic
  acknowledgement when the sender can be answered. If even that fails, it is tried again
  without the acknowledgement; only then is the mail quarantined.
- Machine mail, mail without a usable sender, staff mail and mail already known are
  quarantined (recorded with the error, left in the mailbox, listed in the daily digest and
  in datasette's "quarantined" query).
- A mail that two workers started and never finished (killed, out of memory) is quarantined
  without being read again, and staff get a notice at once (:func:`quarantine_crashed`).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import replace
from datetime import datetime

from bot.adapters.store import StoreUnavailable, utc_iso
from bot.flows.context import Context, Handled, message_key, raw_key
from bot.flows.escalation import digest_recipients
from bot.flows.notices import notify_new_ticket
from bot.mail import compose
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import Budget, parse_message
from bot.models import (
    Category,
    InboundMail,
    Language,
    MessageKind,
    MessageSource,
    Outcome,
    Triage,
)
from bot.rules.sla import deadlines

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 65_536
HEADER_SECONDS = 0.5
MAX_REASON = 300
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = {name: re.compile(rb"^" + name + rb":[ \t]*([^\r\n]{1,300})", re.I | re.M)
          for name in (b"Message-ID", b"From")}
_ADDRESS = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")


def unreadable_body(error_class: str) -> str:
    """The body of the ticket of a mail that could not be read."""
    return f"[could not be read: {error_class}]"


def header_only_mail(raw: bytes) -> InboundMail:
    """The mail as its header block alone shows it (bounded in size and time)."""
    head = raw[:MAX_HEADER_BYTES]
    end = _HEADER_END.search(head)
    block = head[:end.start()] if end else head
    return parse_message(block + b"\r\n\r\n", Budget.start(time.monotonic, HEADER_SECONDS))


def ticket_from_failure(ctx: Context, source: MessageSource, raw: bytes, error_class: str,
                        reason: str, now: datetime, may_acknowledge: bool = True
                        ) -> Handled | None:
    """Open the review ticket for a human mail whose handling raised; None when the mail is
    not one (it is then quarantined by the caller) or even this failed. Without
    ``may_acknowledge`` (mail from before the bot's first start) the customer is not
    answered."""
    try:
        mail = header_only_mail(raw)
        key = message_key(mail, raw)
        why_not = _not_for_a_ticket(ctx, mail, key)
    except Exception as exc:  # noqa: BLE001 - the header alone cannot be read: quarantine
        log.warning("uid %s: header unreadable too (%s)", source.uid, type(exc).__name__)
        return None
    if why_not:
        log.info("uid %s: no review ticket (%s): quarantined", source.uid, why_not)
        return None
    for acknowledge in (True, False) if may_acknowledge else (False,):
        try:
            with ctx.store.transaction() as conn:
                return _open_review_ticket(ctx, conn, source, key, mail, error_class, reason,
                                           now, acknowledge=acknowledge)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - try the simpler path, then quarantine
            log.warning("uid %s: review ticket failed (%s: %s)", source.uid,
                        type(exc).__name__, exc)
    return None


def _not_for_a_ticket(ctx: Context, mail: InboundMail, key: str) -> str | None:
    if not mail.from_addr:
        return "no usable sender"
    if mail.from_addr in {a.lower() for a in ctx.settings.staff.addresses}:
        return "staff mail"
    if ctx.store.is_known_message(key):
        return "already processed"
    return machine_generated_reason(mail, ctx.settings.bot.address)


def _review_triage(ctx: Context, error_class: str) -> Triage:
    return Triage(Category.QUESTION, Language(ctx.settings.bot.default_language), 0.0, 0.5,
                  cues=(unreadable_body(error_class),), needs_review=True, bilingual=True)


def _open_review_ticket(ctx: Context, conn: sqlite3.Connection, source: MessageSource,
                        key: str, mail: InboundMail, error_class: str, reason: str,
                        now: datetime, *, acknowledge: bool) -> Handled:
    body = unreadable_body(error_class)
    mail = replace(mail, body_text=body, new_text=body, attachments=())
    triage = _review_triage(ctx, error_class)
    due = deadlines(now, Category.QUESTION, ctx.settings.sla, ctx.calendar)
    ticket_id, ref = ctx.store.create_ticket(
        conn, ctx.settings.bot.ticket_prefix, category=Category.QUESTION.value,
        language=triage.language.value, status="open", subject=mail.subject,
        customer_email=mail.from_addr, customer_name=mail.from_name,
        created_at=utc_iso(now), due_at=utc_iso(due.respond_at),
        escalate_at=utc_iso(due.escalate_at), hard_at=utc_iso(due.hard_at),
        escalation_level=0, verification_status="not_required", needs_review=1,
        triage_confidence=0.0, language_confidence=0.5, triage_cues=body, bilingual=1,
        last_activity_at=utc_iso(now))
    ctx.record_inbound(conn, ticket_id, mail, MessageKind.CUSTOMER, now)
    ctx.store.add_event(conn, ticket_id, now, "ticket_created", {
        "category": Category.QUESTION.value, "language": triage.language.value,
        "needs_review": True, "unreadable": error_class, "uid": source.uid})
    if acknowledge:
        _acknowledge(ctx, conn, ticket_id, ref, mail, triage, due.respond_at, now)
    notify_new_ticket(ctx, conn, ticket_id=ticket_id, ref=ref, triage=triage, mail=mail,
                      due_at=due.respond_at, verification_status="not_required", now=now)
    ctx.store.record_processed(conn, source, key, Outcome.TICKET,
                               f"unreadable: {reason}"[:MAX_REASON], ticket_id, now)
    return Handled(Outcome.TICKET, f"unreadable: {error_class}", ref,
                   Category.QUESTION.value, triage.language.value)


def _acknowledge(ctx: Context, conn: sqlite3.Connection, ticket_id: int, ref: str,
                 mail: InboundMail, triage: Triage, due_at: datetime, now: datetime) -> None:
    blocked = ctx.auto_reply_blocked(mail.from_addr, now, ticket_id)
    if blocked or not compose.is_sendable_address(mail.from_addr):
        ctx.store.add_event(conn, ticket_id, now, "acknowledgement_suppressed",
                            blocked or "unusable address")
        return
    message = compose.acknowledgement(
        ctx.settings, ref=ref, category=None, language=triage.language, bilingual=True,
        customer_name=mail.from_name, customer_email=mail.from_addr,
        original_subject=mail.subject, received_at=now, due_at=due_at,
        verification_code=None, code_expires_at=None, in_reply_to=mail.message_id,
        references=list(mail.references),
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now)
    ctx.enqueue(conn, ticket_id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT, now)


# -- mail that kills the worker -----------------------------------------------------------------

def quarantine_crashed(ctx: Context, source: MessageSource, raw: bytes | None, starts: int,
                       now: datetime, copied: bool) -> Handled:
    """Record a mail that ``starts - 1`` workers started and never finished as quarantined,
    without reading it again, and queue a notice to staff (one transaction)."""
    reason = (f"crashed the worker: started {starts - 1} times without finishing; "
              "not handled again")
    key = raw_key(raw) if raw else f"uid:{source.uidvalidity}:{source.uid}"
    with ctx.store.transaction() as conn:
        ctx.store.add_event(conn, None, now, "message_quarantined",
                            {"uid": source.uid, "mailbox": source.mailbox,
                             "starts": starts - 1, "copied": copied})
        _notify_crash(ctx, conn, source, raw, reason, now)
        ctx.store.record_processed(conn, source, key, Outcome.QUARANTINED, reason, None, now)
    return Handled(Outcome.QUARANTINED, reason)


def _notify_crash(ctx: Context, conn: sqlite3.Connection, source: MessageSource,
                  raw: bytes | None, reason: str, now: datetime) -> None:
    recipients = digest_recipients(ctx.settings)
    if not recipients:
        return
    message_id, sender = _identify(raw or b"")
    lines = [
        "A mail stopped the inquiry bot twice (the worker died or was killed while handling",
        "it), so it was quarantined instead of being handled a third time. It is still in",
        "the mailbox; please read and answer it by hand.",
        "",
        f"  Mailbox:     {source.mailbox} (UIDVALIDITY {source.uidvalidity}, UID {source.uid})",
        f"  Message-ID:  {message_id or 'unknown'}",
        f"  From:        {sender or 'unknown'}",
        f"  Size:        {len(raw) if raw is not None else 'unknown'} bytes",
        f"  Reason:      {reason}",
    ]
    message = compose.internal_mail(
        ctx.settings, to=recipients, subject="Quarantined: a mail the bot could not handle",
        text="\n".join(lines) + "\n", date=now,
        message_id=compose.make_message_id(ctx.settings.bot_domain))
    ctx.store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                      recipients=recipients, raw=bytes(message),
                      kind=MessageKind.NOTIFICATION.value, now=now)


def _identify(raw: bytes) -> tuple[str, str]:
    """Message-ID and sender address, found by plain search in the header block (the mail
    crashed the parser before: it is not parsed again)."""
    head = raw[:MAX_HEADER_BYTES]
    end = _HEADER_END.search(head)
    head = head[:end.start()] if end else head
    found = {}
    for name, pattern in _FIELD.items():
        match = pattern.search(head)
        found[name] = match.group(1).decode("ascii", "replace") if match else ""
    message_id = re.search(r"<[^<>\s]{1,250}>", found[b"Message-ID"])
    sender = _ADDRESS.search(found[b"From"])
    return (message_id.group(0) if message_id else "", sender.group(0) if sender else "")
