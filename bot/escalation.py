"""Overdue scan -> escalation mail through the outbox (planning is pure: escalation_plan).

Only open, unanswered tickets are read (the ``status, due_at`` index), so a pass costs in
proportion to the open tickets, not to every ticket ever opened. The new escalation level
and the outbox mail are written in one transaction: a level is never sent twice, even
across restarts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot import compose
from bot.config import Settings
from bot.escalation_plan import (
    EscalationGroup,
    TicketRow,
    plan_from_settings,
    render_escalation_text,
)
from bot.models import Language, MessageKind
from bot.sla import calendar_from_settings, from_iso
from bot.store import Store, utc_iso

log = logging.getLogger(__name__)

ESCALATABLE_STATUSES = ("open", "reopened", "waiting_customer")
MAX_LEVEL = 3


def open_ticket_rows(store: Store) -> list[TicketRow]:
    """Open, unanswered tickets that can still rise a level."""
    marks = ",".join("?" * len(ESCALATABLE_STATUSES))
    rows = store.rows(
        f"SELECT ref, category, customer_email, status, created_at, due_at, escalate_at, "
        f"hard_at, first_response_at, escalation_level, last_activity_at FROM tickets "
        f"WHERE status IN ({marks}) AND first_response_at IS NULL "
        f"AND escalation_level < {MAX_LEVEL}", ESCALATABLE_STATUSES)
    return [_ticket_row(r) for r in rows]


def run_pass(store: Store, settings: Settings, now: datetime, dry_run: bool) -> list[str]:
    """Plan and (unless ``dry_run``) queue escalation mail; return one line per mail."""
    plan = plan_from_settings(open_ticket_rows(store), now, settings,
                              calendar_from_settings(settings))
    lines = []
    for group in plan.groups:
        subject, text = render_escalation_text(settings.templates_path, group, now,
                                               settings.admin.base_url, settings.tz)
        refs = ", ".join(f"{i.ticket.ref} (level {i.level})" for i in group.items)
        lines.append(f"{'would send' if dry_run else 'queued'}: to {', '.join(group.recipients)}"
                     f": {subject} [{refs}]")
        if not dry_run:
            _queue(store, settings, group, subject, text, now)
    for item in plan.unroutable:
        log.warning("escalation of %s has no recipients (set staff.notify/escalation.to)",
                    item.ticket.ref)
    return lines


def _queue(store: Store, settings: Settings, group: EscalationGroup, subject: str, text: str,
           now: datetime) -> None:
    message = compose.build_mail(
        from_name=settings.bot.display_name, from_addr=settings.bot.address,
        to=list(group.recipients), subject=subject, text=text, html=None,
        message_id=compose.make_message_id(settings.bot_domain), date=now, in_reply_to=None,
        references=(), languages=[Language.EN], auto_submitted="auto-generated")
    with store.transaction() as conn:
        store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                      recipients=list(group.recipients), raw=bytes(message),
                      kind=MessageKind.ESCALATION.value, now=now)
        for item in group.items:
            ticket = store.ticket_by_ref(item.ticket.ref)
            if ticket is None or ticket["escalation_level"] >= item.level:
                continue
            store.update_ticket(conn, ticket["id"], escalation_level=item.level,
                                escalated_at=utc_iso(now))
            store.add_event(conn, ticket["id"], now, "escalated",
                            {"level": item.level, "to": list(group.recipients)})


def _ticket_row(row: dict) -> TicketRow:
    def when(key: str) -> datetime | None:
        return from_iso(row[key]) if row.get(key) else None

    return TicketRow(
        ref=row["ref"], category=row["category"], customer_email=row["customer_email"] or "",
        status=row["status"], created_at=from_iso(row["created_at"]),
        due_at=from_iso(row["due_at"]), escalate_at=when("escalate_at"),
        hard_at=when("hard_at"), first_response_at=when("first_response_at"),
        escalation_level=row["escalation_level"] or 0,
        last_activity_at=when("last_activity_at"))
