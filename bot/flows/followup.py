"""A customer's mail that joins their existing ticket (reopening it if recently closed)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.store import utc_iso
from bot.flows import verification
from bot.flows.context import Context, Handled
from bot.flows.notices import notify_followup
from bot.flows.tickets import apply_event
from bot.mail import compose
from bot.models import InboundMail, Language, MessageKind, MessageSource, Outcome
from bot.rules.conversation import Action, Route
from bot.rules.sla import from_iso
from bot.rules.status import Event


def add_followup(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
                 mail: InboundMail, route: Route, now: datetime) -> Handled:
    """Record the mail on its ticket, run verification, notify staff, send the short note."""
    ticket = ctx.store.ticket(route.ticket.id)  # type: ignore[union-attr]
    assert ticket is not None  # routes only name existing tickets
    reopen = route.action == Action.REOPEN
    ctx.record_inbound(conn, ticket["id"], mail, MessageKind.CUSTOMER, now)
    ctx.store.add_event(conn, ticket["id"], now, "customer_followup",
                        {"message_id": mail.message_id, "reopened": reopen})
    status = apply_event(ctx.store, conn, ticket["id"], ticket["status"], Event.CUSTOMER_WROTE,
                         now, strict=False)
    ticket = {**ticket, "status": status}
    verification.on_customer_followup(ctx.store, ctx.settings, conn, ticket, mail, now)
    # Staff see the ticket as this mail left it (a code it confirmed, the reopened status).
    ticket = ctx.store.ticket(ticket["id"]) or ticket
    notify_followup(ctx, conn, ticket, mail, now, reopened=reopen)
    send_followup_note(ctx, conn, ticket, mail, now)
    reason = "reopened" if reopen else None
    ctx.store.record_processed(conn, source, key, Outcome.FOLLOWUP, reason, ticket["id"], now)
    return Handled(Outcome.FOLLOWUP, reason, ticket["ref"], ticket["category"],
                   ticket["language"])


def send_followup_note(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                       mail: InboundMail, now: datetime) -> None:
    """The short "added to CJD-..." note, at most once per ``tickets.followup_note_hours``."""
    hours = ctx.settings.tickets.followup_note_hours
    if hours <= 0 or ctx.auto_reply_blocked(mail.from_addr, now, ticket["id"]):
        return
    since = utc_iso(now - timedelta(hours=hours))
    if ctx.store.events_since("followup_note_sent", since, ticket["id"]):
        return
    thread = compose.CustomerThread(
        ticket["ref"], Language(ticket["language"]), mail.from_addr, mail.from_name,
        mail.subject, mail.message_id, tuple(mail.references), bool(ticket.get("bilingual")))
    message = compose.followup_added(
        ctx.settings, thread, due_at=from_iso(ticket["due_at"]),
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now)
    ctx.enqueue(conn, ticket["id"], message, [mail.from_addr], MessageKind.ACKNOWLEDGEMENT, now)
    ctx.store.add_event(conn, ticket["id"], now, "followup_note_sent", {})
