"""PURE: text clean-up, plain charset decoding and the bytes of RFC 2047 encoded words.

Every function here never raises and runs in time linear in its input. Header values are
decoded in one place, :func:`bot.mail.charsets.decode_header` (supersets and detection);
it uses :func:`word_bytes` from here. The stdlib's ``email.header.decode_header`` is not
used: its encoded-word regex rescans the rest of the line from every ``=?`` that never
ends (a 100,000-character subject took 17 s).
"""

from __future__ import annotations

import binascii
import re
import unicodedata

__all__ = ["clean_text", "decode_bytes", "has_surrogates", "one_line", "word_bytes"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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
