"""PURE: raw RFC 5322 bytes -> :class:`bot.models.InboundMail`.

``parse_message`` never raises: hostile or broken input degrades to whatever could be
read, and every problem is named in ``InboundMail.defects``.

Headers are decoded through one explicit path (``email.header.decode_header`` plus our own
charset fallback) instead of ``policy.default`` header objects, because those raise on
malformed headers when accessed and leave lone surrogates for undeclared 8-bit bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from bot.models import Attachment, InboundMail

__all__ = ["parse_message", "split_new_text", "html_to_text"]

MAX_BODY_CHARS = 200_000
MAX_SUBJECT_CHARS = 1_000
MAX_HEADER_VALUE_CHARS = 4_096
MAX_HEADERS = 500
MAX_ADDRESSES = 1_000
MAX_ADDRESS_HEADER_CHARS = 65_536  # enough for MAX_ADDRESSES, bounds getaddresses' work
MAX_REFERENCES = 100
MAX_PARTS = 1_000
MAX_ATTACHMENTS = 200
MAX_DEFECTS = 100
MAX_HTML_CHARS = 2_000_000
EMBEDDED_ID_HEADER = "x-bot-embedded-message-id"

_MSG_ID = re.compile(r"<[^<>\s]{1,900}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ADDR_SPEC = re.compile(r"^[^\s<>()\[\],;:\"]+(@[^\s<>()\[\],;:\"@]+)?$")
_BODY_TYPES = ("text/plain", "text/html")
_EMBEDDED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global")
# Containers whose sub-"parts" are header blocks, not content (RFC 3464 / RFC 8098).
_OPAQUE_TYPES = ("message/delivery-status", "message/disposition-notification")


def parse_message(raw: bytes) -> InboundMail:
    """Decode ``raw`` into an :class:`InboundMail`; never raises, problems go to ``defects``."""
    raw = _as_bytes(raw)
    defects: list[str] = []
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw)
        return _build(raw, msg, defects, full=True)
    except RecursionError:
        defects.append("mime-nesting-too-deep")
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise"
        defects.append(f"mime-unparsed:{type(exc).__name__}")
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
        return _build(raw, msg, defects, full=False)
    except Exception as exc:  # noqa: BLE001
        defects.append(f"headers-unparsed:{type(exc).__name__}")
        return _empty(raw, defects)


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    try:
        return bytes(raw)  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001
        return b""


def _empty(raw: bytes, defects: list[str]) -> InboundMail:
    return InboundMail(
        message_id=None,
        in_reply_to=None,
        references=(),
        from_addr="",
        from_name="",
        reply_to=None,
        to_addrs=(),
        cc_addrs=(),
        subject="",
        date=None,
        content_type="",
        body_text="",
        new_text="",
        size=len(raw),
        defects=tuple(defects[:MAX_DEFECTS]),
    )


def _build(raw: bytes, msg: Message, defects: list[str], *, full: bool) -> InboundMail:
    headers = _decoded_headers(msg, defects)
    if full:
        body, attachments, part_types, embedded_id = _walk_body(msg, defects)
    else:
        body, attachments, part_types, embedded_id = _unparsed_body(msg), [], [], None
    if embedded_id:
        headers.append((EMBEDDED_ID_HEADER, embedded_id))
    from_addr, from_name = _first_address(msg, "From", defects)
    reply_to, _ = _first_address(msg, "Reply-To", defects)
    references = _message_ids(_raw_header(msg, "References"))
    if len(references) > MAX_REFERENCES:  # keep the thread root and the most recent parents
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]
    in_reply_to = _message_ids(_raw_header(msg, "In-Reply-To"))
    return InboundMail(
        message_id=_first_message_id(_raw_header(msg, "Message-ID")),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to or None,
        to_addrs=_addresses(msg, "To", defects),
        cc_addrs=_addresses(msg, "Cc", defects),
        subject=_subject(msg),
        date=_parse_date(_raw_header(msg, "Date"), defects),
        content_type=_content_type(msg),
        body_text=body,
        new_text=split_new_text(body),
        attachments=tuple(attachments),
        headers=tuple(headers),
        size=len(raw),
        defects=tuple(_dedupe(defects + _stdlib_defects(msg))[:MAX_DEFECTS]),
        part_types=tuple(part_types),
    )


# --- text helpers ---------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """NFC-normalise, unify line ends, drop NULs/controls and lone surrogates."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)


def _one_line(text: str) -> str:
    return " ".join(clean_text(text.replace("\t", " ")).split())


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Decode with the declared charset, else UTF-8, else cp1252 with replacement; never raises."""
    declared = (charset or "us-ascii").strip().strip('"').lower()
    if declared in ("unknown-8bit", "x-unknown", "8bit", "default"):
        declared = "utf-8"
    for candidate in (declared, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeError, TypeError, ValueError):
            continue
    if defects is not None:
        defects.append(f"charset-fallback:{declared[:40]}")
    return data.decode("cp1252", "replace")


def decode_header_value(value: str) -> str:
    """Decode one raw header value (RFC 2047 words, raw 8-bit, raw iso-2022-jp); never raises."""
    value = "".join(value.splitlines())
    if _has_surrogates(value):  # undeclared 8-bit header bytes (often raw UTF-8, RFC 6532)
        value = decode_bytes(value.encode("ascii", "surrogateescape"), "utf-8")
    if "\x1b$" in value:  # raw ISO-2022-JP without encoded words, common in Japanese mail
        with contextlib.suppress(UnicodeError, LookupError):
            value = value.encode("ascii").decode("iso-2022-jp")
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - e.g. bad base64 in an encoded word
        return value
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
        elif charset is None:  # decode_header stores plain text as raw-unicode-escape bytes
            parts.append(_undo_raw_unicode_escape(chunk))
        else:
            parts.append(decode_bytes(chunk, charset))
    return "".join(parts)


def _undo_raw_unicode_escape(chunk: bytes) -> str:
    try:
        return chunk.decode("raw-unicode-escape")
    except UnicodeError:
        return chunk.decode("latin-1")


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeError:
        return True
    return False


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- headers ----------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            value = str(value)
            if _has_surrogates(value):  # undeclared 8-bit bytes; ids and dates must be text
                value = decode_bytes(value.encode("ascii", "surrogateescape"), "utf-8")
            return value
    return None


def _decoded_headers(msg: Message, defects: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for key, value in msg.raw_items():
        name = _one_line(str(key)).lower()[:200]
        if name == EMBEDDED_ID_HEADER:  # only parse.py may set this pseudo header
            defects.append("spoofed-pseudo-header")
            continue
        if len(headers) >= MAX_HEADERS:
            defects.append("too-many-headers")
            break
        decoded = decode_header_value(str(value)[: MAX_HEADER_VALUE_CHARS * 4])
        headers.append((name, _one_line(decoded)[:MAX_HEADER_VALUE_CHARS]))
    return headers


def _subject(msg: Message) -> str:
    subject = decode_header_value(_raw_header(msg, "Subject") or "")
    return _one_line(subject)[:MAX_SUBJECT_CHARS]


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _MSG_ID.findall(value[:200_000])
    if not found and value.strip() and len(value.split()) == 1:
        found = [f"<{value.strip().strip('<>')}>"]  # tolerate a bare id without brackets
    return found


def _first_message_id(value: str | None) -> str | None:
    ids = _message_ids(value)
    return ids[0] if ids else None


def _address_pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [str(v)[:MAX_ADDRESS_HEADER_CHARS] for k, v in msg.raw_items() if k.lower() == name]
    values = ["".join(v.splitlines()) for v in values]
    return getaddresses(values)[:MAX_ADDRESSES]


def _addresses(msg: Message, name: str, defects: list[str]) -> tuple[str, ...]:
    try:
        pairs = _address_pairs(msg, name.lower())
    except Exception:  # noqa: BLE001
        defects.append(f"header-unparsed:{name.lower()}")
        return ()
    return tuple(a for a in (_clean_addr(addr) for _, addr in pairs) if a)


def _first_address(msg: Message, name: str, defects: list[str]) -> tuple[str, str]:
    try:
        pairs = _address_pairs(msg, name.lower())
    except Exception:  # noqa: BLE001
        defects.append(f"header-unparsed:{name.lower()}")
        return "", ""
    for display, addr in pairs:
        if cleaned := _clean_addr(addr):
            return cleaned, _one_line(decode_header_value(display))[:MAX_SUBJECT_CHARS]
    return "", ""


def _clean_addr(addr: str) -> str:
    addr = decode_header_value(addr).strip().lower()
    return addr if len(addr) <= 320 and _ADDR_SPEC.match(addr) else ""


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime("".join(value.splitlines()).strip())
    except Exception:  # noqa: BLE001 - ValueError, TypeError, OverflowError, IndexError
        defects.append("date-unparsed")
        return None
    # "-0000" means "time zone unknown" (RFC 5322); UTC is the honest reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _content_type(part: Message) -> str:
    try:
        return _one_line(part.get_content_type()).lower()[:200]
    except Exception:  # noqa: BLE001
        return "text/plain"


def _stdlib_defects(msg: Message) -> list[str]:
    try:
        return [type(d).__name__ for d in msg.defects]
    except Exception:  # noqa: BLE001
        return []


# --- body and attachments ---------------------------------------------------------------------


def _walk(msg: Message, defects: list[str]) -> list[tuple[Message, bool]]:
    """Every part in walk order, with whether it lies inside an embedded message.

    Iterative (not ``Message.walk``) so deep nesting cannot overflow the stack.
    """
    found: list[tuple[Message, bool]] = []
    stack: list[tuple[Message, bool]] = [(msg, False)]
    while stack:
        if len(found) >= MAX_PARTS:
            defects.append("too-many-parts")
            break
        part, embedded = stack.pop()
        found.append((part, embedded))
        ctype = _content_type(part)
        payload = part.get_payload()
        if ctype in _OPAQUE_TYPES or not isinstance(payload, list):
            continue
        inside = embedded or ctype in _EMBEDDED_TYPES
        children = [p for p in payload if isinstance(p, Message)]
        stack.extend((child, inside) for child in reversed(children))
    return found


def _walk_body(
    msg: Message, defects: list[str]
) -> tuple[str, list[Attachment], list[str], str | None]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    embedded_id: str | None = None
    parts = _walk(msg, defects)
    for part, embedded in parts:
        ctype = _content_type(part)
        if ctype in _EMBEDDED_TYPES and not embedded:
            embedded_id = embedded_id or _embedded_message_id(part)
        if embedded or ctype in _OPAQUE_TYPES or ctype.startswith("multipart/"):
            continue
        if ctype in _BODY_TYPES and not _is_attachment(part):
            target = plain if ctype == "text/plain" else html
            target.append(_part_text(part, defects))
        elif len(attachments) < MAX_ATTACHMENTS:
            attachments.append(_attachment(part, ctype, defects))
        else:
            defects.append("too-many-attachments")
    body = "\n\n".join(t for t in plain if t.strip()) if plain else ""
    if not body.strip() and html:
        body = "\n\n".join(html_to_text(t[:MAX_HTML_CHARS]) for t in html)
    types = [_content_type(p) for p, _ in parts]
    return _finish_body(body, defects), attachments, types, embedded_id


def _finish_body(body: str, defects: list[str]) -> str:
    body = clean_text(body).strip("\n")
    if len(body) > MAX_BODY_CHARS:
        defects.append("body-truncated")
        body = body[:MAX_BODY_CHARS]
    return body


def _unparsed_body(msg: Message) -> str:
    payload = msg.get_payload()
    text = payload if isinstance(payload, str) else ""
    data = text.encode("ascii", "surrogateescape")
    return _finish_body(decode_bytes(data, "utf-8"), [])


def _is_attachment(part: Message) -> bool:
    try:
        disposition = (part.get_content_disposition() or "").lower()
        return disposition == "attachment" or bool(part.get_filename())
    except Exception:  # noqa: BLE001
        return True


def _payload_bytes(part: Message) -> bytes:
    try:
        if part.is_multipart():  # an embedded message: hash its serialised form
            return part.as_bytes(policy=policy.compat32)
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception:  # noqa: BLE001
        return b""


def _part_text(part: Message, defects: list[str]) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(_payload_bytes(part), charset, defects)


def _attachment(part: Message, ctype: str, defects: list[str]) -> Attachment:
    data = _payload_bytes(part)
    try:
        filename = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        defects.append("attachment-filename-unparsed")
        filename = ""
    return Attachment(
        filename=_one_line(decode_header_value(str(filename)))[:255],
        content_type=ctype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _embedded_message_id(part: Message) -> str | None:
    try:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _first_message_id(_raw_header(payload[0], "Message-ID"))
        text = decode_bytes(_payload_bytes(part), "utf-8")
        inner = BytesParser(policy=policy.compat32).parsebytes(
            text.encode("utf-8", "replace"), headersonly=True
        )
        return _first_message_id(_raw_header(inner, "Message-ID"))
    except Exception:  # noqa: BLE001
        return None


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
