"""The conversation glue around :mod:`bot.conversation` (pure): look up the tickets a mail
points at, then carry out what staff asked - relay the answer, run commands, record copies,
reject and report senders who cannot be authenticated.

Every function that writes takes the open transaction (``conn``) of the message being
handled, so a staff reply and everything it causes commit together.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot import autoreply, compose, conversation, notify_limits
from bot.config import Settings
from bot.conversation import Action, Command, Evidence, Route, StaffInstruction, TicketView
from bot.models import Category, InboundMail, Language, MessageKind, Triage
from bot.sla import deadlines, from_iso
from bot.status import Event, InvalidTransition, can, is_closed, transition
from bot.store import Store, utc_iso

if TYPE_CHECKING:
    from bot.service import Service

log = logging.getLogger(__name__)

STAFF_ACTIONS = (Action.STAFF_REPLY, Action.STAFF_COPY, Action.SUSPICIOUS)
MAX_ALERTS_PER_HOUR = 5  # suspicious-sender alerts: a spoofing flood must not flood staff
_STATUS_COMMANDS = {Command.CLOSE: Event.STAFF_CLOSE, Command.REOPEN: Event.STAFF_REOPEN,
                    Command.WAIT: Event.STAFF_WAIT}


# -- lookups --------------------------------------------------------------------------------

def route_mail(store: Store, settings: Settings, mail: InboundMail, now: datetime) -> Route:
    """Where a human mail goes (new ticket, follow-up, staff ...)."""
    return conversation.decide_route(gather_evidence(store, settings, mail), now=now,
                                     reopen_days=settings.tickets.reopen_days)


def gather_evidence(store: Store, settings: Settings, mail: InboundMail) -> Evidence:
    """The tickets a mail's routing address, threading headers and subject point at."""
    recipients = (*mail.to_addrs, *mail.cc_addrs)
    routing = conversation.find_routing_token(recipients, settings.bot.address)
    token_ticket = None
    if routing and conversation.token_is_valid(settings.staff_token_secret, *routing):
        token_ticket = ticket_view(store.ticket_by_ref(routing[0]))
    ref = conversation.find_ref(mail.subject, settings.bot.ticket_prefix)
    is_staff = mail.from_addr in {a.lower() for a in settings.staff.addresses}
    return Evidence(
        sender=mail.from_addr, recipients=recipients, sender_is_staff=is_staff,
        auth_results_pass=is_staff and conversation.auth_results_pass(
            mail.header_all("authentication-results"), settings.staff.trusted_authserv_ids,
            mail.from_addr),
        token_ticket=token_ticket, token_present=routing is not None,
        thread_ticket=ticket_view(store.ticket_for_message_ids(
            [mail.in_reply_to or "", *mail.references])),
        subject_ticket=ticket_view(store.ticket_by_ref(ref)) if ref else None)


def ticket_view(row: dict[str, Any] | None) -> TicketView | None:
    """The routing view of a ``tickets`` row."""
    if row is None:
        return None
    closed_at = from_iso(row["closed_at"]) if row.get("closed_at") else None
    return TicketView(row["id"], row["ref"], row["customer_email"] or "", row["status"],
                      closed_at)


def notification_reply_to(settings: Settings, ref: str) -> str | None:
    """The Reply-To of staff notifications; None when no token secret is configured."""
    if not settings.staff_token_secret:
        return None
    return conversation.reply_address(settings.bot.address, ref, settings.staff_token_secret)


# -- status changes -------------------------------------------------------------------------

def apply_event(store: Store, conn: sqlite3.Connection, ticket_id: int, current: str,
                event: Event, now: datetime, strict: bool = True) -> str:
    """Move a ticket through :func:`bot.status.transition`; record the change; new status.

    ``strict=False`` leaves a ticket whose status does not allow ``event`` as it is (a
    customer's mail must never fail because of the ticket's state).
    """
    if not strict and not can(current, event):
        return current
    new = transition(current, event).value
    fields: dict[str, Any] = {"status": new, "last_activity_at": utc_iso(now)}
    if is_closed(new) and not is_closed(current):
        fields["closed_at"] = utc_iso(now)
    elif is_closed(current) and not is_closed(new):
        fields["closed_at"] = None
    store.update_ticket(conn, ticket_id, **fields)
    if new != current:
        store.add_event(conn, ticket_id, now, "status_changed",
                        {"from": current, "to": new, "by": event.value})
    return new


# -- staff mail -----------------------------------------------------------------------------

def handle_staff_mail(svc: Service, conn: sqlite3.Connection, mail: InboundMail, route: Route,
                      now: datetime) -> str:
    """Carry out a staff route inside ``conn``; returns the ``processed.reason``."""
    if route.action == Action.SUSPICIOUS:
        return _reject_suspicious(svc, conn, mail, route, now)
    ticket = svc.store.ticket(route.ticket.id)  # type: ignore[union-attr]
    assert ticket is not None  # routes only name existing tickets
    if route.action == Action.STAFF_COPY:
        return _record_copy(svc, conn, mail, ticket, now)
    instruction = conversation.parse_staff_text(conversation.strip_quoted(mail.body_text))
    if instruction.problems:
        return _reject_commands(svc, conn, mail, ticket, instruction, now)
    return _carry_out(svc, conn, mail, ticket, instruction, now)


def _reject_suspicious(svc: Service, conn: sqlite3.Connection, mail: InboundMail,
                       route: Route, now: datetime) -> str:
    ticket_id = route.ticket.id if route.ticket else None
    recent = svc.store.count("events", "type = 'suspicious_sender' AND at >= ?",
                             (utc_iso(now - timedelta(hours=1)),))
    alert = recent < MAX_ALERTS_PER_HOUR
    svc.store.add_event(conn, ticket_id, now, "suspicious_sender", {
        "from": mail.from_addr, "reason": route.reason, "message_id": mail.message_id,
        "subject": compose.clean_line(mail.subject, 200), "staff_alerted": alert})
    log.warning("rejected mail claiming to be staff (%s) for %s: %s", mail.from_addr,
                route.ticket.ref if route.ticket else "no ticket", route.reason)
    if alert:
        ref = route.ticket.ref if route.ticket else None
        _tell_staff(svc, conn, ticket_id, _staff_recipients(svc.settings),
                    f"[{ref}] " if ref else "", "Rejected mail claiming to be from staff",
                    _suspicious_text(mail, route), None, now)
    return "suspicious-sender"


def _suspicious_text(mail: InboundMail, route: Route) -> str:
    where = f"about ticket {route.ticket.ref}" if route.ticket else "with a routing address"
    return (f"A mail {where} claims to come from {mail.from_addr}, but it could not be "
            f"authenticated ({route.reason}).\nNothing was sent to the customer and no "
            f"command was run.\n\nSubject: {compose.clean_line(mail.subject, 200)}\n"
            f"Message-ID: {mail.message_id or '(none)'}\n\n"
            "If you sent it, reply to the ticket's notification (its Reply-To carries the "
            "ticket's token). Otherwise someone is impersonating staff: please tell IT.\n")


def _record_copy(svc: Service, conn: sqlite3.Connection, mail: InboundMail,
                 ticket: dict[str, Any], now: datetime) -> str:
    # The customer already has this mail: record it as the answer, relay nothing.
    svc._record_inbound(conn, ticket["id"], mail, MessageKind.STAFF_REPLY, now)
    _mark_answered(svc.store, conn, ticket, now)
    svc.store.add_event(conn, ticket["id"], now, "staff_reply",
                        {"from": mail.from_addr, "relayed": False, "via": "copy"})
    return "staff-copy"


def _reject_commands(svc: Service, conn: sqlite3.Connection, mail: InboundMail,
                     ticket: dict[str, Any], instruction: StaffInstruction,
                     now: datetime) -> str:
    # A mistyped "#note" must never send an internal note to the customer: do nothing.
    svc.store.add_event(conn, ticket["id"], now, "staff_commands_rejected",
                        {"from": mail.from_addr, "problems": list(instruction.problems)})
    _tell_staff(svc, conn, ticket["id"], [mail.from_addr], f"[{ticket['ref']}] ",
                "Command not understood", conversation.command_help(instruction.problems),
                mail.message_id, now)
    return "commands-rejected"


def _carry_out(svc: Service, conn: sqlite3.Connection, mail: InboundMail,
               ticket: dict[str, Any], instruction: StaffInstruction, now: datetime) -> str:
    relay = bool(instruction.answer) and not instruction.has(Command.NOTE)
    kind = MessageKind.STAFF_REPLY if relay else MessageKind.STAFF_NOTE
    svc._record_inbound(conn, ticket["id"], mail, kind, now)
    if relay:
        _relay_answer(svc, conn, ticket, instruction.answer, now)
        ticket = {**ticket, "status": _mark_answered(svc.store, conn, ticket, now)}
    for command, argument in instruction.commands:
        ticket = _run_command(svc, conn, ticket, command, argument, now)
    svc.store.add_event(conn, ticket["id"], now, kind.value, {
        "from": mail.from_addr, "relayed": relay,
        "commands": [f"#{c.value} {a}".strip() for c, a in instruction.commands]})
    if relay:
        return "relayed"
    return "note" if instruction.has(Command.NOTE) else "commands"


def _mark_answered(store: Store, conn: sqlite3.Connection, ticket: dict[str, Any],
                   now: datetime) -> str:
    """First response (stops the escalation clock) and the staff_replied transition."""
    if not ticket["first_response_at"]:
        store.update_ticket(conn, ticket["id"], first_response_at=utc_iso(now))
    return apply_event(store, conn, ticket["id"], ticket["status"], Event.STAFF_REPLIED, now)


def _run_command(svc: Service, conn: sqlite3.Connection, ticket: dict[str, Any],
                 command: Command, argument: str, now: datetime) -> dict[str, Any]:
    """One command; returns the ticket as it is afterwards."""
    store, ticket_id = svc.store, ticket["id"]
    if command in _STATUS_COMMANDS:
        try:
            status = apply_event(store, conn, ticket_id, ticket["status"],
                                 _STATUS_COMMANDS[command], now)
        except InvalidTransition as exc:
            store.add_event(conn, ticket_id, now, "command_not_applicable",
                            {"command": command.value, "why": str(exc)})
            return ticket
        return {**ticket, "status": status}
    if command == Command.CATEGORY:
        _change_category(svc, conn, ticket, Category(argument), now)
        return {**ticket, "category": argument}
    if command == Command.VERIFIED:
        store.update_ticket(conn, ticket_id, verification_status="staff_verified")
        store.add_event(conn, ticket_id, now, "verification_confirmed", {"by": "staff"})
    elif command == Command.ASSIGN:
        store.update_ticket(conn, ticket_id, assigned_to=argument[:100])
        store.add_event(conn, ticket_id, now, "assigned", {"to": argument[:100]})
    return ticket


def _change_category(svc: Service, conn: sqlite3.Connection, ticket: dict[str, Any],
                     category: Category, now: datetime) -> None:
    # The SLA depends on the category, so the deadlines follow it (from the original date).
    due = deadlines(from_iso(ticket["created_at"]), category, svc.settings.sla, svc.calendar)
    svc.store.update_ticket(conn, ticket["id"], category=category.value, needs_review=0,
                            due_at=utc_iso(due.respond_at), escalate_at=utc_iso(due.escalate_at),
                            hard_at=utc_iso(due.hard_at))
    svc.store.add_event(conn, ticket["id"], now, "category_changed",
                        {"from": ticket["category"], "to": category.value, "by": "staff"})


# -- outgoing mail --------------------------------------------------------------------------

def _relay_answer(svc: Service, conn: sqlite3.Connection, ticket: dict[str, Any],
                  answer: str, now: datetime) -> None:
    first_id, last_id = _customer_message_ids(svc.store, ticket["id"])
    thread = compose.CustomerThread(
        ticket["ref"], Language(ticket["language"]), ticket["customer_email"],
        ticket["customer_name"] or "", ticket["subject"] or "", last_id,
        tuple(i for i in (first_id,) if i))
    message = compose.customer_mail(
        svc.settings, thread, "staff_reply", {"answer": compose.clean_text(answer)},
        message_id=compose.make_message_id(svc.settings.bot_domain), date=now,
        auto_submitted="no")
    # A person wrote it: not counted against the automatic-reply cap.
    svc._enqueue(conn, ticket["id"], message, [ticket["customer_email"]],
                 MessageKind.STAFF_REPLY, now, counted=False)


def _customer_message_ids(store: Store, ticket_id: int) -> tuple[str | None, str | None]:
    rows = store.rows("SELECT message_id FROM messages WHERE ticket_id = ? AND kind = ? "
                      "AND direction = 'in' AND message_id IS NOT NULL ORDER BY id",
                      (ticket_id, MessageKind.CUSTOMER.value))
    if not rows:
        return None, None
    return rows[0]["message_id"], rows[-1]["message_id"]


def _tell_staff(svc: Service, conn: sqlite3.Connection, ticket_id: int | None,
                recipients: Sequence[str], subject_prefix: str, subject: str, text: str,
                in_reply_to: str | None, now: datetime) -> None:
    recipients = autoreply.without_own_address(svc.settings, recipients)
    if not recipients:
        return
    message = compose.internal_mail(
        svc.settings, to=recipients, subject=subject_prefix + subject, text=text,
        message_id=compose.make_message_id(svc.settings.bot_domain), date=now,
        in_reply_to=in_reply_to)
    svc._enqueue(conn, ticket_id, message, recipients, MessageKind.NOTIFICATION, now,
                 counted=False)


def _staff_recipients(settings: Settings) -> list[str]:
    return list(settings.staff.notify or settings.staff.addresses)


def notify_followup(svc: Service, conn: sqlite3.Connection, ticket: dict[str, Any],
                    mail: InboundMail, now: datetime) -> None:
    """Tell staff about a customer follow-up, threaded under the ticket's first notification."""
    recipients = autoreply.staff_recipients(svc.settings)
    if not recipients or not notify_limits.admit(svc.store, svc.settings, conn,
                                                 sender=mail.from_addr, ticket_id=ticket["id"],
                                                 now=now):
        return  # a flood from one sender: held for the hourly summary (bot.notify_limits)
    first = svc.store.rows("SELECT message_id FROM messages WHERE ticket_id = ? AND kind = ? "
                           "ORDER BY id LIMIT 1", (ticket["id"], MessageKind.NOTIFICATION.value))
    parent = first[0]["message_id"] if first else None
    message = compose.staff_notification(
        svc.settings, ref=ticket["ref"], triage=ticket_triage(ticket), mail=mail,
        due_at=from_iso(ticket["due_at"]), verification_status=ticket["verification_status"],
        to=recipients, message_id=compose.make_message_id(svc.settings.bot_domain), date=now,
        followup=True, reply_to=notification_reply_to(svc.settings, ticket["ref"]),
        in_reply_to=parent, references=[parent] if parent else [])
    svc._enqueue(conn, ticket["id"], message, recipients, MessageKind.NOTIFICATION, now,
                 counted=False)


def ticket_triage(ticket: dict[str, Any]) -> Triage:
    """The triage stored on a ticket, for notifications about it."""
    cues = tuple(c for c in (ticket.get("triage_cues") or "").split("; ") if c)
    return Triage(Category(ticket["category"]), Language(ticket["language"]),
                  ticket.get("triage_confidence") or 0.0,
                  ticket.get("language_confidence") or 0.0, cues,
                  bool(ticket.get("needs_review")), bool(ticket.get("bilingual")))


def send_followup_note(svc: Service, conn: sqlite3.Connection, ticket: dict[str, Any],
                       mail: InboundMail, now: datetime) -> None:
    """The short "added to CJD-..." note, at most once per ``tickets.followup_note_hours``."""
    hours = svc.settings.tickets.followup_note_hours
    if hours <= 0 or svc._auto_reply_blocked(mail.from_addr, now, ticket["id"]):
        return
    since = utc_iso(now - timedelta(hours=hours))
    if svc.store.count("events", "ticket_id = ? AND type = 'followup_note_sent' AND at >= ?",
                       (ticket["id"], since)):
        return
    thread = compose.CustomerThread(
        ticket["ref"], Language(ticket["language"]), mail.from_addr, mail.from_name,
        mail.subject, mail.message_id, tuple(mail.references), bool(ticket.get("bilingual")))
    message = compose.followup_added(
        svc.settings, thread, due_at=from_iso(ticket["due_at"]),
        message_id=compose.make_message_id(svc.settings.bot_domain), date=now)
    svc._enqueue(conn, ticket["id"], message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT, now)
    svc.store.add_event(conn, ticket["id"], now, "followup_note_sent", {})


def link_tickets(store: Store, conn: sqlite3.Connection, new_id: int, route: Route,
                 now: datetime) -> None:
    """A new ticket that refers to an older one (someone else's ref, or closed too long)."""
    old = route.linked
    assert old is not None
    store.update_ticket(conn, new_id, linked_ticket_id=old.id)
    store.add_event(conn, new_id, now, "linked_ticket", {"ref": old.ref, "why": route.reason})
    store.add_event(conn, old.id, now, "linked_from", {"ticket_id": new_id, "why": route.reason})
