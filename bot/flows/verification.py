"""Identity verification by email, and the customer replies the bot acts on by itself.

A disclosure, correction or deletion request gets a one-time code in its acknowledgement,
or in a verification mail when staff set such a category later (:func:`on_category_changed`);
a ticket is ``pending`` only once that mail is queued. The customer proves they control the
address by replying from it with the code (the decisions: :mod:`bot.rules.verification`):
- a reply naming our mail (In-Reply-To/References): right code -> ``email_confirmed``;
  wrong code -> the tries left; no tries left or code expired -> ``failed``;
- a mail that only carries the ref (from the customer's address): the right code confirms,
  wrong ones cost a separate budget, never the customer's tries, and never close the request;
- any other mail: its numbers are not code attempts;
- a failed verification closes the ticket (``closed_unverified``) only while staff have not
  taken it up; staff and customer are told either way;
- image/PDF attachments on such a reply: only their metadata is stored; staff are told;
- a reply whose line is just WRONG / SAI puts the ticket up for staff review.
:func:`verification_pass` (scheduled) sends one reminder and closes expired requests, and
leaves alone every ticket that staff answered, completed, decided or re-categorised.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.flows import autoreply, codes
from bot.mail import compose
from bot.models import InboundMail, Language
from bot.rules.conversation import find_ref
from bot.rules.status import Event, can, transition
from bot.rules.verification import (
    CONFIRMED,
    FAILED,
    NOT_REQUIRED,
    PENDING,
    CategoryChange,
    CodeCheck,
    Due,
    Standing,
    Verdict,
    category_change,
    check_code,
    code_candidates,
    due_action,
    is_document,
    may_close_unverified,
    parse_utc,
    reply_standing,
    stop_reason,
)

__all__ = ["PassReport", "Verdict", "Due", "on_category_changed", "on_customer_followup",
           "staff_notice", "verification_pass"]

MAIL_KIND = "verification"
MAX_QUOTED = 2000


@dataclass(frozen=True)
class PassReport:
    reminded: int = 0
    closed: int = 0


def document_attachments(mail: InboundMail) -> list[dict[str, Any]]:
    """Metadata of the image/PDF attachments of ``mail`` (never their content)."""
    return [{"filename": compose.clean_line(a.filename, 200),
             "content_type": compose.clean_line(a.content_type, 100), "size": a.size}
            for a in mail.attachments if is_document(a.content_type, a.filename)]


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
    row = store.verification(ticket["id"])
    standing = _standing(store, settings, ticket, mail)
    if row is None or standing == Standing.NONE:
        _note_not_counted(store, conn, ticket, mail, now)
        return False
    _note_documents(store, settings, conn, ticket, mail, now)
    threaded = standing == Standing.THREADED
    column = "attempts_left" if threaded else "unthreaded_attempts_left"
    budget = row[column] if row.get(column) is not None else settings.verification.max_attempts
    result = check_code(mail.new_text, ref=ticket["ref"], code_hash=row["code_hash"],
                        key=codes.code_key(settings),
                        expires_at=parse_utc(row["expires_at"]) or now,
                        attempts_left=budget, now=now)
    if result.verdict == Verdict.NO_CODE:
        return False
    store.update_verification(conn, ticket["id"], **{column: result.tries_left})
    if threaded:
        _apply(store, settings, conn, ticket, mail, row, result, now)
    else:
        _apply_unthreaded(store, settings, conn, ticket, mail, row, result, now)
    return True


def _standing(store: Store, settings: Settings, ticket: dict[str, Any],
              mail: InboundMail) -> Standing:
    carries = ticket["ref"] in (find_ref(mail.subject, settings.bot.ticket_prefix),
                                find_ref(mail.new_text, settings.bot.ticket_prefix))
    return reply_standing([mail.in_reply_to, *mail.references],
                          store.mail_ids_to_customer(ticket["id"]), carries_ref=carries,
                          from_customer=mail.from_addr.lower() ==
                          (ticket["customer_email"] or "").lower())


def _note_not_counted(store: Store, conn: sqlite3.Connection, ticket: dict[str, Any],
                      mail: InboundMail, now: datetime) -> None:
    """Numbers in a mail that may not act on the code: recorded, at no cost."""
    if mail.from_addr.lower() != (ticket["customer_email"] or "").lower():
        # Only the address the code was sent to can confirm; never a forwarded copy.
        store.add_event(conn, ticket["id"], now, "verification_other_address",
                        {"from": mail.from_addr})
    elif code_candidates(mail.new_text):
        store.add_event(conn, ticket["id"], now, "verification_code_not_counted",
                        {"why": "neither a reply to our mail nor carrying the ref"})


def _apply(store: Store, settings: Settings, conn: sqlite3.Connection, ticket: dict[str, Any],
           mail: InboundMail, row: dict[str, Any], result: CodeCheck, now: datetime) -> None:
    """A reply to our mail: its wrong codes cost the customer's tries."""
    thread = _thread(ticket, mail)
    if result.verdict == Verdict.CONFIRMED:
        _confirm(store, settings, conn, ticket, row, thread, now)
    elif result.verdict == Verdict.WRONG:
        _wrong(store, settings, conn, ticket, thread, result.tries_left, now)
    else:
        _fail(store, settings, conn, ticket, row, thread, now,
              expired=result.verdict == Verdict.EXPIRED)


def _apply_unthreaded(store: Store, settings: Settings, conn: sqlite3.Connection,
                      ticket: dict[str, Any], mail: InboundMail, row: dict[str, Any],
                      result: CodeCheck, now: datetime) -> None:
    """A mail that only carries the ref: it may confirm, but never costs the customer's
    tries nor closes the request (anyone who knows the address and the ref could send it)."""
    if result.verdict == Verdict.CONFIRMED:
        _confirm(store, settings, conn, ticket, row, _thread(ticket, mail), now)
    elif result.verdict == Verdict.WRONG:
        _wrong(store, settings, conn, ticket, _thread(ticket, mail), None, now)
    else:
        store.add_event(conn, ticket["id"], now, "verification_code_not_counted",
                        {"why": result.verdict.value, "threaded": False})


def _wrong(store: Store, settings: Settings, conn: sqlite3.Connection, ticket: dict[str, Any],
           thread: compose.CustomerThread, tries_left: int | None, now: datetime) -> None:
    store.add_event(conn, ticket["id"], now, "verification_wrong_code",
                    {"tries_left": tries_left, "threaded": tries_left is not None})
    message = compose.customer_mail(settings, thread, "verify_wrong_code",
                                    {"tries_left": tries_left}, message_id=_msgid(settings),
                                    date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now)


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
    closed = _close_unverified(store, conn, ticket, row, now, reason)
    _tell_staff(store, settings, conn, ticket, now, "Identity verification FAILED",
                [f"Reason: {reason}.",
                 "The ticket is now closed_unverified. Reopen it or confirm the customer's "
                 "identity yourself (#verified) if appropriate." if closed else
                 "The ticket stays open because staff already took it up: decide how to "
                 "go on (#verified if you confirmed the identity yourself)."])
    message = compose.customer_mail(settings, thread, "verify_failed",
                                    {"expired": expired, "closed": closed},
                                    message_id=_msgid(settings), date=now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now,
                                  final=True)


def _close_unverified(store: Store, conn: sqlite3.Connection, ticket: dict[str, Any],
                      row: dict[str, Any], now: datetime, reason: str) -> bool:
    """Verification failed; the ticket closes only while staff have not taken it up.
    Returns True when it closed."""
    fields: dict[str, Any] = {"verification_status": FAILED}
    if may_close_unverified(ticket) and can(ticket["status"], Event.VERIFICATION_FAILED):
        fields.update(status=transition(ticket["status"], Event.VERIFICATION_FAILED).value,
                      closed_at=utc_iso(now))
    store.update_ticket(conn, ticket["id"], **fields)
    store.update_verification(conn, ticket["id"], code_hash=None)
    store.add_event(conn, ticket["id"], now, "verification_failed",
                    {"reason": reason, "status": fields.get("status", ticket["status"])})
    _waiting_ended(store, conn, ticket["id"], row, now, reason)
    return "status" in fields


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


# -- category changes (called by bot.flows.staff on #category) --------------------------

def on_category_changed(store: Store, settings: Settings, conn: sqlite3.Connection,
                        ticket: dict[str, Any], old: str, new: str, now: datetime) -> None:
    """Re-evaluate identity verification after staff changed the category.

    Into disclosure/correction/deletion: a code is created, mailed to the customer and the
    ticket becomes ``pending``. Away from those: a pending code is cancelled
    (``not_required``). Runs inside the caller's transaction.
    """
    current = {**(store.ticket(ticket["id"]) or ticket), "category": new}
    action = category_change(new, current["verification_status"])
    if action == CategoryChange.START:
        _start(store, settings, conn, current, old, now)
    elif action == CategoryChange.CANCEL:
        store.update_ticket(conn, current["id"], verification_status=NOT_REQUIRED)
        store.update_verification(conn, current["id"], code_hash=None)
        store.add_event(conn, current["id"], now, "verification_cancelled",
                        {"category_from": old, "category_to": new})
        row = store.verification(current["id"]) or {"created_at": None}
        _waiting_ended(store, conn, current["id"], row, now, "cancelled")


def _start(store: Store, settings: Settings, conn: sqlite3.Connection,
           ticket: dict[str, Any], old: str, now: datetime) -> None:
    """Issue a code and mail it; ``pending`` only when the mail is really queued."""
    blocked = autoreply.blocked_reason(store, settings, ticket["customer_email"] or "", now,
                                       ticket["id"])
    if blocked:
        store.add_event(conn, ticket["id"], now, "verification_not_started", {"why": blocked})
        _tell_staff(store, settings, conn, ticket, now, "No identity code could be sent",
                    [f"Automatic mail to the customer is blocked ({blocked}). Confirm the "
                     "identity yourself (#verified) or write to the customer."])
        return
    code, expires = codes.issue_code(store, settings, conn, ticket["id"], ticket["ref"], now)
    message = verification_request(settings, store, ticket, code, expires, now)
    autoreply.queue_customer_mail(store, settings, conn, ticket_id=ticket["id"],
                                  message=message, kind=MAIL_KIND, now=now, mask=code)
    store.update_ticket(conn, ticket["id"], verification_status=PENDING)
    store.add_event(conn, ticket["id"], now, "verification_started",
                    {"category_from": old, "category_to": ticket["category"]})


def verification_request(settings: Settings, store: Store, ticket: dict[str, Any], code: str,
                         expires: datetime, now: datetime) -> Message:
    """The mail that asks for the code when staff set a request category."""
    ids = store.customer_message_ids(ticket["id"])
    thread = _thread(ticket, None)
    if ids:
        thread = compose.CustomerThread(
            thread.ref, thread.language, thread.customer_email, thread.customer_name,
            thread.original_subject, ids[-1], (ids[0],), thread.bilingual)
    context = {"category": ticket["category"], "due_at": parse_utc(ticket["due_at"]) or now,
               "verification": {"code": code, "expires_at": expires,
                                "max_attempts": settings.verification.max_attempts}}
    return compose.customer_mail(settings, thread, "verify_start", context,
                                 message_id=_msgid(settings), date=now)


# -- the scheduled pass ----------------------------------------------------------------

def verification_pass(store: Store, settings: Settings, now: datetime) -> PassReport:
    """Remind once after ``verification.reminder_after_days``; close expired requests;
    neither for a ticket that staff answered, completed, decided or re-categorised."""
    reminded = closed = 0
    after = timedelta(days=settings.verification.reminder_after_days)
    for pending in store.pending_verifications():
        if stop_reason(pending):
            _note_stopped(store, pending, now)
            continue
        action = due_action(code_created_at=parse_utc(pending["code_created_at"]) or now,
                            code_expires_at=parse_utc(pending["code_expires_at"]) or now,
                            reminded_at=parse_utc(pending["code_reminded_at"]),
                            reminder_after=after, now=now)
        if action is None:
            continue
        with store.transaction() as conn:
            ticket = store.ticket(pending["id"])
            if ticket is None or stop_reason(ticket):
                continue  # confirmed or answered since we looked
            if action == Due.REMIND:
                _remind(store, settings, conn, ticket, pending, now)
                reminded += 1
            else:
                _expire(store, settings, conn, ticket, now)
                closed += 1
    return PassReport(reminded, closed)


def _note_stopped(store: Store, ticket: dict[str, Any], now: datetime) -> None:
    """Record once why reminders and expiry no longer apply (the code still works)."""
    if store.events_since("verification_reminders_stopped", "", ticket["id"]):
        return
    with store.transaction() as conn:
        store.add_event(conn, ticket["id"], now, "verification_reminders_stopped",
                        {"why": stop_reason(ticket)})


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
