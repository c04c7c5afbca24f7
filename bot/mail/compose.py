"""Mail the bot sends: jinja2 templates -> :class:`email.message.Message`. PURE.

Each mail is written ONCE per language (``templates/replies/<lang>/<name>.j2``) and rendered
twice from the same context: by ``layout.txt.j2`` (no escaping) and by ``layout.html.j2``
(autoescaped). Wording therefore never drifts between the text and HTML parts. A bilingual
mail renders the same template for Vietnamese, then English, inside one layout.

Customer-controlled values (subject, display name, text, file names) are only ever *data*:
they are cleaned of control and bidi characters, never used as template source, escaped in
HTML, and headers are written through ``email.policy.SMTP`` after CR/LF removal.

No I/O except reading templates, no clock: times and Message-IDs are passed in.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.utils import format_datetime as rfc2822_date
from email.utils import formataddr, getaddresses
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.mail.echo import defanged, echoed_name, echoed_subject
from bot.mail.mime import mail_body
from bot.mail.render import render
from bot.mail.wording import customer_context
from bot.models import BOT_MESSAGE_ID_PREFIX, Category, InboundMail, Language, Triage

# The single word a customer replies with, on its own line, when we got the category wrong.
WRONG_WORDS: Mapping[Language, str] = {Language.EN: "WRONG", Language.VI: "SAI"}
VERIFIED_CATEGORIES = frozenset({Category.DISCLOSURE, Category.CORRECTION, Category.DELETION})
GENERIC_ACK = "ack_generic"
MAX_REFERENCES = 10
MAX_SUBJECT = 200
MAX_QUOTED = 20_000  # characters of customer text quoted in a staff notification
# "no" (RFC 3834): a human wrote it, e.g. a staff answer the bot relays to the customer.
AUTO_SUBMITTED = ("auto-replied", "auto-generated", "no")
DEFAULT_SUBJECT: Mapping[Language, str] = {
    Language.EN: "Your privacy inquiry",
    Language.VI: "Yêu cầu của Quý khách về thông tin cá nhân",
}

# Controls, bidi embeddings/overrides/isolates and Unicode line separators: a header or a
# single-line value must not break lines or visually reorder text (RTL spoofing).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI_CHARS = re.compile(f"[{_BIDI}]")
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|fwd?|fw|tl|tr|trả\s+lời|chuyển\s+tiếp|返信|転送)\s*(?:\[\d+\])?\s*[:：]\s*",
    re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


# -- small pure helpers --------------------------------------------------------------------

def clean_line(value: str | None, limit: int | None = None) -> str:
    """One safe line: NFC, no control/bidi/line-separator characters, whitespace collapsed."""
    text = _BIDI_CHARS.sub("", unicodedata.normalize("NFC", value or ""))
    text = _LINE_BREAKING.sub(" ", text)
    text = " ".join(text.split())
    return text[:limit].rstrip() if limit else text


def clean_text(value: str | None) -> str:
    """Multi-line text kept readable: newlines and tabs stay, other controls and bidi go."""
    text = unicodedata.normalize("NFC", value or "").replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE_TEXT.sub("", text)


def is_wrong_reply(text: str) -> bool:
    """True when a line of the customer's new text is only a word of :data:`WRONG_WORDS`."""
    words = {word.casefold() for word in WRONG_WORDS.values()}
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue  # quoted text is not what the customer wrote now
        if line.strip().strip(".!*_\"'").casefold() in words:
            return True
    return False


def ticket_subject(ref: str, original_subject: str, language: Language = Language.EN) -> str:
    """``[REF] subject`` without Re:/Fwd:/Trả lời: pile-up or an earlier ``[REF]`` tag."""
    subject = bare_subject(ref, original_subject) or DEFAULT_SUBJECT[language]
    return f"[{clean_line(ref)}] {subject}"


def bare_subject(ref: str, original_subject: str) -> str:
    """The subject without reply/forward prefixes and tags of our ref series ("" if none)."""
    prefix = re.escape(ref.rpartition("-")[0] or ref)
    tag = re.compile(rf"^\s*\[{prefix}-\d+\]\s*")
    subject = clean_line(original_subject)
    previous = None
    while subject != previous:
        previous = subject
        subject = tag.sub("", _REPLY_PREFIX.sub("", subject))
    return clean_line(subject, MAX_SUBJECT)


def make_message_id(domain: str, token: str | None = None) -> str:
    """A fresh ``<random@domain>``; ``token`` (e.g. a signed value) replaces the random part."""
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a mail domain: {domain!r}")
    local = BOT_MESSAGE_ID_PREFIX + (token if token is not None else secrets.token_hex(16))
    if not _TOKEN.fullmatch(local):
        raise ValueError(f"not a safe Message-ID token: {local!r}")
    return f"<{local}@{domain}>"


def thread_references(references: Sequence[str], in_reply_to: str | None) -> list[str]:
    """The customer's References plus the Message-ID we answer, valid ids only, at most 10.

    Over the cap we keep the thread root and the newest ids (RFC 5322 3.6.4).
    """
    ids: list[str] = []
    for value in [*references, in_reply_to or ""]:
        msgid = _normal_msgid(value)
        if msgid and msgid not in ids:
            ids.append(msgid)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids


def _normal_msgid(value: str | None) -> str | None:
    value = (value or "").strip()
    if value and not value.startswith("<"):
        value = f"<{value}>"
    return value if _MSGID.fullmatch(value) else None


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return moment if moment is not None and moment.tzinfo is not None else None


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... shortened]"


def _local(moment: datetime | None, settings: Settings) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass aware UTC times")
    return moment.astimezone(settings.tz)


def recipients_of(message: Message) -> list[str]:
    """The To: addresses of a message built here (internationalised ones as text again)."""
    to = next((str(v) for k, v in message.raw_items() if k.lower() == "to"), "")
    return [_unescaped(addr) for _name, addr in getaddresses([to])]


def _unescaped(value: str) -> str:
    """Undo the surrogate escapes of a raw UTF-8 header value (see :func:`_formatted`)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def plain_text(message: Message) -> str:
    """The text/plain body of a message built here (for the ``messages`` table)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode("utf-8")
    return ""


# -- building messages ---------------------------------------------------------------------

def build_mail(*, from_name: str, from_addr: str, to: str | Sequence[str], subject: str,
               text: str, html: str | None, message_id: str, date: datetime,
               in_reply_to: str | None, references: Sequence[str],
               languages: Sequence[Language], auto_submitted: str,
               reply_to: str | None = None,
               extra_headers: Mapping[str, str] | None = None) -> Message:
    """A UTF-8 text (+ optional HTML alternative) mail with the DESIGN.md headers.

    Built with the stdlib's classic MIME classes: generating a mail through
    ``EmailMessage``'s header registry cost twice as much and dominated the pipeline
    (bench/pipeline.py). Every value is cleaned of CR/LF first; non-ASCII text goes
    through RFC 2047 ``Header`` encoding, so nothing customer-controlled can add a header.
    """
    if auto_submitted not in AUTO_SUBMITTED:
        raise ValueError(f"Auto-Submitted must be one of {AUTO_SUBMITTED}")
    own_id = _normal_msgid(message_id)
    if own_id is None:
        raise ValueError(f"not a Message-ID: {message_id!r}")
    recipients = [to] if isinstance(to, str) else list(to)
    msg = mail_body(text, html)  # the wire format: bot.mail.mime
    msg["From"] = _formatted(from_addr, from_name)
    msg["To"] = ", ".join(_formatted(addr) for addr in recipients)
    if reply_to:
        msg["Reply-To"] = _formatted(reply_to)
    msg["Subject"] = _header_text(clean_line(subject))
    msg["Date"] = rfc2822_date(date)
    msg["Message-ID"] = own_id
    parent = _normal_msgid(in_reply_to)
    if parent:
        msg["In-Reply-To"] = parent
    chain = thread_references(references, in_reply_to)
    if chain:
        msg["References"] = " ".join(chain)
    msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Content-Language"] = ", ".join(Language(lang).value for lang in languages)
    for name, value in (extra_headers or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9-]+", name):
            raise ValueError(f"bad header name: {name!r}")
        msg[name] = _header_text(clean_line(value))
    return msg


@lru_cache(maxsize=4096)  # the bot's own and staff addresses recur in every mail
def _formatted(addr: str, display_name: str = "") -> str:
    """``Name <addr>`` (RFC 2047 for non-ASCII names) after :func:`_address` validation.

    An internationalised address (RFC 6531/6532) is written as raw UTF-8: held in the
    header as surrogate escapes, which the compat32 generator turns back into the UTF-8
    bytes. Such mail can only be sent with SMTPUTF8 (the SMTP adapter checks).
    """
    if not clean_line(addr).isascii():
        spec = _eai_address(addr).encode("utf-8").decode("ascii", "surrogateescape")
        name = clean_line(display_name)
        return f"{Header(name, 'utf-8').encode()} <{spec}>" if name else spec
    address = _address(addr, display_name)
    return formataddr((address.display_name, address.addr_spec), charset="utf-8")


def _eai_address(addr: str) -> str:
    """A non-ASCII ``local@domain`` whose parts are dot-atoms of letters, marks, digits and
    RFC 5322 atext; ValueError otherwise (no quoting, no spaces, no controls)."""
    spec = clean_line(addr)
    local, at, domain = spec.rpartition("@")
    if not at or not _utf8_dot_atom(local, _ATEXT) or not _utf8_dot_atom(domain, "-") \
            or "." not in domain:
        raise ValueError(f"unusable mail address {addr!r}")
    return spec


_ATEXT = "!#$%&'*+/=?^_`{|}~-"


def _utf8_dot_atom(text: str, ascii_extra: str) -> bool:
    atoms = text.split(".")
    return all(atom and all(
        (c.isascii() and (c.isalnum() or c in ascii_extra))
        or (not c.isascii() and unicodedata.category(c)[0] in "LMN") for c in atom)
        for atom in atoms)


def _header_text(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


# A plain dot-atom address, what nearly every customer has: built from its two parts it
# skips the RFC 5322 parser (22 microseconds a call) and is the same Address.
_ATOM_CHARS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"({_ATOM_CHARS}(?:\.{_ATOM_CHARS})*)"
                            r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def _address(addr: str, display_name: str = "") -> Address:
    """A header address; ValueError for anything we cannot write as plain ASCII SMTP."""
    plain = _PLAIN_ADDRESS.fullmatch(clean_line(addr))
    if plain:
        return Address(display_name=clean_line(display_name), username=plain[1],
                       domain=plain[2])
    try:
        address = Address(display_name=clean_line(display_name), addr_spec=clean_line(addr))
        if not address.domain or not address.addr_spec.isascii():
            raise ValueError("no domain or not ASCII")
    except (ValueError, IndexError, HeaderParseError) as exc:  # e.g. "@b" -> HeaderParseError
        raise ValueError(f"unusable mail address {addr!r}: {exc}") from None
    return address


def is_sendable_address(addr: str) -> bool:
    """True if ``addr`` can be written into a To: header (see :func:`_address`; an
    internationalised address counts: it is sent with SMTPUTF8 where the server offers it)."""
    try:
        _eai_address(addr) if not clean_line(addr).isascii() else _address(addr)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CustomerThread:
    """Who a customer mail goes to and which conversation it continues."""

    ref: str
    language: Language
    customer_email: str
    customer_name: str = ""
    original_subject: str = ""
    in_reply_to: str | None = None  # the customer's Message-ID
    references: tuple[str, ...] = ()
    bilingual: bool = False


def _template_cache(settings: Settings) -> Path | None:
    """Where compiled templates are kept between runs (none for a dry run)."""
    return settings.cache_path / "templates" if settings.cache_path else None


def _base_context(settings: Settings) -> dict[str, Any]:
    return {
        "company_name": settings.bot.company_name,
        "bot_address": settings.bot.address,
        "policy_url": settings.bot.policy_url,
        "wrong_words": {lang.value: word for lang, word in WRONG_WORDS.items()},
        **customer_context(settings),  # policy name, fee, owners: bot.mail.wording
    }


def customer_mail(settings: Settings, thread: CustomerThread, name: str,
                  context: Mapping[str, Any], *, message_id: str, date: datetime,
                  auto_submitted: str = "auto-replied") -> Message:
    """Render template ``name`` for ``thread`` and wrap it as a threaded reply."""
    subject = echoed_subject(bare_subject(thread.ref, thread.original_subject))
    data = {
        **_base_context(settings), "ref": clean_line(thread.ref),
        "customer_name": echoed_name(clean_line(thread.customer_name)),
        "customer_email": clean_line(thread.customer_email),
        "original_subject": subject,
        **{key: _local(value, settings) if isinstance(value, datetime) else value
           for key, value in context.items()},
    }
    text, html = render(settings.templates_path, name, thread.language, data,
                        bilingual=thread.bilingual, cache_dir=_template_cache(settings))
    languages = [Language.VI, Language.EN] if thread.bilingual else [thread.language]
    first = languages[0]
    return build_mail(
        from_name=settings.bot.display_name, from_addr=settings.bot.address,
        to=thread.customer_email,
        subject=ticket_subject(thread.ref, subject, first),
        text=text, html=html, message_id=message_id, date=date,
        in_reply_to=thread.in_reply_to, references=thread.references, languages=languages,
        auto_submitted=auto_submitted)


def acknowledgement(settings: Settings, *, ref: str, category: Category | None,
                    language: Language, bilingual: bool, customer_name: str,
                    customer_email: str, original_subject: str, received_at: datetime,
                    due_at: datetime, verification_code: str | None,
                    code_expires_at: datetime | None, in_reply_to: str | None,
                    references: Sequence[str], message_id: str, date: datetime,
                    kind: str | None = None, extra: Mapping[str, Any] | None = None) -> Message:
    """The first reply to a new ticket; ``category=None`` sends the generic one, ``kind``
    (e.g. opt_out: no code) ``ack_<kind>``; ``extra``: bot.mail.wording's facts."""
    verification = None
    if category in VERIFIED_CATEGORIES and not kind:
        if not verification_code or code_expires_at is None:
            raise ValueError(f"{category} acknowledgement needs a code and its expiry")
        verification = {"code": clean_line(verification_code), "expires_at": _local(
            code_expires_at, settings), "max_attempts": settings.verification.max_attempts}
    context = {
        "category": category.value if category else None, "received_at": received_at,
        "due_at": due_at, "verification": verification, **(extra or {})}
    thread = CustomerThread(ref, language, customer_email, customer_name, original_subject,
                            in_reply_to, tuple(references), bilingual)
    name = f"ack_{kind}" if kind else f"ack_{category.value}" if category else GENERIC_ACK
    return customer_mail(settings, thread, name, context, message_id=message_id, date=date)


def verification_confirmed(settings: Settings, thread: CustomerThread, *, due_at: datetime,
                           message_id: str, date: datetime) -> Message:
    """Identity confirmed by code (or by staff): what happens next."""
    return customer_mail(settings, thread, "verify_confirmed", {"due_at": due_at},
                         message_id=message_id, date=date)


def verification_wrong_code(settings: Settings, thread: CustomerThread, *, tries_left: int,
                            message_id: str, date: datetime) -> Message:
    """The code did not match; ``tries_left`` more attempts are allowed."""
    return customer_mail(settings, thread, "verify_wrong_code", {"tries_left": tries_left},
                         message_id=message_id, date=date)


def verification_failed(settings: Settings, thread: CustomerThread, *, expired: bool,
                        message_id: str, date: datetime) -> Message:
    """Too many wrong codes (``expired=False``) or the code expired: how to start again."""
    return customer_mail(settings, thread, "verify_failed", {"expired": expired},
                         message_id=message_id, date=date)


def verification_reminder(settings: Settings, thread: CustomerThread, *,
                          code_expires_at: datetime, verification_code: str | None = None,
                          message_id: str, date: datetime) -> Message:
    """One reminder; repeats the code only when the caller still has it (e.g. a new one)."""
    context = {"code_expires_at": code_expires_at,
               "verification_code": clean_line(verification_code) or None}
    return customer_mail(settings, thread, "verify_reminder", context,
                         message_id=message_id, date=date)


def closed_unverified(settings: Settings, thread: CustomerThread, *, message_id: str,
                      date: datetime) -> Message:
    """The ticket closed because identity was never confirmed: how to start again."""
    return customer_mail(settings, thread, "closed_unverified", {},
                         message_id=message_id, date=date)


def followup_added(settings: Settings, thread: CustomerThread, *, due_at: datetime,
                   message_id: str, date: datetime) -> Message:
    """Short note: a follow-up was added to the existing ticket."""
    return customer_mail(settings, thread, "followup_added", {"due_at": due_at},
                         message_id=message_id, date=date)


def too_large(settings: Settings, thread: CustomerThread, *, received_at: datetime,
              message_id: str, date: datetime) -> Message:
    """Acknowledge a mail over ``limits.max_message_bytes`` that we could not read."""
    max_mb = max(1, round(settings.limits.max_message_bytes / (1024 * 1024)))
    context = {"received_at": received_at, "max_mb": max_mb}
    return customer_mail(settings, thread, "too_large", context,
                         message_id=message_id, date=date)


def staff_notification(settings: Settings, *, ref: str, triage: Triage, mail: InboundMail,
                       due_at: datetime, verification_status: str, to: Sequence[str],
                       message_id: str, date: datetime, received_at: datetime | None = None,
                       followup: bool = False, reply_to: str | None = None,
                       in_reply_to: str | None = None,
                       references: Sequence[str] = (), status: str = "open",
                       reopened: bool = False, notes: Sequence[str] = ()) -> Message:
    """Tell staff about a new ticket or a follow-up, and how to act on it (English).

    The values are the ticket's state AFTER the mail was applied; ``reopened`` says the
    customer's mail reopened a closed ticket."""
    context = {
        **_base_context(settings), "ref": clean_line(ref), "followup": followup,
        "status": clean_line(status), "reopened": reopened,
        "notes": [clean_line(note, 300) for note in notes],  # what staff must do first
        "review_reasons": [clean_line(r, 120) for r in triage.review_reasons],
        "top_terms": [clean_line(t, 40) for t in triage.top_terms],
        "model_version": clean_line(triage.model_version, 40),
        "category": triage.category.value, "language": triage.language.value,
        "bilingual": triage.bilingual, "confidence": round(triage.confidence * 100),
        "cues": [clean_line(cue, 80) for cue in triage.cues],
        "needs_review": triage.needs_review,
        "due_at": _local(due_at, settings),
        "received_at": _local(received_at or _aware_or_none(mail.date), settings),
        "verification_status": clean_line(verification_status),
        "customer_name": clean_line(mail.from_name, 100),
        "customer_email": clean_line(mail.from_addr),
        "subject": defanged(clean_line(mail.subject, 300)),
        "new_text": _shortened(clean_text(mail.new_text).strip(), MAX_QUOTED),
        "attachments": [{"filename": clean_line(a.filename, 200),
                         "content_type": clean_line(a.content_type, 100), "size": a.size}
                        for a in mail.attachments],
    }
    text, html = render(settings.templates_path, "staff_notification", Language.EN, context,
                        cache_dir=_template_cache(settings))
    label = ("Reopened by the customer" if reopened else "Follow-up") if followup \
        else f"New {triage.category.value}"
    review = " NEEDS REVIEW" if triage.needs_review else ""
    bare = defanged(bare_subject(ref, mail.subject)) or "(no subject)"
    return internal_mail(
        settings, to=to,
        subject=f"[{clean_line(ref)}] {label}{review} ({triage.language.value}): {bare}",
        text=text, html=html, message_id=message_id, date=date,
        in_reply_to=in_reply_to, references=references, reply_to=reply_to)


def internal_mail(settings: Settings, *, to: str | Sequence[str], subject: str, text: str,
                  message_id: str, date: datetime, html: str | None = None,
                  in_reply_to: str | None = None, references: Sequence[str] = (),
                  reply_to: str | None = None) -> Message:
    """A mail from the bot to staff: English, ``Auto-Submitted: auto-generated``."""
    return build_mail(
        from_name=settings.bot.display_name, from_addr=settings.bot.address, to=to,
        subject=subject, text=text, html=html, message_id=message_id, date=date,
        in_reply_to=in_reply_to, references=references, languages=[Language.EN],
        auto_submitted="auto-generated", reply_to=reply_to)
