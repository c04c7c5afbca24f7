"""PURE: the company's business calendar and SLA due dates.

Nothing here does I/O or reads the clock; every function takes the time it needs.
All datetimes are timezone-aware; results are in UTC (what the database stores).

The due-date rule
-----------------
Deadlines count whole *company days* (dates in ``bot.timezone``, Asia/Tokyo):

* The *day of receipt* is the company-local date of ``received_at``. A mail at
  23:59:59 JST Friday was received on Friday; one at 00:00:00 JST Saturday was received on
  Saturday. A UTC evening timestamp (e.g. ``2026-09-18T15:30Z``) is already the next day in
  Japan (``2026-09-19 00:30 JST``) and counts as that day.
* ``"N business days"``: due at the **end (23:59:59 company time) of the Nth business day
  after the day of receipt**. A mail received on a non-business day (weekend, Japanese public
  holiday, company closure) is treated as received on the next business day, so
  "1 business day" for a Saturday mail means the end of Tuesday (Monday being that
  next business day), while for a mail at 23:59 on Friday it means the end of Monday.
  The time of day (even after business hours) does not matter: receipt on a business day
  counts as that day, which keeps the rule simple to explain to customers.
* ``"N calendar days"``: due at the end (23:59:59 company time) of the Nth calendar day after
  the day of receipt. Weekends, holidays and closures are *not* skipped, and a mail received
  on a non-business day is not shifted: legal time limits are counted in calendar days.
* "0 business days" means the end of the (effective) day of receipt.

A ticket is overdue once ``now > due_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.config import Settings, SlaSection, parse_duration
from bot.models import Category

END_OF_DAY = time(23, 59, 59)
# A calendar whose closures cover every weekday would loop forever; two years without a
# single business day is certainly a configuration error.
_MAX_SEARCH_DAYS = 2 * 366


HolidaySource = Callable[[int], Collection[date]]  # year -> its public holidays


def japanese_holidays(year: int) -> frozenset[date]:
    """Japan's public holidays of ``year`` (substitute and citizens' holidays included),
    from the ``holidays`` package."""
    import holidays  # about 0.1 s: it imports all of its 250 countries to give one

    return frozenset(holidays.country_holidays("JP", years=year))


class BusinessCalendar:
    """Weekends, Japanese public holidays and company closures, in the company time zone."""

    def __init__(self, tz: ZoneInfo, closures: list[str], business_hours: str,
                 holidays_of: HolidaySource = japanese_holidays) -> None:
        """``closures`` items are ``"MM-DD"`` or ``"MM-DD..MM-DD"`` (may span the year end);
        ``business_hours`` is ``"HH:MM-HH:MM"`` in company time; ``holidays_of`` gives the
        public holidays of a year (asked once per year)."""
        self.tz = tz
        self._closures = [_parse_closure(item) for item in closures]
        self.opens_at, self.closes_at = _parse_hours(business_hours)
        self._holidays_of = holidays_of
        self._holidays: dict[int, Collection[date]] = {}

    def company_day(self, at: datetime) -> date:
        """The company-local date of the aware datetime ``at``."""
        return _aware(at).astimezone(self.tz).date()

    def is_holiday(self, d: date) -> bool:
        """True on a Japanese public holiday (including substitute and citizens' holidays)."""
        days = self._holidays.get(d.year)
        if days is None:
            days = self._holidays[d.year] = self._holidays_of(d.year)
        return d in days

    def is_closure(self, d: date) -> bool:
        """True on a configured company closure day."""
        md = (d.month, d.day)
        for start, end in self._closures:
            inside = start <= md <= end if start <= end else md >= start or md <= end
            if inside:
                return True
        return False

    def is_business_day(self, d: date) -> bool:
        """Mon-Fri and neither a public holiday nor a company closure."""
        return d.weekday() < 5 and not self.is_holiday(d) and not self.is_closure(d)

    def next_business_day(self, d: date, *, inclusive: bool = False) -> date:
        """The first business day after ``d`` (or on ``d`` when ``inclusive``)."""
        day = d if inclusive else d + timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError(f"no business day within {_MAX_SEARCH_DAYS} days of {d}")

    def end_of_day(self, d: date) -> datetime:
        """23:59:59 company time on ``d``, in UTC."""
        return datetime.combine(d, END_OF_DAY, tzinfo=self.tz).astimezone(UTC)

    def add_business_days(self, start: datetime, n: int) -> datetime:
        """End of the Nth business day after the company day of ``start`` (UTC).

        A ``start`` on a non-business day counts from the next business day.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        day = self.next_business_day(self.company_day(start), inclusive=True)
        for _ in range(n):
            day = self.next_business_day(day)
        return self.end_of_day(day)

    def add_calendar_days(self, start: datetime, n: int) -> datetime:
        """End of the Nth calendar day after the company day of ``start`` (UTC)."""
        if n < 0:
            raise ValueError("n must not be negative")
        return self.end_of_day(self.company_day(start) + timedelta(days=n))

    def in_business_hours(self, at: datetime) -> bool:
        """True when ``at`` falls on a business day within business hours (end excluded)."""
        local = _aware(at).astimezone(self.tz)
        return (self.is_business_day(local.date())
                and self.opens_at <= local.time() < self.closes_at)

    def next_business_opening(self, at: datetime) -> datetime:
        """The earliest moment at or after ``at`` within business hours, in UTC.

        Returns ``at`` itself (in UTC) when it is already within business hours.
        """
        if self.in_business_hours(at):
            return _aware(at).astimezone(UTC)
        local = _aware(at).astimezone(self.tz)
        today_is_candidate = local.time() < self.opens_at
        day = self.next_business_day(local.date(), inclusive=today_is_candidate)
        return datetime.combine(day, self.opens_at, tzinfo=self.tz).astimezone(UTC)


@dataclass(frozen=True)
class Deadlines:
    """The three SLA times of a ticket, aware UTC."""

    respond_at: datetime
    escalate_at: datetime
    hard_at: datetime


def due_after(received_at: datetime, duration: str, calendar: BusinessCalendar) -> datetime:
    """``received_at`` plus ``"N business days"`` / ``"N calendar days"`` (see module doc)."""
    n, business = parse_duration(duration)
    if business:
        return calendar.add_business_days(received_at, n)
    return calendar.add_calendar_days(received_at, n)


def deadlines(received_at: datetime, category: Category, sla: SlaSection,
              calendar: BusinessCalendar) -> Deadlines:
    """Respond, escalate (level 1) and hard (level 2) deadlines for a new ticket."""
    respond, escalate, hard = getattr(sla, Category(category).value)
    return Deadlines(respond_at=due_after(received_at, respond, calendar),
                     escalate_at=due_after(received_at, escalate, calendar),
                     hard_at=due_after(received_at, hard, calendar))


# -- the second clock: completing a request ----------------------------------------------

COMPLETION_SOON, COMPLETION_OVERDUE = 1, 2


def completion_due(received_at: datetime, days: int, calendar: BusinessCalendar) -> datetime:
    """When a request received at ``received_at`` must be carried out: the end of the
    ``days``-th calendar day after the day of receipt (legal time limits count calendar
    days; see the README for the figures and their sources)."""
    return calendar.add_calendar_days(received_at, days)


def extended_completion(due_at: datetime, days: int, calendar: BusinessCalendar) -> datetime:
    """A completion deadline moved ``days`` calendar days later (``#extend``): the end of
    that company day."""
    if days < 1:
        raise ValueError("an extension adds at least one day")
    return calendar.end_of_day(calendar.company_day(due_at) + timedelta(days=days))


def completion_level(due_at: datetime, now: datetime, remind_before: timedelta) -> int:
    """0, :data:`COMPLETION_SOON` (``remind_before`` or less left) or
    :data:`COMPLETION_OVERDUE` (past ``due_at``)."""
    if now > due_at:
        return COMPLETION_OVERDUE
    return COMPLETION_SOON if now >= due_at - remind_before else 0


def extend_for_waiting(due_at: datetime, waited: timedelta) -> datetime:
    """``due_at`` pushed back by the time spent waiting for the customer.

    Used only when ``sla.pause_while_waiting`` is true. Wall-clock time is added as is
    (not business time), so a wait over a weekend extends the deadline by the weekend too.
    """
    if waited < timedelta(0):
        raise ValueError("waited must not be negative")
    return _aware(due_at).astimezone(UTC) + waited


def calendar_from_settings(settings: Settings,
                           holidays_of: HolidaySource = japanese_holidays) -> BusinessCalendar:
    """The business calendar configured by ``bot.timezone`` and ``[sla]``."""
    return BusinessCalendar(settings.tz, settings.sla.closures, settings.sla.business_hours,
                            holidays_of)


@lru_cache(maxsize=256)  # one mail writes the same few moments a dozen times
def to_iso(dt: datetime) -> str:
    """Aware datetime -> ``"2026-11-24T03:00:00Z"`` (UTC, whole seconds, as the DB stores)."""
    return _aware(dt).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(value: str) -> datetime:
    """ISO 8601 with ``Z`` or an offset -> aware UTC datetime; naive strings are refused."""
    return _aware(datetime.fromisoformat(value)).astimezone(UTC)


def _aware(dt: datetime) -> datetime:
    # A naive datetime is ambiguous between UTC and company time; refuse it loudly.
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {dt!r}")
    return dt


def _parse_closure(item: str) -> tuple[tuple[int, int], tuple[int, int]]:
    first, _, last = item.partition("..")
    return _month_day(first), _month_day(last or first)


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.strip().split("-")
    return int(month), int(day)


def _parse_hours(text: str) -> tuple[time, time]:
    opens, closes = (time.fromisoformat(part.strip()) for part in text.split("-"))
    if opens >= closes:
        raise ValueError(f"business hours must open before they close: {text!r}")
    return opens, closes
