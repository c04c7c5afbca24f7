"""Starts of mailbox messages, so that a mail that kills the worker is not retried forever.

Before a worker handles a mail it records, durably, that it starts it; the mail's own
transaction deletes that record when it is done. A record left behind means a worker died
on the mail, and the next worker's start counts once more (the same worker starting it again
does not count).

The start of the next mail of a batch rides on the transaction that records the current one
as processed: one commit per mail instead of two. It is on disk before that next mail is
touched, exactly as with a transaction of its own; when no such commit came (the mail
failed, or the next one is not the one announced), the start gets its own transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.models import MessageSource
from bot.rules.sla import to_iso as utc_iso

Start = tuple[MessageSource, str, datetime]  # (mail, worker, when)


class Attempts:
    """Start records; expects ``self.transaction()`` (see :class:`bot.adapters.store.Store`),
    which calls :meth:`_write_announced_start` and :meth:`_transaction_ended`."""

    _next_start: Start | None = None               # announced, not yet written
    _unsaved_start: tuple[Start, int] | None = None  # written in a transaction not yet committed
    _saved_start: tuple[Start, int] | None = None    # committed: (start, tries)

    def start_attempt(self, source: MessageSource, worker: str, now: datetime) -> int:
        """Record, before handling, that ``worker`` starts the mail; return how many
        workers started it (the same worker again does not count)."""
        saved, self._saved_start = self._saved_start, None
        if saved is not None and saved[0][:2] == (source, worker):
            return saved[1]
        with self.transaction() as conn:
            return _insert_start(conn, (source, worker, now))

    def announce_start(self, source: MessageSource, worker: str, now: datetime) -> None:
        """The next transaction that records a processed mail also records this start
        (see the module docstring); :meth:`start_attempt` then returns its count."""
        self._next_start = (source, worker, now)

    def withdraw_start(self) -> None:
        """The worker stops before the announced mail: a start written ahead must not count
        as a crash."""
        saved, self._saved_start, self._next_start = self._saved_start, None, None
        if saved is not None:
            self.undo_attempt(saved[0][0], saved[0][1])

    def undo_attempt(self, source: MessageSource, worker: str) -> None:
        """The start did not count (the database failed, the worker did not die): take it
        back, so that the next start (by any worker) counts again."""
        with self.transaction() as conn:
            conn.execute("UPDATE attempts SET tries = tries - 1, worker = NULL WHERE mailbox = ? "
                         "AND uidvalidity = ? AND uid = ? AND worker = ? AND tries > 0",
                         (source.mailbox, source.uidvalidity, source.uid, worker))

    def _write_announced_start(self, conn: sqlite3.Connection) -> None:
        """Inside the transaction that records a processed mail."""
        if self._next_start is not None and self._unsaved_start is None:
            self._unsaved_start = (self._next_start, _insert_start(conn, self._next_start))

    def _transaction_ended(self, committed: bool) -> None:
        unsaved, self._unsaved_start = self._unsaved_start, None
        if committed and unsaved is not None:
            self._saved_start, self._next_start = unsaved, None


def _insert_start(conn: sqlite3.Connection, start: Start) -> int:
    source, worker, now = start
    return conn.execute(
        "INSERT INTO attempts (mailbox, uidvalidity, uid, tries, worker, last_started_at) "
        "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(mailbox, uidvalidity, uid) DO UPDATE SET "
        "tries = tries + (worker IS NOT excluded.worker), worker = excluded.worker, "
        "last_started_at = excluded.last_started_at RETURNING tries",
        (source.mailbox, source.uidvalidity, source.uid, worker, utc_iso(now))).fetchall()[0][0]
