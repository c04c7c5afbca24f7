"""Every problem of a config file at once (imported by :mod:`bot.config`).

Validation does not stop at the first mistake: each one is collected as a line
``section.key: what is wrong``, an unknown name with the nearest known one ("did you mean"),
and :class:`ConfigProblems` carries them all. Kept apart from :mod:`bot.config` so that module
stays short; it imports nothing of the bot but its errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bot.errors import ConfigError


class ConfigProblems(ConfigError):
    """Every problem of one config file, each ``section.key: what is wrong``."""

    def __init__(self, problems: list[str], path: Path) -> None:
        self.problems = tuple(problems)
        super().__init__(problems[0] if len(problems) == 1 else
                         f"{len(problems)} problems in {path}:\n"
                         + "\n".join(f"  {problem}" for problem in problems))


def collect(problems: list[str], getters: Mapping[str, Callable[[], str]]) -> dict[str, str]:
    """``{name: getter()}``; a getter's ConfigError goes to ``problems`` instead."""
    values = {}
    for name, getter in getters.items():
        try:
            values[name] = getter()
        except ConfigError as exc:
            problems.append(str(exc))
    return values


def new_problems(checks: Iterable[str], already: list[str]) -> list[str]:
    """What ``checks`` yields, less the keys ``already`` reported (a bad or missing value was
    replaced by its default or a blank, which must not be reported a second time)."""
    reported = {_key(problem) for problem in already}
    found: list[str] = []
    try:
        for problem in checks:
            found.append(problem)
    except ConfigError as exc:  # a check written as ``raise`` ends the checks, still counted
        found.append(str(exc))
    return [problem for problem in found if _key(problem) not in reported]


def unknown_section(name: str, known: Iterable[str]) -> str:
    known = list(known)
    hint = did_you_mean(name, known) or f" (known: {', '.join(known)})"
    return f"{name}: unknown section{hint}"


def unknown_key(section: str, key: str, keys: Mapping[str, Iterable[str]]) -> str:
    """``section.key: unknown key`` with the nearest key of ``section`` or, failing that, the
    section that has this key (``keys`` maps every section to its keys)."""
    hint = did_you_mean(key, keys[section])
    if not hint:
        homes = [name for name, names in keys.items() if key in names]
        hint = f"; did you mean '{homes[0]}.{key}'?" if homes else ""
    return f"{section}.{key}: unknown key{hint}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _key(problem: str) -> str:
    return problem.split(":", 1)[0]
