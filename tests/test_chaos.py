"""Faults with real servers and real processes: SIGKILL at random moments, IMAP and SMTP
outages, a full disk, two workers on one database.

Short variants run in ``make test``; ``make chaos`` sets ``INQUIRY_BOT_CHAOS=1`` for the
long ones (500 messages and 10 kills; IMAP down 30 s and SMTP down 60 s).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from botenv import BOT, customer_mail, query, scalar, start_worker, wait_until, write_config

from bot.adapters.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG = os.environ.get("INQUIRY_BOT_CHAOS") == "1"
SEED = int(os.environ.get("CHAOS_SEED", "20261124"))
MESSAGES, KILLS = (500, 10) if LONG else (150, 4)
IMAP_DOWN, SMTP_DOWN = (30, 60) if LONG else (3, 5)
MACHINE_EVERY = 7  # every 7th mail is an out-of-office: recorded, no ticket, no reply


def _mail(i: int) -> bytes:
    headers = {"Auto-Submitted": "auto-replied"} if i % MACHINE_EVERY == 0 else None
    return customer_mail(f"Question {i}", f"What personal data do you hold about me? #{i}",
                         sender=f"c{i}@example.org", headers=headers,
                         message_id=f"<chaos-{i}@example.org>")


def _humans(total: int) -> set[str]:
    return {f"c{i}@example.org" for i in range(total) if i % MACHINE_EVERY != 0}


def _message_id(raw: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(raw)["Message-ID"]).strip()


def _progress(db: Path) -> int:
    return (scalar(db, "SELECT (SELECT count(*) FROM processed) + "
                       "(SELECT count(*) FROM outbox WHERE status = 'sent')") or 0)


def _stop(worker: subprocess.Popen, log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, log.read_text()[-3000:]


def _assert_nothing_lost(db: Path, received: list, total: int, humans: set[str]) -> int:
    """The invariants after any fault; returns the number of duplicate sends."""
    assert scalar(db, "SELECT count(*) FROM processed") == total
    assert scalar(db, "SELECT count(DISTINCT uid) FROM processed") == total
    # Two kills that land on the same mail look exactly like a mail that crashes the worker:
    # by design it is then quarantined (recorded, staff told), not retried forever.
    crashed = {f"c{uid - 1}@example.org" for (uid,) in query(
        db, "SELECT uid FROM processed WHERE outcome = 'quarantined' "
            "AND reason LIKE 'crashed the worker%'")}
    assert crashed <= humans
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'message_quarantined'") == \
        len(crashed)
    humans = humans - crashed
    expected = [("ignored", total - len(humans) - len(crashed)),
                ("quarantined", len(crashed)), ("ticket", len(humans))]
    assert query(db, "SELECT outcome, count(*) FROM processed GROUP BY outcome "
                     "ORDER BY outcome") == [row for row in expected if row[1]]
    assert scalar(db, "SELECT count(*) FROM tickets") == len(humans)
    assert {r[0] for r in query(db, "SELECT customer_email FROM tickets")} == humans
    # No ticket without its acknowledgement, and that acknowledgement really went out.
    acks = dict(query(db, "SELECT message_id, recipients FROM outbox "
                          "WHERE kind = 'acknowledgement' AND status = 'sent'"))
    assert scalar(db, "SELECT count(*) FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM outbox o "
                      "WHERE o.ticket_id = t.id AND o.kind = 'acknowledgement' "
                      "AND o.status = 'sent')") == 0
    sent_ids = [_message_id(r.raw) for r in received]
    assert set(acks) <= set(sent_ids)
    customers = {rcpt for r in received for rcpt in r.rcpt_tos if rcpt.endswith("@example.org")}
    assert customers == humans  # (staff and the DPO may hear of a quarantined mail)
    return len(sent_ids) - len(set(sent_ids))


def _imap_down(server) -> None:
    """Stop the IMAP server but keep its mail (Dovecot's ``stop()`` also removes its files)."""
    terminate = getattr(server, "_terminate", None)
    (terminate or server.stop)()


def _in_flight(db: Path, received: list, before: Counter) -> tuple[set[str], Counter]:
    """Mails the server accepted since ``before`` whose outbox row is still pending: the
    kill landed inside that send, and the mail will go out again."""
    pending = {r[0] for r in query(db, "SELECT message_id FROM outbox WHERE status = 'pending'")}
    now = Counter(_message_id(r.raw) for r in received)
    return {mid for mid in pending if now[mid] > before[mid]}, now


def test_sigkill_at_random_moments_loses_nothing(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []},
                          limits={"auto_replies_per_hour": 10_000, "auto_mail_per_hour": 10_000},
                          mailbox={"batch_size": 25})
    for i in range(MESSAGES):
        imap_server.append(BOT, _mail(i))
    humans = _humans(MESSAGES)
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    rng = random.Random(SEED)
    # Progress runs from 0 to MESSAGES (processed) + len(humans) (acknowledgements sent);
    # the kills land at seeded random points of it, during ingest and during sending.
    moments = sorted(rng.sample(range(3, MESSAGES + len(humans) - 3), KILLS))
    kills, in_send, seen = 0, 0, Counter()
    for moment in moments:
        worker = start_worker(config, log)
        wait_until(lambda m=moment, w=worker: _progress(db) >= m or w.poll() is not None, 120,
                   f"progress {moment}")
        time.sleep(rng.uniform(0, 0.03))  # a random instant inside the current step
        assert worker.poll() is None, log.read_text()[-3000:]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        kills += 1
        landed, seen = _in_flight(db, list(smtp_server.received), seen)
        assert len(landed) <= 1, "only the one send in flight can be repeated"
        in_send += len(landed)
    connected = log.read_text().count("connected to")
    worker = start_worker(config, log)
    try:
        wait_until(lambda: scalar(db, "SELECT count(*) FROM processed") == MESSAGES
                   and scalar(db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0,
                   180, "every mail to be taken and every acknowledgement sent")
        # SIGTERM is handled once the worker runs (before that Python's default applies).
        wait_until(lambda: log.read_text().count("connected to") > connected, 30, "restart")
    finally:
        _stop(worker, log)
    assert kills == KILLS
    duplicates = _assert_nothing_lost(db, list(smtp_server.received), MESSAGES, humans)
    assert duplicates <= in_send <= kills
    print(f"\nchaos: {MESSAGES} messages, {kills} SIGKILLs survived, {in_send} inside an "
          f"SMTP send, {duplicates} duplicate acknowledgements, 0 messages lost")


def test_imap_and_smtp_outages_during_run(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []},
                          mailbox={"poll_seconds": 1})
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    worker = start_worker(config, log)
    sent = 0
    try:
        wait_until(lambda: "connected to" in log.read_text(), 20, "the worker to connect")
        imap_server.append(BOT, _mail(1))
        sent = len(smtp_server.wait_for(1, timeout=20))

        _imap_down(imap_server)  # the worker logs, backs off, reconnects by itself
        time.sleep(IMAP_DOWN)
        imap_server.start()
        imap_server.append(BOT, _mail(2))
        wait_until(lambda: scalar(db, "SELECT count(*) FROM processed") == 2, 90,
                   "the mail after the IMAP outage")
        smtp_server.wait_for(2, timeout=30)

        smtp_server.stop()  # SMTP down: the acknowledgement waits in the outbox
        imap_server.append(BOT, _mail(3))
        imap_server.append(BOT, _mail(5))
        wait_until(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE attempts > 0 AND "
                                      "status = 'pending'") == 2, 60, "failed send attempts")
        time.sleep(max(0, SMTP_DOWN - 2))
        assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 2
        smtp_server.start()
        sent = len(smtp_server.wait_for(4, timeout=240 if LONG else 60))
        wait_until(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE status = 'sent'")
                   == 4, 20, "sent marks")
    finally:
        _stop(worker, log)
    text = log.read_text()
    assert "mailbox unavailable" in text  # logged and backed off
    assert sent == 4 and len(smtp_server.received) == 4  # nothing sent twice
    humans = {f"c{i}@example.org" for i in (1, 2, 3, 5)}
    _assert_nothing_lost(db, list(smtp_server.received), 4, humans)


def test_disk_full_stops_intake_and_resumes_when_space_is_freed(tmp_path, imap_server,
                                                                 smtp_server):
    """Disk full, simulated deterministically: ``storage.max_page_count`` caps the file a few
    pages above a ballast table; dropping the ballast frees pages, as an operator freeing
    disk space would, and the running worker must carry on by itself."""
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE ballast (data BLOB)")
        conn.execute("INSERT INTO ballast VALUES (zeroblob(300000))")
    pages = scalar(db, "PRAGMA page_count")
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []},
                          storage={"database": "state/tickets.db", "max_page_count": pages + 3},
                          mailbox={"poll_seconds": 1})
    total = 12
    for i in range(1, total + 1):
        imap_server.append(BOT, _mail(i * MACHINE_EVERY + 1))
    worker = start_worker(config, log)
    try:
        wait_until(lambda: "database unavailable (database write failed: database or disk is "
                   "full): not taking mail" in log.read_text(), 30, "disk full")
        stuck = scalar(db, "SELECT count(*) FROM processed")
        assert stuck < total
        time.sleep(2)  # retries with backoff, but marks nothing it could not record
        assert worker.poll() is None
        assert scalar(db, "SELECT count(*) FROM processed") == stuck
        assert scalar(db, "SELECT count(*) FROM tickets") == stuck
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE ballast")
        wait_until(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE status = 'sent'")
                   == total, 60, "intake to resume after space was freed")
    finally:
        _stop(worker, log)
    humans = {f"c{i * MACHINE_EVERY + 1}@example.org" for i in range(1, total + 1)}
    assert _assert_nothing_lost(db, list(smtp_server.received), total, humans) == 0
    assert "retrying in" in log.read_text()


def test_second_worker_on_the_same_config_refuses_to_start(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []})
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    first = start_worker(config, log)
    try:
        wait_until(lambda: "connected to" in log.read_text(), 20, "the first worker")
        second = start_worker(config, tmp_path / "second.log")
        assert second.wait(timeout=30) == 1
        assert "already running" in (tmp_path / "second.log").read_text()
        imap_server.append(BOT, _mail(1))
        smtp_server.wait_for(1, timeout=20)
        assert first.poll() is None
    finally:
        _stop(first, log)
    assert scalar(db, "SELECT count(*) FROM tickets") == 1
    assert len(smtp_server.received) == 1
