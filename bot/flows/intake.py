"""A mail that opens a ticket: triage, the request's signals (opt-out, incident, agent),
deadlines, the ticket row, the verification code, the acknowledgement, the staff
notification and the incident notice, all in the caller's transaction.

A code is created only when the acknowledgement that carries it is really queued: a ticket
is ``pending`` only if the customer was sent the code (bot.rules.requests says when one is
needed at all). Mail over ``limits.max_message_bytes`` (known by its header only) opens a
ticket for staff review with the short "too large" reply instead of the acknowledgement.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.adapters.store import utc_iso
from bot.flows import codes, completion, escalation, incidents
from bot.flows.context import Context, Handled
from bot.flows.notices import notify_new_ticket
from bot.flows.tickets import link_tickets
from bot.mail import compose, wording
from bot.models import InboundMail, Language, MessageKind, MessageSource, Outcome, Triage
from bot.rules.conversation import Route
from bot.rules.intake import QUIET_EVENT
from bot.rules.requests import RequestPlan, plan_request, tightened
from bot.rules.sla import Deadlines, deadlines
from bot.triage import triage
from bot.triage.signals import detect

OPEN_STATUS = "open"


@dataclass(frozen=True)
class NewTicket:
    """A ticket just created, as the acknowledgement and notification need it."""

    id: int
    ref: str
    triage: Triage
    received_at: datetime
    due_at: datetime
    plan: RequestPlan
    promises: dict  # bot.mail.wording facts: agent, incident, opt_out
    code: tuple[str, datetime] | None = None


def open_ticket(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
                mail: InboundMail, received: datetime, now: datetime,
                route: Route | None = None, too_large: str | None = None,
                quiet: bool = False) -> Handled:
    """Open a ticket for ``mail``; ``too_large`` is the note when only the header was read:
    staff review it, no code is sent, and the short "too large" reply replaces the ack.
    ``quiet`` (mail from before the bot's first start): no acknowledgement and no staff
    notification; the worker sends staff one summary of all such tickets."""
    result, plan = _assess(ctx, mail, bool(too_large))
    promises = _promises(ctx, plan, received)
    due = _deadlines(ctx, result, received, promises)
    ticket_id, ref = _create(ctx, conn, mail, result, plan, received, due, now)
    ctx.record_inbound(conn, ticket_id, mail, MessageKind.CUSTOMER, now)
    ctx.store.add_event(conn, ticket_id, now, "ticket_created", {
        "category": result.category.value, "language": result.language.value,
        "confidence": round(result.confidence, 3), "needs_review": result.needs_review,
        **({"too_large": mail.size} if too_large else {}),
        **({"request_kind": plan.request_kind} if plan.request_kind else {}),
        **({"agent_relation": plan.agent} if plan.agent else {})})
    if route and route.linked:
        link_tickets(ctx.store, conn, ticket_id, route, now)
    ticket = NewTicket(ticket_id, ref, result, received, due.respond_at, plan, promises)
    if quiet:
        ctx.store.add_event(conn, ticket_id, now, QUIET_EVENT,
                            {"received_at": utc_iso(received)})
    else:
        ticket = _acknowledge(ctx, conn, ticket, mail, now, too_large=bool(too_large))
        status = "pending" if ticket.code else "not_required"
        notify_new_ticket(ctx, conn, ticket_id=ticket_id, ref=ref, triage=result, mail=mail,
                          due_at=due.respond_at, verification_status=status, now=now,
                          notes=_staff_notes(ctx, ticket, mail))
    _tell_dpo(ctx, conn, ticket, mail, now)
    escalation.notify_new_complaint(ctx.store, conn, ctx.settings, ticket_id, now)
    ctx.store.record_processed(conn, source, key, Outcome.TICKET, too_large, ticket_id, now)
    return Handled(Outcome.TICKET, too_large, ref, result.category.value, result.language.value)


def _assess(ctx: Context, mail: InboundMail, too_large: bool) -> tuple[Triage, RequestPlan]:
    """Triage and the request plan; a mail read from its header only is only reviewed."""
    result = triage_mail(ctx, mail)
    if not mail.from_addr:  # nobody to answer or verify: staff decide what to do with it
        result = replace(result, needs_review=True,
                         review_reasons=(*result.review_reasons, "no usable sender address"))
    if too_large:
        return replace(result, needs_review=True), plan_request(
            result.category.value, needs_review=True, readable=False)
    found = detect(mail.subject, mail.new_text)
    return result, plan_request(result.category.value, needs_review=result.needs_review,
                                opt_out=found.opt_out, erasure=found.erasure,
                                incident=found.incident, agent=found.agent)


def _promises(ctx: Context, plan: RequestPlan, received: datetime) -> dict:
    """What the acknowledgement will promise (and when), per bot.mail.wording."""
    settings, tz = ctx.settings, ctx.settings.tz
    promises: dict = {"agent": wording.agent_facts(plan.agent)}
    if plan.request_kind == "incident":
        hours = settings.escalation.incident_hours
        promises["incident"] = wording.incident_facts(received + timedelta(hours=hours),
                                                      hours, tz)
    if plan.stop_sends:
        days = settings.tickets.opt_out_days
        promises["opt_out"] = wording.opt_out_facts(
            ctx.calendar.add_business_days(received, days), days, tz,
            pure=plan.ack_kind == "opt_out")
    return promises


def _deadlines(ctx: Context, result: Triage, received: datetime, promises: dict) -> Deadlines:
    due = deadlines(received, result.category, ctx.settings.sla, ctx.calendar)
    return tightened(due, *((promises.get(k) or {}).get("by") for k in ("incident", "opt_out")))


def triage_mail(ctx: Context, mail: InboundMail) -> Triage:
    """Category and language of a customer's mail, with the configured thresholds."""
    return triage(mail.subject, mail.new_text,
                  default_language=Language(ctx.settings.bot.default_language),
                  review_threshold=ctx.settings.triage.review_threshold or None,
                  language_threshold=ctx.settings.triage.language_threshold,
                  model=ctx.model, quoted=mail.body_text)


def too_large_reason(size: int, limit: int) -> str:
    """The ``processed.reason`` of a mail over ``limits.max_message_bytes``."""
    return f"too-large: {size} bytes (limit {limit})"


def _create(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, result: Triage,
            plan: RequestPlan, received: datetime, due: Deadlines,
            now: datetime) -> tuple[int, str]:
    # verification_status starts not_required: _acknowledge makes it pending with the code.
    complete_by = completion.completion_deadline(ctx.settings, ctx.calendar, {
        "category": result.category.value, "language": result.language.value,
        "bilingual": result.bilingual, "created_at": utc_iso(received)})
    return ctx.store.create_ticket(
        conn, ctx.settings.bot.ticket_prefix,
        category=result.category.value, language=result.language.value,
        status=OPEN_STATUS, subject=mail.subject, customer_email=mail.from_addr,
        customer_name=mail.from_name, created_at=utc_iso(received),
        due_at=utc_iso(due.respond_at), escalate_at=utc_iso(due.escalate_at),
        hard_at=utc_iso(due.hard_at), escalation_level=0,
        verification_status="not_required", needs_review=int(result.needs_review),
        triage_confidence=round(result.confidence, 3),
        language_confidence=round(result.language_confidence, 3),
        triage_cues="; ".join((*result.review_reasons, *result.cues)),
        bilingual=int(result.bilingual), triage_model=result.model_version or None,
        request_kind=plan.request_kind, agent_relation=plan.agent or None,
        completion_due_at=utc_iso(complete_by) if complete_by else None,
        last_activity_at=utc_iso(now))


def _acknowledge(ctx: Context, conn: sqlite3.Connection, ticket: NewTicket,
                 mail: InboundMail, now: datetime, too_large: bool = False) -> NewTicket:
    """Queue the acknowledgement; with it (and only then) the code. Returns the ticket
    with its code when one went out."""
    blocked = ctx.auto_reply_blocked(mail.from_addr, now, ticket.id)
    if blocked:
        ctx.store.add_event(conn, ticket.id, now, "acknowledgement_suppressed", blocked)
        if ticket.plan.needs_code:
            ctx.store.add_event(conn, ticket.id, now, "verification_not_started",
                                {"why": blocked})
        return ticket
    message_id = compose.make_message_id(ctx.settings.bot_domain)
    if too_large:
        message = compose.too_large(ctx.settings, _thread(ticket, mail),
                                    received_at=ticket.received_at, date=now,
                                    message_id=message_id)
        ctx.enqueue(conn, ticket.id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT,
                    now)
        return ticket
    if ticket.plan.needs_code:
        ticket = replace(ticket, code=codes.issue_code(ctx.store, ctx.settings, conn,
                                                       ticket.id, ticket.ref, now))
        ctx.store.update_ticket(conn, ticket.id, verification_status="pending")
    code, expires = ticket.code or (None, None)
    review = ticket.triage.needs_review and not ticket.plan.ack_kind
    message = compose.acknowledgement(
        ctx.settings, ref=ticket.ref, category=None if review else ticket.triage.category,
        language=ticket.triage.language, bilingual=ticket.triage.bilingual,
        customer_name=mail.from_name, customer_email=mail.from_addr,
        original_subject=mail.subject, received_at=ticket.received_at,
        due_at=ticket.due_at, verification_code=code, code_expires_at=expires,
        in_reply_to=mail.message_id, references=list(mail.references),
        message_id=message_id, date=now, kind=ticket.plan.ack_kind, extra=ticket.promises)
    ctx.enqueue(conn, ticket.id, message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT, now,
                mask=code)
    return ticket


def _staff_notes(ctx: Context, ticket: NewTicket, mail: InboundMail) -> list[str]:
    """The ACTION lines of the staff notification."""
    plan, promises, notes = ticket.plan, ticket.promises, []
    if plan.stop_sends:
        by = promises["opt_out"]["by"]
        notes.append(f"OPT-OUT: stop the marketing sends (email, SMS, calls, post) for "
                     f"{mail.from_addr} by {by:%Y-%m-%d} and reply to confirm. No identity "
                     "code is needed for this" + ("." if plan.ack_kind else
                                                  "; the erasure still needs one."))
    if plan.request_kind == "incident":
        notes.append("INCIDENT reported (personal data sent to the wrong person, leaked or "
                     f"exposed): {', '.join(ctx.settings.escalation.to) or 'staff'} told now."
                     f" Answer the customer by {promises['incident']['by']:%Y-%m-%d %H:%M}.")
    if plan.agent:
        notes.append(f"ON BEHALF of someone else ({plan.agent}): get proof of authority "
                     "before acting (see the README, 'Privacy requests'). The code only "
                     f"proves that the sender controls {mail.from_addr}.")
    if ticket.triage.needs_review and not ticket.code and not plan.ack_kind:
        notes.append("Triage is unsure, so NO identity code was sent. If this is a "
                     "disclosure, correction or deletion request, set the category "
                     "(#category ...): that sends the customer the code.")
    return notes


def _tell_dpo(ctx: Context, conn: sqlite3.Connection, ticket: NewTicket,
              mail: InboundMail, now: datetime) -> None:
    if ticket.plan.request_kind != "incident":
        return
    row = ctx.store.ticket(ticket.id)  # same connection: sees the uncommitted ticket
    assert row is not None
    incidents.notify_incident(ctx.store, conn, ctx.settings, row, mail.new_text,
                              ticket.promises["incident"]["by"], now)


def _thread(ticket: NewTicket, mail: InboundMail) -> compose.CustomerThread:
    return compose.CustomerThread(
        ticket.ref, ticket.triage.language, mail.from_addr, mail.from_name, mail.subject,
        mail.message_id, tuple(mail.references), ticket.triage.bilingual)
