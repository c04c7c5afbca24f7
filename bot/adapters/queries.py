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
# The completion clock runs on answered requests too, until a decision closes them.
ACTIVE_STATUSES = (*OPEN_STATUSES, "answered")
_REQUESTS = "('disclosure', 'correction', 'deletion')"
_COMPLETION_ROW_COLUMNS = ("id, ref, category, language, customer_email, status, created_at, "
                           "first_response_at, verification_status, completion_due_at, "
                           "completion_level, extensions")


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

    def mail_ids_to_customer(self, ticket_id: int) -> list[str]:
        """Message-IDs of the bot's own mail to the customer of a ticket (acknowledgement,
        verification mail, relayed staff answers, decision notices): a reply naming one of them
        got our mail."""
        return [r["message_id"] for r in self.rows(
            "SELECT message_id FROM messages WHERE ticket_id = ? AND direction = 'out' "
            "AND kind IN ('acknowledgement', 'verification', 'staff_reply', 'decision') "
            "AND message_id IS NOT NULL", (ticket_id,))]

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

    # -- the completion clock -------------------------------------------------------------
    def completion_unset(self) -> list[dict[str, Any]]:
        """Requests whose completion deadline is not set yet (new, or from before it was)."""
        return self.rows(
            "SELECT id, category, language, bilingual, created_at FROM tickets INDEXED BY "
            "idx_tickets_completion_unset WHERE completion_due_at IS NULL AND category IN "
            f"{_REQUESTS} ORDER BY id")

    def completion_candidates(self, soon_iso: str) -> list[dict[str, Any]]:
        """Requests neither closed nor completed, due by ``soon_iso``, whose overdue notice
        has not gone out (the pure plan decides the level)."""
        marks = ", ".join("?" * len(ACTIVE_STATUSES))
        return self.rows(
            f"SELECT {_COMPLETION_ROW_COLUMNS} FROM tickets INDEXED BY "
            f"idx_tickets_status_completion WHERE status IN ({marks}) AND completion_due_at "
            "<= ? AND completed_at IS NULL AND coalesce(completion_level, 0) < 2 "
            "ORDER BY completion_due_at, ref", (*ACTIVE_STATUSES, soon_iso))

    def answered_uncompleted(self) -> list[dict[str, Any]]:
        """Requests staff answered but did not complete (for the daily digest)."""
        return self.rows(
            f"SELECT {_COMPLETION_ROW_COLUMNS} FROM tickets INDEXED BY "
            "idx_tickets_status_completion WHERE status = 'answered' AND completion_due_at "
            "IS NOT NULL AND completed_at IS NULL ORDER BY completion_due_at, ref")

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

    # -- triage training ------------------------------------------------------------------
    def labelled_tickets(self) -> list[dict[str, Any]]:
        """Tickets whose category staff confirmed: corrected with ``#category``, or closed
        without a correction. Redacted (purged, forgotten) tickets are never training data.
        ``corrected`` is 1 when staff changed the category."""
        return self.rows(
            "SELECT t.id, t.subject, t.category, t.triage_model, m.body_text, "
            "EXISTS (SELECT 1 FROM events e WHERE e.ticket_id = t.id "
            "        AND e.type = 'category_changed') AS corrected "
            "FROM tickets t JOIN messages m ON m.id = (SELECT min(id) FROM messages "
            "  WHERE ticket_id = t.id AND direction = 'in' AND kind = 'customer') "
            "WHERE t.redacted_at IS NULL AND (t.closed_at IS NOT NULL OR EXISTS ("
            "  SELECT 1 FROM events e WHERE e.ticket_id = t.id AND e.type = 'category_changed'))"
            " ORDER BY t.id")

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

    def delayed_outbox_count(self, since_iso: str, until_iso: str) -> int:
        """Mail that waited while sending failed from ``since`` to ``until``: queued by
        ``until`` and neither sent before ``since`` nor given up."""
        return self.count("outbox", "created_at <= ? AND status != 'failed' AND "
                          "(sent_at IS NULL OR sent_at >= ?)", (until_iso, since_iso))

    def pending_outbox_count(self) -> int:
        """Mail still waiting in the outbox."""
        return self.count("outbox", "status = 'pending'")

    def last_outbox_id(self) -> int:
        """The newest outbox row's id (0 when there is none)."""
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]

    def outbox_after(self, outbox_id: int) -> list[dict[str, Any]]:
        """Outbox rows queued after ``outbox_id``, with their bytes (``tick`` lists them)."""
        return self.rows("SELECT id, kind, recipients, raw, status FROM outbox WHERE id > ? "
                         "ORDER BY id", (outbox_id,))

    # -- first start --------------------------------------------------------------------
    def first_run_tally(self, mailbox: str, since: str, quiet_event: str,
                        skip_reason: str) -> tuple[list[str], int]:
        """What a first start on ``mailbox`` begun at ``since`` did, across restarts: the
        refs of the tickets opened without acknowledgement (``quiet_event``), and how many
        mails it skipped (``processed.reason`` starting with ``skip_reason``)."""
        refs = [r["ref"] for r in self.rows(
            "SELECT t.ref FROM events e JOIN tickets t ON t.id = e.ticket_id "
            "WHERE e.type = ? AND e.at >= ? ORDER BY t.id", (quiet_event, since))]
        skipped = self.conn.execute(
            "SELECT count(*) FROM processed WHERE mailbox = ? AND reason LIKE ? "
            "AND processed_at >= ?", (mailbox, f"{skip_reason}%", since)).fetchone()[0]
        return refs, skipped

    def nth_latest_auto_mail(self, n: int) -> str | None:
        """The send time of the ``n``-th latest automatic mail (limits.auto_mail_per_hour)."""
        row = self.conn.execute("SELECT at FROM auto_mail_slots ORDER BY at DESC LIMIT 1 "
                                "OFFSET ?", (n - 1,)).fetchone()
        return row[0] if row else None
