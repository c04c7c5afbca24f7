"""PURE: mail text helpers - HTML to readable text, and the customer's new text.

``split_new_text`` cuts quoted earlier messages, forwarded headers and signatures, so that
triage and staff see only what the customer wrote now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

from bot.mail import quotes

__all__ = ["MAX_TEXT_CHARS", "html_text", "html_to_text", "split_new_text"]


# --- HTML to text -----------------------------------------------------------------------------
# A linear, bounded tokenizer instead of the stdlib ``html.parser``: that parser rescans the
# rest of the input for every tag that never ends (quadratic), and the quote prefix used to
# be rebuilt per tag (20,000 nested blockquotes cost 75 s and 4.6 GB). Every regex below
# stops at the next "<", so no stretch of input is scanned more than a few times.

MAX_QUOTE_DEPTH = 20  # deeper blockquotes are shown at this depth
MAX_TAGS = 100_000  # tags looked at; the rest of the HTML is not read
MAX_TEXT_CHARS = 400_000  # text produced; the rest of the HTML is not read
_BUDGET_EVERY = 256  # tags between two looks at the time budget
_BUDGET_FREE_TAGS = 5_000  # read even when the budget is spent (a few ms): some text first

_SKIP_TAGS = frozenset({"title", "template"})
_RAW_TAGS = frozenset({"script", "style"})  # their content is not HTML: skipped unparsed
_LINE_TAGS = frozenset(
    {"br", "div", "li", "tr", "dd", "dt", "section", "article", "header", "footer"}
)
_PARA_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre", "hr", "blockquote"}
)
_PREFIXES = tuple("> " * depth for depth in range(MAX_QUOTE_DEPTH + 1))
_TAG = re.compile(
    r"<(/?)([a-zA-Z][^\s/<>]{0,63})"
    r"((?:[^<>\"']++|\"[^\"<]{0,4096}\"|'[^'<]{0,4096}'){0,256})>?"
)
_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<[!?][^<>]{0,4096}>?", re.DOTALL)
_RAW_END = {tag: re.compile(rf"</{tag}[^<>]{{0,4096}}>?", re.IGNORECASE) for tag in _RAW_TAGS}


class _TextExtractor:
    """Collects readable text; block tags become line breaks, blockquotes become "> " lines."""

    def __init__(self, max_chars: int, stop: Callable[[], bool] | None) -> None:
        self.chunks: list[str] = []
        self.size = 0
        self.max_chars = max_chars
        self.stop = stop
        self.skip = 0
        self.quote = 0
        self.pre = 0
        self.pending = 0  # line breaks not yet written (at most 2: a paragraph break)
        self.complete = True

    def run(self, html: str) -> None:
        pos, tags = 0, 0
        while pos < len(html):
            if self.size > self.max_chars or tags >= MAX_TAGS or self._out_of_time(tags):
                self.complete = False
                return
            lt = html.find("<", pos)
            if lt < 0:
                self.data(html[pos:])
                return
            if lt > pos:
                self.data(html[pos:lt])
            pos = self.markup(html, lt)
            tags += 1

    def _out_of_time(self, tags: int) -> bool:
        return (tags >= _BUDGET_FREE_TAGS and tags % _BUDGET_EVERY == 0
                and self.stop is not None and self.stop())

    def markup(self, html: str, at: int) -> int:
        """Handle the construct starting with "<" at ``at``; return where text resumes."""
        match = _MARKUP.match(html, at)
        if match:  # comment, declaration, processing instruction: no text
            return match.end()
        match = _TAG.match(html, at)
        if not match:  # a lone "<" is text
            self.data("<")
            return at + 1
        closing, name, attrs = match.groups()
        name = name.lower()
        if closing:
            self.end_tag(name)
            return match.end()
        self.start_tag(name)
        if name in _RAW_TAGS and not attrs.rstrip().endswith("/"):
            end = _RAW_END[name].search(html, match.end())
            return end.end() if end else len(html)
        return match.end()

    def emit(self, text: str) -> None:
        """Append text, preceded by the line breaks pending (with today's quote prefix)."""
        if self.pending:
            prefix = _PREFIXES[min(self.quote, MAX_QUOTE_DEPTH)]
            self.chunks.append(("\n" + prefix) * self.pending)
            self.size += self.pending * (1 + len(prefix))
            self.pending = 0
        self.chunks.append(text)
        self.size += len(text)

    def line_break(self, count: int = 1) -> None:
        # Breaks wait for the next text: empty lines between tags never pile up, so deep
        # nesting costs one prefix, not one per tag.
        self.pending = min(2, self.pending + count)

    def start_tag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        self.quote += tag == "blockquote"
        self.pre += tag == "pre"
        if tag in _PARA_TAGS or tag in _LINE_TAGS:
            self.line_break(2 if tag in _PARA_TAGS else 1)
        if tag == "li":
            self.emit("- ")
        elif tag in ("td", "th"):
            self.emit(" ")

    def end_tag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARA_TAGS or tag in ("div", "tr"):
            self.line_break(2 if tag in _PARA_TAGS else 1)

    def data(self, data: str) -> None:
        if self.skip:
            return
        data = unescape(data)
        if not self.pre:  # outside <pre>, a newline in HTML source is just a space
            data = data.replace("\r", " ").replace("\n", " ")
            if data.strip() or not self.pending:
                self.emit(data)
            return
        for index, line in enumerate(data.replace("\r\n", "\n").split("\n")):
            if index:
                self.line_break()
            if line:
                self.emit(line)


def html_text(html: str, *, max_chars: int = MAX_TEXT_CHARS,
              stop: Callable[[], bool] | None = None) -> tuple[str, bool]:
    """Readable plain text from HTML and whether all of it was read; never raises.

    Reading ends early after ``max_chars`` characters of text, :data:`MAX_TAGS` tags, or
    when ``stop()`` (the caller's time budget) returns True.
    """
    extractor = _TextExtractor(max_chars, stop)
    try:
        extractor.run(html)
    except Exception:  # noqa: BLE001 - e.g. MemoryError: keep what was read
        extractor.complete = False
    text = "".join(extractor.chunks)[:max_chars]
    lines = [re.sub(r"[ \t\u00a0\u200b]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n"), extractor.complete


def html_to_text(html: str) -> str:
    """Readable plain text from HTML (see :func:`html_text`); never raises."""
    return html_text(html)[0]


# --- new text: quoted replies and signatures --------------------------------------------------

_SIGN_OFF = re.compile(
    r"^(?:(?:best|kind|warm|warmest)?\s*regards|thanks(?: and regards)?|thank you|many thanks"
    r"|cheers|sincerely|yours sincerely|yours truly|trân trọng|tran trong|thân ái|than ai"
    r"|(?:xin )?cảm ơn|(?:xin )?cam on|よろしくお願いします|よろしくお願いいたします)[\s,.!。]*$",
    re.IGNORECASE,
)
_DEVICE_SIGNATURE = re.compile(
    r"^(?:sent from my\s.{1,40}|get outlook for\s.{1,30}|gửi từ .{0,20}iphone.{0,20})$",
    re.IGNORECASE,
)
_MAX_SIGNATURE_LINES = 3


def split_new_text(text: str) -> str:
    """What the sender wrote now: no quoted earlier mail, forwarded block or signature.

    Quotations are found by :func:`bot.mail.quotes.new_lines` (attributions, header blocks
    and separators in many languages; text below or between quotes is kept).
    Conservative: if cutting would leave nothing, the original text is returned.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = quotes.new_lines(lines)
    kept = kept[: _signature_start(kept)]
    new = "\n".join(kept).strip()
    return new if new else text.strip()


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _signature_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if line.rstrip() == "--" and _has_content(lines[:index]):
            return index
    lines = lines[: quotes.trailer_start(lines)]  # mailing-list footer, "-Name" signature
    filled_below = 0
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if filled_below > _MAX_SIGNATURE_LINES:
            break  # a sign-off further up is not followed by a short block
        filled_below += bool(stripped)
        if not (_SIGN_OFF.match(stripped) or _DEVICE_SIGNATURE.match(stripped)
                or quotes.is_sign_off(stripped) or quotes.is_device_signature(stripped)):
            continue
        if _is_short_block(lines[index + 1 :]) and _has_content(lines[:index]):
            return index
    return len(lines)


def _is_short_block(lines: list[str]) -> bool:
    """A name/title block: a few short lines, no bullets, no sentences."""
    filled = [line.strip() for line in lines if line.strip()]
    return len(filled) <= _MAX_SIGNATURE_LINES and all(_looks_like_name_line(f) for f in filled)


def _looks_like_name_line(line: str) -> bool:
    return len(line) <= 60 and not re.match(r"[-*•\d]", line) and not line.endswith(("?", ":"))
