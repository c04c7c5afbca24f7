"""The only module that touches SQLite (with its read queries in :mod:`bot.adapters.queries`):
schema, migrations, transactions and queries.

sqlite-utils creates and migrates the schema (tables, indexes, views); the hot paths use
plain SQL on one connection inside explicit ``BEGIN IMMEDIATE`` transactions, because a
ticket, its message, its processed marker and its outbox row must commit together.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.adapters.attempts import Attempts
from bot.adapters.queries import Queries
from bot.adapters.redaction import Redaction
from bot.adapters.schema import TICKET_COLUMNS, migrate
from bot.errors import TransientError
from bot.models import MessageSource
from bot.rules.sla import to_iso as utc_iso  # the one time format in the database

BUSY_TIMEOUT_MS = 10_000
# Filters of `processed` rows that the digest lists.
QUARANTINED = "outcome = 'quarantined'"
# Ignored as machine mail on its words alone (bot.mail.autogen_content): no header said so.
IGNORED_BY_CONTENT = "outcome = 'ignored' AND reason LIKE '%-content'"


class StoreUnavailable(TransientError):
    """The database cannot be written (locked, read-only, disk full): stop taking mail."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    message_id: str
    ticket_id: int | None
    recipients: list[str]
    raw: bytes
    attempts: int


class Store(Attempts, Queries, Redaction):
    """A connection to the ticket database, migrated on open."""

    def __init__(self, path: Path, max_page_count: int = 0,
                 conn: sqlite3.Connection | None = None) -> None:
        self.path = path
        self.write_lock = None if conn else writer_lock(path)  # a private copy has no rival
        self.conn = conn or _connect(path)
        migrate(self.conn)
        if max_page_count:  # storage.max_page_count: a deterministic "disk full" for tests
            self.conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")

    @classmethod
    def snapshot(cls, path: Path) -> Store:
        """A private in-memory copy of the existing database ``path``, which is only read:
        ``--dry-run`` runs the real passes on it and throws their writes away. Nothing is
        created beside ``path``: ``immutable`` when no WAL is in use, read-only otherwise;
        no file at all when ``path`` does not exist (the copy starts empty)."""
        memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        if not path.exists():
            return cls(path, conn=memory)  # an empty, migrated database: what a run would see
        live = Path(f"{path}-wal").exists()
        uri = f"{path.resolve().as_uri()}?{'mode=ro' if live else 'immutable=1'}"
        try:
            source = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                source.backup(memory)
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read database {path}: {exc}") from exc
        return cls(path, conn=memory)

    def close(self) -> None:
        self.conn.close()

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; raises :class:`StoreUnavailable` if SQLite cannot write.

        The bot's own writers (the worker, its sender process, scheduler threads) first take
        :func:`writer_lock`, so they take turns: SQLite's busy handler sleeps 1, 2, 5 ... 100
        ms between tries, and a writer that commits every few milliseconds starves the one
        that sleeps. Other processes (admin commands) meet SQLite's busy timeout as before."""
        if self.write_lock is None:
            yield from self._write()
            return
        if not self.write_lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise StoreUnavailable(f"database busy: no turn to write within "
                                   f"{BUSY_TIMEOUT_MS // 1000}s")
        try:
            yield from self._write()
        finally:
            self.write_lock.release()

    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"database not writable: {exc}") from exc
        try:
            yield self.conn
            self.conn.execute("COMMIT")
            self._transaction_ended(committed=True)
        except BaseException as exc:
            self._transaction_ended(committed=False)
            self.conn.execute("ROLLBACK") if self.conn.in_transaction else None
            if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not \
                    isinstance(exc, sqlite3.IntegrityError):
                raise StoreUnavailable(f"database write failed: {exc}") from exc
            raise

    # -- processed / checkpoint ---------------------------------------------------------
    def checkpoint(self, mailbox: str) -> tuple[int, int] | None:
        """``(uidvalidity, last_uid)`` seen for ``mailbox``, or None before the first mail."""
        row = self.conn.execute(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = ?", (mailbox,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def processed_uids(self, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> set[int]:
        """The subset of ``uids`` that already has a processed row."""
        found: set[int] = set()
        for chunk in _chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.conn.execute(
                f"SELECT uid FROM processed WHERE mailbox = ? AND uidvalidity = ? "
                f"AND uid IN ({marks})", (mailbox, uidvalidity, *chunk)))
        return found

    def is_known_message(self, message_key: str) -> bool:
        """True if a message with this Message-ID (or raw hash) was processed before."""
        return self.conn.execute(
            "SELECT 1 FROM processed WHERE message_id = ? LIMIT 1", (message_key,)
        ).fetchone() is not None

    def record_processed(self, conn: sqlite3.Connection, source: MessageSource,
                         message_key: str, outcome: str, reason: str | None,
                         ticket_id: int | None, now: datetime) -> None:
        """Mark one mailbox message as done and move the checkpoint (inside a transaction)."""
        conn.execute(
            "INSERT INTO processed (mailbox, uidvalidity, uid, message_id, outcome, reason, "
            "ticket_id, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (source.mailbox, source.uidvalidity, source.uid, message_key, outcome, reason,
             ticket_id, utc_iso(now)))
        conn.execute(
            "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(mailbox) DO UPDATE SET "
            "last_uid = CASE WHEN excluded.uidvalidity = mailbox_state.uidvalidity "
            "THEN max(mailbox_state.last_uid, excluded.last_uid) ELSE excluded.last_uid END, "
            "uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
            (source.mailbox, source.uidvalidity, source.uid, utc_iso(now)))
        conn.execute("DELETE FROM attempts WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
                     (source.mailbox, source.uidvalidity, source.uid))
        self._write_announced_start(conn)

    def processed_since(self, where: str, since: str, limit: int = 50) -> list[dict[str, Any]]:
        """``processed`` rows matching ``where`` (one of this module's filters, e.g.
        :data:`QUARANTINED`) at or after ``since`` (ISO UTC), newest first."""
        return self.rows(f"SELECT mailbox, uid, message_id, reason, processed_at FROM processed "
                         f"WHERE {where} AND processed_at >= ? "
                         f"ORDER BY processed_at DESC, uid DESC LIMIT ?", (since, limit))

    def reset_checkpoint(self, mailbox: str, uidvalidity: int, now: datetime) -> None:
        """UIDVALIDITY changed: start again from UID 0 (known Message-IDs are skipped)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) "
                "VALUES (?, ?, 0, ?) ON CONFLICT(mailbox) DO UPDATE SET "
                "uidvalidity = excluded.uidvalidity, last_uid = 0, "
                "updated_at = excluded.updated_at",
                (mailbox, uidvalidity, utc_iso(now)))

    # -- tickets ------------------------------------------------------------------------
    def create_ticket(self, conn: sqlite3.Connection, prefix: str,
                      **fields: Any) -> tuple[int, str]:
        """Insert a ticket; its ref is derived from its id (``CJD-000123``)."""
        fields = {k: v for k, v in fields.items() if k in TICKET_COLUMNS}
        cols = ", ".join(fields)
        cursor = conn.execute(
            f"INSERT INTO tickets (ref, {cols}) VALUES (NULL, {', '.join('?' * len(fields))})",
            tuple(fields.values()))
        ticket_id = int(cursor.lastrowid or 0)
        ref = f"{prefix}-{ticket_id:06d}"
        conn.execute("UPDATE tickets SET ref = ? WHERE id = ?", (ref, ticket_id))
        return ticket_id, ref

    def update_ticket(self, conn: sqlite3.Connection, ticket_id: int, **fields: Any) -> None:
        """Set columns of one ticket (inside a transaction)."""
        unknown = set(fields) - set(TICKET_COLUMNS)
        if unknown:
            raise ValueError(f"unknown ticket columns: {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE tickets SET {assignments} WHERE id = ?",
                     (*fields.values(), ticket_id))

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        return _one(self.conn, "SELECT * FROM tickets WHERE id = ?", (ticket_id,))

    def ticket_by_ref(self, ref: str) -> dict[str, Any] | None:
        return _one(self.conn, "SELECT * FROM tickets WHERE ref = ?", (ref,))

    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> dict[str, Any] | None:
        """The ticket that any of ``message_ids`` (In-Reply-To/References) belongs to."""
        ids = [m for m in message_ids if m][-50:]
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        return _one(self.conn,
                    f"SELECT t.* FROM messages m JOIN tickets t ON t.id = m.ticket_id "
                    f"WHERE m.message_id IN ({marks}) ORDER BY m.id DESC LIMIT 1", tuple(ids))

    def add_message(self, conn: sqlite3.Connection, **fields: Any) -> int:
        """Insert a ``messages`` row (inside a transaction)."""
        return _insert(conn, "messages", fields)

    def add_event(self, conn: sqlite3.Connection, ticket_id: int | None, at: datetime,
                  type_: str, detail: str | dict[str, Any] = "") -> None:
        """Append to the audit log (inside a transaction)."""
        text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
        _insert(conn, "events", {"ticket_id": ticket_id, "at": utc_iso(at), "type": type_,
                                 "detail": text})

    # -- outbox -------------------------------------------------------------------------
    def enqueue(self, conn: sqlite3.Connection, *, message_id: str, ticket_id: int | None,
                recipients: Sequence[str], raw: bytes, kind: str, now: datetime,
                sensitive: bool = False, not_before: datetime | None = None) -> int:
        """Queue one outgoing mail (inside the transaction that decided to send it).

        ``sensitive`` rows (they carry a verification code) lose their raw bytes once sent,
        so the code exists in the database only as a hash. ``not_before`` holds the mail
        until then (the global cap on automatic mail).
        """
        return _insert(conn, "outbox", {
            "message_id": message_id, "ticket_id": ticket_id,
            "recipients": json.dumps(list(recipients)), "raw": raw, "kind": kind,
            "sensitive": int(sensitive),
            "status": "pending", "attempts": 0, "created_at": utc_iso(now),
            "next_attempt_at": utc_iso(not_before or now)})

    def due_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        """Pending mail whose next attempt is due, oldest first."""
        rows = self.conn.execute(
            "SELECT id, message_id, ticket_id, recipients, raw, attempts FROM outbox "
            "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (utc_iso(now), limit)).fetchall()
        return [OutboxRow(r[0], r[1], r[2], json.loads(r[3]), bytes(r[4]), r[5]) for r in rows]

    def mark_outbox(self, outbox_id: int, status: str, now: datetime, error: str | None = None,
                    next_attempt_at: datetime | None = None) -> None:
        """Record the result of one send attempt."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = :status, attempts = attempts + 1, last_error = :error, "
                "next_attempt_at = COALESCE(:next, next_attempt_at), "
                "sent_at = CASE WHEN :status = 'sent' THEN :now ELSE sent_at END, "
                "raw = CASE WHEN :status != 'pending' AND sensitive = 1 THEN NULL ELSE raw END "
                "WHERE id = :id",
                {"status": status, "error": error, "now": utc_iso(now), "id": outbox_id,
                 "next": utc_iso(next_attempt_at) if next_attempt_at else None})

    def recent_auto_mail_count(self, recipient: str, since: datetime) -> int:
        """Automatic mails queued to ``recipient`` since ``since`` (loop and abuse cap)."""
        return self.conn.execute(
            "SELECT count(*) FROM outbox_recipients WHERE recipient = ? AND created_at >= ?",
            (recipient.lower(), utc_iso(since))).fetchone()[0]

    def add_outbox_recipients(self, conn: sqlite3.Connection, outbox_id: int,
                              recipients: Sequence[str], now: datetime) -> None:
        """Index recipients of an automatic mail so the per-recipient cap is one lookup."""
        conn.executemany(
            "INSERT INTO outbox_recipients (outbox_id, recipient, created_at) VALUES (?, ?, ?)",
            [(outbox_id, r.lower(), utc_iso(now)) for r in recipients])

    # -- loop safety and verification ----------------------------------------------------
    def ticket_auto_mail_count(self, ticket_id: int, since: datetime) -> int:
        """Automatic customer mails queued on one ticket since ``since`` (per-ticket cap)."""
        return self.conn.execute(
            "SELECT count(DISTINCT o.id) FROM outbox o JOIN outbox_recipients r "
            "ON r.outbox_id = o.id WHERE o.ticket_id = ? AND r.created_at >= ?",
            (ticket_id, utc_iso(since))).fetchone()[0]

    def outbox_recipients_of(self, message_id: str) -> list[str]:
        """Recipients of the outgoing mail with this Message-ID ([] if we never sent it)."""
        row = self.conn.execute("SELECT recipients FROM outbox WHERE message_id = ?",
                                (message_id,)).fetchone()
        return json.loads(row[0]) if row else []

    def add_bounce(self, conn: sqlite3.Connection, *, address: str, ticket_id: int | None,
                   original_message_id: str, status: str, permanent: bool,
                   now: datetime) -> None:
        """Remember that mail to ``address`` bounced (inside a transaction)."""
        _insert(conn, "bounces", {"address": address.lower(), "ticket_id": ticket_id,
                                  "original_message_id": original_message_id,
                                  "status": status, "permanent": int(permanent),
                                  "at": utc_iso(now)})

    def bounced_permanently_since(self, address: str, since: datetime) -> bool:
        """True if mail to ``address`` bounced permanently at or after ``since``."""
        return self.conn.execute(
            "SELECT 1 FROM bounces WHERE address = ? AND permanent = 1 AND at >= ? LIMIT 1",
            (address.lower(), utc_iso(since))).fetchone() is not None

    def verification(self, ticket_id: int) -> dict[str, Any] | None:
        """The ``verifications`` row of a ticket, or None."""
        return _one(self.conn, "SELECT * FROM verifications WHERE ticket_id = ?", (ticket_id,))

    def add_verification(self, conn: sqlite3.Connection, ticket_id: int, code_hash: str,
                         expires_at: datetime, attempts: int, now: datetime) -> None:
        """Store a ticket's one-time code (its digest only) with expiry and tries allowed,
        replacing an earlier code of the ticket (tries: threaded replies and ref-only ones)."""
        conn.execute("DELETE FROM verifications WHERE ticket_id = ?", (ticket_id,))
        _insert(conn, "verifications", {
            "ticket_id": ticket_id, "code_hash": code_hash, "expires_at": utc_iso(expires_at),
            "attempts_left": attempts, "unthreaded_attempts_left": attempts,
            "created_at": utc_iso(now)})

    def update_verification(self, conn: sqlite3.Connection, ticket_id: int,
                            **fields: Any) -> None:
        """Set columns of a ticket's ``verifications`` row (inside a transaction)."""
        assignments = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE verifications SET {assignments} WHERE ticket_id = ?",
                     (*fields.values(), ticket_id))

    def pending_verifications(self) -> list[dict[str, Any]]:
        """Open tickets still waiting for the customer's code, with their code row."""
        return self.rows(
            "SELECT t.*, v.expires_at AS code_expires_at, v.created_at AS code_created_at, "
            "v.reminded_at AS code_reminded_at FROM tickets t "
            "JOIN verifications v ON v.ticket_id = t.id "
            "WHERE t.verification_status = 'pending' AND t.closed_at IS NULL ORDER BY t.id")

    # -- redaction: bot.adapters.redaction (mixed in); bot.flows.audit decides ----------

    # -- staff notices per sender (bot.flows.notify_limits) ---------------------------------------
    # The sender is the ticket's customer_email (a follow-up joins only its sender's
    # ticket), so redacting a ticket also redacts its notices.
    def log_staff_notice(self, conn: sqlite3.Connection, *, ticket_id: int, held: bool,
                         now: datetime) -> None:
        """Record a staff notice about a ticket: sent now, or held for the summary."""
        _insert(conn, "staff_notices", {"ticket_id": ticket_id, "held": int(held),
                                        "at": utc_iso(now)})

    def staff_notices_since(self, sender: str, since: datetime) -> int:
        """Notices about ``sender``'s tickets sent individually (not held) since ``since``."""
        return self.conn.execute(
            "SELECT count(*) FROM tickets t JOIN staff_notices n ON n.ticket_id = t.id "
            "WHERE t.customer_email = ? AND n.at >= ? AND n.held = 0",
            (sender, utc_iso(since))).fetchone()[0]

    def held_staff_notices(self) -> list[dict[str, Any]]:
        """Held notices not yet summarized (id, at, ref, sender), grouped by sender."""
        return self.rows(
            "SELECT n.id, n.at, t.ref, t.customer_email AS sender FROM staff_notices n "
            "JOIN tickets t ON t.id = n.ticket_id WHERE n.held = 1 AND n.summarized_at IS NULL "
            "ORDER BY t.customer_email, n.id")

    def last_summary_at(self, sender: str) -> str | None:
        """When the last summary about ``sender`` went out (ISO UTC), or None."""
        return self.conn.execute(
            "SELECT max(n.summarized_at) FROM tickets t JOIN staff_notices n "
            "ON n.ticket_id = t.id WHERE t.customer_email = ?", (sender,)).fetchone()[0]

    def mark_summarized(self, conn: sqlite3.Connection, notice_ids: Sequence[int],
                        now: datetime) -> None:
        """The held notices went out in a summary (inside the summary's transaction)."""
        for chunk in _chunks(list(notice_ids), 500):
            conn.execute(f"UPDATE staff_notices SET summarized_at = ? WHERE id IN "
                         f"({','.join('?' * len(chunk))})", (utc_iso(now), *chunk))

    def prune_staff_notices(self, conn: sqlite3.Connection, before: datetime) -> None:
        """Forget settled notices older than ``before`` (they only matter for an hour)."""
        conn.execute("DELETE FROM staff_notices WHERE at < ? AND "
                     "(held = 0 OR summarized_at IS NOT NULL)", (utc_iso(before),))

    # -- job state ----------------------------------------------------------------------
    def job_state(self, key: str) -> str | None:
        """A fact a scheduled job remembers across restarts (e.g. the last digest date)."""
        row = self.conn.execute("SELECT value FROM job_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def add_auto_mail_slot(self, conn: sqlite3.Connection, at: str, drop_before: str) -> None:
        """Record an automatic mail's send time; forget those that no longer count."""
        conn.execute("INSERT INTO auto_mail_slots (at) VALUES (?)", (at,))
        conn.execute("DELETE FROM auto_mail_slots WHERE at < ?", (drop_before,))

    def set_job_state(self, conn: sqlite3.Connection, key: str, value: str,
                      now: datetime) -> None:
        """Remember ``value`` under ``key`` (inside the transaction that did the job)."""
        conn.execute(
            "INSERT INTO job_state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at", (key, value, utc_iso(now)))


# -- helpers -----------------------------------------------------------------------------

# The umask is per process: without the lock, scheduler threads opening their stores at the
# same moment can restore each other's umask and leave the whole process at 077.
_UMASK_LOCK = threading.Lock()


def writer_lock(path: Path) -> Any:
    """The lock the writers of ``path`` in this process, and in the processes it forks
    (the ``once`` sender), take in turn before SQLite's own (see :meth:`Store.transaction`).

    A ``multiprocessing`` RLock: a POSIX semaphore that hands over at once and takes a
    timeout, re-entrant for a thread that already holds it. Made when the first store of
    ``path`` opens, so a process forked after that shares it. Where semaphores are missing
    (no /dev/shm) a thread lock still orders this process's own threads."""
    key = str(path)
    lock = _WRITER_LOCKS.get(key)
    if lock is None:
        try:
            lock = multiprocessing.get_context("fork").RLock()
        except (OSError, ValueError, ImportError):
            lock = threading.RLock()
        lock = _WRITER_LOCKS.setdefault(key, lock)
    return lock


_WRITER_LOCKS: dict[str, Any] = {}


def _connect(path: Path) -> sqlite3.Connection:
    """Open (creating owner-only) with WAL and a busy timeout, in autocommit mode."""
    with _UMASK_LOCK:
        return _connect_owner_only(path)


def _connect_owner_only(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old_umask = os.umask(0o077)  # -wal and -shm inherit the owner-only mode too
    try:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted and overwritten content is zeroed, not left in free space (redaction).
        conn.execute("PRAGMA secure_delete = ON")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
    finally:
        os.umask(old_umask)
    return conn


def _insert(conn: sqlite3.Connection, table: str, fields: dict[str, Any]) -> int:
    cols = ", ".join(fields)
    cursor = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(fields))})",
                          tuple(fields.values()))
    return int(cursor.lastrowid or 0)


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    cursor = conn.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
