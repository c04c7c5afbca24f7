"""PURE: which open tickets to escalate now, to whom, and the text of those mails.

The caller (``bot.flows.escalation``) loads the open tickets as :class:`TicketRow`, calls
:func:`plan_escalations` with ``now``, and for each :class:`EscalationGroup` writes one
outbox mail plus the new ``escalation_level`` of every listed ticket in ONE transaction.
Because a level is only planned when it is higher than the recorded one, a restart
between passes never repeats a level.

Levels
------
1. ``now >= escalate_at``: reminder to ``staff.notify``.
2. ``now > hard_at`` (past the hard deadline): to ``escalation.to``.
3. ``now > hard_at + level3_after_days`` calendar days: to ``escalation.to`` again, with a
   summary. Level 3 is counted from ``hard_at`` rather than from the moment level 2 was
   sent: level 2 is never held back by quiet hours, so it goes out at the first pass after
   ``hard_at`` anyway, and this needs no extra column and cannot drift after a restart.

A ticket gets the highest level due (a ticket found late jumps straight to 2 or 3), never a
level it already had. Tickets with a first response or a status in ``closed_statuses`` are
never escalated. With ``business_hours_only``, a level-1 reminder outside business hours is
*deferred* to the next business opening (reported, not lost); level 2+ always go out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from bot.config import Settings
from bot.rules.sla import BusinessCalendar

DEFAULT_CLOSED_STATUSES = frozenset({"answered", "closed"})
LEVEL_REMINDER, LEVEL_OVERDUE, LEVEL_STILL_OPEN = 1, 2, 3
LEVEL_TITLES = {
    LEVEL_REMINDER: "Reminder: awaiting a response",
    LEVEL_OVERDUE: "Past the hard deadline",
    LEVEL_STILL_OPEN: "Still open long after the hard deadline",
}
ESCALATION_TEMPLATE = "en/escalation.txt.j2"
DIGEST_TEMPLATE = "en/digest.txt.j2"


@dataclass(frozen=True)
class TicketRow:
    """One open ticket as the escalation pass sees it (times aware UTC).

    ``escalate_at`` / ``hard_at`` may be None for tickets created before they were stored;
    such a level then never fires (the caller can fill them with ``sla.deadlines``).
    """

    ref: str
    category: str
    customer_email: str
    status: str
    created_at: datetime
    due_at: datetime
    escalate_at: datetime | None
    hard_at: datetime | None
    first_response_at: datetime | None = None
    escalation_level: int = 0
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class PlannedEscalation:
    """Send ``level`` for ``ticket`` now and record it as its new ``escalation_level``."""

    ticket: TicketRow
    level: int


@dataclass(frozen=True)
class DeferredEscalation:
    """A level that is due but held back by quiet hours until ``until`` (UTC)."""

    ticket: TicketRow
    level: int
    until: datetime


@dataclass(frozen=True)
class EscalationGroup:
    """One mail: its recipients and every ticket it lists (ordered by level, then due date)."""

    recipients: tuple[str, ...]
    items: tuple[PlannedEscalation, ...]

    @property
    def max_level(self) -> int:
        return max(item.level for item in self.items)


@dataclass(frozen=True)
class EscalationPlan:
    """What one pass should do. ``unroutable``: due, but nobody is configured to receive it."""

    groups: tuple[EscalationGroup, ...] = ()
    deferred: tuple[DeferredEscalation, ...] = ()
    unroutable: tuple[PlannedEscalation, ...] = ()

    def new_levels(self) -> dict[str, int]:
        """``ref -> level`` to record together with the group mails."""
        return {item.ticket.ref: item.level for group in self.groups for item in group.items}


def is_escalatable(row: TicketRow, closed_statuses: frozenset[str]) -> bool:
    """False for answered or closed tickets: the clock stopped for them."""
    return row.first_response_at is None and row.status not in closed_statuses


def due_level(row: TicketRow, now: datetime, level3_after_days: int) -> int:
    """The highest escalation level whose time has come (0 = none)."""
    if row.hard_at is not None:
        if now > row.hard_at + timedelta(days=level3_after_days):
            return LEVEL_STILL_OPEN
        if now > row.hard_at:
            return LEVEL_OVERDUE
    if row.escalate_at is not None and now >= row.escalate_at:
        return LEVEL_REMINDER
    return 0


def plan_escalations(rows: Iterable[TicketRow], now: datetime, *, calendar: BusinessCalendar,
                     level3_after_days: int, business_hours_only: bool,
                     staff_notify: Sequence[str] = (), escalation_to: Sequence[str] = (),
                     closed_statuses: frozenset[str] = DEFAULT_CLOSED_STATUSES,
                     ) -> EscalationPlan:
    """Decide the escalations of one pass at ``now``.

    Level 1 goes to ``staff_notify`` (else ``escalation_to``), levels 2-3 to
    ``escalation_to`` (else ``staff_notify``). Tickets for the same recipient list share
    one group, i.e. one mail per recipient list per pass.
    """
    quiet = business_hours_only and not calendar.in_business_hours(now)
    by_recipients: dict[tuple[str, ...], list[PlannedEscalation]] = {}
    deferred: list[DeferredEscalation] = []
    unroutable: list[PlannedEscalation] = []
    for row in rows:
        if not is_escalatable(row, closed_statuses):
            continue
        level = due_level(row, now, level3_after_days)
        if level <= row.escalation_level:
            continue
        if quiet and level < LEVEL_OVERDUE:
            deferred.append(DeferredEscalation(row, level, calendar.next_business_opening(now)))
            continue
        recipients = _recipients(level, staff_notify, escalation_to)
        target = by_recipients.setdefault(recipients, []) if recipients else unroutable
        target.append(PlannedEscalation(row, level))
    groups = tuple(EscalationGroup(recipients, tuple(sorted(items, key=_item_order)))
                   for recipients, items in by_recipients.items())
    return EscalationPlan(groups, tuple(deferred), tuple(unroutable))


def plan_from_settings(rows: Iterable[TicketRow], now: datetime, settings: Settings,
                       calendar: BusinessCalendar) -> EscalationPlan:
    """:func:`plan_escalations` with every parameter taken from ``settings``."""
    return plan_escalations(rows, now, calendar=calendar,
                            level3_after_days=settings.escalation.level3_after_days,
                            business_hours_only=settings.escalation.business_hours_only,
                            staff_notify=settings.staff.notify,
                            escalation_to=settings.escalation.to)


def is_digest_due(now: datetime, last_digest_date: date | None, digest_time: str,
                  calendar: BusinessCalendar) -> bool:
    """True once per business day, at or after ``digest_time`` (``"HH:MM"`` company time).

    ``last_digest_date`` is the company-local date of the last digest sent (None = never).
    """
    today = calendar.company_day(now)  # refuses naive datetimes
    local_time = now.astimezone(calendar.tz).time()
    if not calendar.is_business_day(today) or local_time < time.fromisoformat(digest_time):
        return False
    return last_digest_date is None or last_digest_date < today


def render_escalation_text(templates_dir: Path, plan_group: EscalationGroup, now: datetime,
                           base_url: str, tz: ZoneInfo) -> tuple[str, str]:
    """Subject and plain-text body of the escalation mail for one group."""
    items = [_ticket_view(item.ticket, now, base_url, tz, item.level)
             for item in plan_group.items]
    sections = [{"level": level, "title": LEVEL_TITLES[level],
                 "tickets": [view for view in items if view["level"] == level]}
                for level in sorted({view["level"] for view in items}, reverse=True)]
    text = _env(str(templates_dir)).get_template(ESCALATION_TEMPLATE).render(
        sections=sections, count=len(items), now=_local(now, tz),
        summary=_summary(plan_group, now) if plan_group.max_level >= LEVEL_STILL_OPEN else None)
    return _escalation_subject(plan_group), text


def render_digest_text(templates_dir: Path, rows: Sequence[TicketRow], now: datetime,
                       base_url: str, tz: ZoneInfo) -> tuple[str, str]:
    """Subject and plain-text body of the daily digest of open tickets (soonest due first)."""
    ordered = sorted(rows, key=lambda row: (row.due_at, row.ref))
    items = [_ticket_view(row, now, base_url, tz, row.escalation_level) for row in ordered]
    overdue = sum(1 for row in ordered if now > row.due_at)
    text = _env(str(templates_dir)).get_template(DIGEST_TEMPLATE).render(
        tickets=items, count=len(items), overdue=overdue, now=_local(now, tz),
        today=now.astimezone(tz).date().isoformat())
    subject = (f"Privacy inquiries digest {now.astimezone(tz).date().isoformat()}: "
               f"{_plural(len(items), 'open ticket')}, {overdue} overdue")
    return subject, text


def format_age(delta: timedelta) -> str:
    """``timedelta`` -> ``"3d 4h"`` / ``"5h 12m"`` / ``"7m"`` (negative counts as 0)."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def ticket_link(base_url: str, ref: str) -> str:
    """The ticket's row in datasette, or ``""`` when ``admin.base_url`` is not set."""
    if not base_url:
        return ""
    return f"{base_url.rstrip('/')}/tickets/tickets?ref={quote(ref)}"


def _recipients(level: int, staff_notify: Sequence[str],
                escalation_to: Sequence[str]) -> tuple[str, ...]:
    first, fallback = ((staff_notify, escalation_to) if level == LEVEL_REMINDER
                       else (escalation_to, staff_notify))
    return tuple(first or fallback)


def _item_order(item: PlannedEscalation) -> tuple[int, datetime, str]:
    return (-item.level, item.ticket.due_at, item.ticket.ref)


def _ticket_view(row: TicketRow, now: datetime, base_url: str, tz: ZoneInfo,
                 level: int) -> dict[str, object]:
    overdue = now > row.due_at
    return {
        "ref": row.ref, "category": str(row.category), "customer": row.customer_email,
        "status": str(row.status), "level": level,
        "age": format_age(now - row.created_at),
        "received": _local(row.created_at, tz),
        "due": _local(row.due_at, tz),
        "hard": _local(row.hard_at, tz) if row.hard_at else "",
        "overdue": overdue,
        "overdue_by": format_age(now - row.due_at) if overdue else "",
        "last_activity": _local(row.last_activity_at, tz) if row.last_activity_at else "none",
        "link": ticket_link(base_url, row.ref),
    }


def _summary(group: EscalationGroup, now: datetime) -> dict[str, object]:
    tickets = [item.ticket for item in group.items]
    by_category: dict[str, int] = {}
    for ticket in tickets:
        by_category[str(ticket.category)] = by_category.get(str(ticket.category), 0) + 1
    oldest = min(tickets, key=lambda ticket: ticket.created_at)
    return {"count": len(tickets), "by_category": sorted(by_category.items()),
            "oldest_ref": oldest.ref, "oldest_age": format_age(now - oldest.created_at)}


def _escalation_subject(group: EscalationGroup) -> str:
    count = len(group.items)
    prefix = f"[{group.items[0].ticket.ref}] " if count == 1 else ""
    if group.max_level >= LEVEL_OVERDUE:
        return f"{prefix}ESCALATION: {_plural(count, 'privacy inquiry')} past the hard deadline"
    return f"{prefix}Reminder: {_plural(count, 'privacy inquiry')} awaiting a response"


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {plural}"


def _local(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


@lru_cache(maxsize=8)
def _env(templates_dir: str) -> jinja2.Environment:
    # Plain-text mail: no HTML autoescaping; StrictUndefined turns template typos into errors.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir),
                              undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
