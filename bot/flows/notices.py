"""Mail to staff about a ticket: the new-ticket and follow-up notifications (with the Reply-To
routing address that lets staff answer), and short internal notices."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.flows import autoreply, notify_limits
from bot.flows.context import Context
from bot.flows.lookup import ticket_triage
from bot.mail import compose
from bot.models import InboundMail, MessageKind, Triage
from bot.rules import conversation
from bot.rules.sla import from_iso


def notification_reply_to(settings: Settings, ref: str) -> str | None:
    """The Reply-To of staff notifications; None when no token secret is configured."""
    if not settings.staff_token_secret:
        return None
    return conversation.reply_address(settings.bot.address, ref, settings.staff_token_secret)


def notify_new_ticket(ctx: Context, conn: sqlite3.Connection, *, ticket_id: int, ref: str,
                      triage: Triage, mail: InboundMail, due_at: datetime,
                      verification_status: str, now: datetime) -> None:
    """Tell staff about a new ticket (unless a flood from its sender is being held)."""
    recipients = _admitted_recipients(ctx, conn, mail, ticket_id, now)
    if not recipients:
        return
    message = compose.staff_notification(
        ctx.settings, ref=ref, triage=triage, mail=mail, due_at=due_at,
        verification_status=verification_status, to=recipients,
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
        reply_to=notification_reply_to(ctx.settings, ref))
    ctx.enqueue(conn, ticket_id, message, recipients, MessageKind.NOTIFICATION, now,
                counted=False)


def notify_followup(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                    mail: InboundMail, now: datetime) -> None:
    """Tell staff about a customer follow-up, threaded under the ticket's first notification."""
    recipients = _admitted_recipients(ctx, conn, mail, ticket["id"], now)
    if not recipients:
        return
    parent = ctx.store.first_notification_id(ticket["id"])
    message = compose.staff_notification(
        ctx.settings, ref=ticket["ref"], triage=ticket_triage(ticket), mail=mail,
        due_at=from_iso(ticket["due_at"]), verification_status=ticket["verification_status"],
        to=recipients, message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
        followup=True, reply_to=notification_reply_to(ctx.settings, ticket["ref"]),
        in_reply_to=parent, references=[parent] if parent else [])
    ctx.enqueue(conn, ticket["id"], message, recipients, MessageKind.NOTIFICATION, now,
                counted=False)


def _admitted_recipients(ctx: Context, conn: sqlite3.Connection, mail: InboundMail,
                         ticket_id: int, now: datetime) -> list[str]:
    """Staff to notify, or none while a flood from this sender is held for the hourly
    summary (:mod:`bot.flows.notify_limits`)."""
    recipients = autoreply.staff_recipients(ctx.settings)
    if not recipients or not notify_limits.admit(ctx.store, ctx.settings, conn,
                                                 sender=mail.from_addr, ticket_id=ticket_id,
                                                 now=now):
        return []
    return recipients


def tell_staff(ctx: Context, conn: sqlite3.Connection, ticket_id: int | None,
               recipients: Sequence[str], subject: str, text: str,
               in_reply_to: str | None, now: datetime) -> None:
    """A short internal notice (never to the bot's own address)."""
    recipients = autoreply.without_own_address(ctx.settings, recipients)
    if not recipients:
        return
    message = compose.internal_mail(
        ctx.settings, to=recipients, subject=subject, text=text,
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
        in_reply_to=in_reply_to)
    ctx.enqueue(conn, ticket_id, message, recipients, MessageKind.NOTIFICATION, now,
                counted=False)


def staff_alert_recipients(settings: Settings) -> list[str]:
    """Who hears about suspicious mail: ``staff.notify``, else every staff address."""
    return list(settings.staff.notify or settings.staff.addresses)
