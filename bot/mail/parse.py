"""PURE: raw RFC 5322 bytes -> :class:`bot.models.InboundMail`.

``parse_message`` never raises: hostile or broken input degrades to whatever could be
read, and every problem is named in ``InboundMail.defects``.

Headers are decoded through one explicit path (:mod:`bot.mail.decode`: our own linear RFC 2047
decoder and charset fallback) instead of ``policy.default`` header objects, because those
raise on malformed headers when accessed and leave lone surrogates for undeclared 8-bit bytes.

Work per mail is bounded (:mod:`bot.mail.bounds`): header values are cut before they are
decoded, the MIME tree is read only up to ``bounds.MAX_PARTS`` parts, ``bounds.MAX_DEPTH``
levels and the caller's time budget, HTML only up to ``mailtext.MAX_TEXT_CHARS`` of text.
A mail read only in part says so at the end of ``body_text`` (:data:`CUT_NOTE`) and in
``defects`` (``cut:<reason>``); the whole mail stays in the mailbox.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from bot.mail.addresses import first_address
from bot.mail.bounds import CUT_PREFIX, MAX_PARTS, Budget, parse_bounded, parse_headers
from bot.mail.charsets import Decoder, decode_header, decode_undeclared
from bot.mail.decode import clean_text, decode_bytes
from bot.mail.decode import has_surrogates as _has_surrogates
from bot.mail.decode import one_line as _one_line
from bot.mail.mailtext import html_text, html_to_text, split_new_text
from bot.models import Attachment, InboundMail

__all__ = ["Budget", "clean_text", "cut_reasons", "decode_bytes",
           "html_to_text", "parse_message", "split_new_text"]

MAX_BODY_CHARS = 200_000
# What the sender wrote now, as triage and staff notices read it: triage costs grow with the
# text (about 10 ms per 1,000 characters), so a 200,000-character body would take seconds.
# The longest real letters are well under this; the whole body is kept in body_text.
MAX_NEW_TEXT_CHARS = 20_000
MAX_SUBJECT_CHARS = 1_000
MAX_HEADER_VALUE_CHARS = 4_096
MAX_HEADERS = 500
MAX_ADDRESSES = 1_000
MAX_ADDRESS_HEADER_CHARS = 65_536  # enough for MAX_ADDRESSES, bounds getaddresses' work
MAX_REFERENCES = 100
MAX_ATTACHMENTS = 200
MAX_DEFECTS = 100
MAX_HTML_CHARS = 1_000_000
_MAX_TEXT_PART_BYTES = 4 * MAX_HTML_CHARS  # a text part's bytes decoded at most (UTF-8: 4/char)
_MAX_EMBEDDED_HEADER_BYTES = 262_144
# Encoded words take up to ~12 characters per decoded one (Q-encoded UTF-8): the raw value is
# cut to this before decoding, so decoding never sees more than it can show.
_ENCODED_CHARS_PER_CHAR = 12
CUT_NOTE = ("[The bot read only part of this mail ({reasons}); the whole mail stays in the "
            "mailbox.]")
_CUT_REASONS = {"time": "time limit", "parts": "too many parts", "nesting": "nested too deep",
                "headers": "too many header lines",
                "html": "HTML too long", "text": "text too long"}
EMBEDDED_ID_HEADER = "x-bot-embedded-message-id"
MAX_AUTH_RESULTS = 50
MAX_AUTH_RESULTS_CHARS = 16_384

_MSG_ID = re.compile(r"<[^<>\s]{1,900}>")
_ADDR_SPEC = re.compile(r"^[^\s<>()\[\],;:\"]+(@[^\s<>()\[\],;:\"@]+)?$")
_BODY_TYPES = ("text/plain", "text/html")
_EMBEDDED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global")
# Containers whose sub-"parts" are header blocks, not content (RFC 3464 / RFC 8098).
_OPAQUE_TYPES = ("message/delivery-status", "message/disposition-notification")


def parse_message(raw: bytes, budget: Budget | None = None) -> InboundMail:
    """Decode ``raw`` into an :class:`InboundMail`; never raises, problems go to ``defects``.

    ``budget`` bounds the time spent (the rest of the mail is left unread and the body says
    so); without one, only the size bounds apply.
    """
    raw = _as_bytes(raw)
    defects: list[str] = []
    try:
        msg = parse_bounded(raw, defects, budget)
        return _build(raw, msg, defects, full=True, budget=budget)
    except RecursionError:
        defects.append("mime-nesting-too-deep")
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise"
        defects.append(f"mime-unparsed:{type(exc).__name__}")
    try:
        msg = parse_headers(raw)
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


def cut_reasons(mail: InboundMail) -> list[str]:
    """Why only part of ``mail`` was read (empty when all of it was)."""
    return [d.removeprefix(CUT_PREFIX) for d in mail.defects if d.startswith(CUT_PREFIX)]


def _build(raw: bytes, msg: Message, defects: list[str], *, full: bool,
           budget: Budget | None = None) -> InboundMail:
    headers = _decoded_headers(msg, defects)
    if full:
        body, attachments, part_types, embedded_id = _walk_body(msg, defects, budget)
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
        body_text=_with_cut_note(body, defects),
        new_text=split_new_text(body)[:MAX_NEW_TEXT_CHARS],
        attachments=tuple(attachments),
        headers=tuple(headers),
        size=len(raw),
        defects=tuple(_dedupe(defects + _stdlib_defects(msg))[:MAX_DEFECTS]),
        part_types=tuple(part_types),
        auth_results_raw=_raw_auth_results(msg),
    )


# --- text helpers (decoding itself lives in bot.mail.decode) -------------------------------


def _with_cut_note(body: str, defects: list[str]) -> str:
    """``body`` plus, when part of the mail was not read, the note saying so."""
    reasons = [d.removeprefix(CUT_PREFIX) for d in defects if d.startswith(CUT_PREFIX)]
    if not reasons:
        return body
    named = ", ".join(_CUT_REASONS.get(r, r) for r in dict.fromkeys(reasons))
    return f"{body}\n\n{CUT_NOTE.format(reasons=named)}".lstrip("\n")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- headers ----------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            value = str(value)
            if _has_surrogates(value):  # undeclared 8-bit bytes: UTF-8, else detected
                value = decode_undeclared(value.encode("ascii", "surrogateescape"))
            return value
    return None


def _decoded_headers(msg: Message, defects: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    decoder = Decoder()  # charset supersets and a bounded number of detections
    for key, value in msg.raw_items():
        name = _one_line(str(key)).lower()[:200]
        if name == EMBEDDED_ID_HEADER:  # only parse.py may set this pseudo header
            defects.append("spoofed-pseudo-header")
            continue
        if len(headers) >= MAX_HEADERS:
            defects.append("too-many-headers")
            break
        decoded = decoder.header(str(value)[: MAX_HEADER_VALUE_CHARS * 4])
        headers.append((name, _one_line(decoded)[:MAX_HEADER_VALUE_CHARS]))
    return headers


def _raw_auth_results(msg: Message) -> tuple[str, ...]:
    """Authentication-Results as received: unfolded, never RFC 2047-decoded (see
    ``InboundMail.auth_results_raw``); a cut value ends in NUL so that it never parses."""
    values: list[str] = []
    for key, value in msg.raw_items():
        if str(key).strip().lower() != "authentication-results":
            continue
        if len(values) >= MAX_AUTH_RESULTS:
            break
        raw = str(value)
        text = raw[: MAX_AUTH_RESULTS_CHARS * 2].replace("\r", "").replace("\n", "")
        if _has_surrogates(text):  # raw 8-bit (RFC 6532): UTF-8, never below ASCII
            text = decode_bytes(text.encode("ascii", "surrogateescape"), "utf-8")
        if len(text) > MAX_AUTH_RESULTS_CHARS or len(raw) > MAX_AUTH_RESULTS_CHARS * 2:
            text = text[:MAX_AUTH_RESULTS_CHARS] + "\x00"
        values.append(text)
    return tuple(values)


def _subject(msg: Message) -> str:
    subject = decode_header(_cut_encoded(_raw_header(msg, "Subject") or "",
                                               MAX_SUBJECT_CHARS))
    return _one_line(subject)[:MAX_SUBJECT_CHARS]


def _cut_encoded(value: str, chars: int) -> str:
    """A raw header value cut, before decoding, to what can decode to ``chars`` characters
    (at a space, so the last encoded word stays whole)."""
    limit = chars * _ENCODED_CHARS_PER_CHAR
    if len(value) <= limit:
        return value
    space = value.rfind(" ", limit // 2, limit)
    return value[:space if space > 0 else limit]


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
    """Split first, decode after, angle-bracket address first (bot.mail.addresses)."""
    values = [str(v)[:MAX_ADDRESS_HEADER_CHARS] for k, v in msg.raw_items()
              if k.lower() == name.lower()]
    try:
        addr, display = first_address(values)
    except Exception:  # noqa: BLE001
        defects.append(f"header-unparsed:{name.lower()}")
        return "", ""
    return addr, _one_line(display)[:MAX_SUBJECT_CHARS]


def _clean_addr(addr: str) -> str:
    addr = decode_header(addr).strip().lower()
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


class _BodyTexts:
    """The text parts of a mail, collected only up to what the body can hold."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.chars = 0
        self.decoder = Decoder()  # for every text part and attachment name of the mail

    def add(self, ctype: str, part: Message, defects: list[str]) -> None:
        if self.chars > MAX_HTML_CHARS:  # more text than the body can show: not decoded
            defects.append("body-truncated")
            return
        text = _part_text(part, defects, self.decoder)
        self.chars += len(text)
        (self.plain if ctype == "text/plain" else self.html).append(text)

    def text(self, defects: list[str], budget: Budget | None) -> str:
        body = "\n\n".join(t for t in self.plain if t.strip())
        if body.strip() or not self.html:
            return body
        stop = budget.spent if budget is not None else None
        texts = []
        for html in self.html:
            text, complete = html_text(html[:MAX_HTML_CHARS], max_chars=MAX_BODY_CHARS + 1,
                                       stop=stop)
            if len(html) > MAX_HTML_CHARS or not (complete or len(text) > MAX_BODY_CHARS):
                defects.append(CUT_PREFIX + ("time" if stop and stop() else "html"))
            texts.append(text)
        return "\n\n".join(texts)


def _walk_body(
    msg: Message, defects: list[str], budget: Budget | None = None
) -> tuple[str, list[Attachment], list[str], str | None]:
    texts = _BodyTexts()
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
            texts.add(ctype, part, defects)  # bounded by itself: read even when time is up
        elif budget is not None and budget.spent():
            defects.append(CUT_PREFIX + "time")  # attachments are listed while time lasts
        elif len(attachments) < MAX_ATTACHMENTS:
            attachments.append(_attachment(part, ctype, defects, texts.decoder))
        else:
            defects.append("too-many-attachments")
    types = [_content_type(p) for p, _ in parts]
    return _finish_body(texts.text(defects, budget), defects), attachments, types, embedded_id


def _finish_body(body: str, defects: list[str]) -> str:
    # Cut before cleaning: NFC-normalising megabytes only to keep the first 200,000 is waste.
    body = clean_text(body[:MAX_BODY_CHARS + 1_000]).strip("\n")
    if len(body) > MAX_BODY_CHARS:
        defects.append("body-truncated")
        body = body[:MAX_BODY_CHARS]
    return body


def _unparsed_body(msg: Message) -> str:
    payload = msg.get_payload()
    text = payload if isinstance(payload, str) else ""
    data = text.encode("ascii", "surrogateescape")
    return _finish_body(decode_undeclared(data), [])


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


def _part_text(part: Message, defects: list[str], decoder: Decoder) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    data = _payload_bytes(part)
    if len(data) > _MAX_TEXT_PART_BYTES:  # more than the body can hold: decode the start
        data = data[:_MAX_TEXT_PART_BYTES]
        data = data[:len(data) - _partial_utf8_tail(data)]
    return decoder.text(data, charset, defects)  # supersets, then detection


def _partial_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` are an incomplete UTF-8 sequence (0 to 3)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead (or ASCII) byte: complete if its length fits
            need = 2 if byte >= 0xC0 else 1
            need += (byte >= 0xE0) + (byte >= 0xF0)
            return back if need > back else 0
    return 0


def _attachment(part: Message, ctype: str, defects: list[str], decoder: Decoder) -> Attachment:
    data = _payload_bytes(part)
    try:
        filename = decoder.filename(part)  # from the raw bytes, never through U+FFFD
    except Exception:  # noqa: BLE001
        defects.append("attachment-filename-unparsed")
        filename = ""
    return Attachment(
        filename=_one_line(filename)[:255],
        content_type=ctype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _embedded_message_id(part: Message) -> str | None:
    try:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _first_message_id(_raw_header(payload[0], "Message-ID"))
        text = decode_bytes(_payload_bytes(part)[:_MAX_EMBEDDED_HEADER_BYTES], "utf-8")
        inner = parse_headers(text.encode("utf-8", "replace"))
        return _first_message_id(_raw_header(inner, "Message-ID"))
    except Exception:  # noqa: BLE001
        return None
