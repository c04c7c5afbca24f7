"""What automatic mail may repeat of a sender's words. PURE.

A forged From makes the bot write to a victim whatever the attacker put into the subject
and the display name, from our own address. So mail to customers repeats only a short,
inert form of them (:func:`echoed_subject`, :func:`echoed_name`), and staff see links
defanged (:func:`defanged`). Callers pass one clean line (see ``compose.clean_line``).
"""

from __future__ import annotations

import re
import unicodedata

MAX_ECHOED_SUBJECT = 60
MAX_ECHOED_NAME = 40
MAX_NAME_WORDS = 5
_DOT = r"[.\u3002\uff0e\uff61]"  # "." and the full stops IDNA also reads as dots
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://|(?:mailto|tel|sms|callto|data|javascript):"
                  r"|www" + _DOT + r")\S*")
_EMAIL = re.compile(r"\S+@\S+")
_DOMAIN_LIKE = re.compile(r"(?i)[\w-]+(?:" + _DOT + r"[\w-]+)*" + _DOT + r"[a-z]{2,}\b\S*")
# 7+ digits with any separators (a date like 2026-11-24 goes too: better than a number)
_PHONE_LIKE = re.compile(r"\+?\(?\d(?:[\s().\-/]*\d){6,}\)?")
_NAME_CHARS = re.compile(r"[^\W\d_](?:[^\W\d_]|['\u2019.\-])*")  # letters, ' . -


def _without_links(text: str, replacement: str = "") -> str:
    for pattern in (_URL, _EMAIL, _DOMAIN_LIKE, _PHONE_LIKE):
        text = pattern.sub(replacement, text)
    return text


def echoed_subject(subject: str, limit: int = MAX_ECHOED_SUBJECT) -> str:
    """The sender's subject as automatic mail may repeat it: no URLs, addresses, domain
    names or phone-number-like runs, at most ``limit`` characters (cut at a word)."""
    text = _without_links(unicodedata.normalize("NFKC", subject))
    text = " ".join(text.split()).strip(" -:;,")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(" -:;,.") + "\u2026"
    return text


def echoed_name(name: str) -> str:
    """The sender's display name, or "" (the mail then says "Dear Customer") when it is
    long, has digits, links or punctuation, or reads like a sentence."""
    text = unicodedata.normalize("NFKC", name).strip()
    words = text.split()
    if (not words or len(text) > MAX_ECHOED_NAME or len(words) > MAX_NAME_WORDS
            or _without_links(text) != text
            or not all(_NAME_CHARS.fullmatch(word) for word in words)):
        return ""
    return text


def defanged(text: str) -> str:
    """``text`` with links made unclickable (for staff, who need to see what was sent):
    ``https://evil.example/x`` -> ``hxxps[://]evil[.]example/x``."""
    def defang(match: re.Match[str]) -> str:
        return re.sub(_DOT, "[.]", re.sub(r"(?i)^http", "hxxp", match.group(0))
                      ).replace("@", "[at]").replace("://", "[://]")
    for pattern in (_URL, _EMAIL, _DOMAIN_LIKE):
        text = pattern.sub(defang, text)
    return text
