"""The store's redaction SQL: part of :class:`bot.adapters.store.Store` (mixed in, like
:mod:`bot.adapters.queries`); :mod:`bot.flows.audit` decides what and when.

Personal data sits in more places than a ticket's own rows: staff mail about several
tickets (escalations, digests, summaries, alerts) belongs to no ticket, events and
``processed`` rows may name a sender, Message-IDs may contain an address. Redaction
replaces text with a marker; SQLite's ``secure_delete`` (set on every connection) zeroes
what is overwritten or deleted, and :meth:`Redaction.compact` moves the changes out of
the write-ahead log into the file, so no old copy survives in free pages or the WAL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.rules.sla import to_iso as utc_iso

DetailRedactor = Callable[[str | None], str | None]


@dataclass
class Mentions:
    """Rows outside a person's tickets whose text names them (by address or name)."""

    messages: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    processed: list[tuple[str, int, int]] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages) + len(self.events) + len(self.processed) + len(self.outbox)


class Redaction:
    """Redaction writes; expects ``self.conn`` (see :class:`bot.adapters.store.Store`)."""

    conn: sqlite3.Connection

    def redact_ticket_rows(self, conn: sqlite3.Connection, ticket_id: int, marker: str,
                           now: datetime, redact_detail: DetailRedactor) -> None:
        """Replace a ticket's personal data with ``marker`` in every table that holds it."""
        params = {"r": marker, "now": utc_iso(now), "id": ticket_id}
        conn.execute("UPDATE tickets SET subject = :r, customer_email = :r, customer_name = :r, "
                     "triage_cues = :r, redacted_at = :now WHERE id = :id", params)
        conn.execute("UPDATE messages SET from_addr = :r, to_addrs = :r, subject = :r, "
                     "body_text = :r, attachments = '[]' WHERE ticket_id = :id", params)
        self._redact_outbox(conn, "ticket_id = ?", (ticket_id,), marker)
        conn.execute("DELETE FROM verifications WHERE ticket_id = ?", (ticket_id,))
        conn.execute("DELETE FROM staff_notices WHERE ticket_id = ?", (ticket_id,))
        conn.execute("UPDATE bounces SET address = ? WHERE ticket_id = ?", (marker, ticket_id))
        rows = conn.execute("SELECT id, detail FROM events WHERE ticket_id = ?",
                            (ticket_id,)).fetchall()
        conn.executemany("UPDATE events SET detail = ? WHERE id = ?",
                         [(redact_detail(detail), event_id) for event_id, detail in rows])

    @staticmethod
    def _redact_outbox(conn: sqlite3.Connection, where: str, params: tuple[Any, ...],
                       marker: str) -> None:
        """Outbox rows matching ``where`` lose bytes and recipients; a pending one fails."""
        conn.execute(f"DELETE FROM outbox_recipients WHERE outbox_id IN "
                     f"(SELECT id FROM outbox WHERE {where})", params)
        # A pending mail without its bytes cannot be sent: mark it failed, with the reason.
        conn.execute(f"UPDATE outbox SET status = 'failed', last_error = 'redacted before "
                     f"sending' WHERE ({where}) AND status = 'pending'", params)
        conn.execute(f"UPDATE outbox SET raw = NULL, recipients = ?, "
                     f"last_error = CASE WHEN last_error IS NULL THEN NULL "
                     f"WHEN last_error = 'redacted before sending' THEN last_error ELSE ? END "
                     f"WHERE {where}", (json.dumps([marker]), marker, *params))

    def redact_address_rows(self, conn: sqlite3.Connection, address: str, marker: str) -> None:
        """Mail ``address`` sent into other people's tickets, its auto-reply counter and
        bounce records."""
        conn.execute("UPDATE messages SET from_addr = :r, to_addrs = :r, subject = :r, "
                     "body_text = :r, attachments = '[]' WHERE lower(from_addr) = :a",
                     {"r": marker, "a": address})
        conn.execute("DELETE FROM outbox_recipients WHERE recipient = ?", (address,))
        conn.execute("DELETE FROM bounces WHERE address = ?", (address,))

    # -- mentions outside the person's tickets ----------------------------------------------
    def find_mentions(self, needles: Sequence[str]) -> Mentions:
        """Messages, events and processed rows whose text contains a needle (exactly, or
        ASCII-case-insensitively). Outbox bytes are MIME-encoded: see
        :meth:`ticketless_outbox`."""
        found = Mentions()
        for needle in needles:
            match = _contains(needle)
            found.messages += [r[0] for r in self.conn.execute(
                f"SELECT id FROM messages WHERE {match('from_addr')} OR {match('to_addrs')} OR "
                f"{match('subject')} OR {match('body_text')} OR {match('message_id')} OR "
                f"{match('in_reply_to')}", _params(needle, 6))]
            found.events += [r[0] for r in self.conn.execute(
                f"SELECT id FROM events WHERE {match('detail')}", _params(needle, 1))]
            found.processed += [tuple(r) for r in self.conn.execute(
                f"SELECT mailbox, uidvalidity, uid FROM processed WHERE "
                f"{match('message_id')} OR {match('reason')}", _params(needle, 2))]
        return Mentions(*(sorted(set(ids)) for ids in (
            found.messages, found.events, found.processed, found.outbox)))

    def ticketless_outbox(self, before: str | None = None) -> Iterator[tuple[int, bytes]]:
        """``(id, raw)`` of outbox mail about no single ticket (escalations, digests,
        summaries, alerts) that still has its bytes; only rows created before ``before``."""
        cursor = self.conn.execute(
            "SELECT id, raw FROM outbox WHERE ticket_id IS NULL AND raw IS NOT NULL "
            "AND (? IS NULL OR created_at < ?) ORDER BY id", (before, before))
        for outbox_id, raw in cursor:
            yield outbox_id, bytes(raw)

    def redact_mentions(self, conn: sqlite3.Connection, mentions: Mentions, marker: str,
                        redact_detail: DetailRedactor) -> None:
        """Redact the rows of ``mentions`` (inside a transaction): text -> ``marker``,
        Message-IDs -> a hash (still unique, no longer readable), events through
        ``redact_detail``, outbox bytes dropped."""
        for row_id in mentions.messages:
            ids = conn.execute("SELECT message_id, in_reply_to FROM messages WHERE id = ?",
                               (row_id,)).fetchone() or (None, None)
            conn.execute(
                "UPDATE messages SET from_addr = :r, to_addrs = :r, subject = :r, "
                "body_text = :r, attachments = '[]', message_id = :m, in_reply_to = :i "
                "WHERE id = :id",
                {"r": marker, "m": hashed(ids[0]), "i": hashed(ids[1]), "id": row_id})
        for event_id in mentions.events:
            row = conn.execute("SELECT detail FROM events WHERE id = ?", (event_id,)).fetchone()
            conn.execute("UPDATE events SET detail = ? WHERE id = ?",
                         (redact_detail(row[0] if row else None), event_id))
        for key in mentions.processed:
            row = conn.execute("SELECT message_id FROM processed WHERE mailbox = ? AND "
                               "uidvalidity = ? AND uid = ?", key).fetchone()
            conn.execute("UPDATE processed SET message_id = ?, reason = CASE WHEN reason IS "
                         "NULL THEN NULL ELSE ? END WHERE mailbox = ? AND uidvalidity = ? "
                         "AND uid = ?", (hashed(row[0] if row else None), marker, *key))
        for outbox_id in mentions.outbox:
            self._redact_outbox(conn, "id = ?", (outbox_id,), marker)

    # -- retention of mail about no single ticket ---------------------------------------------
    def redact_ticketless_before(self, conn: sqlite3.Connection, since: str | None, until: str,
                                 marker: str, redact_detail: DetailRedactor) -> None:
        """Rows about no single ticket created in ``[since, until)``: staff mail loses its
        bytes once settled and its ``messages`` text, events their free text, quarantined
        mail its error text."""
        window = "(:since IS NULL OR {col} >= :since) AND {col} < :until"
        params = {"since": since, "until": until, "r": marker}
        conn.execute("UPDATE outbox SET raw = NULL WHERE ticket_id IS NULL AND raw IS NOT NULL "
                     "AND status != 'pending' AND " + window.format(col="created_at"), params)
        conn.execute("UPDATE messages SET subject = :r, body_text = :r, attachments = '[]' "
                     "WHERE ticket_id IS NULL AND " + window.format(col="created_at"), params)
        rows = conn.execute("SELECT id, detail FROM events WHERE ticket_id IS NULL AND "
                            + window.format(col="at"), params).fetchall()
        conn.executemany("UPDATE events SET detail = ? WHERE id = ?",
                         [(redact_detail(detail), event_id) for event_id, detail in rows])
        conn.execute("UPDATE processed SET reason = :r WHERE ticket_id IS NULL AND "
                     "outcome = 'quarantined' AND " + window.format(col="processed_at"),
                     params)

    # -- files --------------------------------------------------------------------------------
    def compact(self, vacuum: bool = False) -> bool:
        """Copy every commit from the WAL into the file and truncate the WAL (old page
        images in it would otherwise keep redacted text); with ``vacuum`` also rebuild the
        file, so no free page keeps anything. True when the WAL could be emptied (no
        reader held an older snapshot)."""
        if vacuum:
            self.conn.execute("PRAGMA temp_store = MEMORY")  # no temp file with the data
            self.conn.execute("VACUUM")
        busy, _log, _done = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0


def _contains(needle: str) -> Callable[[str], str]:
    """SQL that is true when ``column`` contains the needle (two parameters per use)."""
    return lambda column: f"(instr({column}, ?) > 0 OR instr(lower({column}), ?) > 0)"


def _params(needle: str, uses: int) -> tuple[str, ...]:
    return (needle, needle.lower()) * uses


def hashed(value: str | None) -> str | None:
    """A Message-ID that named a person, replaced by a stable digest."""
    if value is None:
        return None
    return "redacted:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
