"""Deadlines and escalation against a real SQLite store, driven through `escalate --now`.

Every CLI call opens its own Store, i.e. each call is a restart as far as the database is
concerned. Time is driven by ``now`` (received times and ``--now``), never by sleeping.
"""

from __future__ import annotations

import email
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from botenv import customer_mail, query, run_cli, scalar, write_config

from bot.adapters.store import Store, utc_iso
from bot.config import load_settings
from bot.flows import escalation
from bot.flows.service import Service
from bot.models import MessageSource
from bot.ops.cli import main

JST = ZoneInfo("Asia/Tokyo")
QUESTION = ("Question about your privacy policy",
            "Hello, I have a question: how long do you keep my purchase history, and who can "
            "see it? Thank you.")
COMPLAINT = ("Complaint", "I am very unhappy: you sent my data to a third party without "
             "asking. I want to complain.")
NO_SERVER = SimpleNamespace(host="127.0.0.1", port=1)


def jst(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=JST)


def make_config(tmp_path: Path, **sections: dict) -> Path:
    return write_config(tmp_path, NO_SERVER, None, **sections)


def database(config: Path) -> Path:
    return config.parent / "state" / "tickets.db"


_uids = iter(range(1, 10_000))


def open_ticket(config: Path, mail: tuple[str, str], received: datetime,
                sender: str = "customer@example.com") -> str:
    """Process one customer mail at ``received`` (a fresh Store, like a worker would)."""
    settings = load_settings(config, require_secrets=False)
    store = Store(settings.database_path)
    try:
        result = Service(store, settings).handle(
            MessageSource("INBOX", 1, next(_uids)), customer_mail(*mail, sender=sender),
            received)
    finally:
        store.close()
    assert result.ref, result
    return result.ref


def run_escalate(config: Path, now: datetime, capsys: pytest.CaptureFixture,
                 dry_run: bool = False) -> list[str]:
    """``inquiry-bot escalate --now NOW [--dry-run]`` in-process; its stdout lines."""
    capsys.readouterr()
    args = ["--config", str(config), "escalate", "--now", now.isoformat()]
    assert main(args + (["--dry-run"] if dry_run else [])) == 0
    return capsys.readouterr().out.splitlines()


def escalate(config: Path, now: datetime, capsys: pytest.CaptureFixture,
             dry_run: bool = False) -> list[str]:
    """The escalation lines of ``escalate --now`` (digest lines left out)."""
    return [line for line in run_escalate(config, now, capsys, dry_run) if "digest" not in line]


def digest(config: Path, now: datetime, capsys: pytest.CaptureFixture,
           dry_run: bool = False) -> list[str]:
    """The digest lines of ``escalate --now``."""
    return [line for line in run_escalate(config, now, capsys, dry_run) if "digest" in line]


def outbox_mails(config: Path, kind: str = "escalation") -> list[tuple[list[str], str]]:
    """(recipients, raw text) of the pass's mails of ``kind`` in the outbox, oldest first."""
    rows = query(database(config), "SELECT recipients, raw FROM outbox WHERE ticket_id IS NULL "
                 "AND kind = ? ORDER BY id", (kind,))
    return [(json.loads(r[0]), body_text(bytes(r[1]))) for r in rows]


def body_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def set_ticket(config: Path, ref: str, **fields: object) -> None:
    store = Store(database(config))
    try:
        with store.transaction() as conn:
            ticket = store.ticket_by_ref(ref)
            store.update_ticket(conn, ticket["id"], **fields)
    finally:
        store.close()


# -- levels ---------------------------------------------------------------------------------

def test_each_level_fires_once_and_restarts_do_not_repeat(tmp_path, env, capsys):
    # A question on Mon 2026-11-16: escalate end of Thu 11-19, hard end of Thu 11-26,
    # level 3 seven days after the hard deadline.
    config = make_config(tmp_path)
    ref = open_ticket(config, QUESTION, jst(2026, 11, 16))
    db = database(config)
    assert scalar(db, "SELECT category FROM tickets") == "question"

    assert escalate(config, jst(2026, 11, 19, 17), capsys) == []  # not yet
    steps = [(jst(2026, 11, 20), 1, ["privacy@cijidas.jp"]),
             (jst(2026, 11, 27), 2, ["dpo@cijidas.jp"]),
             (jst(2026, 12, 4), 3, ["dpo@cijidas.jp"])]
    for now, level, recipients in steps:
        lines = escalate(config, now, capsys)
        assert len(lines) == 1 and f"{ref} (level {level})" in lines[0], lines
        assert outbox_mails(config)[-1][0] == recipients
        assert scalar(db, "SELECT escalation_level FROM tickets") == level
        # The same moment again, and an hour later: a new Store each time, nothing repeats.
        assert escalate(config, now, capsys) == []
        assert escalate(config, now + timedelta(hours=1), capsys) == []

    assert escalate(config, jst(2027, 3, 1), capsys) == []
    assert len(outbox_mails(config)) == 3
    events = query(db, "SELECT detail FROM events WHERE type = 'escalated' ORDER BY id")
    assert [json.loads(d)["level"] for (d,) in events] == [1, 2, 3]
    assert "SUMMARY" in outbox_mails(config)[-1][1]  # level 3 carries a summary


def test_late_scan_jumps_to_highest_level_once(tmp_path, env, capsys):
    config = make_config(tmp_path)
    ref = open_ticket(config, QUESTION, jst(2026, 11, 16))
    lines = escalate(config, jst(2026, 11, 30), capsys)  # past the hard deadline already
    assert lines == [lines[0]] and f"{ref} (level 2)" in lines[0]
    assert escalate(config, jst(2026, 12, 1), capsys) == []


def test_answered_and_closed_tickets_are_never_escalated(tmp_path, env, capsys):
    config = make_config(tmp_path)
    answered = open_ticket(config, QUESTION, jst(2026, 11, 16), sender="a@example.com")
    closed = open_ticket(config, QUESTION, jst(2026, 11, 16), sender="b@example.com")
    still_open = open_ticket(config, QUESTION, jst(2026, 11, 16), sender="c@example.com")
    set_ticket(config, answered, first_response_at=utc_iso(jst(2026, 11, 17)))
    set_ticket(config, closed, status="closed", closed_at=utc_iso(jst(2026, 11, 17)))

    lines = escalate(config, jst(2026, 12, 10), capsys)

    assert len(lines) == 1 and still_open in lines[0]
    assert answered not in lines[0] and closed not in lines[0]
    levels = dict(query(database(config), "SELECT ref, escalation_level FROM tickets"))
    assert levels == {answered: 0, closed: 0, still_open: 3}


def test_level1_at_night_is_deferred_but_level2_goes_out(tmp_path, env, capsys):
    config = make_config(tmp_path)
    reminder = open_ticket(config, QUESTION, jst(2026, 11, 16), sender="a@example.com")
    overdue = open_ticket(config, QUESTION, jst(2026, 11, 2), sender="b@example.com")
    night = jst(2026, 11, 20, 2)  # Friday 02:00 JST

    dry = escalate(config, night, capsys, dry_run=True)
    assert f"deferred: {reminder} level 1 until 2026-11-20T09:00:00+09:00" in " ".join(dry)
    lines = escalate(config, night, capsys)
    sent = [line for line in lines if line.startswith("queued")]
    assert len(sent) == 1 and f"{overdue} (level 3)" in sent[0] and reminder not in sent[0]

    morning = escalate(config, jst(2026, 11, 20, 9), capsys)
    assert len(morning) == 1 and f"{reminder} (level 1)" in morning[0]


# -- calendar in the mail -------------------------------------------------------------------

def test_friday_before_holiday_monday_due_dates_in_escalation_mail(tmp_path, env, capsys):
    # Complaint on Fri 2026-11-20; Mon 11-23 is Labor Thanksgiving Day: escalate (1 business
    # day) at the end of Tue 11-24, respond (2 business days) by the end of Wed 11-25.
    config = make_config(tmp_path)
    ref = open_ticket(config, COMPLAINT, jst(2026, 11, 20, 16))
    assert escalate(config, jst(2026, 11, 24, 17), capsys) == []
    lines = escalate(config, jst(2026, 11, 25, 9), capsys)
    assert len(lines) == 1 and f"{ref} (level 1)" in lines[0]
    text = outbox_mails(config)[-1][1]
    assert "Response due:  2026-11-25 23:59 JST" in text
    assert "Hard deadline: 2026-11-30 23:59 JST" in text  # 10 calendar days


def test_year_end_closure_due_dates_in_escalation_mail(tmp_path, env, capsys):
    # Question on Mon 2026-12-28; closure 12-29..01-03: business days Jan 4, 5, 6
    # (escalate = 3rd), 7, 8 (respond = 5th); hard deadline = 10 calendar days = Jan 7.
    config = make_config(tmp_path)
    ref = open_ticket(config, QUESTION, jst(2026, 12, 28))
    assert escalate(config, jst(2027, 1, 6, 17), capsys) == []
    lines = escalate(config, jst(2027, 1, 7, 9), capsys)
    assert len(lines) == 1 and f"{ref} (level 1)" in lines[0]
    text = outbox_mails(config)[-1][1]
    assert "Response due:  2027-01-08 23:59 JST" in text
    assert "Hard deadline: 2027-01-07 23:59 JST" in text


def test_midnight_edge_one_minute_apart_different_due_dates(tmp_path, env):
    # Fri 23:59 JST counts as Friday (complaint due end of Tue); Sat 00:01 JST counts as the
    # next business day, Monday (due end of Wed). Dates: 2026-11-06/07, no holidays near.
    config = make_config(tmp_path)
    friday = open_ticket(config, COMPLAINT, jst(2026, 11, 6, 23, 59), sender="a@example.com")
    saturday = open_ticket(config, COMPLAINT, jst(2026, 11, 7, 0, 1), sender="b@example.com")
    due = dict(query(database(config), "SELECT ref, due_at FROM tickets"))
    assert due[friday] == "2026-11-10T14:59:59Z"    # Tue 11-10 23:59:59 JST
    assert due[saturday] == "2026-11-11T14:59:59Z"  # Wed 11-11 23:59:59 JST


# -- digest ---------------------------------------------------------------------------------

def test_digest_only_on_business_days_once_per_day(tmp_path, env, capsys):
    config = make_config(tmp_path)
    ref = open_ticket(config, QUESTION, jst(2026, 11, 19))
    quiet = [jst(2026, 11, 21, 10),     # Saturday
             jst(2026, 11, 23, 10),     # Labor Thanksgiving Day (Monday)
             jst(2026, 11, 24, 8, 59),  # business day, before digest_time
             jst(2026, 12, 30, 10)]     # year-end closure
    for now in quiet:
        assert digest(config, now, capsys, dry_run=True) == [], now

    at_nine = jst(2026, 11, 24, 9)
    assert len(digest(config, at_nine, capsys, dry_run=True)) == 1
    assert len(digest(config, at_nine, capsys, dry_run=True)) == 1  # no record
    sent = digest(config, at_nine, capsys)
    assert sent == ["queued: to privacy@cijidas.jp: Privacy inquiries digest 2026-11-24: "
                    "1 open ticket, 0 overdue"]
    assert digest(config, jst(2026, 11, 24, 15), capsys) == []  # restart
    mails = outbox_mails(config, kind="notification")
    assert len(mails) == 1 and ref in mails[0][1]
    assert scalar(database(config), "SELECT value FROM job_state WHERE key = ?",
                  (escalation.DIGEST_STATE_KEY,)) == "2026-11-24"

    assert len(digest(config, jst(2026, 11, 25, 9, 30), capsys)) == 1


def test_digest_cli_dry_run_subprocess(tmp_path):
    config = make_config(tmp_path)
    open_ticket(config, QUESTION, jst(2026, 11, 16))
    result = run_cli(config, "escalate", "--now", "2026-11-20T09:00:00+09:00", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("would send: to privacy@cijidas.jp: [CJD-000001] Reminder")
    assert lines[1].startswith("would send: to privacy@cijidas.jp: Privacy inquiries digest")
    assert scalar(database(config), "SELECT count(*) FROM outbox WHERE ticket_id IS NULL") == 0


# -- complaint notice, waiting --------------------------------------------------------------

@pytest.mark.parametrize("enabled", [True, False])
def test_complaint_notifies_escalation_to_at_creation(tmp_path, enabled):
    config = make_config(tmp_path, escalation={"notify_on_complaint": enabled})
    complaint = open_ticket(config, COMPLAINT, jst(2026, 11, 16), sender="a@example.com")
    open_ticket(config, QUESTION, jst(2026, 11, 16), sender="b@example.com")
    rows = query(database(config), "SELECT t.ref, o.recipients FROM outbox o JOIN tickets t "
                 "ON t.id = o.ticket_id WHERE o.kind = 'escalation'")
    assert rows == ([(complaint, '["dpo@cijidas.jp"]')] if enabled else [])


@pytest.mark.parametrize("pause", [True, False])
def test_waiting_extends_deadlines_only_when_configured(tmp_path, pause):
    config = make_config(tmp_path, sla={"pause_while_waiting": pause})
    ref = open_ticket(config, QUESTION, jst(2026, 11, 16))
    settings = load_settings(config, require_secrets=False)
    store = Store(settings.database_path)
    try:
        before = store.ticket_by_ref(ref)
        with store.transaction() as conn:
            escalation.start_wait(store, conn, before["id"], jst(2026, 11, 17), "verification")
        with store.transaction() as conn:
            waited = escalation.end_wait(store, conn, settings, before["id"],
                                         jst(2026, 11, 19, 12))
        after = store.ticket_by_ref(ref)
    finally:
        store.close()
    assert waited == timedelta(days=2, hours=2)
    for column in escalation.DEADLINE_COLUMNS:
        moved = datetime.fromisoformat(after[column]) - datetime.fromisoformat(before[column])
        assert moved == (waited if pause else timedelta(0)), column


# -- scale ----------------------------------------------------------------------------------

def test_pass_and_digest_read_tickets_through_the_status_index(tmp_path):
    config = make_config(tmp_path)
    open_ticket(config, QUESTION, jst(2026, 11, 16))
    settings = load_settings(config, require_secrets=False)
    store = Store(settings.database_path)
    # Statistics as ANALYZE would write them for 1,000,000 tickets in two statuses: the
    # planner would then prefer a full scan unless the query insists on the index.
    store.conn.execute("ANALYZE")
    store.conn.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'tickets'")
    store.conn.execute("INSERT INTO sqlite_stat1 VALUES "
                       "('tickets', 'idx_tickets_status_due', '1000000 500000 1')")
    store.conn.execute("ANALYZE sqlite_schema")  # reload the statistics
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        escalation.open_ticket_rows(store, jst(2026, 12, 1), 7)
        escalation.digest_rows(store)
    finally:
        store.conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2
    for sql in selects:  # the trace shows the statement with its parameters expanded
        plan = " | ".join(row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX idx_tickets_status_due" in plan, plan
        assert "SCAN tickets" not in plan, plan
    store.close()


def test_worker_schedules_digest_at_digest_time_in_company_zone(tmp_path):
    from bot.ops.worker import Worker

    config = make_config(tmp_path, escalation={"digest_time": "08:45", "check_minutes": 60})
    worker = Worker(load_settings(config, require_secrets=False))
    scheduler = worker._start_scheduler()
    try:
        job = scheduler.get_job("digest")
        local = job.next_run_time.astimezone(JST)
        assert (local.hour, local.minute) == (8, 45)
        assert local > datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=True)
        worker.store.close()


def test_store_job_state_round_trip(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        assert store.job_state("k") is None
        for value in ("a", "b"):
            with store.transaction() as conn:
                store.set_job_state(conn, "k", value, jst(2026, 11, 16))
        assert store.job_state("k") == "b"
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT count(*) FROM job_state").fetchone()[0] == 1
