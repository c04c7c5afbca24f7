"""Audit export, retention purge and `forget` on a database the real pipeline filled; the
owner-only permissions of the database files."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botenv import BOT, customer_mail, query, scalar, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.config import load_settings
from bot.flows import audit
from bot.ops.cli import main

pytestmark = pytest.mark.integration

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def pipeline(tmp_path, imap_server, smtp_server, monkeypatch) -> tuple[Path, Path]:
    """Alice's deletion request and Bob's question, taken by `once`; returns (config, db)."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail(
        "Please delete my account", "Hello, please delete my account and all my personal "
        "data. My phone is 090-1234-5678.\nAlice", sender=ALICE, name="Alice Tanaka"))
    imap_server.append(BOT, customer_mail(
        "Question", "What personal data do you keep about me?", sender=BOB, name="Bob Lee"))
    assert main(["--config", str(config), "once"]) == 0
    return config, tmp_path / "state" / "tickets.db"


def close_ticket(db: Path, email: str, days_ago: int) -> None:
    closed = (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tickets SET status = 'closed', closed_at = ? "
                     "WHERE customer_email = ?", (closed, email))


def every_text_value(db: Path) -> list[str]:
    """Every text and blob value in every table: where personal data could hide."""
    values = []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM [{table}]"):
                values += [v.decode(errors="replace") if isinstance(v, bytes) else v
                           for v in row if isinstance(v, str | bytes)]
    return values


def test_export_prints_history_without_raw_mail(pipeline, capsys):
    config, db = pipeline
    capsys.readouterr()
    assert main(["--config", str(config), "export", "CJD-000001"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ticket"]["customer_email"] == ALICE
    assert [(m["direction"], m["kind"]) for m in data["messages"]] == [
        ("in", "customer"), ("out", "acknowledgement"), ("out", "notification")]
    assert "delete my account" in data["messages"][0]["body_text"]
    assert data["events"][0]["type"] == "ticket_created"
    assert data["events"][0]["detail"]["category"] == "deletion"
    assert {o["kind"] for o in data["outbox"]} == {"acknowledgement", "notification"}
    assert all("raw" not in o for o in data["outbox"])
    assert all(isinstance(o["recipients"], list) for o in data["outbox"])
    assert data["verification"] and "code_hash" not in data["verification"][0]
    assert [p["outcome"] for p in data["processed"]] == ["ticket"]
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'exported'") == 1


def test_export_of_unknown_ref_fails(pipeline, capsys):
    config, _ = pipeline
    assert main(["--config", str(config), "export", "CJD-999999"]) == 1
    assert "no ticket CJD-999999" in capsys.readouterr().err


def test_purge_redacts_only_tickets_closed_past_retention(pipeline, capsys):
    config, db = pipeline
    close_ticket(db, ALICE, days_ago=400)
    close_ticket(db, BOB, days_ago=10)
    before = query(db, "SELECT * FROM tickets ORDER BY id")
    kept = "ref, category, language, status, created_at, due_at, closed_at"
    statistics = query(db, f"SELECT {kept} FROM tickets WHERE id = 1")
    capsys.readouterr()

    assert main(["--config", str(config), "purge", "--dry-run"]) == 0
    assert capsys.readouterr().out == "CJD-000001\twould redact\n"
    assert query(db, "SELECT * FROM tickets ORDER BY id") == before

    assert main(["--config", str(config), "purge"]) == 0
    assert capsys.readouterr().out == "CJD-000001\tredacted\n"
    assert query(db, f"SELECT {kept} FROM tickets WHERE id = 1") == statistics
    assert query(db, "SELECT subject, customer_email, customer_name, redacted_at IS NOT NULL "
                     "FROM tickets WHERE id = 1") == [(audit.REDACTED,) * 3 + (1,)]
    text = "\n".join(every_text_value(db))
    for personal in (ALICE, "Alice Tanaka", "090-1234-5678"):
        assert personal not in text
    assert scalar(db, "SELECT body_text FROM messages WHERE ticket_id = 2 "
                      "AND kind = 'customer'").startswith("What personal data")
    assert scalar(db, "SELECT count(*) FROM outbox WHERE ticket_id = 1 AND raw IS NOT NULL") \
        == 0
    assert scalar(db, "SELECT count(*) FROM verifications WHERE ticket_id = 1") == 0
    assert json.loads(scalar(db, "SELECT detail FROM events WHERE ticket_id = 1 AND type = "
                                 "'personal_data_redacted'")) == {
        "reason": "retention", "days_after_close": 365}

    assert main(["--config", str(config), "purge"]) == 0  # nothing twice
    assert capsys.readouterr().out == ""


def test_scheduled_purge_uses_the_configured_retention(pipeline):
    config, db = pipeline
    close_ticket(db, BOB, days_ago=40)
    settings = load_settings(config, require_secrets=False)
    store = Store(db)
    try:
        report = audit.scheduled_purge(settings, lambda: datetime.now(UTC))(store)
        assert report.refs == []  # 40 days < 365
        short = settings.__class__(**{**settings.__dict__, "retention":
                                      settings.retention.__class__(days_after_close=30)})
        report = audit.scheduled_purge(short, lambda: datetime.now(UTC))(store)
        assert report.refs == ["CJD-000002"]
    finally:
        store.close()


def test_worker_schedules_retention(pipeline):
    from bot.ops.worker import Worker

    config, _ = pipeline
    worker = Worker(load_settings(config, require_secrets=False))
    scheduler = worker._start_scheduler()
    try:
        assert scheduler.get_job("retention") is not None
    finally:
        scheduler.shutdown(wait=True)
        worker.store.close()


def test_forget_refuses_while_a_ticket_is_open(pipeline, capsys):
    config, db = pipeline
    before = every_text_value(db)
    assert main(["--config", str(config), "forget", ALICE]) == 1
    assert "open ticket(s) CJD-000001" in capsys.readouterr().err
    assert every_text_value(db) == before


def test_forget_after_close_removes_the_customer_everywhere(pipeline, capsys):
    config, db = pipeline
    close_ticket(db, ALICE, days_ago=1)
    capsys.readouterr()
    assert main(["--config", str(config), "forget", ALICE.upper()]) == 0
    out, log = capsys.readouterr()  # the CLI logs to stderr
    assert out == "CJD-000001\tredacted\n"
    text = "\n".join(every_text_value(db))
    for personal in (ALICE, "Alice Tanaka", "090-1234-5678", "delete my account"):
        assert personal not in text
    assert BOB in text  # nobody else is touched
    assert "forget: redacted 1 ticket(s) (CJD-000001)" in log
    assert ALICE not in log.lower()
    assert query(db, "SELECT category, language, status FROM tickets WHERE id = 1") == [
        ("deletion", "en", "closed")]
    assert json.loads(scalar(db, "SELECT detail FROM events WHERE type = 'forget_request'")) \
        == {"tickets": 1, "forced": False, "rows": 0}


def test_forget_force_closes_and_redacts_open_tickets(pipeline, capsys):
    config, db = pipeline
    assert main(["--config", str(config), "forget", "--force", BOB]) == 0
    assert capsys.readouterr().out == "CJD-000002\tredacted (was open: closed)\n"
    assert query(db, "SELECT status, customer_email FROM tickets WHERE id = 2") == [
        ("closed", audit.REDACTED)]
    assert BOB not in "\n".join(every_text_value(db))
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'pending' "
                      "AND ticket_id = 2") == 0


def test_database_and_wal_are_owner_only(pipeline):
    _, db = pipeline
    store = Store(db)  # an open connection keeps -wal and -shm in place
    try:
        store.rows("SELECT count(*) FROM tickets")
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    finally:
        store.close()


# -- forgetting means gone (issue 14) -------------------------------------------------------

def _staff_mail_about_alice(config: Path, db: Path, imap_server) -> None:
    """What names Alice outside her ticket: escalation and digest mail (base64 bodies),
    an out-of-office reply whose Message-ID holds her address (a processed row without a
    ticket), and an event without a ticket."""
    from bot.flows import escalation

    settings = load_settings(config, require_secrets=False)
    imap_server.append(BOT, customer_mail("Out of office", "Back on Monday.", sender=ALICE,
                                          message_id=f"<ooo.{ALICE}>",
                                          headers={"Auto-Submitted": "auto-replied"}))
    assert main(["--config", str(config), "once"]) == 0
    store = Store(db)
    try:
        later = datetime.now(UTC) + timedelta(days=30)
        for day in range(7):  # a business day at 10:00 in Tokyo: level 2 and the digest
            escalation.run_all(store, settings, later.replace(hour=1) + timedelta(days=day),
                               dry_run=False)
        with store.transaction() as conn:
            store.add_event(conn, None, later, "mail_quarantined",
                            {"from": ALICE, "name": "Alice Tanaka", "error": "x"})
    finally:
        store.close()
    kinds = query(db, "SELECT kind FROM outbox WHERE ticket_id IS NULL")
    assert ("escalation",) in kinds and ("notification",) in kinds  # the digest


def test_forget_leaves_no_copy_in_the_database_files(pipeline, imap_server):
    config, db = pipeline
    _staff_mail_about_alice(config, db, imap_server)
    worker = Store(db)  # the worker's connection stays open throughout
    worker.rows("SELECT count(*) FROM tickets")
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    assert any(ALICE.encode() in path.read_bytes() for path in files)  # the test can fail
    try:
        assert main(["--config", str(config), "forget", "--force", ALICE]) == 0
        for path in files:
            data = path.read_bytes()
            for personal in (ALICE, "Alice Tanaka"):
                assert personal.encode() not in data, (path.name, personal)
                assert personal.upper().encode() not in data
        assert Path(f"{db}-wal").stat().st_size == 0  # checkpointed and truncated
        for (raw,) in query(db, "SELECT raw FROM outbox WHERE raw IS NOT NULL"):
            assert ALICE not in audit.mail_text(raw)  # base64 bodies too
        assert BOB in "\n".join(every_text_value(db))  # nobody else is touched
        worker.rows("SELECT count(*) FROM tickets")  # the worker's connection still works
    finally:
        worker.close()
    detail = json.loads(scalar(db, "SELECT detail FROM events WHERE type = 'forget_request'"))
    assert detail["rows"] >= 4  # escalations, digests, the out-of-office, the event


def test_forget_vacuum_rebuilds_the_file(pipeline, capsys):
    config, db = pipeline
    size = db.stat().st_size
    assert main(["--config", str(config), "forget", "--force", "--vacuum", ALICE]) == 0
    assert capsys.readouterr().out == "CJD-000001\tredacted (was open: closed)\n"
    assert ALICE.encode() not in db.read_bytes()
    assert db.stat().st_size <= size
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_secure_delete_on_every_connection(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        assert store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    finally:
        store.close()


def test_retention_reaches_mail_about_no_single_ticket(pipeline, imap_server):
    config, db = pipeline
    _staff_mail_about_alice(config, db, imap_server)
    settings = load_settings(config, require_secrets=False)
    store = Store(db)
    try:
        with store.transaction() as conn:  # everything ages past the retention period
            for table, column in (("outbox", "created_at"), ("events", "at"),
                                  ("processed", "processed_at"), ("messages", "created_at")):
                conn.execute(f"UPDATE {table} SET {column} = '2020-01-01T00:00:00Z'")
            conn.execute("UPDATE outbox SET status = 'sent' WHERE ticket_id IS NULL")
        audit.purge(store, settings, datetime.now(UTC))
        assert query(db, "SELECT count(*) FROM outbox WHERE ticket_id IS NULL AND raw IS NOT "
                         "NULL") == [(0,)]
        assert ALICE not in scalar(db, "SELECT detail FROM events WHERE type = "
                                       "'mail_quarantined'")
        audit.purge(store, settings, datetime.now(UTC))  # the sweep remembers where it was
    finally:
        store.close()
