"""PURE: the addresses of an address header (From, To, Cc, Reply-To), as the bot answers them.

The raw value is split first (at commas outside quotes, angle brackets and comments, with
RFC 2047 encoded words kept whole) and encoded words are decoded only AFTER splitting, so a
display name ``=?iso-8859-1?Q?B=FCrling,=20Andreas?=`` stays one name. The angle-bracket
address wins over a display name that looks like one (``alice@example.com <bob@...>`` is
bob), and only a full addr-spec (local@domain) is accepted: a mail whose sender cannot be
determined gets a ticket for staff and no acknowledgement.
"""

from __future__ import annotations

import re

from bot.mail.charsets import decode_header, decode_undeclared

MAX_ADDRESS_CHARS = 320
_ADDR_SPEC = re.compile(r"^[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+$")
_ANGLE = re.compile(r"<\s*([^<>]*?)\s*>")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def raw_text(value: str) -> str:
    """A header value as read by the stdlib parser (raw 8-bit kept as surrogates): its bytes
    decoded as UTF-8, else detected, never through U+FFFD."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value
    return decode_undeclared(data)


def split(value: str) -> list[str]:
    """The elements of an address list: commas inside quotes, <...>, (...) and encoded
    words do not split."""
    protected = _ENCODED_WORD.sub(lambda m: "\0" * len(m.group()), value)
    parts, start, quoted, angle, comment, escaped = [], 0, False, False, 0, False
    for i, char in enumerate(protected):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' and not comment:
            quoted = not quoted
        elif not quoted and char == "(":
            comment += 1
        elif not quoted and char == ")" and comment:
            comment -= 1
        elif not (quoted or comment) and char in "<>":
            angle = char == "<"
        elif char == "," and not (quoted or angle or comment):
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_one(element: str) -> tuple[str, str]:
    """``(display name, addr-spec)`` of one element; the address is "" when not a full
    addr-spec. The last <...> wins over anything in the display name."""
    angles = _ANGLE.findall(element)
    if angles:
        addr, display = angles[-1], _ANGLE.sub("", element[:element.rfind("<")])
    else:
        addr, display = re.sub(r"\([^()]*\)", "", element).strip(), _comment(element)
    return _name(display), clean_address(addr)


def addresses(value: str) -> list[tuple[str, str]]:
    """Every ``(display name, addr-spec)`` of a raw header value, in order."""
    return [parse_one(element) for element in split(raw_text(" ".join(value.splitlines())))]


def first_address(values: list[str]) -> tuple[str, str]:
    """The first usable ``(addr-spec, display name)`` of the values of one header, or
    ``("", "")`` when none is a full addr-spec."""
    for value in values:
        for display, addr in addresses(value):
            if addr:
                return addr, display
    return "", ""


def clean_address(addr: str) -> str:
    """Lower-cased addr-spec, or "" when ``addr`` is not a full one (``mailto:`` dropped)."""
    addr = decode_header(addr.strip().strip("<>").strip())  # EAI: encoded local part
    addr = addr[7:] if addr.lower().startswith("mailto:") else addr
    addr = addr.lower()
    return addr if len(addr) <= MAX_ADDRESS_CHARS and _ADDR_SPEC.match(addr) else ""


def _comment(element: str) -> str:
    found = re.search(r"\(([^()]*)\)", element)
    return found.group(1) if found else ""


def _name(display: str) -> str:
    display = display.strip()
    if len(display) >= 2 and display[0] == display[-1] == '"':
        display = re.sub(r"\\(.)", r"\1", display[1:-1])
    return " ".join(decode_header(display).split())
