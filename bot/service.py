"""Handle one raw message: parse -> machine check -> match ticket -> triage -> store (+outbox).

Everything a message causes (ticket, message rows, events, outbox mail, processed marker)
is written in ONE transaction, so a crash at any point leaves either all of it or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot import autoreply, compose, escalation, notify_limits, staff, verification
from bot.autogen import machine_generated_reason
from bot.config import Settings
from bot.conversation import Action, Route
from bot.models import (
    Category,
    Direction,
    InboundMail,
    Language,
    MessageKind,
    MessageSource,
    Outcome,
    Triage,
)
from bot.parse import parse_message
from bot.sla import BusinessCalendar, calendar_from_settings, deadlines
from bot.status import Event
from bot.store import Store, utc_iso
from bot.triage import triage

log = logging.getLogger(__name__)

VERIFIED_CATEGORIES = (Category.DISCLOSURE, Category.CORRECTION, Category.DELETION)
OPEN_STATUS = "open"
MAX_REASON = 300


@dataclass(frozen=True)
class Handled:
    """What happened to one message; logged as one line by the worker."""

    outcome: Outcome
    reason: str | None = None
    ref: str | None = None
    category: str | None = None
    language: str | None = None


class Service:
    """The per-message pipeline, bound to one store and the settings."""

    def __init__(self, store: Store, settings: Settings,
                 calendar: BusinessCalendar | None = None) -> None:
        self.store = store
        self.settings = settings
        self.calendar = calendar or calendar_from_settings(settings)

    # -- entry points ---------------------------------------------------------------------
    def handle(self, source: MessageSource, raw: bytes, now: datetime,
               received_at: datetime | None = None) -> Handled:
        """Process one raw message exactly once (the caller has checked ``processed``)."""
        mail = parse_message(raw)
        key = message_key(mail, raw)
        received = min(received_at, now) if received_at else now
        if self.store.is_known_message(key):
            return self._ignore(source, key, "already-processed", now)
        reason = machine_generated_reason(mail, self.settings.bot.address)
        if reason:
            return self._ignore(source, key, reason, now, mail, raw)
        route = staff.route_mail(self.store, self.settings, mail, now)
        if route.action in (Action.FOLLOWUP, Action.REOPEN):
            ticket = self.store.ticket(route.ticket.id)  # type: ignore[union-attr]
            return self._followup(source, key, mail, ticket, now,
                                  reopen=route.action == Action.REOPEN)
        if route.action in staff.STAFF_ACTIONS:
            return self._staff_mail(source, key, mail, route, now)
        return self._new_ticket(source, key, mail, received, now, route)

    def record_failure(self, source: MessageSource, raw: bytes | None, error: str,
                       now: datetime, quarantined: bool) -> Handled:
        """A message we could not handle: record it (it stays in the mailbox)."""
        key = _raw_key(raw) if raw else f"uid:{source.uidvalidity}:{source.uid}"
        reason = error[:MAX_REASON]
        with self.store.transaction() as conn:
            self.store.add_event(conn, None, now, "message_failed",
                                 {"uid": source.uid, "error": reason, "copied": quarantined})
            self.store.record_processed(conn, source, key, Outcome.QUARANTINED, reason, None, now)
        return Handled(Outcome.QUARANTINED, reason)

    def handle_too_large(self, source: MessageSource, header: bytes, size: int,
                         now: datetime) -> Handled:
        """Mail over ``limits.max_message_bytes``, known by its header only (never loaded):
        a ticket for staff to review and the short "too large" acknowledgement."""
        mail = parse_message(header)
        key = message_key(mail, header)
        note = too_large_reason(size, self.settings.limits.max_message_bytes)
        if self.store.is_known_message(key):
            return self._ignore(source, key, "already-processed", now)
        machine = machine_generated_reason(mail, self.settings.bot.address)
        if machine:
            return self._ignore(source, key, f"{machine}; {note}", now)
        mail = replace(mail, body_text=f"[{note}; the body was not loaded]", size=size)
        return self._new_ticket(source, key, mail, now, now, too_large=note)

    # -- outcomes -------------------------------------------------------------------------
    def _ignore(self, source: MessageSource, key: str, reason: str, now: datetime,
                mail: InboundMail | None = None, raw: bytes = b"") -> Handled:
        with self.store.transaction() as conn:
            if mail is not None and reason == "delivery-report":
                self._note_bounce(conn, mail, now, raw)
            self.store.record_processed(conn, source, key, Outcome.IGNORED, reason, None, now)
        return Handled(Outcome.IGNORED, reason)

    def _note_bounce(self, conn: sqlite3.Connection, mail: InboundMail, now: datetime,
                     raw: bytes) -> None:
        original = mail.header("x-bot-embedded-message-id") or mail.in_reply_to
        ticket = self.store.ticket_for_message_ids([original]) if original else None
        bounced = autoreply.record_bounce(self.store, conn, raw, original, ticket and ticket["id"],
                                          now) if original else []
        if ticket:
            self.store.add_event(conn, ticket["id"], now, "bounce",
                                 {"original": original, "subject": mail.subject[:200],
                                  "failed_recipients": bounced})

    def _followup(self, source: MessageSource, key: str, mail: InboundMail,
                  ticket: dict, now: datetime, reopen: bool = False) -> Handled:
        """The customer's mail joins their ticket (reopening it if it was closed)."""
        with self.store.transaction() as conn:
            self._record_inbound(conn, ticket["id"], mail, MessageKind.CUSTOMER, now)
            self.store.add_event(conn, ticket["id"], now, "customer_followup",
                                 {"message_id": mail.message_id, "reopened": reopen})
            status = staff.apply_event(self.store, conn, ticket["id"], ticket["status"],
                                       Event.CUSTOMER_WROTE, now, strict=False)
            ticket = {**ticket, "status": status}
            verification.on_customer_followup(self.store, self.settings, conn, ticket, mail, now)
            staff.notify_followup(self, conn, ticket, mail, now)
            staff.send_followup_note(self, conn, ticket, mail, now)
            self.store.record_processed(conn, source, key, Outcome.FOLLOWUP,
                                        "reopened" if reopen else None, ticket["id"], now)
        return Handled(Outcome.FOLLOWUP, "reopened" if reopen else None, ticket["ref"],
                       ticket["category"], ticket["language"])

    def _staff_mail(self, source: MessageSource, key: str, mail: InboundMail,
                    route: Route, now: datetime) -> Handled:
        """Staff mail: relay/commands, a Cc/Bcc copy, or a rejected impostor (bot.staff)."""
        ticket_id = route.ticket.id if route.ticket else None
        with self.store.transaction() as conn:
            reason = staff.handle_staff_mail(self, conn, mail, route, now)
            self.store.record_processed(conn, source, key, Outcome.STAFF, reason, ticket_id,
                                        now)
        return Handled(Outcome.STAFF, reason, route.ticket.ref if route.ticket else None)

    def _new_ticket(self, source: MessageSource, key: str, mail: InboundMail,
                    received: datetime, now: datetime, route: Route | None = None,
                    too_large: str | None = None) -> Handled:
        """Open a ticket; ``too_large`` (the note) when only the header could be read: staff
        review it, no code is sent, and the short "too large" reply replaces the ack."""
        result = self._triage(mail)
        if too_large:
            result = replace(result, needs_review=True)
        due = deadlines(received, result.category, self.settings.sla, self.calendar)
        needs_code = result.category in VERIFIED_CATEGORIES and not too_large
        with self.store.transaction() as conn:
            ticket_id, ref = self.store.create_ticket(
                conn, self.settings.bot.ticket_prefix,
                category=result.category.value, language=result.language.value,
                status=OPEN_STATUS, subject=mail.subject, customer_email=mail.from_addr,
                customer_name=mail.from_name, created_at=utc_iso(received),
                due_at=utc_iso(due.respond_at), escalate_at=utc_iso(due.escalate_at),
                hard_at=utc_iso(due.hard_at), escalation_level=0,
                verification_status="pending" if needs_code else "not_required",
                needs_review=int(result.needs_review),
                triage_confidence=round(result.confidence, 3),
                language_confidence=round(result.language_confidence, 3),
                triage_cues="; ".join(result.cues), bilingual=int(result.bilingual),
                last_activity_at=utc_iso(now))
            self._record_inbound(conn, ticket_id, mail, MessageKind.CUSTOMER, now)
            self.store.add_event(conn, ticket_id, now, "ticket_created", {
                "category": result.category.value, "language": result.language.value,
                "confidence": round(result.confidence, 3), "needs_review": result.needs_review,
                **({"too_large": mail.size} if too_large else {})})
            if route and route.linked:
                staff.link_tickets(self.store, conn, ticket_id, route, now)
            code = self._new_code(conn, ticket_id, ref, now) if needs_code else None
            ticket = TicketInfo(ticket_id, ref, result, received, due.respond_at, code)
            self._acknowledge(conn, ticket, mail, now, too_large=bool(too_large))
            self._notify_staff(conn, ticket, mail, now)
            escalation.notify_new_complaint(self.store, conn, self.settings, ticket_id, now)
            self.store.record_processed(conn, source, key, Outcome.TICKET, too_large, ticket_id,
                                        now)
        return Handled(Outcome.TICKET, too_large, ref, result.category.value,
                       result.language.value)

    # -- pieces ---------------------------------------------------------------------------
    def _triage(self, mail: InboundMail) -> Triage:
        return triage(mail.subject, mail.new_text,
                      default_language=Language(self.settings.bot.default_language),
                      review_threshold=self.settings.triage.review_threshold,
                      language_threshold=self.settings.triage.language_threshold)

    def _record_inbound(self, conn: sqlite3.Connection, ticket_id: int, mail: InboundMail,
                        kind: MessageKind, now: datetime) -> None:
        self.store.add_message(
            conn, ticket_id=ticket_id, direction=Direction.IN.value, kind=kind.value,
            message_id=mail.message_id, in_reply_to=mail.in_reply_to,
            from_addr=mail.from_addr, to_addrs=", ".join(mail.to_addrs[:50]),
            subject=mail.subject, body_text=mail.body_text,
            attachments=_attachments_json(mail), created_at=utc_iso(now))

    def _new_code(self, conn: sqlite3.Connection, ticket_id: int, ref: str,
                  now: datetime) -> tuple[str, datetime]:
        code = f"{secrets.randbelow(10**8):08d}"
        expires = now + timedelta(days=self.settings.verification.code_ttl_days)
        self.store.add_verification(conn, ticket_id, verification.hash_code(ref, code), expires,
                                    self.settings.verification.max_attempts, now)
        self.store.add_event(conn, ticket_id, now, "waiting_for_customer",
                             {"for": "identity verification"})
        return code, expires

    def _acknowledge(self, conn: sqlite3.Connection, ticket: TicketInfo, mail: InboundMail,
                     now: datetime, too_large: bool = False) -> None:
        blocked = self._auto_reply_blocked(mail.from_addr, now, ticket.id)
        if blocked:
            self.store.add_event(conn, ticket.id, now, "acknowledgement_suppressed", blocked)
            return
        message_id = compose.make_message_id(self.settings.bot_domain)
        if too_large:
            thread = compose.CustomerThread(
                ticket.ref, ticket.triage.language, mail.from_addr, mail.from_name,
                mail.subject, mail.message_id, tuple(mail.references), ticket.triage.bilingual)
            message = compose.too_large(self.settings, thread, received_at=ticket.received_at,
                                        date=now, message_id=message_id)
            self._enqueue(conn, ticket.id, message, [mail.from_addr],
                          MessageKind.ACKNOWLEDGEMENT, now)
            return
        message = compose.acknowledgement(
            self.settings, ref=ticket.ref,
            category=None if ticket.triage.needs_review else ticket.triage.category,
            language=ticket.triage.language, bilingual=ticket.triage.bilingual,
            customer_name=mail.from_name, customer_email=mail.from_addr,
            original_subject=mail.subject, received_at=ticket.received_at,
            due_at=ticket.due_at,
            verification_code=ticket.code[0] if ticket.code else None,
            code_expires_at=ticket.code[1] if ticket.code else None,
            in_reply_to=mail.message_id, references=list(mail.references),
            message_id=message_id, date=now)
        self._enqueue(conn, ticket.id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT,
                      now, mask=ticket.code[0] if ticket.code else None)

    def _notify_staff(self, conn: sqlite3.Connection, ticket: TicketInfo, mail: InboundMail,
                      now: datetime) -> None:
        recipients = autoreply.staff_recipients(self.settings)
        if not recipients or not notify_limits.admit(
                self.store, self.settings, conn, sender=mail.from_addr, ticket_id=ticket.id,
                now=now):
            return  # a flood from one sender: held for the hourly summary (bot.notify_limits)
        message = compose.staff_notification(
            self.settings, ref=ticket.ref, triage=ticket.triage, mail=mail,
            due_at=ticket.due_at,
            verification_status="pending" if ticket.code else "not_required",
            to=recipients, message_id=compose.make_message_id(self.settings.bot_domain),
            date=now, reply_to=staff.notification_reply_to(self.settings, ticket.ref))
        self._enqueue(conn, ticket.id, message, recipients, MessageKind.NOTIFICATION, now,
                      counted=False)

    def _enqueue(self, conn: sqlite3.Connection, ticket_id: int, message, recipients: list[str],
                 kind: MessageKind, now: datetime, mask: str | None = None,
                 counted: bool = True) -> None:
        autoreply.queue_mail(self.store, self.settings, conn, ticket_id, message, recipients,
                             kind.value, now, mask, counted)

    def _auto_reply_blocked(self, address: str, now: datetime,
                            ticket_id: int | None = None) -> str | None:
        """Why no automatic mail may go to ``address`` (on ``ticket_id``) now, or None."""
        return autoreply.blocked_reason(self.store, self.settings, address, now, ticket_id)


@dataclass(frozen=True)
class TicketInfo:
    id: int
    ref: str
    triage: Triage
    received_at: datetime
    due_at: datetime
    code: tuple[str, datetime] | None


def message_key(mail: InboundMail, raw: bytes) -> str:
    """Identity of a message across UIDVALIDITY changes: its Message-ID, else a raw hash."""
    return mail.message_id or _raw_key(raw)


def too_large_reason(size: int, limit: int) -> str:
    """The ``processed.reason`` of a mail over ``limits.max_message_bytes``."""
    return f"too-large: {size} bytes (limit {limit})"


def _raw_key(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _attachments_json(mail: InboundMail) -> str:
    return json.dumps([{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                        "sha256": a.sha256} for a in mail.attachments[:200]], ensure_ascii=False)
