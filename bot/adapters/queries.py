"""The store's read queries for reports, routing and the demo: part of :class:`Store`
(mixed in), so that the store stays the only place that writes SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

OPEN_STATUSES = ("open", "reopened", "waiting_customer")
ESCALATION_MAX_LEVEL = 3
OUTBOX_EXPORT_COLUMNS = ("id", "message_id", "kind", "recipients", "sensitive", "status",
                         "attempts", "next_attempt_at", "last_error", "created_at", "sent_at")
_TICKET_ROW_COLUMNS = ("ref, category, customer_email, status, created_at, due_at, "
                       "escalate_at, hard_at, first_response_at, escalation_level, "
                       "last_activity_at")
# After ANALYZE, SQLite sees two common statuses and prefers a full scan; with 99% closed
# tickets that scan is what makes a pass slow. The status index keeps the cost at the open
# tickets whatever the statistics say (and fails loudly if the index is ever dropped).
_OPEN_TICKETS = "tickets INDEXED BY idx_tickets_status_due"
_OPEN_MARKS = ", ".join("?" * len(OPEN_STATUSES))


class Queries:
    """Read-only queries; expects ``self.conn`` (see :class:`bot.adapters.store.Store`)."""

    conn: sqlite3.Connection

    def count(self, table: str, where: str = "1", params: Sequence[Any] = ()) -> int:
        """Row count, for reports and tests."""
        return self.conn.execute(f"SELECT count(*) FROM [{table}] WHERE {where}",
                                 tuple(params)).fetchone()[0]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query and return dict rows."""
        cursor = self.conn.execute(sql, tuple(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- conversation ---------------------------------------------------------------------
    def customer_message_ids(self, ticket_id: int) -> list[str]:
        """Message-IDs of the customer's inbound mail on a ticket, oldest first."""
        return [r["message_id"] for r in self.rows(
            "SELECT message_id FROM messages WHERE ticket_id = ? AND kind = 'customer' "
            "AND direction = 'in' AND message_id IS NOT NULL ORDER BY id", (ticket_id,))]

    def first_notification_id(self, ticket_id: int) -> str | None:
        """Message-ID of the first staff notification about a ticket (to thread under)."""
        rows = self.rows("SELECT message_id FROM messages WHERE ticket_id = ? AND "
                         "kind = 'notification' ORDER BY id LIMIT 1", (ticket_id,))
        return rows[0]["message_id"] if rows else None

    def events_since(self, event_type: str, since: str, ticket_id: int | None = None) -> int:
        """How many ``event_type`` events (of ``ticket_id``, or of any ticket) since ``since``."""
        if ticket_id is None:
            return self.count("events", "type = ? AND at >= ?", (event_type, since))
        return self.count("events", "ticket_id = ? AND type = ? AND at >= ?",
                          (ticket_id, event_type, since))

    def last_wait_event(self, ticket_id: int) -> dict[str, Any] | None:
        """The newest ``waiting_started``/``waiting_ended`` event of a ticket."""
        rows = self.rows("SELECT type, at FROM events WHERE ticket_id = ? AND type IN "
                         "('waiting_started', 'waiting_ended') ORDER BY id DESC LIMIT 1",
                         (ticket_id,))
        return rows[0] if rows else None

    # -- escalation and digest ------------------------------------------------------------
    def escalation_candidates(self, now_iso: str, level3_iso: str) -> list[dict[str, Any]]:
        """Open, unanswered tickets whose next escalation level may be due.

        A superset of what :func:`bot.rules.escalation.due_level` accepts (``<=`` where the
        plan uses ``<``), so the pure plan still decides.
        """
        return self.rows(
            f"SELECT {_TICKET_ROW_COLUMNS} FROM {_OPEN_TICKETS} WHERE status IN ({_OPEN_MARKS}) "
            "AND first_response_at IS NULL AND ((escalation_level < 1 AND escalate_at <= ?) "
            "OR (escalation_level < 2 AND hard_at <= ?) "
            f"OR (escalation_level < {ESCALATION_MAX_LEVEL} AND hard_at <= ?))",
            (*OPEN_STATUSES, now_iso, now_iso, level3_iso))

    def open_ticket_rows(self) -> list[dict[str, Any]]:
        """Every open ticket (answered or not, any level), for the daily digest."""
        return self.rows(f"SELECT {_TICKET_ROW_COLUMNS} FROM {_OPEN_TICKETS} "
                         f"WHERE status IN ({_OPEN_MARKS})", OPEN_STATUSES)

    # -- audit ----------------------------------------------------------------------------
    def ticket_history(self, ticket_id: int) -> dict[str, list[dict[str, Any]]]:
        """Every row about one ticket, for ``export`` (outbox without raw bytes or hashes)."""
        return {
            "messages": self.rows("SELECT * FROM messages WHERE ticket_id = ? ORDER BY id",
                                  (ticket_id,)),
            "events": self.rows("SELECT * FROM events WHERE ticket_id = ? ORDER BY id",
                                (ticket_id,)),
            "outbox": self.rows(f"SELECT {', '.join(OUTBOX_EXPORT_COLUMNS)} FROM outbox "
                                "WHERE ticket_id = ? ORDER BY id", (ticket_id,)),
            "verification": self.rows(
                "SELECT created_at, expires_at, attempts_left, reminded_at FROM verifications "
                "WHERE ticket_id = ?", (ticket_id,)),
            "processed": self.rows(
                "SELECT mailbox, uidvalidity, uid, message_id, outcome, reason, processed_at "
                "FROM processed WHERE ticket_id = ? ORDER BY processed_at, uid", (ticket_id,)),
        }

    def closed_unredacted_before(self, cutoff_iso: str) -> list[dict[str, Any]]:
        """``id, ref`` of tickets closed before ``cutoff_iso`` and not yet redacted."""
        return self.rows("SELECT id, ref FROM tickets WHERE closed_at IS NOT NULL "
                         "AND closed_at < ? AND redacted_at IS NULL ORDER BY id", (cutoff_iso,))

    def tickets_of(self, address: str) -> list[dict[str, Any]]:
        """``id, ref`` of the unredacted tickets of a customer address."""
        return self.rows("SELECT id, ref FROM tickets WHERE lower(customer_email) = ? "
                         "AND redacted_at IS NULL ORDER BY id", (address,))

    def open_refs_of(self, address: str) -> list[str]:
        """Refs of a customer's open tickets."""
        return [r["ref"] for r in self.rows(
            "SELECT ref FROM open_tickets WHERE lower(customer_email) = ? ORDER BY ref",
            (address,))]

    # -- demo live table ------------------------------------------------------------------
    def processed_after(self, rowid: int) -> list[dict[str, Any]]:
        """``processed`` rows after ``rowid`` with their ticket's triage, oldest first."""
        return self.rows(
            "SELECT p.rowid AS rowid, p.processed_at, p.outcome, p.reason, t.ref, t.category, "
            "t.language, t.customer_email, t.needs_review FROM processed p "
            "LEFT JOIN tickets t ON t.id = p.ticket_id WHERE p.rowid > ? ORDER BY p.rowid",
            (rowid,))

    def settled_outbox(self) -> list[dict[str, Any]]:
        """Outbox rows that were sent or failed, with their ticket's ref."""
        return self.rows(
            "SELECT o.id, o.kind, o.status, o.sent_at, o.next_attempt_at, o.recipients, "
            "o.last_error, t.ref FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id "
            "WHERE o.status != 'pending' ORDER BY o.id")

    def pending_outbox_count(self) -> int:
        """Mail still waiting in the outbox."""
        return self.count("outbox", "status = 'pending'")
