"""Business calendar and SLA due dates (bot.rules.sla)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from bot.config import SlaSection
from bot.config.requests import RequestsSection, completion_days
from bot.models import Category
from bot.rules.sla import (
    COMPLETION_OVERDUE,
    COMPLETION_SOON,
    BusinessCalendar,
    Deadlines,
    completion_due,
    completion_level,
    deadlines,
    due_after,
    extend_for_waiting,
    extended_completion,
    from_iso,
    to_iso,
)

JST = ZoneInfo("Asia/Tokyo")
CAL = BusinessCalendar(JST, ["12-29..01-03"], "09:00-18:00")


def jst(y: int, mo: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=JST)


def eod(y: int, mo: int, d: int) -> datetime:
    """End of a company day, as deadlines are expressed (UTC)."""
    return jst(y, mo, d, 23, 59, 59).astimezone(UTC)


def test_silver_week_2026_holidays_come_from_the_package() -> None:
    jp = holidays.country_holidays("JP", years=2026)
    for day in (date(2026, 9, 21), date(2026, 9, 22), date(2026, 9, 23)):
        assert day in jp
        assert not CAL.is_business_day(day)
    assert date(2026, 9, 18).weekday() == 4 and CAL.is_business_day(date(2026, 9, 18))
    assert CAL.is_business_day(date(2026, 9, 24))


@pytest.mark.parametrize(("day", "business"), [
    (date(2026, 11, 20), True),    # Friday
    (date(2026, 11, 21), False),   # Saturday
    (date(2026, 11, 22), False),   # Sunday
    (date(2026, 11, 23), False),   # Labor Thanksgiving Day (Monday)
    (date(2026, 12, 28), True),    # last working day of the year
    (date(2026, 12, 29), False),   # closure starts
    (date(2026, 12, 31), False),
    (date(2027, 1, 1), False),     # closure and holiday
    (date(2027, 1, 3), False),     # closure ends (Sunday anyway)
    (date(2027, 1, 4), True),      # first working day
    (date(2027, 1, 11), False),    # Coming of Age Day
])
def test_is_business_day(day: date, business: bool) -> None:
    assert CAL.is_business_day(day) is business


def test_closure_within_one_year_and_single_day() -> None:
    cal = BusinessCalendar(JST, ["08-13..08-14", "06-01"], "09:00-18:00")
    assert not cal.is_business_day(date(2026, 8, 13))
    assert not cal.is_business_day(date(2026, 8, 14))
    assert cal.is_business_day(date(2026, 8, 12))
    assert not cal.is_business_day(date(2026, 6, 1))
    assert cal.is_business_day(date(2026, 12, 29))  # no year-end closure configured


@pytest.mark.parametrize(("received", "n", "expected"), [
    # Weekends
    (jst(2026, 11, 16), 1, eod(2026, 11, 17)),           # Mon -> Tue
    (jst(2026, 11, 13), 1, eod(2026, 11, 16)),           # Fri -> Mon
    (jst(2026, 11, 13), 5, eod(2026, 11, 20)),           # Fri -> next Fri
    (jst(2026, 11, 14), 1, eod(2026, 11, 17)),           # Sat counts from Mon -> Tue
    (jst(2026, 11, 15, 23, 0), 0, eod(2026, 11, 16)),    # Sun, 0 days -> end of Mon
    (jst(2026, 11, 16), 0, eod(2026, 11, 16)),           # business day, 0 days -> same day
    # Friday before a holiday Monday (2026-09-21..23 are holidays)
    (jst(2026, 9, 18), 1, eod(2026, 9, 24)),
    (jst(2026, 9, 18), 2, eod(2026, 9, 25)),
    (jst(2026, 9, 18), 3, eod(2026, 9, 28)),
    (jst(2026, 9, 18), 5, eod(2026, 9, 30)),
    (jst(2026, 9, 22), 1, eod(2026, 9, 25)),             # received on a holiday
    # Labor Thanksgiving Day, Monday 2026-11-23
    (jst(2026, 11, 20), 1, eod(2026, 11, 24)),
    # Year-end closure Dec 29 - Jan 3
    (jst(2026, 12, 28), 1, eod(2027, 1, 4)),
    (jst(2026, 12, 28), 2, eod(2027, 1, 5)),
    (jst(2026, 12, 30), 1, eod(2027, 1, 5)),             # received during the closure
    (jst(2026, 12, 25), 3, eod(2027, 1, 5)),             # Fri -> Mon 28, Mon 4, Tue 5
])
def test_add_business_days(received: datetime, n: int, expected: datetime) -> None:
    assert CAL.add_business_days(received, n) == expected


@pytest.mark.parametrize(("received", "n", "expected"), [
    (jst(2026, 11, 13), 10, eod(2026, 11, 23)),          # lands on a holiday: not moved
    (jst(2026, 11, 14), 1, eod(2026, 11, 15)),           # Saturday receipt is not shifted
    (jst(2026, 12, 25), 7, eod(2027, 1, 1)),             # closures do not stop calendar days
    (jst(2026, 2, 28), 1, eod(2026, 3, 1)),              # month end
])
def test_add_calendar_days(received: datetime, n: int, expected: datetime) -> None:
    assert CAL.add_calendar_days(received, n) == expected


@pytest.mark.parametrize(("received", "expected"), [
    # 23:59 JST Friday is Friday; 00:01 JST Saturday is Saturday (counts from Monday).
    (jst(2026, 11, 13, 23, 59), eod(2026, 11, 16)),
    (jst(2026, 11, 14, 0, 1), eod(2026, 11, 17)),
    (jst(2026, 11, 13, 23, 59, 59), eod(2026, 11, 16)),
    (jst(2026, 11, 14, 0, 0, 0), eod(2026, 11, 17)),
    # UTC evening of Friday is already Saturday in Japan.
    (datetime(2026, 11, 13, 14, 59, tzinfo=UTC), eod(2026, 11, 16)),   # Fri 23:59 JST
    (datetime(2026, 11, 13, 15, 30, tzinfo=UTC), eod(2026, 11, 17)),   # Sat 00:30 JST
    # Another offset entirely: Friday 10:00 in Hanoi is Friday 12:00 JST.
    (datetime(2026, 11, 13, 10, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")), eod(2026, 11, 16)),
])
def test_timezone_edges_one_business_day(received: datetime, expected: datetime) -> None:
    assert due_after(received, "1 business day", CAL) == expected


def test_timezone_edge_calendar_days() -> None:
    assert due_after(jst(2026, 11, 13, 23, 59), "10 calendar days", CAL) == eod(2026, 11, 23)
    assert due_after(jst(2026, 11, 14, 0, 1), "10 calendar days", CAL) == eod(2026, 11, 24)


def test_deadline_is_end_of_company_day_in_utc() -> None:
    due = CAL.add_business_days(jst(2026, 11, 16), 1)
    assert due == datetime(2026, 11, 17, 14, 59, 59, tzinfo=UTC)
    assert due.tzinfo == UTC


# Received Friday 2026-09-18 10:00 JST, before the 2026-09-21..23 holidays.
@pytest.mark.parametrize(("category", "expected"), [
    (Category.QUESTION, Deadlines(eod(2026, 9, 30), eod(2026, 9, 28), eod(2026, 9, 28))),
    (Category.COMPLAINT, Deadlines(eod(2026, 9, 25), eod(2026, 9, 24), eod(2026, 9, 28))),
    (Category.DISCLOSURE, Deadlines(eod(2026, 9, 28), eod(2026, 9, 25), eod(2026, 10, 2))),
    (Category.CORRECTION, Deadlines(eod(2026, 9, 28), eod(2026, 9, 25), eod(2026, 10, 2))),
    (Category.DELETION, Deadlines(eod(2026, 9, 28), eod(2026, 9, 23), eod(2026, 10, 2))),
])
def test_deadlines_per_category(category: Category, expected: Deadlines) -> None:
    assert deadlines(jst(2026, 9, 18), category, SlaSection(), CAL) == expected


def test_deadlines_follow_configured_durations() -> None:
    sla = SlaSection(question=["1 business day", "0 business days", "2 calendar days"])
    got = deadlines(jst(2026, 11, 13), Category.QUESTION, sla, CAL)
    assert got == Deadlines(eod(2026, 11, 16), eod(2026, 11, 13), eod(2026, 11, 15))


def test_deadlines_accepts_plain_string_category() -> None:
    got = deadlines(jst(2026, 11, 16), "complaint", SlaSection(), CAL)  # type: ignore[arg-type]
    assert got.respond_at == eod(2026, 11, 18)


@pytest.mark.parametrize(("at", "inside"), [
    (jst(2026, 11, 16, 9, 0), True),
    (jst(2026, 11, 16, 17, 59), True),
    (jst(2026, 11, 16, 18, 0), False),
    (jst(2026, 11, 16, 8, 59), False),
    (jst(2026, 11, 14, 12, 0), False),        # Saturday
    (jst(2026, 11, 23, 12, 0), False),        # holiday
    (datetime(2026, 11, 16, 0, 30, tzinfo=UTC), True),   # 09:30 JST
])
def test_in_business_hours(at: datetime, inside: bool) -> None:
    assert CAL.in_business_hours(at) is inside


@pytest.mark.parametrize(("at", "expected"), [
    (jst(2026, 11, 16, 10, 0), jst(2026, 11, 16, 10, 0)),    # already open
    (jst(2026, 11, 16, 7, 0), jst(2026, 11, 16, 9, 0)),      # before opening
    (jst(2026, 11, 16, 18, 0), jst(2026, 11, 17, 9, 0)),     # after closing
    (jst(2026, 11, 20, 22, 0), jst(2026, 11, 24, 9, 0)),     # Fri night before holiday Mon
    (jst(2026, 12, 28, 19, 0), jst(2027, 1, 4, 9, 0)),       # year end
])
def test_next_business_opening(at: datetime, expected: datetime) -> None:
    got = CAL.next_business_opening(at)
    assert got == expected and got.tzinfo == UTC


def test_extend_for_waiting() -> None:
    due = eod(2026, 11, 16)
    assert extend_for_waiting(due, timedelta(days=2, hours=3)) == due + timedelta(days=2, hours=3)
    assert extend_for_waiting(due, timedelta(0)) == due
    with pytest.raises(ValueError):
        extend_for_waiting(due, timedelta(seconds=-1))


def test_iso_round_trip() -> None:
    dt = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert to_iso(dt) == "2026-11-24T03:00:00Z"
    assert to_iso(jst(2026, 11, 24, 12, 0)) == "2026-11-24T03:00:00Z"
    assert from_iso("2026-11-24T03:00:00Z") == dt
    assert from_iso("2026-11-24T12:00:00+09:00") == dt
    assert from_iso(to_iso(dt)).tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        from_iso("2026-11-24T03:00:00")
    with pytest.raises(ValueError):
        CAL.add_business_days(datetime(2026, 11, 16, 10, 0), 1)
    with pytest.raises(ValueError):
        to_iso(datetime(2026, 11, 16, 10, 0))


def test_bad_business_hours_rejected() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(JST, [], "18:00-09:00")


# -- the completion clock -----------------------------------------------------------------

@pytest.mark.parametrize(("category", "language", "bilingual", "days"), [
    ("disclosure", "en", False, 14),
    ("correction", "en", False, 14),
    ("deletion", "en", False, 14),
    ("disclosure", "vi", False, 10),
    ("deletion", "vi", False, 10),
    ("deletion", "en", True, 10),   # language unsure: the shorter figure meets both laws
    ("question", "en", False, None),
    ("complaint", "vi", False, None),
])
def test_completion_days(category: str, language: str, bilingual: bool,
                         days: int | None) -> None:
    assert completion_days(RequestsSection(), category, language, bilingual) == days


@pytest.mark.parametrize(("received", "days", "expected"), [
    # 23:59 JST Friday is Friday; 14 calendar days, weekends and holidays included.
    (jst(2026, 11, 20, 23, 59), 14, jst(2026, 12, 4, 23, 59, 59)),
    (jst(2026, 11, 21, 0, 1), 14, jst(2026, 12, 5, 23, 59, 59)),
    # Closures do not stop a legal time limit.
    (jst(2026, 12, 24), 10, jst(2027, 1, 3, 23, 59, 59)),
])
def test_completion_due(received: datetime, days: int, expected: datetime) -> None:
    assert completion_due(received, days, CAL) == expected


def test_extended_completion_moves_whole_days() -> None:
    due = jst(2026, 12, 4, 23, 59, 59)
    assert extended_completion(due, 15, CAL) == jst(2026, 12, 19, 23, 59, 59)
    with pytest.raises(ValueError):
        extended_completion(due, 0, CAL)


@pytest.mark.parametrize(("now", "expected"), [
    (jst(2026, 12, 1, 23, 59), 0),
    (jst(2026, 12, 2, 23, 59, 59), COMPLETION_SOON),  # two days left
    (jst(2026, 12, 4, 23, 59, 59), COMPLETION_SOON),  # the last second
    (jst(2026, 12, 5, 0, 0), COMPLETION_OVERDUE),
])
def test_completion_level(now: datetime, expected: int) -> None:
    assert completion_level(jst(2026, 12, 4, 23, 59, 59), now, timedelta(days=2)) == expected
