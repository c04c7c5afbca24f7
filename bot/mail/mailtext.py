"""PURE: mail text helpers - HTML to readable text, and the customer's new text.

``split_new_text`` cuts quoted earlier messages, forwarded headers and signatures, so that
triage and staff see only what the customer wrote now.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text", "split_new_text"]


# --- HTML to text -----------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "title", "template"})
_LINE_TAGS = frozenset(
    {"br", "div", "li", "tr", "dd", "dt", "section", "article", "header", "footer"}
)
_PARA_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre", "hr", "blockquote"}
)


class _TextExtractor(HTMLParser):
    """Collects readable text; block tags become line breaks, blockquotes become "> " lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip = 0
        self.quote = 0
        self.pre = 0

    def _break(self, count: int = 1) -> None:
        self.chunks.append(("\n" + "> " * self.quote) * count)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
            return
        self.quote += tag == "blockquote"
        self.pre += tag == "pre"
        if tag in _PARA_TAGS or tag in _LINE_TAGS:
            self._break(2 if tag in _PARA_TAGS else 1)
        if tag == "li":
            self.chunks.append("- ")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARA_TAGS or tag in ("div", "tr"):
            self._break(2 if tag in _PARA_TAGS else 1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:  # outside <pre>, a newline in HTML source is just a space
            self.chunks.append(data.replace("\r", " ").replace("\n", " "))
            return
        for index, line in enumerate(data.replace("\r\n", "\n").split("\n")):
            if index:
                self._break()
            self.chunks.append(line)


def html_to_text(html: str) -> str:
    """Readable plain text from HTML (stdlib ``html.parser``); never raises."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.chunks)
    except Exception:  # noqa: BLE001 - fall back to crude tag stripping
        text = "".join(extractor.chunks) or re.sub(r"<[^>]{0,2000}>", " ", html)
    lines = [re.sub(r"[ \t\u00a0\u200b]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


# --- new text: quoted replies and signatures --------------------------------------------------

_ATTRIBUTION = re.compile(
    r"^(?:on\s.{0,400}\swrote"  # Gmail / Apple Mail / Thunderbird
    r"|v[àa]o\s.{0,400}\s(?:đã|da)\s+vi[ếe]t"  # Gmail in Vietnamese, with or without diacritics
    r"|\d{4}年\d{1,2}月\d{1,2}日.{0,400})\s*[:：]$",  # Gmail in Japanese
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^(?:-{2,}\s*(?:original message|thư gốc|tin nhắn gốc|元のメッセージ"
    r"|forwarded message|thư được chuyển tiếp|転送されたメッセージ)\s*-{2,}"
    r"|begin forwarded message\s*:?)$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^(?:from|từ|tu|差出人)\s*[:：]\s*\S", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(
    r"^(?:sent|date|đã gửi|da gui|ngày gửi|送信日時|日付)\s*[:：]", re.IGNORECASE
)
_UNDERSCORES = re.compile(r"^_{8,}$")
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

    Conservative: if cutting would leave nothing, the original text is returned.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = lines[: _quote_start(lines)]
    if not _has_content(kept):  # bottom-posting: the new text sits below the quote
        kept = [line for line in lines if not _is_quote_line(line)]
    kept = kept[: _signature_start(kept)]
    new = "\n".join(kept).strip()
    return new if new else text.strip()


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _is_quote_line(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(">") or bool(_ATTRIBUTION.match(stripped))


def _quote_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">") or _SEPARATOR.match(stripped):
            return index
        if _is_attribution(stripped, lines[index + 1 : index + 2]):
            return index
        if _OUTLOOK_FROM.match(stripped) and _sent_line_follows(lines[index + 1 : index + 5]):
            above = index - 1 if index and _UNDERSCORES.match(lines[index - 1].strip()) else index
            return above
    return len(lines)


def _is_attribution(line: str, following: list[str]) -> bool:
    # Dates carry digits; requiring one keeps "On Monday I wrote:" in prose safe.
    if not re.search(r"\d", line):
        return False
    if _ATTRIBUTION.match(line):
        return True
    # Clients wrap long attributions: "On Mon, 3 Nov 2025, Name <x@y>\nwrote:"
    return bool(following) and bool(_ATTRIBUTION.match(f"{line} {following[0].strip()}"))


def _sent_line_follows(lines: list[str]) -> bool:
    return any(_OUTLOOK_SENT.match(line.strip()) for line in lines)


def _signature_start(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if line.rstrip() == "--" and _has_content(lines[:index]):
            return index
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if not (_SIGN_OFF.match(stripped) or _DEVICE_SIGNATURE.match(stripped)):
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
