"""Mail that gets no ticket: duplicates and machine-generated mail (recorded, never answered;
a delivery report also marks the bounced address and the ticket it came back from)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.flows import autoreply
from bot.flows.context import Context, Handled
from bot.mail.autogen import bounce_original_candidates
from bot.models import InboundMail, MessageSource, Outcome

# Machine-mail reasons a bounce arrives with: DSNs, and plain-text ones (qmail, Exim, Domino,
# Exchange and Postfix NDRs without a delivery-status part) found by sender or by words.
BOUNCE_REASONS = frozenset({"delivery-report", "bounce-content", "mailer-daemon",
                            "empty-return-path"})


def ignore(ctx: Context, conn: sqlite3.Connection, source: MessageSource, key: str,
           reason: str, now: datetime, mail: InboundMail | None = None,
           raw: bytes = b"") -> Handled:
    """Record the mail as ignored (with the bounce bookkeeping of a delivery report)."""
    if mail is not None and reason.split(";")[0] in BOUNCE_REASONS:
        _note_bounce(ctx, conn, mail, now, raw, reason.split(";")[0])
    ctx.store.record_processed(conn, source, key, Outcome.IGNORED, reason, None, now)
    return Handled(Outcome.IGNORED, reason)


def _note_bounce(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, now: datetime,
                 raw: bytes, reason: str) -> None:
    candidates = bounce_original_candidates(mail)
    # A plain-text bounce may copy several ids: the one the bot really sent is the original.
    original = next((c for c in candidates if ctx.store.outbox_recipients_of(c)),
                    candidates[0] if candidates else None)
    if not original:
        return
    ticket = ctx.store.ticket_for_message_ids([original])
    bounced = autoreply.record_bounce(ctx.store, conn, raw, original, ticket and ticket["id"],
                                      now)
    if ticket and (bounced or reason == "delivery-report"):
        ctx.store.add_event(conn, ticket["id"], now, "bounce",
                            {"original": original, "subject": mail.subject[:200],
                             "failed_recipients": bounced})
