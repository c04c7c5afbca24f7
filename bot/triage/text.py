"""Text normalisation shared by language detection and classification.

Folding (NFC, lower-case, strip the combining marks of Latin letters, đ -> d) makes "Xoá",
"xóa" and "xoa" the same string, so one rule covers Vietnamese with and without diacritics;
kana and Hangul keep theirs ("で" is not "て"). The fold is length-preserving for NFC text,
so a match position in folded text points at the same characters in the original and cues
can quote what the customer actually wrote.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W\d_]+")
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|tr|sv)\s*:\s*|\[[^\]]{1,40}\]\s*)+",
                             re.IGNORECASE)


class _FoldTable(dict[int, str | None]):
    """``str.translate`` table filled on demand: one entry per distinct character."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        if unicodedata.combining(char):
            value: str | None = None
        elif char in "đĐ":
            value = "d"
        else:
            lowered = char.lower()
            base = unicodedata.normalize("NFD", lowered)[:1] if lowered else char
            # Only Latin letters lose their marks: "で" is not "て", nor "년" its first jamo.
            value = base if len(lowered) == 1 and base.isascii() else lowered
        self[code] = value
        return value


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Lower-case, diacritic-free form of ``text`` ("Xoá tài khoản" -> "xoa tai khoan")."""
    return unicodedata.normalize("NFC", text).translate(_TABLE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters only) of the NFC form of ``text``."""
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


def clean_subject(subject: str) -> str:
    """Drop reply/forward prefixes and ticket tags ("Re: [CJD-000123] x" -> "x")."""
    return _SUBJECT_PREFIX.sub("", subject or "").strip()
