"""What every inbound-mail handler shares: the store, the settings, the calendar, and the
few writes they all make (the inbound message row, an outbox mail, the auto-reply check).

Handlers receive a :class:`Context` and the open transaction; none of them calls back into
the dispatcher (:mod:`bot.flows.service`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.flows import autoreply
from bot.models import Direction, InboundMail, MessageKind, Outcome
from bot.rules import conversation
from bot.rules.sla import BusinessCalendar
from bot.triage import Model


@dataclass(frozen=True)
class Handled:
    """What happened to one message; logged as one line by the worker."""

    outcome: Outcome
    reason: str | None = None
    ref: str | None = None
    category: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Context:
    """The store, settings and business calendar one worker handles mail with."""

    store: Store
    settings: Settings
    calendar: BusinessCalendar
    model: Model | None = None  # triage model; None: the shipped one

    def record_inbound(self, conn: sqlite3.Connection, ticket_id: int, mail: InboundMail,
                       kind: MessageKind, now: datetime) -> None:
        """The ``messages`` row of an inbound mail on ``ticket_id``.

        Staff routing addresses (their tokens are credentials) are stored as the bot's plain
        address: the customer's ``export`` and datasette read this row.
        """
        bot = self.settings.bot.address
        to_addrs = ", ".join(dict.fromkeys(
            conversation.without_routing_addresses(a, bot) for a in mail.to_addrs[:50]))
        self.store.add_message(
            conn, ticket_id=ticket_id, direction=Direction.IN.value, kind=kind.value,
            message_id=mail.message_id, in_reply_to=mail.in_reply_to,
            from_addr=mail.from_addr, to_addrs=to_addrs, subject=mail.subject,
            body_text=conversation.without_routing_addresses(mail.body_text, bot),
            attachments=attachments_json(mail), created_at=utc_iso(now))

    def enqueue(self, conn: sqlite3.Connection, ticket_id: int | None, message,
                recipients: list[str], kind: MessageKind, now: datetime,
                mask: str | None = None, counted: bool = True) -> None:
        """Queue ``message`` in the outbox (and its copy in ``messages``)."""
        autoreply.queue_mail(self.store, self.settings, conn, ticket_id, message, recipients,
                             kind.value, now, mask, counted)

    def auto_reply_blocked(self, address: str, now: datetime,
                           ticket_id: int | None = None) -> str | None:
        """Why no automatic mail may go to ``address`` (on ``ticket_id``) now, or None."""
        return autoreply.blocked_reason(self.store, self.settings, address, now, ticket_id)


def message_key(mail: InboundMail, raw: bytes) -> str:
    """Identity of a message across UIDVALIDITY changes: its Message-ID, else a raw hash."""
    return mail.message_id or raw_key(raw)


def raw_key(raw: bytes) -> str:
    """``sha256:<hex>`` of the raw bytes: the key of a mail without a Message-ID."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def attachments_json(mail: InboundMail) -> str:
    """The ``messages.attachments`` column: names, types, sizes and hashes, never content."""
    return json.dumps([{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                        "sha256": a.sha256} for a in mail.attachments[:200]], ensure_ascii=False)
