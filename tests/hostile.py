"""Hostile mail for the fuzz, fixture and chaos tests: hypothesis strategies and builders.

Everything here produces raw bytes as an attacker (or a broken mailer) could deliver them.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "windows-1258", "shift_jis", "iso-2022-jp",
            "utf-16", "utf-7", "x-unknown-charset", "utf-8\x00", "", "\"", "../../etc/passwd",
            "cp65001", "gb18030", "koi8-r", "a" * 300]
CONTENT_TYPES = ["text/plain", "text/html", "text/enriched", "application/octet-stream",
                 "message/rfc822", "message/delivery-status", "text/rfc822-headers",
                 "multipart/mixed", "multipart/alternative", "multipart/report", "image/png",
                 "text/x-unknown", "garbage", "", "text/", "/plain", "multipart/"]
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
HOSTILE_TEXT = [
    "{{ 7*7 }}", "{% for x in range(10**9) %}x{% endfor %}", "<script>alert(1)</script>",
    "\u202egnp.exe", "\r\nBcc: victim@example.net", "\x00\x01\x02\x1b[31m", "=?utf-8?b?", "%s%n",
    "\udcff", "A" * 2000, "Xin chào, tôi muốn xóa dữ liệu", "個人情報の開示", "\u2028\u2029",
    "${jndi:ldap://x}", "'; DROP TABLE tickets; --", "\t\t", "",
]
ADDRESSES = [
    "customer@example.com", "<>", "@", "a@", "@b", "a@b@c", "\"quoted\\\" name\"@example.com",
    "ümlaut@exämple.de", "a" * 500 + "@example.com", "contact@cijidas.jp",
    "MAILER-DAEMON@example.com", "Name <a@example.com>, <b@example.com>",
    "undisclosed-recipients:;",
    "=?utf-8?q?=E2=80=AE?= <rtl@example.com>", "a@[127.0.0.1]", "a@example.com\x00b",
    "\"\r\n\" <x@example.com>", "group: a@x.com, b@y.com;", "<a@b> (comment (nested",
]
DATES = ["Mon, 24 Nov 2026 12:00:00 +0900", "yesterday", "", "Thu, 31 Feb 2026 25:61:61 +9999",
         "Sat, 01 Jan 0001 00:00:00 -2400", "99999999999999999999", "Tue, 1 Jan 10000 00:00 GMT",
         "\x00", "1970-01-01T00:00:00Z"]

# The bot's headers: anything else in a mail it sends would be an injection.
ALLOWED_HEADERS = {"from", "to", "reply-to", "subject", "date", "message-id", "in-reply-to",
                   "references", "auto-submitted", "x-auto-response-suppress",
                   "content-language", "content-type", "content-transfer-encoding",
                   "mime-version", "x-bot-ticket", "x-bot-kind"}

_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=200))


def _header_value(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    """A header block with hostile names, values, folding and encoded words."""
    lines: list[bytes] = []
    if draw(st.booleans()):
        lines.append(b"From: " + _header_value(draw(st.sampled_from(ADDRESSES))))
    if draw(st.booleans()):
        lines.append(b"Subject: " + _header_value(draw(_text)))
    if draw(st.booleans()):
        lines.append(b"Date: " + _header_value(draw(st.sampled_from(DATES))))
    for name, options in (("Message-ID", ["<a@b>", "<>", "no-brackets", "<" + "x" * 1200 + ">"]),
                          ("In-Reply-To", ["<a@b>", "<<>>", "< @ >"]),
                          ("References", ["<a@b> <c@d>", "<a@b>" * 300, "garbage"]),
                          ("To", ADDRESSES), ("Reply-To", ADDRESSES)):
        if draw(st.integers(0, 3)) == 0:
            lines.append(name.encode() + b": " + _header_value(draw(st.sampled_from(options))))
    if draw(st.booleans()):
        charset = draw(st.sampled_from(CHARSETS))
        payload = draw(st.binary(max_size=40)).hex()
        lines.append(f"Subject: =?{charset}?q?{payload}?= =?{charset}?b?{payload}?=".encode(
            "utf-8", "surrogateescape"))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.binary(max_size=80)).replace(b"\n", b" "))
    if draw(st.booleans()):
        lines.append(b"X-Folded: start\r\n\tcontinued\r\n \r\n  more")
    return b"\r\n".join(lines)


@st.composite
def mime_parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One MIME entity: maybe multipart (recursing), maybe with lying boundaries/charsets."""
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    head = (f"Content-Type: {ctype}; charset=\"{charset}\"").encode("utf-8", "surrogateescape")
    if ctype.startswith("multipart") and depth < 6:
        boundary = draw(st.sampled_from(["B", "", "==x", "a b", "\"", "-" * 80]))
        children = draw(st.lists(mime_parts(depth=depth + 1), max_size=4))
        head = f"Content-Type: {ctype}; boundary=\"{boundary}\"".encode()
        use = draw(st.sampled_from([boundary, "other", boundary + "x"])).encode()
        body = b"".join(b"--" + use + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + use + b"--\r\n"
    else:
        body = draw(st.one_of(st.binary(max_size=300),
                              _text.map(lambda t: t.encode("utf-8", "surrogateescape"))))
    extra = b""
    if draw(st.booleans()):
        extra = b"\r\nContent-Disposition: attachment; filename=\"" + _header_value(
            draw(st.sampled_from(HOSTILE_TEXT))[:60]) + b"\""
    return (head + b"\r\nContent-Transfer-Encoding: " + encoding.encode() + extra
            + b"\r\n\r\n" + body)


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    """A whole message: random bytes, or a hostile header block over a hostile MIME tree."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2000))
    newline = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    raw = draw(header_blocks()) + b"\r\nMIME-Version: 1.0\r\n" + draw(mime_parts())
    return raw.replace(b"\r\n", newline)


# -- giant cases (deterministic builders; too big to generate by shrinking) ------------------

def _head(subject: str = "Question", sender: str = "fuzz@example.com") -> bytes:
    return (f"From: Fuzz <{sender}>\r\nTo: contact@cijidas.jp\r\nSubject: {subject}\r\n"
            f"Message-ID: <{random.Random(subject).getrandbits(64):x}@fuzz.example>\r\n"
            "MIME-Version: 1.0\r\n").encode()


def deep_nesting(levels: int = 3000) -> bytes:
    body = b"innermost: please delete my data\r\n"
    for i in range(levels):
        body = (f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n".encode()
                + body + f"\r\n--b{i}--\r\n".encode())
    return _head("deep") + body


def many_parts(count: int = 5000) -> bytes:
    parts = b"".join(b"--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                     for i in range(count))
    return _head("parts") + b"Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n" + parts


def missing_boundary() -> bytes:
    return (_head("no boundary") + b"Content-Type: multipart/mixed\r\n\r\n"
            b"--\r\nContent-Type: text/plain\r\n\r\nhello\r\n--\r\n")


def giant_subject(size: int = 1_000_000) -> bytes:
    return _head("S" * size) + b"Content-Type: text/plain\r\n\r\nWhat data do you keep?\r\n"


def giant_header(size: int = 2_000_000) -> bytes:
    folded = b"\r\n ".join([b"x" * 70] * (size // 73))
    return (_head("giant header") + b"X-Giant: " + folded
            + b"\r\nContent-Type: text/plain\r\n\r\nhello\r\n")


def many_recipients(count: int = 10_000) -> bytes:
    to = b", ".join(b"r%d@example.com" % i for i in range(count))
    return (b"From: many@example.com\r\nTo: " + to + b"\r\nCc: " + to
            + b"\r\nSubject: to everyone\r\nContent-Type: text/plain\r\n\r\nhello all\r\n")


def control_characters() -> bytes:
    return (b"From: C\x00trl <ctrl@example.com>\r\nSubject: a\x00b\x07c\x1b[2Jd\x7f\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\x00with\x01nul\xc0\x80\r\n")


def lying_charset() -> bytes:
    return (_head("lying charset") + b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: 7bit\r\n\r\n"
            + "Tôi muốn xóa dữ liệu".encode("utf-16") + b"\xff\xfe\xc3\x28\r\n")


def invalid_charset_words() -> bytes:
    return (b"From: =?x-nope?b?!!!?= <cs@example.com>\r\nSubject: =?utf-8?b?////?= "
            b"=?iso-2022-jp?b?GyRC?= =?\xff?q?x?=\r\n"
            b"Content-Type: text/plain; charset=\"\xff\xfe\"\r\n"
            b"\r\nhello\r\n")


def broken_base64() -> bytes:
    return (_head("b64") + b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n@@@not=base64===\x00\r\n")


def malformed_dates_and_addresses() -> bytes:
    return (b"From: <<<@@@>>>, \"unterminated <x@\r\nTo: ;;;,,,\r\nCc: group:;\r\n"
            b"Date: Thu, 31 Feb 10000 99:99:99 +9999\r\nSubject: dates\r\n"
            b"Content-Type: text/plain\r\n\r\nhi\r\n")


GIANT_CASES = {
    "deep-nesting-3000": deep_nesting,
    "5000-parts": many_parts,
    "missing-boundary": missing_boundary,
    "subject-1mb": giant_subject,
    "header-2mb": giant_header,
    "10000-recipients": many_recipients,
    "control-characters": control_characters,
    "lying-charset": lying_charset,
    "invalid-charset-words": invalid_charset_words,
    "broken-base64": broken_base64,
    "malformed-dates-addresses": malformed_dates_and_addresses,
}
