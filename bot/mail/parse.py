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

from bot.mail.mailtext import html_to_text, split_new_text
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
