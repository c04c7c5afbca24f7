"""The ticket store: schema, permissions, WAL, transactions, checkpoint and outbox."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlite_utils

from bot.adapters.store import Store, StoreUnavailable, utc_iso
from bot.models import MessageSource
from bot.ops.worker import AlreadyRunning, Backoff, plan_batches, worker_lock

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "tickets.db")
    yield s
    s.close()


def test_database_and_wal_are_owner_only(tmp_path, store):
    for name in ("tickets.db", "tickets.db-wal", "tickets.db-shm"):
        mode = stat.S_IMODE(os.stat(tmp_path / "state" / name).st_mode)
        assert mode == 0o600, name
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_schema_has_the_contract_columns(store):
    columns = {t: {c.name for c in sqlite_utils.Database(store.conn)[t].columns} for t in
               ("tickets", "messages", "events", "outbox", "processed")}
    assert {"id", "ref", "category", "language", "status", "subject", "customer_email",
            "customer_name", "created_at", "due_at", "first_response_at", "closed_at",
            "escalation_level", "verification_status"} <= columns["tickets"]
    assert {"id", "ticket_id", "direction", "kind", "message_id", "in_reply_to", "from_addr",
            "to_addrs", "subject", "body_text", "created_at"} <= columns["messages"]
    assert {"id", "ticket_id", "at", "type", "detail"} <= columns["events"]
    assert {"id", "message_id", "ticket_id", "recipients", "raw", "status", "attempts",
            "next_attempt_at", "last_error"} <= columns["outbox"]
    assert {"mailbox", "uidvalidity", "uid", "message_id", "outcome", "reason",
            "processed_at"} <= columns["processed"]


def test_migrations_run_once(tmp_path, store):
    again = Store(tmp_path / "state" / "tickets.db")
    versions = again.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert versions == len(__import__("bot.adapters.schema").adapters.schema.MIGRATIONS)
    again.close()


def test_refs_follow_ids(store):
    with store.transaction() as conn:
        refs = [store.create_ticket(conn, "CJD", status="open", created_at=utc_iso(NOW))[1]
                for _ in range(3)]
    assert refs == ["CJD-000001", "CJD-000002", "CJD-000003"]


def test_a_failed_transaction_leaves_nothing(store):
    source = MessageSource("INBOX", 7, 1)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.create_ticket(conn, "CJD", status="open", created_at=utc_iso(NOW))
        store.record_processed(conn, source, "<a@x>", "ticket", None, 1, NOW)
        raise RuntimeError("crash before commit")
    assert store.count("tickets") == 0 and store.count("processed") == 0
    assert store.checkpoint("INBOX") is None


def test_checkpoint_moves_forward_and_resets_on_new_uidvalidity(store):
    for uid in (3, 1, 5):
        with store.transaction() as conn:
            store.record_processed(conn, MessageSource("INBOX", 7, uid), f"<{uid}@x>",
                                   "ignored", "test", None, NOW)
    assert store.checkpoint("INBOX") == (7, 5)
    assert store.processed_uids("INBOX", 7, [1, 2, 3, 4, 5]) == {1, 3, 5}
    store.reset_checkpoint("INBOX", 8, NOW)
    assert store.checkpoint("INBOX") == (8, 0)
    assert store.is_known_message("<3@x>")


def test_outbox_retry_and_sensitive_raw_is_dropped_once_sent(store):
    with store.transaction() as conn:
        first = store.enqueue(conn, message_id="<1@c>", ticket_id=None, recipients=["a@x"],
                              raw=b"code 12345678", kind="acknowledgement", now=NOW,
                              sensitive=True)
    assert [r.id for r in store.due_outbox(NOW)] == [first]
    store.mark_outbox(first, "pending", NOW, "451 try later", NOW + timedelta(minutes=1))
    assert store.due_outbox(NOW) == []
    assert [r.attempts for r in store.due_outbox(NOW + timedelta(minutes=2))] == [1]
    store.mark_outbox(first, "sent", NOW + timedelta(minutes=2))
    assert store.rows("SELECT status, raw, sent_at FROM outbox") == [
        {"status": "sent", "raw": None, "sent_at": "2026-11-24T03:02:00Z"}]


def test_query_only_connection_makes_writes_unavailable(store):
    store.conn.execute("PRAGMA query_only = 1")
    with pytest.raises(StoreUnavailable), store.transaction() as conn:
        store.create_ticket(conn, "CJD", status="open", created_at=utc_iso(NOW))


@pytest.mark.parametrize("sizes, max_count, expected", [
    ({1: 10, 2: 10, 3: 10}, 2, [[1, 2], [3]]),
    ({1: 10, 2: 7_000_000, 3: 7_000_000, 4: 10}, 50, [[1, 2], [3, 4]]),
    ({1: 30_000_000, 2: 10}, 50, [[1], [2]]),
    ({}, 50, []),
])
def test_batches_are_bounded_by_count_and_bytes(sizes, max_count, expected):
    assert list(plan_batches(list(sizes), sizes, max_count, 25_000_000)) == expected


def test_backoff_is_capped_exponential():
    backoff = Backoff(1, 8)
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next() == 1


def test_second_worker_on_the_same_database_refuses(tmp_path):
    db = tmp_path / "tickets.db"
    code = ("import sys; from pathlib import Path; from bot.ops.worker import worker_lock, "
            "AlreadyRunning\ntry:\n  with worker_lock(Path(sys.argv[1])): pass\n"
            "except AlreadyRunning: sys.exit(3)")
    with worker_lock(db):
        other = subprocess.run([sys.executable, "-c", code, str(db)])
        assert other.returncode == 3
        with pytest.raises(AlreadyRunning), worker_lock(db):
            pass
    assert subprocess.run([sys.executable, "-c", code, str(db)]).returncode == 0


def test_writers_of_one_database_take_turns(tmp_path, monkeypatch):
    """The bot's writers queue on one lock (bot.adapters.store.writer_lock) before SQLite's:
    a writer waits for its turn, and gives up as unavailable after the busy timeout."""
    from bot.adapters import store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "tickets.db"
    first, second = Store(path), Store(path)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction() as conn:
            first.set_job_state(conn, "k", "first", datetime.now(UTC))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    with pytest.raises(StoreUnavailable, match="no turn to write"), second.transaction():
        pass
    release.set()
    holder.join(10)
    with second.transaction() as conn:
        second.set_job_state(conn, "k", "second", datetime.now(UTC))
    assert second.job_state("k") == "second"
    assert not list(tmp_path.glob("*lock*"))  # nothing beside the database
