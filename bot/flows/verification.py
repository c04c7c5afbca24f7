"""Identity verification by email, and the customer replies the bot acts on by itself.

A disclosure, correction or deletion request gets a one-time code in its acknowledgement
(bot.flows.service stores only :func:`hash_code` of it). The customer proves they control the
address by replying from it with the code:
- right code -> ``verification_status = email_confirmed`` and a short confirmation;
- wrong code -> a short reply with the tries left; no tries left or code expired ->
  ``failed``, the ticket becomes ``closed_unverified``, staff and customer are told;
- image/PDF attachments on such a reply: only their metadata is stored (bot.mail.parse never
  keeps content); an event notes them and staff are told;
- a reply whose line is just WRONG / SAI puts the ticket up for staff review.
:func:`verification_pass` (scheduled) sends one reminder and closes expired requests.

The decisions (:func:`check_code`, :func:`due_action`, ...) are PURE; the rest writes
through the store inside the caller's transaction and queues mail through bot.flows.autoreply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from enum import StrEnum
from typing import Any

from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.flows import autoreply
from bot.mail import compose
from bot.models import InboundMail, Language
from bot.rules.status import Event, can, transition

PENDING = "pending"
CONFIRMED = "email_confirmed"
FAILED = "failed"
CODE_DIGITS = 8
MAIL_KIND = "verification"
MAX_QUOTED = 2000
# Eight digits, or two groups of four ("4815 1623") that are not part of a longer
# grouped number such as a phone number ("090-1234-5678").
_CODE_LIKE = re.compile(r"(?<!\d)\d{8}(?!\d)"
                        r"|(?<!\d)(?<!\d[ .\-])\d{4}[ .\-]\d{4}(?!\d)(?![ .\-]\d)")
_DOCUMENT_SUFFIXES = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".heic", ".heif", ".tif",
                      ".tiff", ".webp", ".bmp")


class Verdict(StrEnum):
    """What a customer reply does to a pending verification."""

    NO_CODE = "no-code"          # nothing that looks like a code: an ordinary follow-up
    CONFIRMED = "confirmed"
    WRONG = "wrong"              # tries remain
    TOO_MANY = "too-many-attempts"
    EXPIRED = "expired"


@dataclass(frozen=True)
class CodeCheck:
    verdict: Verdict
    tries_left: int


class Due(StrEnum):
    """What the scheduled pass owes a pending verification."""

    REMIND = "remind"
    CLOSE = "close"


@dataclass(frozen=True)
class PassReport:
    reminded: int = 0
    closed: int = 0


# -- pure decisions --------------------------------------------------------------------

def hash_code(ref: str, code: str) -> str:
    """Only this hash of a verification code is stored (salted by the ticket ref)."""
    return hashlib.sha256(f"{ref}:{code}".encode()).hexdigest()


def code_candidates(text: str) -> list[str]:
    """Distinct code-length digit runs in the customer's own (unquoted) lines, in order.

    Full-width digits (Japanese input methods) count; phone numbers do not.
    """
    found: list[str] = []
    for line in unicodedata.normalize("NFKC", text or "").splitlines():
        if line.lstrip().startswith(">"):
            continue
        for match in _CODE_LIKE.findall(line):
            digits = re.sub(r"\D", "", match)
            if digits not in found:
                found.append(digits)
    return found


def check_code(text: str, *, ref: str, code_hash: str | None, expires_at: datetime,
               attempts_left: int, now: datetime) -> CodeCheck:
    """Judge a reply. Each distinct wrong candidate costs one try, so a mail full of
    numbers cannot guess the code faster than ``attempts_left`` allows."""
    candidates = code_candidates(text)
    if not candidates:
        return CodeCheck(Verdict.NO_CODE, attempts_left)
    if now >= expires_at:
        return CodeCheck(Verdict.EXPIRED, attempts_left)
    tried = candidates[:max(attempts_left, 0)]
    for used, candidate in enumerate(tried, start=1):
        if code_hash and hmac.compare_digest(hash_code(ref, candidate), code_hash):
            return CodeCheck(Verdict.CONFIRMED, attempts_left - used)
    left = max(attempts_left - len(tried), 0)
    return CodeCheck(Verdict.WRONG if left else Verdict.TOO_MANY, left)


def due_action(*, code_created_at: datetime, code_expires_at: datetime,
               reminded_at: datetime | None, reminder_after: timedelta,
               now: datetime) -> Due | None:
    """Close at expiry; before that, one reminder ``reminder_after`` the code was sent."""
    if now >= code_expires_at:
        return Due.CLOSE
    if reminded_at is None and now >= code_created_at + reminder_after:
        return Due.REMIND
    return None


def is_document(content_type: str, filename: str) -> bool:
    """Images and PDFs: what an identity document sent by mail usually looks like."""
    kind = (content_type or "").lower()
    name = (filename or "").lower()
    return kind.startswith("image/") or kind == "application/pdf" \
        or name.endswith(_DOCUMENT_SUFFIXES)


def document_attachments(mail: InboundMail) -> list[dict[str, Any]]:
    """Metadata of the image/PDF attachments of ``mail`` (never their content)."""
    return [{"filename": compose.clean_line(a.filename, 200),
             "content_type": compose.clean_line(a.content_type, 100), "size": a.size}
            for a in mail.attachments if is_document(a.content_type, a.filename)]


def parse_utc(value: str | None) -> datetime | None:
    """A database time (``2026-11-24T03:00:00Z``) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# -- customer replies (inside the follow-up transaction) -------------------------------

def on_customer_followup(store: Store, settings: Settings, conn: sqlite3.Connection,
                         ticket: dict[str, Any], mail: InboundMail, now: datetime) -> bool:
    """Act on a customer's reply to ``ticket``: WRONG/SAI review and the verification code.

    Returns True when the reply was a code attempt that the customer gets an answer to
    (confirmed, wrong, failed), so the caller can skip a generic "added to your ticket" note.
    """
    if compose.is_wrong_reply(mail.new_text):
        _put_up_for_review(store, settings, conn, ticket, mail, now)
    if ticket["verification_status"] != PENDING:
        return False
    if mail.from_addr.lower() != (ticket["customer_email"] or "").lower():
        # Only the address the code was sent to can confirm; never a forwarded copy.
        store.add_event(conn, ticket["id"], now, "verification_other_address",
                        {"from": mail.from_addr})
        return False
    row = store.verification(ticket["id"])
    if row is None:
        return False
    _note_documents(store, settings, conn, ticket, mail, now)
    result = check_code(mail.new_text, ref=ticket["ref"], code_hash=row["code_hash"],
                        expires_at=parse_utc(row["expires_at"]) or now,
                        attempts_left=row["attempts_left"] or 0, now=now)
    _apply(store, settings, conn, ticket, mail, row, result, now)
    return result.verdict != Verdict.NO_CODE


def _apply(store: Store, settings: Settings, conn: sqlite3.Connection, ticket: dict[str, Any],
           mail: InboundMail, row: dict[str, Any], result: CodeCheck, now: datetime) -> None:
    if result.verdict == Verdict.NO_CODE:
        return
    store.update_verification(conn, ticket["id"], attempts_left=result.tries_left)
    thread = _thread(ticket, mail)
    if result.verdict == Verdict.CONFIRMED:
        _confirm(store, settings, conn, ticket, row, thread, now)
    elif result.verdict == Verdict.WRONG:
        store.add_event(conn, ticket["id"], now, "verification_wrong_code",
                        {"tries_left": result.tries_left})
        message = compose.verification_wrong_code(
            settings, thread, tries_left=result.tries_left, message_id=_msgid(settings),
            date=now)
        autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                      message=message, kind=MAIL_KIND, now=now)
    else:
        _fail(store, settings, conn, ticket, row, thread, now,
              expired=result.verdict == Verdict.EXPIRED)


def _confirm(store: Store, settings: Settings, conn: sqlite3.Connection,
             ticket: dict[str, Any], row: dict[str, Any], thread: compose.CustomerThread,
             now: datetime) -> None:
    store.update_ticket(conn, ticket["id"], verification_status=CONFIRMED)
    store.update_verification(conn, ticket["id"], code_hash=None)  # single use
    store.add_event(conn, ticket["id"], now, "verification_confirmed", {"method": "email_code"})
    _waiting_ended(store, conn, ticket["id"], row, now, "confirmed")
    message = compose.verification_confirmed(
        settings, thread, due_at=parse_utc(ticket["due_at"]) or now,
        message_id=_msgid(settings), date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now,
                                  final=True)


def _fail(store: Store, settings: Settings, conn: sqlite3.Connection, ticket: dict[str, Any],
          row: dict[str, Any], thread: compose.CustomerThread, now: datetime, *,
          expired: bool) -> None:
    reason = Verdict.EXPIRED.value if expired else Verdict.TOO_MANY.value
    _close_unverified(store, conn, ticket, row, now, reason)
    _tell_staff(store, settings, conn, ticket, now, "Identity verification FAILED",
                [f"Reason: {reason}.", "The ticket is now closed_unverified. Reopen it or "
                 "confirm the customer's identity yourself (#verified) if appropriate."])
    message = compose.verification_failed(settings, thread, expired=expired,
                                          message_id=_msgid(settings), date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now,
                                  final=True)


def _close_unverified(store: Store, conn: sqlite3.Connection, ticket: dict[str, Any],
                      row: dict[str, Any], now: datetime, reason: str) -> None:
    fields: dict[str, Any] = {"verification_status": FAILED}
    if can(ticket["status"], Event.VERIFICATION_FAILED):
        fields.update(status=transition(ticket["status"], Event.VERIFICATION_FAILED).value,
                      closed_at=utc_iso(now))
    store.update_ticket(conn, ticket["id"], **fields)
    store.update_verification(conn, ticket["id"], code_hash=None)
    store.add_event(conn, ticket["id"], now, "verification_failed",
                    {"reason": reason, "status": fields.get("status", ticket["status"])})
    _waiting_ended(store, conn, ticket["id"], row, now, reason)


def _put_up_for_review(store: Store, settings: Settings, conn: sqlite3.Connection,
                       ticket: dict[str, Any], mail: InboundMail, now: datetime) -> None:
    store.update_ticket(conn, ticket["id"], needs_review=1)
    store.add_event(conn, ticket["id"], now, "customer_says_wrong_category",
                    {"category": ticket["category"]})
    _tell_staff(store, settings, conn, ticket, now, "Customer says the category is WRONG",
                [f"Current category: {ticket['category']}. Please review it and set the "
                 "right one (#category ...)."], new_text=mail.new_text)


def _note_documents(store: Store, settings: Settings, conn: sqlite3.Connection,
                    ticket: dict[str, Any], mail: InboundMail, now: datetime) -> None:
    documents = document_attachments(mail)
    if not documents:
        return
    store.add_event(conn, ticket["id"], now, "verification_reply_attachments",
                    {"files": documents, "content_stored": False})
    _tell_staff(store, settings, conn, ticket, now,
                "Verification reply carried image/PDF attachments",
                ["Their content was NOT stored (possibly identity documents; in Vietnam these "
                 "are sensitive personal data). Do not ask the customer to send them again.",
                 *[f"{d['filename'] or '(no name)'} ({d['content_type']}, {d['size']} bytes)"
                   for d in documents]])


def _waiting_ended(store: Store, conn: sqlite3.Connection, ticket_id: int,
                   row: dict[str, Any], now: datetime, outcome: str) -> None:
    # With the "waiting_for_customer" event written when the code was sent, this lets a
    # report show how long the SLA clock ran while we waited for the customer.
    store.add_event(conn, ticket_id, now, "waiting_for_customer_ended",
                    {"for": "identity verification", "since": row["created_at"],
                     "outcome": outcome})


# -- the scheduled pass ----------------------------------------------------------------

def verification_pass(store: Store, settings: Settings, now: datetime) -> PassReport:
    """Remind once after ``verification.reminder_after_days``; close expired requests."""
    reminded = closed = 0
    after = timedelta(days=settings.verification.reminder_after_days)
    for pending in store.pending_verifications():
        action = due_action(code_created_at=parse_utc(pending["code_created_at"]) or now,
                            code_expires_at=parse_utc(pending["code_expires_at"]) or now,
                            reminded_at=parse_utc(pending["code_reminded_at"]),
                            reminder_after=after, now=now)
        if action is None:
            continue
        with store.transaction() as conn:
            ticket = store.ticket(pending["id"])
            if ticket is None or ticket["verification_status"] != PENDING:
                continue  # confirmed by a reply since we looked
            if action == Due.REMIND:
                _remind(store, settings, conn, ticket, pending, now)
                reminded += 1
            else:
                _expire(store, settings, conn, ticket, now)
                closed += 1
    return PassReport(reminded, closed)


def _remind(store: Store, settings: Settings, conn: sqlite3.Connection,
            ticket: dict[str, Any], pending: dict[str, Any], now: datetime) -> None:
    store.update_verification(conn, ticket["id"], reminded_at=utc_iso(now))
    store.add_event(conn, ticket["id"], now, "verification_reminder",
                    {"code_expires_at": pending["code_expires_at"]})
    message = compose.verification_reminder(
        settings, _thread(ticket, None),
        code_expires_at=parse_utc(pending["code_expires_at"]) or now,
        message_id=_msgid(settings), date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now)


def _expire(store: Store, settings: Settings, conn: sqlite3.Connection,
            ticket: dict[str, Any], now: datetime) -> None:
    row = store.verification(ticket["id"]) or {"created_at": None}
    _close_unverified(store, conn, ticket, row, now, Verdict.EXPIRED.value)
    _tell_staff(store, settings, conn, ticket, now, "Closed: identity never confirmed",
                ["The verification code expired without a valid reply; the ticket is now "
                 "closed_unverified and the customer was told how to start again."])
    message = compose.closed_unverified(settings, _thread(ticket, None),
                                        message_id=_msgid(settings), date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now,
                                  final=True)


# -- mail helpers ----------------------------------------------------------------------

def _thread(ticket: dict[str, Any], mail: InboundMail | None) -> compose.CustomerThread:
    """Answer in the ticket's language, threaded under the customer's mail when we have it."""
    return compose.CustomerThread(
        ref=ticket["ref"], language=Language(ticket["language"] or "en"),
        customer_email=ticket["customer_email"], customer_name=ticket["customer_name"] or "",
        original_subject=ticket["subject"] or "",
        in_reply_to=mail.message_id if mail else None,
        references=tuple(mail.references) if mail else (), bilingual=bool(ticket["bilingual"]))


def _tell_staff(store: Store, settings: Settings, conn: sqlite3.Connection,
                ticket: dict[str, Any], now: datetime, headline: str, lines: list[str],
                new_text: str = "") -> None:
    recipients = autoreply.staff_recipients(settings)
    if not recipients:
        return
    message = staff_notice(settings, ticket, headline, lines, new_text, recipients,
                           message_id=_msgid(settings), date=now)
    autoreply.queue_staff_mail(store, settings, conn, ticket_id=ticket["id"],
                               message=message, now=now)


def staff_notice(settings: Settings, ticket: dict[str, Any], headline: str, lines: list[str],
                 new_text: str, to: list[str], *, message_id: str,
                 date: datetime) -> Message:
    """A short English notice to staff about something that happened on a ticket. PURE."""
    context = {
        "ref": compose.clean_line(ticket["ref"]), "headline": headline, "lines": lines,
        "customer_email": compose.clean_line(ticket["customer_email"]),
        "category": ticket["category"], "status": ticket["status"],
        "new_text": compose.clean_text(new_text).strip()[:MAX_QUOTED],
    }
    text, html = compose.render(settings.templates_path, "staff_notice", Language.EN, context)
    return compose.internal_mail(settings, to=to, subject=f"[{context['ref']}] {headline}",
                                 text=text, html=html, message_id=message_id, date=date)


def _msgid(settings: Settings) -> str:
    return compose.make_message_id(settings.bot_domain)
