"""Japan's holidays kept in the state folder (bot.adapters.holiday_file): the same days as
the `holidays` package, read back without it, and asked again when the file is damaged or
was written by another version of the package."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.adapters import holiday_file
from bot.adapters.holiday_file import FILE_NAME, HolidayFile, business_calendar, kept_holidays
from bot.config import settings_from_dict
from bot.rules.sla import japanese_holidays

YEARS = range(2019, 2031)
VERSION = "1.0"


def _no_package(year: int) -> frozenset[date]:
    raise AssertionError(f"the package was asked for {year}")


def test_kept_years_are_the_packages_and_come_back_without_it(tmp_path, monkeypatch):
    first = HolidayFile(tmp_path / FILE_NAME, VERSION)
    expected = {year: japanese_holidays(year) for year in YEARS}
    assert {year: first(year) for year in YEARS} == expected
    assert date(2026, 5, 6) in expected[2026]      # a substitute holiday
    assert date(2026, 9, 22) in expected[2026]     # a citizens' holiday

    monkeypatch.setattr(holiday_file, "japanese_holidays", _no_package)
    again = HolidayFile(tmp_path / FILE_NAME, VERSION)  # the next run
    assert {year: again(year) for year in YEARS} == expected
    assert oct((tmp_path / FILE_NAME).stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("content", [
    "", "not json", "[]", '{"holidays": "1.0"}', '{"holidays": "1.0", "years": []}',
    '{"holidays": "1.0", "years": {"2026": ["not a date"]}}',
    '{"holidays": "1.0", "years": {"twenty": []}}',
    '{"holidays": "0.9", "years": {"2026": []}}',   # another version of the package
])
def test_a_damaged_or_older_file_is_asked_again_and_rewritten(tmp_path, content):
    path = tmp_path / FILE_NAME
    path.write_text(content, encoding="utf-8")
    assert HolidayFile(path, VERSION)(2026) == japanese_holidays(2026)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["holidays"] == VERSION and "2026" in data["years"]


def test_an_unwritable_place_only_costs_the_package(tmp_path):
    path = tmp_path / "not-a-folder" / FILE_NAME
    path.parent.write_text("a file where the folder should be")
    holidays_of = HolidayFile(path, VERSION)
    assert holidays_of(2026) == holidays_of(2026) == japanese_holidays(2026)


def test_the_configured_calendar_keeps_its_holidays_in_the_cache_folder(tmp_path):
    settings = settings_from_dict(
        {"bot": {"address": "contact@cijidas.jp"}, "mailbox": {"host": "x", "username": "u"},
         "smtp": {"host": "y"}, "storage": {"database": str(tmp_path / "state" / "t.db")}},
        tmp_path / "config.toml", {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
    (tmp_path / "state").mkdir(mode=0o700)  # made with the database
    calendar = business_calendar(settings)
    # Friday 1 May 2026 -> Golden Week (4-6 May, 6 May a substitute holiday) -> Thursday 7.
    due = calendar.add_business_days(datetime(2026, 5, 1, 3, tzinfo=UTC), 1)
    assert calendar.company_day(due) == date(2026, 5, 7)
    folder = tmp_path / "state" / "cache"
    assert (folder / FILE_NAME).exists() and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert kept_holidays(None) is japanese_holidays
    dry = dataclasses.replace(settings, cache_path=None)
    assert business_calendar(dry).add_business_days(datetime(2026, 5, 1, 3, tzinfo=UTC), 1) == due


def test_the_file_name_is_in_the_deployment_guide():
    guide = (Path(__file__).resolve().parent.parent / "docs" / "deployment.md").read_text()
    assert FILE_NAME in guide
