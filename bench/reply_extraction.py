"""Reply extraction on other projects' test mails: how often ``new_text`` is exactly right.

Runs the bot's own path - ``bot.mail.parse.parse_message(raw).new_text`` - over every case in
tests/fixtures/replies/<source>/ (mails and expected replies taken from the test suites of
mailgun/talon and github/email_reply_parser; see SOURCES.md there) and prints the match rate
per source and overall.

A case is ``<name>.eml`` (the raw mail), ``<name>.reply.txt`` (the text the sender wrote
now) and, where the mail ends its new text with a signature, ``<name>.signature.txt``.

What "match" means (strict):

* both texts are normalised the same way, and only in this way: quote markers at the start
  of a line (``>``, ``> >``...) are dropped, every run of whitespace (Unicode ``\\s``:
  spaces, tabs, line breaks, no-break spaces) becomes one space, and the ends are stripped.
  Line breaks, indentation and how a kept blockquote is drawn do not count; every other
  character does;
* the case matches when the normalised ``new_text`` EQUALS the normalised reply, or, for a
  case with a signature file, equals the normalised reply followed by the signature. The
  two projects disagree on signatures (talon's quotation extractor keeps them and strips
  them in a separate step; email_reply_parser hides them), so a signature the bot cuts
  and a signature it keeps both count - but nothing else may be missing or extra: one
  quoted line left in, or one word of the reply lost, is a failure.

Usage: .venv/bin/python bench/reply_extraction.py [--errors] [--source NAME]
  --errors   list the failing cases with what was expected and what the bot read
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.mail.parse import parse_message  # noqa: E402

CASES = ROOT / "tests" / "fixtures" / "replies"
_SPACE = re.compile(r"\s+")
_QUOTE_MARKERS = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    source: str
    name: str
    raw: bytes
    reply: str
    signature: str | None


def normalise(text: str) -> str:
    """Quote markers at line starts dropped; whitespace runs -> one space; ends stripped."""
    return _SPACE.sub(" ", _QUOTE_MARKERS.sub("", text)).strip()


def load_cases(root: Path = CASES) -> Iterator[Case]:
    """Every case under ``root``, by source then name."""
    for mail in sorted(root.glob("*/*.eml")):
        stem = mail.with_suffix("")
        signature = stem.with_name(stem.name + ".signature.txt")
        yield Case(
            source=mail.parent.name,
            name=stem.name,
            raw=mail.read_bytes(),
            reply=stem.with_name(stem.name + ".reply.txt").read_text(encoding="utf-8"),
            signature=signature.read_text(encoding="utf-8") if signature.exists() else None,
        )


def matches(case: Case, new_text: str) -> bool:
    """The strict match defined in this module's docstring."""
    got = normalise(new_text)
    if got == normalise(case.reply):
        return True
    return case.signature is not None and got == normalise(f"{case.reply}\n{case.signature}")


def bot_new_text(raw: bytes) -> str:
    return parse_message(raw).new_text


def evaluate(extract: Callable[[bytes], str] = bot_new_text,
             root: Path = CASES) -> list[tuple[Case, str, bool]]:
    """(case, extracted text, matched) for every case."""
    results = []
    for case in load_cases(root):
        text = extract(case.raw)
        results.append((case, text, matches(case, text)))
    return results


def rates(results: list[tuple[Case, str, bool]]) -> dict[str, tuple[int, int]]:
    """{source: (matched, total)} plus "overall"."""
    table: dict[str, tuple[int, int]] = {}
    for case, _, ok in results:
        for key in (case.source, "overall"):
            hit, total = table.get(key, (0, 0))
            table[key] = (hit + ok, total + 1)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--source", help="only this source (a folder name)")
    args = parser.parse_args()
    results = [r for r in evaluate() if args.source in (None, r[0].source)]
    for key, (hit, total) in sorted(rates(results).items(), key=lambda i: i[0] == "overall"):
        print(f"{key:<20} {hit:>3} / {total:<3} {100 * hit / max(total, 1):5.1f}%")
    if args.errors:
        for case, text, ok in results:
            if not ok:
                _show_failure(case, text)
    return 0


def _show_failure(case: Case, text: str) -> None:
    print(f"\n--- {case.source}/{case.name}")
    print(f"expected: {normalise(case.reply)!r}")
    if case.signature:
        print(f"  (+sig): {normalise(case.signature)!r}")
    print(f"got:      {normalise(text)[:600]!r}")


if __name__ == "__main__":
    sys.exit(main())
