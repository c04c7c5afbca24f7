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
    """``levels`` nested multiparts (built in linear time: outermost first)."""
    heads = (b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
             for i in reversed(range(levels)))
    tails = (b"\r\n--b%d--\r\n" % i for i in range(levels))
    return (_head("deep") + b"".join(heads) + b"innermost: please delete my data\r\n"
            + b"".join(tails))


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


# -- poison mail: each shape once cost minutes or gigabytes per message (issue 14) ----------
# Every builder stays under the default limits.max_message_bytes (25 MB); the figures before
# and after the fix are printed by bench/hostile.py.

def _html_only(subject: str, html: bytes) -> bytes:
    return (_head(subject) + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html
            + b"\r\n")


def nested_blockquotes(levels: int = 20_000) -> bytes:
    """An HTML-only mail of ``levels`` nested blockquotes (20,000 -> 234 kB)."""
    return _html_only("nested quotes", b"<blockquote>" * levels
                      + b"please delete my data" + b"</blockquote>" * 2)


def unclosed_tags(count: int = 100_000) -> bytes:
    """Tags that never end: each makes the stdlib HTMLParser rescan the rest of the input."""
    return _html_only("unclosed tags", b"<p>please delete my data</p>" + b"<a" * count)


def encoded_subject(chars: int = 100_000) -> bytes:
    """A ``chars``-character Subject of encoded-word starts that never end (``=?utf-8?q?x``):
    the stdlib's encoded-word regex rescans the rest of the line from each one."""
    words = b"\r\n ".join([b"=?utf-8?q?x" * 6] * (chars // 69))
    return (b"From: Fuzz <fuzz@example.com>\r\nTo: contact@cijidas.jp\r\nSubject: " + words
            + b"\r\nMessage-ID: <encoded-subject@fuzz.example>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain\r\n\r\nWhat data do you keep?\r\n")


def encoded_headers(count: int = 500, chars: int = 16_000) -> bytes:
    """``count`` headers of ``chars`` characters each, in the same shape as the subject."""
    value = b"\r\n ".join([b"=?utf-8?q?x" * 6] * (chars // 69))
    block = b"".join(b"X-Note-%d: %s\r\n" % (i, value) for i in range(count))
    return (_head("many encoded headers") + block
            + b"Content-Type: text/plain\r\n\r\nWhat data do you keep?\r\n")


def long_filenames(count: int = 20, chars: int = 50_000) -> bytes:
    """``count`` attachments, each with a ``chars``-character encoded filename."""
    name = b"\r\n ".join([b"=?utf-8?q?x" * 6] * (chars // 69))
    parts = [b"--P\r\nContent-Type: text/plain\r\n\r\nSee the attached files.\r\n"]
    parts += [b"--P\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
              b"attachment; filename=\"" + name + b"\"\r\nContent-Transfer-Encoding: base64"
              b"\r\n\r\nQUFB\r\n" for _ in range(count)]
    return (_head("attachments") + b"Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n"
            + b"".join(parts) + b"--P--\r\n")


def rfc2231_filenames(count: int = 20, sections: int = 5_000) -> bytes:
    """Attachments whose filenames come in thousands of RFC 2231 continuation sections."""
    name = b";".join(b"\r\n filename*%d*=utf-8''%%C3%%A0b" % i for i in range(sections))
    parts = [b"--P\r\nContent-Type: text/plain\r\n\r\nSee the attached files.\r\n"]
    parts += [b"--P\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
              b"attachment;" + name + b"\r\n\r\nAAA\r\n" for _ in range(count)]
    return (_head("rfc2231") + b"Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n"
            + b"".join(parts) + b"--P--\r\n")


def html_bomb(levels: int = 2_000_000) -> bytes:
    """Nested blockquotes up to the 25 MB size limit (the 234 kB case, a hundred times)."""
    return nested_blockquotes(levels)


SIZE_LIMIT = 25 * 1024 * 1024 - 4096  # limits.max_message_bytes, less the header


def big_plain(size: int = SIZE_LIMIT) -> bytes:
    """A text/plain body as large as the size limit allows (Vietnamese, so UTF-8 and NFC)."""
    line = "Tôi muốn xóa dữ liệu cá nhân của tôi, cảm ơn.\r\n".encode()
    return (_head("big text") + b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + line * (size // len(line)))


def big_attachment(size: int = SIZE_LIMIT) -> bytes:
    """A short question with one base64 attachment filling the size limit."""
    line = b"QUFB" * 19 + b"\r\n"
    return (_head("scans") + b"Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n"
            b"--P\r\nContent-Type: text/plain\r\n\r\nPlease delete my data.\r\n"
            b"--P\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"scan.pdf\"\r\n\r\n"
            + line * (size // len(line)) + b"--P--\r\n")


def big_html_text(size: int = SIZE_LIMIT) -> bytes:
    """HTML-only: paragraphs of text up to the size limit."""
    paragraph = b"<p>Please tell me what personal data you keep about me.</p>\r\n"
    return _html_only("big html", paragraph * (size // len(paragraph)))


def big_unclosed_tags(size: int = SIZE_LIMIT) -> bytes:
    """Unclosed tags up to the size limit."""
    return unclosed_tags(size // 2)


def header_lines(size: int = SIZE_LIMIT) -> bytes:
    """A header block of a million short header fields."""
    return (_head("header lines") + b"X-A: b\r\n" * (size // 8)
            + b"Content-Type: text/plain\r\n\r\nWhat data do you keep?\r\n")


def many_small_parts(size: int = SIZE_LIMIT) -> bytes:
    """Tiny MIME parts up to the size limit (half a million)."""
    return many_parts(size // 46)


POISON_CASES = {
    "blockquotes-20000": nested_blockquotes,
    "unclosed-tags-100000": unclosed_tags,
    "subject-rfc2047-100000": encoded_subject,
    "headers-500x16000": encoded_headers,
    "filenames-20x50000": long_filenames,
    "filenames-rfc2231-20x5000": rfc2231_filenames,
    "deep-nesting-3000": deep_nesting,
    "deep-nesting-50000": lambda: deep_nesting(50_000),
    "parts-5000": many_parts,
    "parts-200000": lambda: many_parts(200_000),
    "blockquotes-2000000": html_bomb,
    "25mb-text": big_plain,
    "25mb-attachment": big_attachment,
    "25mb-html-text": big_html_text,
    "25mb-unclosed-tags": big_unclosed_tags,
    "25mb-header-lines": header_lines,
    "25mb-parts": many_small_parts,
}


# -- measuring one poison mail in a fresh process ----------------------------------------------

def measure(name: str, timeout: float = 120.0, memory_cap_mb: int = 8192,
            root: str | None = None) -> dict:
    """Run ``Service.handle`` (and, if it raises, ``record_failure``, as the worker does) on
    ``POISON_CASES[name]`` in a subprocess; return its seconds, peak RSS and outcome.

    The child gets an address-space cap of ``memory_cap_mb`` so a runaway case fails with a
    MemoryError instead of taking the machine down; a case over ``timeout`` is killed.
    ``root`` is another checkout whose ``bot`` package is measured (e.g. an older commit).
    """
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    command = [sys.executable, str(here / "hostile.py"), name, str(memory_cap_mb)]
    env = {**os.environ, "INQUIRY_BOT_ROOT": str(root or here.parent)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=root or here.parent, env=env)
    except subprocess.TimeoutExpired:
        return {"case": name, "seconds": None, "peak_mb": None, "outcome": "timeout"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"case": name, "seconds": None, "peak_mb": None,
                "outcome": f"crashed (exit {done.returncode}): {done.stderr[-300:]}"}
    return json.loads(lines[-1])


def _peak_mb() -> float:
    """Peak RSS of this process in MB. VmHWM belongs to the process's own memory map; on Linux
    ``ru_maxrss`` of a fresh child can still report its parent's peak (kept across exec)."""
    import resource
    from pathlib import Path

    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_here(name: str, memory_cap_mb: int) -> dict:
    """The child side of :func:`measure` (imports happen before the clock starts)."""
    import resource
    import tempfile
    import time
    from datetime import UTC, datetime
    from pathlib import Path
    from types import SimpleNamespace

    from botenv import write_config

    from bot.adapters.store import Store
    from bot.config import load_settings
    from bot.flows.service import Service
    from bot.models import MessageSource

    cap = memory_cap_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    folder = Path(tempfile.mkdtemp(prefix="poison-"))
    config = write_config(folder, SimpleNamespace(host="127.0.0.1", port=1), None)
    settings = load_settings(config, environ={"TEST_IMAP_PASSWORD": "x"})
    service = Service(Store(settings.database_path), settings)
    raw = POISON_CASES[name]()
    source = MessageSource("INBOX", 1, 1)
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    service.handle(source, b"From: warm@example.com\r\n\r\nwarm up\r\n", now)
    base = _peak_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        outcome = service.handle(MessageSource("INBOX", 1, 2), raw, now).outcome.value
    except Exception as exc:  # noqa: BLE001 - the worker records it; so do we
        outcome = f"raised {type(exc).__name__}"
        service.record_failure(MessageSource("INBOX", 1, 2), raw, repr(exc), now, False)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = _peak_mb()
    ticket = service.store.rows("SELECT t.id, t.needs_review FROM processed p JOIN tickets t "
                                "ON t.id = p.ticket_id WHERE p.uid = 2")
    cut = [r["detail"] for r in service.store.rows(
        "SELECT detail FROM events WHERE type = 'mail_cut'")]
    return {"case": name, "bytes": len(raw), "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "peak_mb": round(peak), "base_mb": round(base), "outcome": outcome,
            "needs_review": ticket[0]["needs_review"] if ticket else None, "cut": cut}


if __name__ == "__main__":
    import json
    import os
    import sys
    from pathlib import Path

    sys.path.insert(0, os.environ.get("INQUIRY_BOT_ROOT", str(Path(__file__).parent.parent)))
    print(json.dumps(_measure_here(sys.argv[1], int(sys.argv[2]))))
