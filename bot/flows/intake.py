"""A mail that opens a ticket: triage, deadlines, the ticket row, the verification code, the
acknowledgement and the staff notification, all in the caller's transaction.

Mail over ``limits.max_message_bytes`` (known by its header only) opens a ticket for staff
review with the short "too large" reply instead of the acknowledgement.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.adapters.store import utc_iso
from bot.flows import escalation, verification
from bot.flows.context import Context, Handled
from bot.flows.notices import notify_new_ticket
from bot.flows.tickets import link_tickets
from bot.mail import compose
from bot.models import Category, InboundMail, Language, MessageKind, MessageSource, Outcome, Triage
from bot.rules.conversation import Route
from bot.rules.sla import deadlines
from bot.triage import triage

VERIFIED_CATEGORIES = (Category.DISCLOSURE, Category.CORRECTION, Category.DELETION)
OPEN_STATUS = "open"


@dataclass(frozen=True)
class NewTicket:
    """A ticket just created, as the acknowledgement and notification need it."""

    id: int
    ref: str
    triage: Triage
    received_at: datetime
    due_at: datetime
    code: tuple[str, datetime] | None


def open_ticket(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
                mail: InboundMail, received: datetime, now: datetime,
                route: Route | None = None, too_large: str | None = None) -> Handled:
    """Open a ticket for ``mail``; ``too_large`` is the note when only the header was read:
    staff review it, no code is sent, and the short "too large" reply replaces the ack."""
    result = triage_mail(ctx, mail)
    if too_large:
        result = replace(result, needs_review=True)
    due = deadlines(received, result.category, ctx.settings.sla, ctx.calendar)
    needs_code = result.category in VERIFIED_CATEGORIES and not too_large
    ticket_id, ref = _create(ctx, conn, mail, result, received, due, needs_code, now)
    ctx.record_inbound(conn, ticket_id, mail, MessageKind.CUSTOMER, now)
    ctx.store.add_event(conn, ticket_id, now, "ticket_created", {
        "category": result.category.value, "language": result.language.value,
        "confidence": round(result.confidence, 3), "needs_review": result.needs_review,
        **({"too_large": mail.size} if too_large else {})})
    if route and route.linked:
        link_tickets(ctx.store, conn, ticket_id, route, now)
    code = _new_code(ctx, conn, ticket_id, ref, now) if needs_code else None
    ticket = NewTicket(ticket_id, ref, result, received, due.respond_at, code)
    _acknowledge(ctx, conn, ticket, mail, now, too_large=bool(too_large))
    notify_new_ticket(ctx, conn, ticket_id=ticket_id, ref=ref, triage=result, mail=mail,
                      due_at=due.respond_at,
                      verification_status="pending" if code else "not_required", now=now)
    escalation.notify_new_complaint(ctx.store, conn, ctx.settings, ticket_id, now)
    ctx.store.record_processed(conn, source, key, Outcome.TICKET, too_large, ticket_id, now)
    return Handled(Outcome.TICKET, too_large, ref, result.category.value, result.language.value)


def triage_mail(ctx: Context, mail: InboundMail) -> Triage:
    """Category and language of a customer's mail, with the configured thresholds."""
    return triage(mail.subject, mail.new_text,
                  default_language=Language(ctx.settings.bot.default_language),
                  review_threshold=ctx.settings.triage.review_threshold,
                  language_threshold=ctx.settings.triage.language_threshold)


def too_large_reason(size: int, limit: int) -> str:
    """The ``processed.reason`` of a mail over ``limits.max_message_bytes``."""
    return f"too-large: {size} bytes (limit {limit})"


def _create(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, result: Triage,
            received: datetime, due, needs_code: bool, now: datetime) -> tuple[int, str]:
    return ctx.store.create_ticket(
        conn, ctx.settings.bot.ticket_prefix,
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


def _new_code(ctx: Context, conn: sqlite3.Connection, ticket_id: int, ref: str,
              now: datetime) -> tuple[str, datetime]:
    code = f"{secrets.randbelow(10**8):08d}"
    expires = now + timedelta(days=ctx.settings.verification.code_ttl_days)
    ctx.store.add_verification(conn, ticket_id, verification.hash_code(ref, code), expires,
                               ctx.settings.verification.max_attempts, now)
    ctx.store.add_event(conn, ticket_id, now, "waiting_for_customer",
                        {"for": "identity verification"})
    return code, expires


def _acknowledge(ctx: Context, conn: sqlite3.Connection, ticket: NewTicket,
                 mail: InboundMail, now: datetime, too_large: bool = False) -> None:
    blocked = ctx.auto_reply_blocked(mail.from_addr, now, ticket.id)
    if blocked:
        ctx.store.add_event(conn, ticket.id, now, "acknowledgement_suppressed", blocked)
        return
    message_id = compose.make_message_id(ctx.settings.bot_domain)
    if too_large:
        message = compose.too_large(ctx.settings, _thread(ticket, mail),
                                    received_at=ticket.received_at, date=now,
                                    message_id=message_id)
        ctx.enqueue(conn, ticket.id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT,
                    now)
        return
    code, expires = ticket.code or (None, None)
    message = compose.acknowledgement(
        ctx.settings, ref=ticket.ref,
        category=None if ticket.triage.needs_review else ticket.triage.category,
        language=ticket.triage.language, bilingual=ticket.triage.bilingual,
        customer_name=mail.from_name, customer_email=mail.from_addr,
        original_subject=mail.subject, received_at=ticket.received_at,
        due_at=ticket.due_at, verification_code=code, code_expires_at=expires,
        in_reply_to=mail.message_id, references=list(mail.references),
        message_id=message_id, date=now)
    ctx.enqueue(conn, ticket.id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT, now,
                mask=code)


def _thread(ticket: NewTicket, mail: InboundMail) -> compose.CustomerThread:
    return compose.CustomerThread(
        ticket.ref, ticket.triage.language, mail.from_addr, mail.from_name, mail.subject,
        mail.message_id, tuple(mail.references), ticket.triage.bilingual)
