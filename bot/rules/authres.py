"""RFC 8601 ``Authentication-Results``, read from the RAW header value, and the one question
the bot asks of it: does it prove that a mail comes from this exact staff address? PURE.

Why a tokenizer, and why raw: a receiving server copies sender-controlled text into the
header (``smtp.mailfrom=<envelope sender>``, ``header.i=<DKIM i= tag>``). Split on ";" after
RFC 2047 decoding, an envelope sender such as ``=?us-ascii?q?x=3B_dkim=3Dpass...?=@evil`` or
``"x; dkim=pass header.i=privacy@cijidas.jp"@evil`` reads as a pass. Here encoded words are
never decoded (they are opaque values), quoted strings and nested comments are honoured, and
anything outside the grammar makes the whole header unreadable, which never passes.

Grammar (RFC 8601 section 2.2, with RFC 5322 CFWS and RFC 2045 ``value``)::

    payload = [CFWS] authserv-id [CFWS version] (";" "none" / 1*(";" resinfo)) [CFWS]
    resinfo = method ["/" version] "=" result *(CFWS (ptype "." property / name) "=" pvalue)
    pvalue  = quoted-string ["@" domain] / run of characters up to CFWS or ";"

Deliberate leniency, none of which lets a value spill into the structure: a property without
a ``ptype.`` (``reason=``, Microsoft's ``action=none``), ``header.b`` values with "/" and
"+", one trailing ";". Deliberate strictness: a CTL character (parse.py marks a cut,
over-long value with NUL), an unterminated string or comment, and a comment holding a double
quote (only a copied quoted local part puts one there, and its parentheses could close the
comment early) make the header unreadable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_CHARS = 16_384  # a longer value is not a header any receiving server writes
MAX_COMMENT_DEPTH = 20

_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # TAB is whitespace; CR/LF were unfolded
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_TOKEN = re.compile(r"[^\x00-\x20()<>@,;:\\\"/\[\]?=\x7f]+")  # RFC 2045 token
_RUN = re.compile(r"[^\s;()\"\\]+")  # an unquoted property value
_DIGITS = re.compile(r"[0-9]+")


class Unreadable(ValueError):
    """The header is outside the grammar; treated as "no result at all"."""


@dataclass(frozen=True)
class MethodResult:
    """One ``method=result`` with its properties (names lower-cased, values as written;
    a quoted local part keeps its quotes, so it never equals a plain address)."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The first value of property ``name`` (e.g. ``"header.i"``), or None."""
        return next((value for key, value in self.properties if key == name), None)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]


def parse(value: str) -> AuthResults | None:
    """The parsed header, or None when it is unreadable (see the module docstring)."""
    try:
        return _Scanner(value).payload()
    except Unreadable:
        return None


def authserv_id(value: str) -> str | None:
    """Only the ``authserv-id`` (lower-cased) of a header, readable or not: it tells whether
    a header is the trusted server's even when the rest of it cannot be read."""
    try:
        scanner = _Scanner(value, check=False)
        scanner.cfws()
        return scanner.value().lower()
    except Unreadable:
        return None


def topmost_trusted(values: Sequence[str], trusted_ids: Sequence[str]) -> AuthResults | None:
    """The parsed topmost header whose ``authserv-id`` is trusted.

    The receiving server prepends its header, so it is above anything the sender wrote; a
    forged header further down never counts, and neither does any header when the topmost
    trusted one is unreadable.
    """
    trusted = {t.lower() for t in trusted_ids}
    for value in values:
        if authserv_id(value) in trusted:
            return parse(value)
    return None


def proves_sender(results: AuthResults | None, sender: str, *,
                  domain_signs_for_all: bool = False) -> str | None:
    """How ``results`` prove the exact address ``sender``: ``"dmarc"``, ``"dkim-i"``,
    ``"dkim-d"``; None when they do not.

    - ``dmarc=pass`` with ``header.from`` equal to the sender's domain (the caller has
      checked that the From address is a configured staff address);
    - ``dkim=pass`` with ``header.i`` equal to the sender's address;
    - ``dkim=pass`` with ``header.d`` (or a bare ``header.i=@domain``) equal to the sender's
      domain, only when every signer of that domain may speak for every address
      (``staff.dkim_domain_signs_for_all``);
    - SPF never: it names the envelope sender, not the From address staff are known by.
    """
    local, _, domain = sender.lower().rpartition("@")
    if results is None or not local or not domain:
        return None
    for item in results.results:
        if item.result != "pass":
            continue
        how = _aligned(item, sender.lower(), domain, domain_signs_for_all)
        if how:
            return how
    return None


def _aligned(item: MethodResult, sender: str, domain: str, domain_signs_for_all: bool
             ) -> str | None:
    if item.method == "dmarc" and _lower(item.get("header.from")) == domain:
        return "dmarc"
    if item.method != "dkim":
        return None
    identity = _lower(item.get("header.i"))
    if identity == sender:
        return "dkim-i"
    signer = _lower(item.get("header.d"))
    if domain_signs_for_all and (signer == domain or identity == "@" + domain):
        return "dkim-d"
    return None


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


class _Scanner:
    """A cursor over one header value; every method raises :class:`Unreadable`."""

    def __init__(self, text: str, check: bool = True) -> None:
        text = text.replace("\r\n", "").replace("\n", "").replace("\r", "")
        if check and (len(text) > MAX_CHARS or _CTL.search(text)):
            raise Unreadable("too long or control characters")
        self.text, self.pos = text, 0

    # -- the grammar --------------------------------------------------------------------
    def payload(self) -> AuthResults:
        self.cfws()
        server = self.value().lower()
        self.cfws()
        if self.match(_DIGITS):  # authres-version
            self.cfws()
        results: list[MethodResult] = []
        while not self.at_end():
            self.expect(";")
            self.cfws()
            if self.at_end() and results:
                break  # one trailing ";" (written by some servers)
            if self.word_ahead("none") and not results:
                self.pos += 4
                self.cfws()
                if not self.at_end():
                    raise Unreadable("text after 'none'")
                break
            results.append(self.resinfo())
        return AuthResults(server, tuple(results))

    def resinfo(self) -> MethodResult:
        method = self.keyword()
        self.cfws()
        if self.peek() == "/":
            self.pos += 1
            self.cfws()
            self.need(_DIGITS)
            self.cfws()
        self.expect("=")
        self.cfws()
        result = self.keyword()
        properties = []
        while self.cfws_then_more():
            properties.append(self.propspec())
        return MethodResult(method, result, tuple(properties))

    def propspec(self) -> tuple[str, str]:
        name = self.keyword()
        self.cfws()
        if self.peek() == ".":
            self.pos += 1
            self.cfws()
            name += "." + self.keyword()
            self.cfws()
        self.expect("=")
        self.cfws()
        return name, self.pvalue()

    def pvalue(self) -> str:
        if self.peek() == '"':
            start = self.pos
            content = self.quoted_string()
            if self.peek() != "@":
                return content
            self.pos += 1
            self.need(_RUN)
            return self.text[start:self.pos]
        return self.need(_RUN)

    def value(self) -> str:
        """RFC 2045 ``value``: token or quoted-string (the authserv-id)."""
        return self.quoted_string() if self.peek() == '"' else self.need(_TOKEN)

    # -- lexical pieces -----------------------------------------------------------------
    def cfws(self) -> None:
        """Skip folding white space and (nested) comments."""
        while True:
            while self.peek() in (" ", "\t"):
                self.pos += 1
            if self.peek() != "(":
                return
            self.comment()

    def cfws_then_more(self) -> bool:
        """Skip CFWS; True when another property follows (not ";" and not the end)."""
        before = self.pos
        self.cfws()
        if self.at_end() or self.peek() == ";":
            return False
        if self.pos == before:
            raise Unreadable(f"no space before {self.text[self.pos:self.pos + 20]!r}")
        return True

    def comment(self) -> None:
        depth = 0
        while True:
            char = self.take()
            if char == "(":
                depth += 1
                if depth > MAX_COMMENT_DEPTH:
                    raise Unreadable("comments nested too deep")
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
            elif char == "\\":
                self.take()
            elif char == '"':
                raise Unreadable("double quote in a comment")

    def quoted_string(self) -> str:
        self.expect('"')
        chars = []
        while True:
            char = self.take()
            if char == '"':
                return "".join(chars)
            chars.append(self.take() if char == "\\" else char)

    def keyword(self) -> str:
        return self.need(_KEYWORD).lower()

    def need(self, pattern: re.Pattern[str]) -> str:
        found = self.match(pattern)
        if found is None:
            raise Unreadable(f"unexpected {self.text[self.pos:self.pos + 20]!r}")
        return found

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if not found:
            return None
        self.pos = found.end()
        return found.group()

    def word_ahead(self, word: str) -> bool:
        end = self.pos + len(word)
        return (self.text[self.pos:end].lower() == word
                and not _KEYWORD.match(self.text[end:end + 1] or " "))

    def expect(self, char: str) -> None:
        if self.take() != char:
            raise Unreadable(f"expected {char!r} at {self.pos}")

    def take(self) -> str:
        if self.pos >= len(self.text):
            raise Unreadable("unexpected end")
        self.pos += 1
        return self.text[self.pos - 1]

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)
