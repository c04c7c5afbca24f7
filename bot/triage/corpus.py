"""The labelled triage corpus: its text format and the mails built from it. PURE.

Format (UTF-8; ``# `` lines before the first block and at the end of a block are
comments)::

    ### <primary>[|<acceptable>...] <language> [html]
    S: <subject>
    <body, verbatim>

``primary`` is a category or ``machine``; acceptable labels are the other categories a
careful officer could file the mail under (../shared/TRIAGE-LABELS.md). ``html`` makes the
built mail HTML-only (a body written as HTML markup is sent as it is, else it is
converted). Mails are built deterministically (same text, same bytes) in the styles of
several mail clients, so training and evaluation go through the real parser.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.charset import QP, Charset
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

MACHINE = "machine"
CATEGORIES = ("question", "complaint", "disclosure", "correction", "deletion")
BOT_ADDRESS = "contact@cijidas.jp"
_BASE_DATE = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
_NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Le Minh", "Phạm Thu Hà", "Emily Carter",
          "John Smith", "Sato Kenji", "Võ Thành Tâm", "Hoang Lan", "Maria Garcia",
          "Đặng Quốc Bảo", "Ngo Phuong", "Ahmed Khan", "Bùi Thị Hoa", "Tanaka Yui")
_MARKUP = re.compile(r"\s*<(?:!doctype|html|head|body|table|div)\b", re.IGNORECASE)
_DOMAINS = ("gmail.com", "example.vn", "outlook.com", "yahoo.com.vn", "example.jp",
            "icloud.com", "example.org")


@dataclass(frozen=True)
class Sample:
    """One labelled mail of the corpus."""

    labels: tuple[str, ...]   # primary first, then acceptable alternatives
    language: str
    subject: str
    body: str
    html: bool = False
    source: str = ""

    @property
    def primary(self) -> str:
        return self.labels[0]

    @property
    def machine(self) -> bool:
        return self.primary == MACHINE

    def accepts(self, category: str) -> bool:
        """True when ``category`` is the primary or an acceptable label."""
        return category in self.labels


def parse_corpus(text: str, source: str = "") -> list[Sample]:
    """Every block of a corpus file; raises ValueError naming a malformed block."""
    samples = []
    for number, block in enumerate(_blocks(text.splitlines()), start=1):
        samples.append(_sample(block, f"{source}#{number}"))
    return samples


def _blocks(lines: Iterable[str]) -> Iterator[list[str]]:
    block: list[str] | None = None
    for line in lines:
        if line.startswith("### "):
            if block:
                yield _without_trailing_comments(block)
            block = [line]
        elif block is not None:
            block.append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"text before the first block: {line[:60]!r}")
    if block:
        yield _without_trailing_comments(block)


def _without_trailing_comments(block: list[str]) -> list[str]:
    """A section heading ("# ---- deletion ----") before the next block is no part of the
    mail above it; a "#" line inside a body (a markdown heading, "# of items") is."""
    end = len(block)
    while end > 2 and (not block[end - 1].strip() or block[end - 1].startswith("# ")
                       or block[end - 1] == "#"):
        end -= 1
    return block[:end]


def _sample(block: list[str], where: str) -> Sample:
    head = block[0][4:].split()
    if len(head) < 2 or not block[1:] or not block[1].startswith("S:"):
        raise ValueError(f"{where}: malformed block header {block[0][:80]!r}")
    labels = tuple(head[0].split("|"))
    if any(label not in (*CATEGORIES, MACHINE) for label in labels):
        raise ValueError(f"{where}: unknown label in {head[0]!r}")
    body = "\n".join(block[2:]).strip("\n") + "\n"
    return Sample(labels, head[1], block[1][2:].strip(), body, "html" in head[2:], where)


# -- building mail ---------------------------------------------------------------------------

def build_mail(sample: Sample, index: int) -> bytes:
    """The raw mail a customer's client (or a machine) would send for ``sample``."""
    name, address = _sender(sample, index)
    if sample.html:
        message = MIMEText(_to_html(sample.body), "html", "utf-8")
    elif index % 3 == 0:
        message = _alternative(sample.body)
    else:
        message = _plain(sample.body, index)
    message["From"] = formataddr((name, address), "utf-8")
    message["To"] = BOT_ADDRESS
    message["Subject"] = sample.subject
    message["Date"] = format_datetime(_BASE_DATE + timedelta(minutes=37 * index))
    message["Message-ID"] = _msgid(f"{index}{sample.subject}{sample.body}", address)
    if sample.subject.lower().startswith(("re:", "tr:", "aw:")):
        message["In-Reply-To"] = _msgid(f"bot{index}", "cijidas.jp")
    if not sample.machine:
        _client_headers(message, index)
    return message.as_bytes()


def _plain(body: str, index: int) -> MIMEText:
    charset = Charset("utf-8")
    if index % 2:
        charset.body_encoding = QP
    return MIMEText(body, "plain", charset)


def _alternative(body: str) -> MIMEMultipart:
    message = MIMEMultipart("alternative")
    message.attach(MIMEText(body, "plain", "utf-8"))
    message.attach(MIMEText(_to_html(body), "html", "utf-8"))
    return message


def _to_html(body: str) -> str:
    """Paragraphs as ``<div>``s, ``> `` lines as a Gmail-style blockquote; a body that is
    already HTML markup (a newsletter's source) as it is."""
    if _MARKUP.match(body):
        return body
    out, quote = [], []
    for line in body.splitlines():
        if line.startswith(">"):
            quote.append(html.escape(line.lstrip("> ")))
            continue
        if quote:
            out.append('<blockquote class="gmail_quote">' + "<br>".join(quote) + "</blockquote>")
            quote = []
        out.append(f"<div>{html.escape(line) or '<br>'}</div>")
    if quote:
        out.append('<blockquote class="gmail_quote">' + "<br>".join(quote) + "</blockquote>")
    return "<html><body>" + "\n".join(out) + "</body></html>"


def _client_headers(message, index: int) -> None:
    style = index % 4
    if style == 0:
        message["X-Mailer"] = "Microsoft Outlook 16.0"
        message["X-Auto-Response-Suppress"] = "All"  # Outlook sets this on human mail
    elif style == 1:
        message["X-Mailer"] = "iPhone Mail (21A329)"
    elif style == 2 and index % 8 == 2:
        message["Auto-Submitted"] = "no"


def _sender(sample: Sample, index: int) -> tuple[str, str]:
    if sample.machine:
        return "Notifications", f"noreply-{index}@mail.example.net" if index % 2 else \
            f"info{index}@example.co.jp"
    name = _NAMES[index % len(_NAMES)]
    local = hashlib.sha1(f"{name}{index}".encode()).hexdigest()[:8]
    return name, f"user.{local}@{_DOMAINS[index % len(_DOMAINS)]}"


def _msgid(seed: str, address: str) -> str:
    digest = hashlib.sha1(seed.encode()).hexdigest()[:16]
    return f"<{digest}@{address.rpartition('@')[2] or 'example.com'}>"
