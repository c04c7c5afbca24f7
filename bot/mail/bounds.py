"""PURE: reading a mail's MIME structure with bounded work, whatever the sender built.

A mail up to ``limits.max_message_bytes`` must be read in about a second. The stdlib parser
is linear in the bytes, but what it builds is not bounded: thousands of parts, nesting deep
enough to exhaust the stack, header parameters that ``Message.get_param`` re-copies once per
parameter (quadratic), header blocks of a million fields. So the parser is fed in small
chunks and stops when the mail has shown too many parts, too deep a nesting, too many header
lines in a row, or the time budget is spent; header values are cut to a bounded length as
they are read. What was not read stays in the mailbox for staff, and
the mail's ``defects`` say why (``cut:<reason>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32

__all__ = ["Budget", "CUT_PREFIX", "POLICY", "parse_bounded", "parse_headers"]

MAX_PARTS = 1_000
MAX_DEPTH = 50
FEED_CHUNK = 4_096  # at most ~100 nesting levels fit in one chunk: far from the stack limit
# Above 2 * parse.MAX_AUTH_RESULTS_CHARS, so a cut Authentication-Results stays visibly cut.
MAX_RAW_HEADER_CHARS = 65_536
MAX_PARAM_HEADER_CHARS = 2_048
MAX_PARAMS = 64
# Header fields in a row: the parser files every one (a few microseconds each) and each
# lookup scans them all, so a block of a million costs seconds. Reading stops after this many
# (counted per chunk, so roughly).
MAX_HEADER_LINES = 5_000
_PARAM_HEADERS = ("content-type", "content-disposition")
CUT_PREFIX = "cut:"


@dataclass(frozen=True)
class Budget:
    """Time allowed for reading one mail. The clock is the caller's (pure modules never
    read one), e.g. ``Budget.start(time.monotonic, 1.0)``."""

    clock: Callable[[], float]
    deadline: float

    @classmethod
    def start(cls, clock: Callable[[], float], seconds: float) -> Budget:
        return cls(clock, clock() + seconds)

    def spent(self) -> bool:
        return self.clock() >= self.deadline


def bound_header(name: str, value: str) -> str:
    """A raw header value cut to a bounded length (``References``: head and tail, so the
    thread root and the latest parents survive)."""
    lower = name.strip().lower()
    if lower in _PARAM_HEADERS:
        return _first_params(value[:MAX_PARAM_HEADER_CHARS])
    if len(value) <= MAX_RAW_HEADER_CHARS:
        return value
    if lower == "references":
        half = MAX_RAW_HEADER_CHARS // 2
        return value[:half] + " " + value[-half:]
    return value[:MAX_RAW_HEADER_CHARS]


def _first_params(value: str) -> str:
    """At most MAX_PARAMS parameters: ``Message.get_param`` copies the rest of the value once
    per parameter, so their number must stay small."""
    cut = -1
    for _ in range(MAX_PARAMS + 1):
        cut = value.find(";", cut + 1)
        if cut < 0:
            return value
    return value[:cut]


class _BoundedPolicy(Compat32):
    """compat32 (no header objects that raise on access) with every header value bounded."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, bound_header(name, value)


POLICY = _BoundedPolicy()


def parse_headers(raw: bytes) -> Message:
    """The header block only (the body stays one unparsed string)."""
    return BytesParser(policy=POLICY).parsebytes(raw, headersonly=True)


def parse_bounded(raw: bytes, defects: list[str], budget: Budget | None = None) -> Message:
    """The MIME tree of ``raw``, read until a bound is hit (then ``cut:<reason>`` in
    ``defects``: ``headers``, ``parts``, ``nesting`` or ``time``). May raise RecursionError."""
    created = [0]

    def factory(policy: Compat32 = POLICY) -> Message:
        created[0] += 1
        return Message(policy)

    parser = BytesFeedParser(_factory=factory, policy=POLICY)
    created[0] = 0  # the parser calls the factory once to probe its signature
    view = memoryview(raw)
    run = 0
    for start in range(0, len(raw), FEED_CHUNK):
        chunk = bytes(view[start:start + FEED_CHUNK])
        run = header_run(chunk, run)
        parser.feed(chunk)
        # _msgstack: the parts open right now (private; should a Python release rename it,
        # depth reads 0 and the parts bound alone still ends a deep nesting).
        depth = len(getattr(parser, "_msgstack", ()))
        reason = _over_bounds(created[0], depth, run, budget)
        if reason and start + FEED_CHUNK < len(raw):
            defects.append(CUT_PREFIX + reason)
            break
    return parser.close()


def header_run(chunk: bytes, run: int) -> int:
    """Lines of header fields in a row so far, with ``chunk`` added: a chunk with a blank
    line or a boundary, or with fewer colons than half its lines, ends a run (base64 and
    text have few colons; a header block has one per field)."""
    lines = chunk.count(b"\n")
    if (b"\n\n" in chunk or b"\n\r\n" in chunk or b"\n--" in chunk
            or chunk.count(b":") * 2 < lines):
        return 0
    return run + lines


def _over_bounds(parts: int, depth: int, header_lines: int,
                 budget: Budget | None) -> str | None:
    if header_lines > MAX_HEADER_LINES:
        return "headers"
    if parts > MAX_PARTS:
        return "parts"
    if depth > MAX_DEPTH:
        return "nesting"
    if budget is not None and budget.spent():
        return "time"
    return None
