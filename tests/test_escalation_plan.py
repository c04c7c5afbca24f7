"""Escalation planning, digest timing and mail text (bot.rules.escalation)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import SlaSection
from bot.models import Category
from bot.rules.escalation import (
    EscalationGroup,
    EscalationPlan,
    PlannedEscalation,
    TicketRow,
    due_level,
    format_age,
    is_digest_due,
    plan_escalations,
    render_digest_text,
    render_escalation_text,
    ticket_link,
)
from bot.rules.sla import BusinessCalendar, deadlines

JST = ZoneInfo("Asia/Tokyo")
CAL = BusinessCalendar(JST, ["12-29..01-03"], "09:00-18:00")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "replies"
STAFF = ("staff@cijidas.jp",)
DPO = ("dpo@cijidas.jp",)
LEVEL3_DAYS = 7


def jst(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=JST)


MONDAY = jst(2026, 11, 16)


def ticket(ref: str = "CJD-000001", *, received: datetime = MONDAY,
           category: Category = Category.QUESTION, level: int = 0, status: str = "open",
           first_response_at: datetime | None = None) -> TicketRow:
    """A ticket with the default SLA deadlines (question from Mon 2026-11-16 10:00 JST:
    escalate end of Thu 11-19, respond end of Mon 11-24 (23rd is a holiday), hard end of
    Thu 11-26)."""
    d = deadlines(received, category, SlaSection(), CAL)
    return TicketRow(ref=ref, category=category, customer_email="cust@example.com",
                     status=status, created_at=received.astimezone(UTC), due_at=d.respond_at,
                     escalate_at=d.escalate_at, hard_at=d.hard_at,
                     first_response_at=first_response_at, escalation_level=level,
                     last_activity_at=received.astimezone(UTC))


def plan(rows: list[TicketRow], now: datetime, *, business_hours_only: bool = True,
         staff: tuple[str, ...] = STAFF, dpo: tuple[str, ...] = DPO) -> EscalationPlan:
    return plan_escalations(rows, now, calendar=CAL, level3_after_days=LEVEL3_DAYS,
                            business_hours_only=business_hours_only,
                            staff_notify=staff, escalation_to=dpo)


def sent(p: EscalationPlan) -> dict[str, int]:
    return p.new_levels()


def record(rows: list[TicketRow], p: EscalationPlan) -> list[TicketRow]:
    """What the caller does in its transaction: store the new levels."""
    levels = p.new_levels()
    return [dataclasses.replace(r, escalation_level=levels.get(r.ref, r.escalation_level))
            for r in rows]


@pytest.mark.parametrize(("now", "level"), [
    (jst(2026, 11, 19, 12), 0),          # before escalate_at
    (jst(2026, 11, 20, 10), 1),          # after escalate_at (end of Thu 19th)
    (jst(2026, 11, 26, 23, 59), 1),      # hard deadline not yet past
    (jst(2026, 11, 27, 0, 1), 2),        # past the hard deadline
    (jst(2026, 12, 3, 23, 59), 2),       # hard + 7 days not yet past
    (jst(2026, 12, 4, 0, 1), 3),
])
def test_due_level(now: datetime, level: int) -> None:
    assert due_level(ticket(), now, LEVEL3_DAYS) == level


@pytest.mark.parametrize(("now", "recorded", "expected"), [
    (jst(2026, 11, 20, 10), 0, {"CJD-000001": 1}),
    (jst(2026, 11, 20, 10), 1, {}),                    # level 1 never re-sent
    (jst(2026, 11, 27, 10), 0, {"CJD-000001": 2}),     # jumps straight to 2
    (jst(2026, 11, 27, 10), 1, {"CJD-000001": 2}),
    (jst(2026, 11, 27, 10), 2, {}),
    (jst(2026, 12, 4, 10), 0, {"CJD-000001": 3}),      # found late: straight to 3
    (jst(2026, 12, 4, 10), 2, {"CJD-000001": 3}),
    (jst(2026, 12, 4, 10), 3, {}),
])
def test_levels_fire_once(now: datetime, recorded: int, expected: dict[str, int]) -> None:
    assert sent(plan([ticket(level=recorded)], now)) == expected


def test_each_level_fires_once_across_passes_and_restarts() -> None:
    rows = [ticket()]
    fired: list[int] = []
    now = jst(2026, 11, 16, 9)
    while now < jst(2026, 12, 20):
        p = plan(rows, now)
        fired += sent(p).values()
        rows = record(rows, p)  # a restart reloads exactly these recorded levels
        now += timedelta(minutes=30)
    assert fired == [1, 2, 3]


@pytest.mark.parametrize("row", [
    ticket(first_response_at=jst(2026, 11, 17).astimezone(UTC)),
    ticket(status="answered"),
    ticket(status="closed"),
], ids=["first-response", "answered", "closed"])
def test_answered_or_closed_tickets_are_skipped(row: TicketRow) -> None:
    p = plan([row], jst(2026, 12, 10, 10))
    assert p == EscalationPlan()


def test_closed_statuses_are_a_parameter() -> None:
    row = ticket(status="resolved")
    now = jst(2026, 12, 10, 10)
    assert sent(plan([row], now)) == {"CJD-000001": 3}
    p = plan_escalations([row], now, calendar=CAL, level3_after_days=LEVEL3_DAYS,
                         business_hours_only=True, staff_notify=STAFF, escalation_to=DPO,
                         closed_statuses=frozenset({"resolved"}))
    assert p == EscalationPlan()


def test_level1_at_night_is_deferred_to_next_opening() -> None:
    night = jst(2026, 11, 20, 22)  # Friday night; Monday 23rd is a holiday
    p = plan([ticket()], night)
    assert p.groups == ()
    assert len(p.deferred) == 1
    assert p.deferred[0].level == 1
    assert p.deferred[0].until == jst(2026, 11, 24, 9).astimezone(UTC)
    # Not lost: it goes out at the opening.
    assert sent(plan([ticket()], jst(2026, 11, 24, 9))) == {"CJD-000001": 1}


def test_level1_at_night_goes_out_when_quiet_hours_are_off() -> None:
    p = plan([ticket()], jst(2026, 11, 20, 22), business_hours_only=False)
    assert sent(p) == {"CJD-000001": 1} and p.deferred == ()


@pytest.mark.parametrize(("now", "level"), [
    (jst(2026, 11, 27, 2), 2),      # 02:00 on a weekday
    (jst(2026, 11, 28, 12), 2),     # Saturday
    (jst(2026, 12, 5, 3), 3),       # Saturday night
])
def test_level2_and_3_go_out_at_night(now: datetime, level: int) -> None:
    p = plan([ticket()], now)
    assert sent(p) == {"CJD-000001": level} and p.deferred == ()


def test_one_group_per_recipient() -> None:
    rows = [
        ticket("CJD-000001"),                                  # level 1 due
        ticket("CJD-000002", received=jst(2026, 11, 17)),      # level 1 due
        ticket("CJD-000003", received=jst(2026, 11, 10)),       # level 2 due
        ticket("CJD-000004", received=jst(2026, 10, 20)),      # level 3 due
        ticket("CJD-000005", received=jst(2026, 11, 19)),      # nothing yet
    ]
    p = plan(rows, jst(2026, 11, 24, 10))
    groups = {g.recipients: [(i.ticket.ref, i.level) for i in g.items] for g in p.groups}
    assert groups == {
        STAFF: [("CJD-000001", 1), ("CJD-000002", 1)],
        DPO: [("CJD-000004", 3), ("CJD-000003", 2)],
    }
    assert p.new_levels() == {"CJD-000001": 1, "CJD-000002": 1,
                              "CJD-000003": 2, "CJD-000004": 3}


def test_same_recipients_share_one_mail() -> None:
    rows = [ticket("CJD-000001"), ticket("CJD-000003", received=jst(2026, 11, 10))]
    p = plan(rows, jst(2026, 11, 24, 10), dpo=())  # level 2 falls back to staff.notify
    assert len(p.groups) == 1 and p.groups[0].recipients == STAFF
    assert p.groups[0].max_level == 2


def test_nobody_configured_is_unroutable_and_not_recorded() -> None:
    p = plan([ticket()], jst(2026, 11, 24, 10), staff=(), dpo=())
    assert p.groups == () and p.new_levels() == {}
    assert [(i.ticket.ref, i.level) for i in p.unroutable] == [("CJD-000001", 1)]


def test_missing_deadlines_never_fire() -> None:
    row = dataclasses.replace(ticket(), escalate_at=None, hard_at=None)
    assert plan([row], jst(2027, 6, 1, 10)) == EscalationPlan()


@pytest.mark.parametrize(("now", "last", "due"), [
    (jst(2026, 11, 16, 9, 0), None, True),                  # Monday at digest time
    (jst(2026, 11, 16, 8, 59), None, False),                # too early
    (jst(2026, 11, 16, 9, 5), date(2026, 11, 16), False),   # already sent today
    (jst(2026, 11, 16, 17, 0), date(2026, 11, 13), True),   # late but not yet today
    (jst(2026, 11, 14, 9, 0), date(2026, 11, 13), False),   # Saturday
    (jst(2026, 11, 23, 9, 0), date(2026, 11, 20), False),   # holiday
    (jst(2026, 12, 30, 9, 0), date(2026, 12, 28), False),   # year-end closure
    (datetime(2026, 11, 16, 0, 0, tzinfo=UTC), None, True),  # 09:00 JST given in UTC
    (datetime(2026, 11, 15, 23, 59, tzinfo=UTC), None, False),
])
def test_is_digest_due(now: datetime, last: date | None, due: bool) -> None:
    assert is_digest_due(now, last, "09:00", CAL) is due


def test_digest_once_per_business_day_over_a_week() -> None:
    last: date | None = None
    sent_days = []
    now = jst(2026, 11, 14, 0)
    while now < jst(2026, 11, 22, 0):
        if is_digest_due(now, last, "09:00", CAL):
            last = now.astimezone(JST).date()
            sent_days.append(last)
        now += timedelta(minutes=5)
    assert sent_days == [date(2026, 11, d) for d in (16, 17, 18, 19, 20)]


def _group(p: EscalationPlan, recipients: tuple[str, ...]) -> EscalationGroup:
    return next(g for g in p.groups if g.recipients == recipients)


def test_render_escalation_text_lists_every_ticket_with_link() -> None:
    rows = [ticket("CJD-000003", received=jst(2026, 11, 10)),
            ticket("CJD-000004", received=jst(2026, 10, 20), category=Category.COMPLAINT)]
    now = jst(2026, 11, 24, 10)
    subject, text = render_escalation_text(TEMPLATES, _group(plan(rows, now), DPO), now,
                                           "https://admin.cijidas.jp/", JST)
    assert subject == "ESCALATION: 2 privacy inquiries past the hard deadline"
    for ref in ("CJD-000003", "CJD-000004"):
        assert ref in text
        assert f"https://admin.cijidas.jp/tickets/tickets?ref={ref}" in text
    assert "SUMMARY" in text and "complaint 1, question 1" in text
    assert "cust@example.com" in text and "complaint" in text
    assert "Response due:" in text and "JST" in text
    assert "Last activity:" in text and "status: open" in text


def test_render_escalation_text_single_reminder_without_base_url() -> None:
    now = jst(2026, 11, 20, 10)
    group = _group(plan([ticket()], now), STAFF)
    subject, text = render_escalation_text(TEMPLATES, group, now, "", JST)
    assert subject == "[CJD-000001] Reminder: 1 privacy inquiry awaiting a response"
    assert "http" not in text and "SUMMARY" not in text
    assert "Received:      2026-11-16 10:00 JST (4d 0h ago)" in text
    assert "Response due:  2026-11-24 23:59 JST" in text


def test_render_digest_text() -> None:
    rows = [ticket("CJD-000002", received=jst(2026, 11, 17)),
            ticket("CJD-000001", received=jst(2026, 11, 2), level=2)]
    now = jst(2026, 11, 24, 9)
    subject, text = render_digest_text(TEMPLATES, rows, now, "https://a.example", JST)
    assert subject == "Privacy inquiries digest 2026-11-24: 2 open tickets, 1 overdue"
    assert text.index("CJD-000001") < text.index("CJD-000002")  # soonest due first
    assert "OVERDUE" in text and "level 2" in text
    assert "https://a.example/tickets/tickets?ref=CJD-000002" in text


def test_render_empty_digest() -> None:
    subject, text = render_digest_text(TEMPLATES, [], jst(2026, 11, 24, 9), "", JST)
    assert "0 open tickets, 0 overdue" in subject and "Nothing is open" in text


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(days=3, hours=4, minutes=5), "3d 4h"),
    (timedelta(hours=5, minutes=12), "5h 12m"),
    (timedelta(minutes=7), "7m"),
    (timedelta(minutes=-3), "0m"),
])
def test_format_age(delta: timedelta, text: str) -> None:
    assert format_age(delta) == text


def test_ticket_link() -> None:
    assert ticket_link("", "CJD-000001") == ""
    assert ticket_link("http://x:8001", "CJD-000001") == "http://x:8001/tickets/tickets?ref=CJD-000001"


def test_planned_items_are_plain_values() -> None:
    item = PlannedEscalation(ticket(), 1)
    assert EscalationGroup(STAFF, (item,)).max_level == 1
