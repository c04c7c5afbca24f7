"""Mail to staff about a ticket: the new-ticket and follow-up notifications (with the Reply-To
routing address that lets staff answer), and short internal notices.

With a token secret, each staff recipient gets a notification of their own: its Reply-To
token is bound to that recipient (:func:`bot.rules.conversation.reply_address`). The outbox
row is marked sensitive so its raw bytes, which carry the token, are dropped once sent.
"""

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


def notification_reply_to(settings: Settings, ref: str, recipient: str,
                          now: datetime) -> str | None:
    """The Reply-To of ``recipient``'s notification about ``ref``: a routing address valid
    for ``staff.token_days``; None when no token secret is configured."""
    if not settings.staff_token_secret:
        return None
    expires = conversation.token_expiry(now, settings.staff.token_days)
    return conversation.reply_address(settings.bot.address, ref, settings.staff_token_secret,
                                      recipient, expires)


def _addressees(settings: Settings, recipients: list[str]) -> list[list[str]]:
    """One notification per recipient when each needs a token of their own, else one."""
    return [[r] for r in recipients] if settings.staff_token_secret else [recipients]


def _enqueue_notification(ctx: Context, conn: sqlite3.Connection, ticket_id: int,
                          message, to: list[str], reply_to: str | None, now: datetime) -> None:
    # mask=reply_to: the row is sensitive (raw dropped once sent); the body never holds it.
    ctx.enqueue(conn, ticket_id, message, to, MessageKind.NOTIFICATION, now, mask=reply_to,
                counted=False)


def notify_new_ticket(ctx: Context, conn: sqlite3.Connection, *, ticket_id: int, ref: str,
                      triage: Triage, mail: InboundMail, due_at: datetime,
                      verification_status: str, now: datetime,
                      notes: Sequence[str] = ()) -> None:
    """Tell staff about a new ticket (unless a flood from its sender is being held);
    ``notes``: what they must do first (e.g. stop the marketing sends for an opt-out)."""
    recipients = _admitted_recipients(ctx, conn, mail, ticket_id, now)
    if not recipients:
        return
    for to in _addressees(ctx.settings, recipients):
        reply_to = notification_reply_to(ctx.settings, ref, to[0], now)
        message = compose.staff_notification(
            ctx.settings, ref=ref, triage=triage, mail=mail, due_at=due_at,
            verification_status=verification_status, to=to,
            message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
            reply_to=reply_to, notes=notes)
        _enqueue_notification(ctx, conn, ticket_id, message, to, reply_to, now)


def notify_followup(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                    mail: InboundMail, now: datetime, reopened: bool = False) -> None:
    """Tell staff about a customer follow-up, threaded under the ticket's first notification
    (each recipient's client also threads by the [REF] subject)."""
    recipients = _admitted_recipients(ctx, conn, mail, ticket["id"], now)
    if not recipients:
        return
    parent = ctx.store.first_notification_id(ticket["id"])
    for to in _addressees(ctx.settings, recipients):
        reply_to = notification_reply_to(ctx.settings, ticket["ref"], to[0], now)
        message = compose.staff_notification(
            ctx.settings, ref=ticket["ref"], triage=ticket_triage(ticket), mail=mail,
            due_at=from_iso(ticket["due_at"]), verification_status=ticket["verification_status"],
            to=to, message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
            followup=True, reply_to=reply_to, in_reply_to=parent,
            references=[parent] if parent else [], status=ticket["status"],
            reopened=reopened)
        _enqueue_notification(ctx, conn, ticket["id"], message, to, reply_to, now)


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
