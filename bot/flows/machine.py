"""Mail that gets no ticket: duplicates and machine-generated mail (recorded, never answered;
a delivery report also marks the bounced address and the ticket it came back from)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.flows import autoreply
from bot.flows.context import Context, Handled
from bot.models import InboundMail, MessageSource, Outcome


def ignore(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
           reason: str, now: datetime, mail: InboundMail | None = None,
           raw: bytes = b"") -> Handled:
    """Record the mail as ignored (with the bounce bookkeeping of a delivery report)."""
    if mail is not None and reason == "delivery-report":
        _note_bounce(ctx, conn, mail, now, raw)
    ctx.store.record_processed(conn, source, key, Outcome.IGNORED, reason, None, now)
    return Handled(Outcome.IGNORED, reason)


def _note_bounce(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, now: datetime,
                 raw: bytes) -> None:
    original = mail.header("x-bot-embedded-message-id") or mail.in_reply_to
    if not original:
        return
    ticket = ctx.store.ticket_for_message_ids([original])
    bounced = autoreply.record_bounce(ctx.store, conn, raw, original, ticket and ticket["id"],
                                      now)
    if ticket:
        ctx.store.add_event(conn, ticket["id"], now, "bounce",
                            {"original": original, "subject": mail.subject[:200],
                             "failed_recipients": bounced})
