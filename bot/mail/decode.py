"""PURE: text out of mail bytes and header values - charsets, RFC 2047 encoded words, clean-up.

Every function here never raises and runs in time linear in its input. The stdlib's
``email.header.decode_header`` does not: its encoded-word regex rescans the rest of the
line from every ``=?`` that never ends (a 100,000-character subject took 17 s), and it
joins same-charset words by repeated concatenation. :func:`decode_header_value` is our own
decoder with the same results for well-formed input.
"""

from __future__ import annotations

import binascii
import contextlib
import re
import unicodedata

__all__ = ["clean_text", "decode_bytes", "decode_header_value", "has_surrogates", "one_line"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# RFC 2047: =?charset?B|Q?text?= ; the text cannot hold "?", so each match attempt stops at
# the next "?" and no stretch of the value is scanned twice.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")


def clean_text(text: str) -> str:
    """NFC-normalise, unify line ends, drop NULs/controls and lone surrogates."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)


def one_line(text: str) -> str:
    """``text`` cleaned and with every run of whitespace (line ends too) made one space."""
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


def has_surrogates(value: str) -> bool:
    """True if ``value`` carries lone surrogates (undeclared 8-bit bytes of a header)."""
    try:
        value.encode("utf-8")
    except UnicodeError:
        return True
    return False


def decode_header_value(value: str) -> str:
    """Decode one raw header value (RFC 2047 words, raw 8-bit, raw iso-2022-jp); never raises."""
    value = "".join(value.splitlines())
    if has_surrogates(value):  # undeclared 8-bit header bytes (often raw UTF-8, RFC 6532)
        value = decode_bytes(value.encode("ascii", "surrogateescape"), "utf-8")
    if "\x1b$" in value:  # raw ISO-2022-JP without encoded words, common in Japanese mail
        with contextlib.suppress(UnicodeError, LookupError):
            value = value.encode("ascii").decode("iso-2022-jp")
    if "=?" not in value:
        return value
    return _decode_words(value)


class _Words:
    """Decoded output; adjacent encoded words of one charset are decoded together, so a
    character split across two words (legal in RFC 2047 practice) comes out whole."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.pending: list[bytes] = []
        self.charset = ""

    def text(self, text: str) -> None:
        self.flush()
        self.out.append(text)

    def word(self, data: bytes, charset: str) -> None:
        if self.pending and charset != self.charset:
            self.flush()
        self.pending.append(data)
        self.charset = charset

    def flush(self) -> None:
        if self.pending:
            self.out.append(decode_bytes(b"".join(self.pending), self.charset))
            self.pending = []


def _decode_words(value: str) -> str:
    words = _Words()
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        # Whitespace between two encoded words is folding, not text (RFC 2047, 6.2).
        if between and not (words.pending and between.isspace()):
            words.text(between)
        charset, encoding, text = match.groups()
        data = word_bytes(encoding, text)
        if data is None:  # undecodable: keep it as written
            words.text(match.group(0))
        else:
            words.word(data, charset.split("*")[0].lower())  # "*lang" of RFC 2231
        pos = match.end()
    words.text(value[pos:])
    words.flush()
    return "".join(words.out)


def word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of an encoded word's payload (``Q`` or ``B``), or None when malformed.
    Raw bytes kept as surrogates come back as themselves."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(data, header=True)
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))  # Postel: pad it
    except (binascii.Error, ValueError):
        return None
