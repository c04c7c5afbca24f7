"""Japan's public holidays kept in the state folder between runs.

The ``holidays`` package stays the source: but it imports all of its 250 countries to give
Japan's, about 0.1 s at every start of a run (a fifth of a ``once`` on an empty mailbox).
The file keeps the holidays of each year asked for, with the version of the package that
gave them; under another version (an upgrade may bring a newly enacted holiday) the package
is asked again and the file rewritten. A file that cannot be read or written is ignored:
the package answers, as it would without a file.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from bot.adapters.private_file import write_private
from bot.config import Settings
from bot.rules.sla import BusinessCalendar, HolidaySource, calendar_from_settings, japanese_holidays

log = logging.getLogger(__name__)

FILE_NAME = "holidays-JP.json"


def business_calendar(settings: Settings) -> BusinessCalendar:
    """The configured calendar, with the holidays kept in ``settings.cache_path``."""
    return calendar_from_settings(settings, kept_holidays(settings.cache_path))


@lru_cache(maxsize=8)
def kept_holidays(folder: Path | None) -> HolidaySource:
    """Japan's holidays per year, kept in ``folder`` (None: straight from the package)."""
    version = _package_version()
    if folder is None or version is None:
        return japanese_holidays
    return HolidayFile(folder / FILE_NAME, version)


class HolidayFile:
    """``holiday_file(year)``: the year's holidays from the file, else from the package
    (then written to the file)."""

    def __init__(self, path: Path, version: str) -> None:
        self.path, self.version = path, version
        self._years: dict[int, frozenset[date]] | None = None

    def __call__(self, year: int) -> frozenset[date]:
        if self._years is None:
            self._years = read_years(self.path, self.version)
        days = self._years.get(year)
        if days is None:
            days = self._years[year] = japanese_holidays(year)
            self._write()
        return days

    def _write(self) -> None:
        data = {"holidays": self.version,
                "years": {str(year): sorted(d.isoformat() for d in days)
                          for year, days in sorted((self._years or {}).items())}}
        try:
            write_private(self.path, json.dumps(data, indent=0).encode("utf-8"))
        except OSError as exc:
            log.debug("holiday file %s not written: %s", self.path, exc)


def read_years(path: Path, version: str) -> dict[int, frozenset[date]]:
    """The years kept in ``path`` by package ``version``; {} for a missing, damaged or
    older file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["holidays"] != version:
            return {}
        return {int(year): frozenset(map(date.fromisoformat, days))
                for year, days in data["years"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _package_version() -> str | None:
    try:
        return metadata.version("holidays")
    except metadata.PackageNotFoundError:  # run from a copy without its metadata
        return None
