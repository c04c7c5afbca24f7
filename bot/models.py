"""Value types shared by every module: parsed mail, triage results, ticket states.

Nothing here does I/O. Enums are ``str`` enums so they store and print as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Local-part prefix of every Message-ID the bot creates: lets the bot recognise its own
# mail without mistaking staff mail from the same domain for it.
BOT_MESSAGE_ID_PREFIX = "inquiry-bot."


class Category(StrEnum):
    """What the customer asks for (the privacy policy's request types)."""

    QUESTION = "question"
    COMPLAINT = "complaint"
    DISCLOSURE = "disclosure"
    CORRECTION = "correction"
    DELETION = "deletion"


class Language(StrEnum):
    """The two languages of the privacy policy."""

    VI = "vi"
    EN = "en"


class Outcome(StrEnum):
    """What became of one mailbox message (the ``processed.outcome`` column)."""

    TICKET = "ticket"
    FOLLOWUP = "followup"
    STAFF = "staff"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageKind(StrEnum):
    """The ``messages.kind`` column: who wrote a mail and why."""

    CUSTOMER = "customer"
    ACKNOWLEDGEMENT = "acknowledgement"
    STAFF_REPLY = "staff_reply"
    STAFF_NOTE = "staff_note"
    NOTIFICATION = "notification"
    ESCALATION = "escalation"


@dataclass(frozen=True)
class Attachment:
    """Metadata of one attachment; its content is never stored."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class InboundMail:
    """One received mail, decoded. Produced by :func:`bot.mail.parse.parse_message`.

    Addresses are lower-cased addr-specs (``""`` when missing or unparseable).
    ``headers`` keeps every header as ``(lower-cased name, decoded value)`` in order.
    ``body_text`` is the whole readable text (HTML turned into text);
    ``new_text`` is only what the sender wrote now: no quoted earlier mail, no
    forwarded headers, no signature.
    """

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_addr: str
    from_name: str
    reply_to: str | None
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    subject: str
    date: datetime | None
    content_type: str
    body_text: str
    new_text: str
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    size: int = 0
    defects: tuple[str, ...] = ()
    part_types: tuple[str, ...] = field(default=())
    # Authentication-Results exactly as received (unfolded, NEVER decoded: encoded words in
    # it are sender-controlled text; see bot.rules.authres), topmost first. A value cut for
    # length ends in NUL, so it can never be read as complete.
    auth_results_raw: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]


@dataclass(frozen=True)
class Triage:
    """Category and language of a human mail, with how sure we are and why."""

    category: Category
    language: Language
    confidence: float
    language_confidence: float
    cues: tuple[str, ...] = ()
    needs_review: bool = False
    bilingual: bool = False
    model_version: str = ""                  # which model decided ("" = rules only)
    top_terms: tuple[str, ...] = ()          # the terms that pushed the category most
    review_reasons: tuple[str, ...] = ()     # why staff should check the category


@dataclass(frozen=True)
class MessageSource:
    """Where a raw message came from: enough to never take it twice."""

    mailbox: str
    uidvalidity: int
    uid: int
