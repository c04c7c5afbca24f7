"""Staff notifications per sender: a few individual notices an hour, then one summary.

A flood (1,000 mails from one address in a minute) must not become 1,000 mails to staff.
Before the bot tells staff about a customer's mail (new ticket or follow-up), :func:`admit`
counts the notices about the same sender sent individually in the last hour (rolling):
- below ``limits.staff_notifications_per_sender_per_hour`` (default 5): notify as usual;
- otherwise the notice is *held*: a ``staff_notices`` row with ``held = 1`` and the event
  ``staff_notification_held`` on the ticket. The ticket itself is created as usual.

:func:`send_summaries` (end of every ``once``; every few minutes in ``run``) queues one mail
per sender with held notices - "N more tickets from X in the last hour: refs ..." - unless
a summary about that sender went out less than an hour ago, and marks them summarized in
the same transaction. So staff get at most N notices + 1 summary per sender per hour.
The sender is the ticket's ``customer_email`` (a follow-up joins only its sender's ticket),
so ``staff_notices`` holds no address of its own and redacting a ticket covers it. Settled
rows are pruned after a day; the summary's outbox copy drops its bytes once sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import Message
from itertools import groupby
from typing import Any

from bot.adapters.store import Store
from bot.config import Settings
from bot.flows.autoreply import staff_recipients
from bot.mail import compose
from bot.models import MessageKind
from bot.rules.sla import from_iso

WINDOW = timedelta(hours=1)
KEEP = timedelta(days=1)
MAX_LISTED_REFS = 1000  # a summary stays readable (and small) even for a huge flood


def admit(store: Store, settings: Settings, conn: sqlite3.Connection, *, sender: str,
          ticket_id: int, now: datetime) -> bool:
    """True: notify staff about ``sender``'s mail on ``ticket_id`` now. False: it is held
    for the hourly summary (recorded inside ``conn``, the message's transaction)."""
    limit = settings.limits.staff_notifications_per_sender_per_hour
    held = store.staff_notices_since(sender, now - WINDOW) >= limit
    store.log_staff_notice(conn, ticket_id=ticket_id, held=held, now=now)
    if held:
        store.add_event(conn, ticket_id, now, "staff_notification_held",
                        {"limit_per_hour": limit})
    return not held


def send_summaries(store: Store, settings: Settings, now: datetime) -> int:
    """Queue the due per-sender summaries of held notices; return how many were queued."""
    queued = 0
    with store.transaction() as conn:
        for sender, rows in groupby(store.held_staff_notices(), key=lambda r: r["sender"]):
            if _summary_due(store.last_summary_at(sender), now):
                queued += _queue_summary(store, settings, conn, sender, list(rows), now)
        store.prune_staff_notices(conn, now - KEEP)
    return queued


def summary_mail(settings: Settings, *, sender: str, refs: Sequence[str], first: datetime,
                 recipients: Sequence[str], message_id: str, now: datetime) -> Message:
    """PURE: the summary "N more tickets from X in the last hour: refs ..." to staff."""
    who = compose.clean_line(sender, 200) or "(no sender address)"
    when = "in the last hour" if now - first <= WINDOW else \
        f"since {first.astimezone(settings.tz):%Y-%m-%d %H:%M %Z}"
    listed = list(refs[:MAX_LISTED_REFS])
    more = f"\n... and {len(refs) - len(listed)} more.\n" if len(refs) > len(listed) else "\n"
    text = (f"{len(refs)} more tickets from {who} {when}: refs\n" + "\n".join(listed) + more +
            f"\nMore than {settings.limits.staff_notifications_per_sender_per_hour} tickets "
            "from one sender within an hour were not notified one by one (limits."
            "staff_notifications_per_sender_per_hour). Each ticket exists and was handled as "
            "usual; look them up by ref or by the sender's address. Further tickets from this "
            "sender are summarized at most once an hour.\n")
    return compose.internal_mail(
        settings, to=recipients, subject=f"{len(refs)} more tickets from {who} {when}",
        text=text, message_id=message_id, date=now)


def _summary_due(last_summary_at: str | None, now: datetime) -> bool:
    return last_summary_at is None or now - from_iso(last_summary_at) >= WINDOW


def _queue_summary(store: Store, settings: Settings, conn: sqlite3.Connection, sender: str,
                   rows: list[dict[str, Any]], now: datetime) -> int:
    recipients = staff_recipients(settings)
    store.mark_summarized(conn, [r["id"] for r in rows], now)
    if not recipients:  # nobody to tell any more (config changed): settle them silently
        return 0
    message = summary_mail(settings, sender=sender, refs=[r["ref"] for r in rows],
                           first=from_iso(rows[0]["at"]), recipients=recipients,
                           message_id=compose.make_message_id(settings.bot_domain), now=now)
    # sensitive: the bytes name a customer and belong to no ticket that redaction would
    # reach, so the outbox keeps them only until the mail is sent.
    store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                  recipients=recipients, raw=bytes(message),
                  kind=MessageKind.NOTIFICATION.value, now=now, sensitive=True)
    store.add_event(conn, None, now, "staff_notification_summary",
                    {"tickets": len(rows), "first_ref": rows[0]["ref"],
                     "last_ref": rows[-1]["ref"]})
    return 1
