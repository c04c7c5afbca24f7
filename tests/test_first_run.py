"""First start on a mailbox that already holds mail, and the arrival time (issue 16 items 2
and 6): bot.rules.intake (pure, table-driven) and the worker against the test IMAP server."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from email.utils import format_datetime

import pytest
from botenv import (
    BOT,
    customer_mail,
    query,
    run_cli,
    scalar,
    start_worker,
    wait_until,
    write_config,
)
from mailservers import PASSWORD

from bot.ops.worker import HANG_ENV
from bot.rules.intake import Intake, IntakePolicy, Start, arrival_time, policy

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


@pytest.mark.parametrize(("checkpoint", "changed", "since", "arrived", "expected"), [
    (False, False, None, ago(days=40), Intake.SKIP),
    (False, False, None, ago(days=1), Intake.QUIET),
    (False, False, None, ago(days=6, hours=23), Intake.QUIET),
    (False, False, None, NOW + timedelta(seconds=1), Intake.NORMAL),  # came after the start
    (True, False, None, ago(days=400), Intake.NORMAL),  # steady: every new mail is new
    (True, True, None, ago(days=40), Intake.SKIP),  # rescan: unknown old mail not answered
    (True, True, None, ago(days=1), Intake.NORMAL),
    (False, False, ago(days=50), ago(days=40), Intake.NORMAL),  # --since: deliberate import
    (False, False, ago(days=30), ago(days=40), Intake.SKIP),
])
def test_intake_policy(checkpoint, changed, since, arrived, expected):
    rules = policy(has_checkpoint=checkpoint, uidvalidity_changed=changed, now=NOW,
                   first_run_days=7, since=since)
    assert rules.decide(arrived) == expected


def test_zero_days_turns_the_rules_off():
    rules = policy(has_checkpoint=False, uidvalidity_changed=False, now=NOW, first_run_days=0)
    assert rules.decide(ago(days=40)) == Intake.NORMAL


def test_policy_kinds():
    assert policy(has_checkpoint=False, uidvalidity_changed=False, now=NOW,
                  first_run_days=7).start == Start.FIRST_RUN
    assert IntakePolicy().decide(ago(days=999)) == Intake.NORMAL


@pytest.mark.parametrize(("internal", "header", "expected"), [
    (ago(hours=1), ago(hours=3), ago(hours=1)),  # INTERNALDATE wins
    (None, ago(hours=3), ago(hours=3)),  # Date header as fallback
    (None, ago(days=30), NOW),  # a Date header a month old is not believed
    (None, NOW + timedelta(days=2), NOW),  # never later than now
    (NOW + timedelta(hours=1), None, NOW),
    (None, None, NOW),
    (datetime(2024, 6, 10, 11, 0), None, ago(hours=1)),  # naive: UTC
])
def test_arrival_time(internal, header, expected):
    assert arrival_time(internal, header, NOW) == expected


def _append(imap_server, raw: bytes, when: datetime) -> None:
    """APPEND with an INTERNALDATE in the past (as if delivered then)."""
    with imap_server.session(BOT) as client:
        client.append("INBOX", raw, msg_time=when)


def _old_mail(subject: str, when: datetime) -> bytes:
    raw = customer_mail(subject, "Please tell me what personal data you keep about me.")
    return raw.replace(b"Date: ", b"Date: " + format_datetime(when).encode() + b"\nX-Old: ", 1)


def _summary_text(smtp_server) -> str:
    """The text of the one first-start summary the SMTP server received."""
    [summary] = [m for m in smtp_server.wait_for(1) if b"First start" in m.raw]
    return message_from_bytes(summary.raw, policy=default).get_content()


def _outbox(db, kind: str) -> int:
    return scalar(db, "SELECT count(*) FROM outbox WHERE kind = ?", (kind,))


@pytest.mark.integration
def test_first_start_acknowledges_nothing_from_before(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7})
    db = tmp_path / "state" / "tickets.db"
    now = datetime.now(UTC)
    for n in range(10):
        _append(imap_server, _old_mail(f"Old question {n}", now - timedelta(days=40)),
                now - timedelta(days=40))
    for n in range(2):
        _append(imap_server, _old_mail(f"Recent question {n}", now - timedelta(days=1)),
                now - timedelta(days=1))
    result = run_cli(config, "once")
    assert result.returncode == 0, result.stderr
    assert _outbox(db, "acknowledgement") == 0
    assert scalar(db, "SELECT count(*) FROM tickets") == 2
    assert scalar(db, "SELECT count(*) FROM events WHERE type = "
                      "'acknowledgement_skipped_first_run'") == 2
    assert scalar(db, "SELECT count(*) FROM processed WHERE reason = 'before-first-run'") == 10
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 1
    assert _outbox(db, "notification") == 1  # the summary, no notice per ticket
    refs = [r[0] for r in query(db, "SELECT ref FROM tickets")]
    text = _summary_text(smtp_server)
    assert all(ref in text for ref in refs) and "10 older mail(s)" in text
    # Mail that arrives after the first start is answered as usual.
    imap_server.append(BOT, customer_mail("New question", "What data do you keep on me?"))
    assert run_cli(config, "once").returncode == 0
    assert _outbox(db, "acknowledgement") == 1
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 1


@pytest.mark.integration
def test_an_empty_first_start_leaves_later_mail_answered(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7})
    db = tmp_path / "state" / "tickets.db"
    assert run_cli(config, "once").returncode == 0
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 0
    imap_server.append(BOT, customer_mail("Question", "What data do you keep on me?"))
    assert run_cli(config, "once").returncode == 0
    assert _outbox(db, "acknowledgement") == 1


@pytest.mark.integration
def test_once_since_imports_a_range_with_acknowledgements(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7})
    db = tmp_path / "state" / "tickets.db"
    now = datetime.now(UTC)
    for days in (40, 20, 10):
        _append(imap_server, _old_mail(f"Question {days}", now - timedelta(days=days)),
                now - timedelta(days=days))
    since = (now - timedelta(days=30)).date().isoformat()
    result = run_cli(config, "once", "--since", since)
    assert result.returncode == 0, result.stderr
    assert scalar(db, "SELECT count(*) FROM tickets") == 2
    assert _outbox(db, "acknowledgement") == 2
    assert scalar(db, "SELECT count(*) FROM processed WHERE reason = 'before-first-run'") == 1


@pytest.mark.integration
def test_created_at_is_the_arrival_time(tmp_path, imap_server, smtp_server):
    """Delivered an hour before the bot ran: created_at and deadlines count from then."""
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7})
    db = tmp_path / "state" / "tickets.db"
    assert run_cli(config, "once").returncode == 0  # the first start: checkpoint, no mail
    arrived = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    raw = _old_mail("Question", arrived - timedelta(hours=2))  # Date header: 3 hours ago
    _append(imap_server, raw, arrived)
    assert run_cli(config, "once").returncode == 0
    created = scalar(db, "SELECT created_at FROM tickets")
    assert datetime.fromisoformat(created) == arrived
    assert _outbox(db, "acknowledgement") == 1
    assert PASSWORD  # the fixture user logs in with it


@pytest.mark.integration
def test_a_stopped_first_start_is_resumed_under_the_same_rules(tmp_path, imap_server,
                                                               smtp_server, monkeypatch):
    """Stopped in the middle of the folder, the next start must not take the rest of the
    old mail for new mail (that would acknowledge it all)."""
    marker = "HANG-first-start-9c1e"
    monkeypatch.setenv(HANG_ENV, marker)  # the second mail hangs until SIGTERM
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7})
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    now = datetime.now(UTC)
    _append(imap_server, _old_mail("Recent one", now - timedelta(days=1)),
            now - timedelta(days=1))
    _append(imap_server, _old_mail(f"Recent two {marker}", now - timedelta(days=2)),
            now - timedelta(days=2))
    for n in range(3):
        _append(imap_server, _old_mail(f"Old {n}", now - timedelta(days=40)),
                now - timedelta(days=40))
    worker = start_worker(config, log)
    try:
        wait_until(lambda: db.exists() and scalar(db, "SELECT count(*) FROM processed") == 1,
                   60, "the first mail handled, the second in hand")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert scalar(db, "SELECT count(*) FROM processed") < 5  # the pass did not finish
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 0

    monkeypatch.delenv(HANG_ENV)
    result = run_cli(config, "once")
    assert result.returncode == 0, result.stderr
    assert _outbox(db, "acknowledgement") == 0
    assert scalar(db, "SELECT count(*) FROM tickets") == 2
    assert scalar(db, "SELECT count(*) FROM processed WHERE reason = 'before-first-run'") == 3
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 1
    text = _summary_text(smtp_server)
    assert "CJD-000001" in text and "CJD-000002" in text and "3 older mail(s)" in text
    # The first start is over: new mail is answered, and no second summary comes.
    imap_server.append(BOT, customer_mail("New question", "What data do you keep on me?"))
    assert run_cli(config, "once").returncode == 0
    assert _outbox(db, "acknowledgement") == 1
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'first_run_summary'") == 1


@pytest.mark.integration
def test_mail_too_large_to_load_follows_the_first_start_rules(tmp_path, imap_server,
                                                              smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"first_run_days": 7},
                          limits={"max_message_bytes": 20000})
    db = tmp_path / "state" / "tickets.db"
    now = datetime.now(UTC)
    padding = "\n" + "x" * 76
    for subject, days in (("Old and large", 40), ("Recent and large", 1)):
        raw = _old_mail(subject, now - timedelta(days=days)) + (padding * 400).encode()
        _append(imap_server, raw, now - timedelta(days=days))
    result = run_cli(config, "once")
    assert result.returncode == 0, result.stderr
    assert _outbox(db, "acknowledgement") == 0
    rows = query(db, "SELECT outcome, reason FROM processed ORDER BY uid")
    assert rows[0][0] == "ignored" and rows[0][1].startswith("before-first-run; too-large")
    assert rows[1][0] == "ticket"
    assert scalar(db, "SELECT count(*) FROM events WHERE type = "
                      "'acknowledgement_skipped_first_run'") == 1
    assert "1 older mail(s)" in _summary_text(smtp_server)
