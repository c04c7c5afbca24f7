"""Staff mail: carry out what authenticated staff asked (relay the answer, run commands,
record copies) and reject and report senders who cannot be authenticated.

Every function that writes takes the open transaction (``conn``) of the message being
handled, so a staff reply and everything it causes commit together.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.store import utc_iso
from bot.flows import commands
from bot.flows.context import Context, Handled
from bot.flows.notices import staff_alert_recipients, tell_staff
from bot.flows.tickets import mark_answered
from bot.mail import compose
from bot.models import InboundMail, MessageKind, MessageSource, Outcome
from bot.rules import conversation
from bot.rules.conversation import Action, Command, Route, StaffInstruction

log = logging.getLogger(__name__)

MAX_ALERTS_PER_HOUR = 5  # suspicious-sender alerts: a spoofing flood must not flood staff


# -- staff mail -----------------------------------------------------------------------------

def handle_staff_mail(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
                      mail: InboundMail, route: Route, now: datetime) -> Handled:
    """Staff mail: relay/commands, a Cc/Bcc copy, or a rejected impostor."""
    reason = _carry_out_route(ctx, conn, mail, route, now)
    ticket_id = route.ticket.id if route.ticket else None
    ctx.store.record_processed(conn, source, key, Outcome.STAFF, reason, ticket_id, now)
    return Handled(Outcome.STAFF, reason, route.ticket.ref if route.ticket else None)


def _carry_out_route(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, route: Route,
                     now: datetime) -> str:
    """Carry out a staff route inside ``conn``; returns the ``processed.reason``."""
    if route.action == Action.SUSPICIOUS:
        return _reject_suspicious(ctx, conn, mail, route, now)
    ticket = ctx.store.ticket(route.ticket.id)  # type: ignore[union-attr]
    assert ticket is not None  # routes only name existing tickets
    if route.action == Action.STAFF_COPY:
        return _record_copy(ctx, conn, mail, ticket, now)
    instruction = conversation.parse_staff_text(conversation.strip_quoted(mail.body_text))
    if instruction.problems:
        return _reject_commands(ctx, conn, mail, ticket, list(instruction.problems),
                                "Command not understood", now)
    refused = commands.decision_problems(ctx, ticket, instruction, now)
    if refused:
        return _reject_commands(ctx, conn, mail, ticket, refused, "Command not carried out",
                                now)
    return _carry_out(ctx, conn, mail, ticket, instruction, now)


def _reject_suspicious(ctx: Context, conn: sqlite3.Connection, mail: InboundMail,
                       route: Route, now: datetime) -> str:
    ticket_id = route.ticket.id if route.ticket else None
    recent = ctx.store.events_since("suspicious_sender", utc_iso(now - timedelta(hours=1)))
    alert = recent < MAX_ALERTS_PER_HOUR
    ctx.store.add_event(conn, ticket_id, now, "suspicious_sender", {
        "from": mail.from_addr, "reason": route.reason, "message_id": mail.message_id,
        "subject": compose.clean_line(mail.subject, 200), "staff_alerted": alert})
    log.warning("rejected mail claiming to be staff (%s) for %s: %s", mail.from_addr,
                route.ticket.ref if route.ticket else "no ticket", route.reason)
    if alert:
        ref = route.ticket.ref if route.ticket else None
        tell_staff(ctx, conn, ticket_id, staff_alert_recipients(ctx.settings),
                   (f"[{ref}] " if ref else "") + "Rejected mail claiming to be from staff",
                   _suspicious_text(mail, route, ctx.settings.staff.token_days), None, now)
    return "suspicious-sender"


def _suspicious_text(mail: InboundMail, route: Route, token_days: int) -> str:
    where = f"about ticket {route.ticket.ref}" if route.ticket else "with a routing address"
    return (f"A mail {where} claims to come from {mail.from_addr}, but it could not be "
            f"authenticated ({route.reason}).\nNothing was sent to the customer and no "
            f"command was run.\n\nSubject: {compose.clean_line(mail.subject, 200)}\n"
            f"Message-ID: {mail.message_id or '(none)'}\n\n"
            "If you sent it, reply to your own notification about the ticket, from the "
            f"address it was sent to, within {token_days} days (its Reply-To carries a token "
            "for that address and that ticket only). Otherwise someone is impersonating "
            "staff: please tell IT.\n")


def _record_copy(ctx: Context, conn: sqlite3.Connection, mail: InboundMail,
                 ticket: dict[str, Any], now: datetime) -> str:
    # The customer already has this mail: record it as the answer, relay nothing.
    ctx.record_inbound(conn, ticket["id"], mail, MessageKind.STAFF_REPLY, now)
    mark_answered(ctx.store, conn, ticket, now)
    ctx.store.add_event(conn, ticket["id"], now, "staff_reply",
                        {"from": mail.from_addr, "relayed": False, "via": "copy"})
    return "staff-copy"


def _reject_commands(ctx: Context, conn: sqlite3.Connection, mail: InboundMail,
                     ticket: dict[str, Any], problems: list[str], headline: str,
                     now: datetime) -> str:
    # A mistyped "#note" must never send an internal note to the customer, and a decision
    # that does not fit the ticket must not half-run: do nothing, say why.
    ctx.store.add_event(conn, ticket["id"], now, "staff_commands_rejected",
                        {"from": mail.from_addr, "problems": problems})
    tell_staff(ctx, conn, ticket["id"], [mail.from_addr], f"[{ticket['ref']}] {headline}",
               conversation.command_help(problems), mail.message_id, now)
    return "commands-rejected"


def _carry_out(ctx: Context, conn: sqlite3.Connection, mail: InboundMail,
               ticket: dict[str, Any], instruction: StaffInstruction, now: datetime) -> str:
    relay = bool(instruction.answer) and not instruction.has(Command.NOTE)
    kind = MessageKind.STAFF_REPLY if relay else MessageKind.STAFF_NOTE
    ctx.record_inbound(conn, ticket["id"], mail, kind, now)
    phrases = []
    if relay:
        _relay_answer(ctx, conn, ticket, instruction.answer, now)
        ticket = {**ticket, "status": mark_answered(ctx.store, conn, ticket, now)}
        phrases.append("answer sent to the customer")
    for command, argument in instruction.commands:
        ticket, phrase = commands.run_command(ctx, conn, ticket, command, argument, now)
        phrases.append(phrase)
    ctx.store.add_event(conn, ticket["id"], now, kind.value, {
        "from": mail.from_addr, "relayed": relay,
        "commands": [f"#{c.value} {a}".strip() for c, a in instruction.commands]})
    if instruction.commands:
        commands.confirm(ctx, conn, mail, ticket, phrases, now)
    if relay:
        return "relayed"
    return "note" if instruction.has(Command.NOTE) else "commands"


# -- outgoing mail --------------------------------------------------------------------------

def _relay_answer(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                  answer: str, now: datetime) -> None:
    message = compose.customer_mail(
        ctx.settings, commands.customer_thread(ctx, ticket), "staff_reply",
        {"answer": compose.clean_text(conversation.without_routing_addresses(
            answer, ctx.settings.bot.address))},
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
        auto_submitted="no")
    # A person wrote it: not counted against the automatic-reply cap.
    ctx.enqueue(conn, ticket["id"], message, [ticket["customer_email"]],
                 MessageKind.STAFF_REPLY, now, counted=False)
