"""End to end against real servers on loopback: IMAP (Dovecot or pymap) in, SQLite ticket,
acknowledgement out through aiosmtpd, delivered into the customer's IMAP inbox."""

from __future__ import annotations

import email
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from botenv import (
    BOT,
    bot_env,
    customer_mail,
    query,
    run_cli,
    scalar,
    start_worker,
    wait_until,
    write_config,
)

from bot.ops.cli import main
from bot.ops.worker import HANG_ENV

pytestmark = pytest.mark.integration


def once(config: Path) -> int:
    return main(["--config", str(config), "once"])


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def body_of(msg: email.message.EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_round_trip_english(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)
    raw = customer_mail("Please delete my account",
                        "Hello, I want you to delete my account and all my personal data.\n"
                        "My login ID is alice01.\nThanks, Alice",
                        message_id="<req-1@example.com>")
    imap_server.append(BOT, raw)

    assert once(config) == 0

    db = tmp_path / "state" / "tickets.db"
    tickets = query(db, "SELECT ref, category, language, status, customer_email FROM tickets")
    assert tickets == [("CJD-000001", "deletion", "en", "open", "customer@example.com")]
    ack_raw = smtp_server.wait_for(2)  # acknowledgement + staff notification
    acks = [r for r in ack_raw if "customer@example.com" in r.rcpt_tos]
    assert len(acks) == 1
    ack = parsed(acks[0].raw)
    assert ack["Subject"].startswith("[CJD-000001] ")
    assert "Re: Re:" not in ack["Subject"]
    assert ack["In-Reply-To"] == "<req-1@example.com>"
    assert "<req-1@example.com>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Content-Language"] == "en"
    assert ack["Message-ID"].endswith("@cijidas.jp>")
    assert "CJD-000001" in body_of(ack)
    # Delivered into the customer's own mailbox, threaded under their mail.
    inbox = [parsed(m) for m in imap_server.messages("customer@example.com")]
    assert [m["In-Reply-To"] for m in inbox] == ["<req-1@example.com>"]
    assert scalar(db, "SELECT status FROM outbox WHERE recipients LIKE '%customer%'") == "sent"


def test_round_trip_vietnamese_without_diacritics(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail(
        "xoa tai khoan", "Chao ban, toi muon xoa tai khoan cua toi va toan bo du lieu ca nhan. "
        "Cam on ban.", sender="khach@example.vn"))

    assert once(config) == 0

    db = tmp_path / "state" / "tickets.db"
    assert query(db, "SELECT category, language FROM tickets") == [("deletion", "vi")]
    ack = parsed(next(r.raw for r in smtp_server.wait_for(2) if "khach@example.vn" in r.rcpt_tos))
    assert ack["Content-Language"].startswith("vi")
    assert "Quý khách" in body_of(ack)


def test_once_twice_creates_nothing_new(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail("Question", "What data do you keep about customers?"))
    assert once(config) == 0
    smtp_server.wait_for(2)

    assert once(config) == 0

    db = tmp_path / "state" / "tickets.db"
    assert scalar(db, "SELECT count(*) FROM tickets") == 1
    assert scalar(db, "SELECT count(*) FROM processed") == 1
    assert scalar(db, "SELECT count(*) FROM outbox") == 2
    assert len(smtp_server.received) == 2


MACHINE_SAMPLES = {
    "auto-submitted": {"Auto-Submitted": "auto-replied"},
    "precedence-bulk": {"Precedence": "bulk"},
    "list-id": {"List-Id": "<news.example.com>"},
    "mailer-daemon": {"From": "MAILER-DAEMON <mailer-daemon@example.com>"},
    "noreply": {"From": "Shop <no-reply@shop.example.com>"},
    "own-address": {"From": f"Cijidas <{BOT}>"},
    "empty-return-path": {"Return-Path": "<>"},
}


def test_machine_generated_mail_gets_no_ticket_and_no_reply(tmp_path, imap_server, smtp_server,
                                                           env):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []})
    for headers in MACHINE_SAMPLES.values():
        imap_server.append(BOT, customer_mail("Your order", "I am away until Monday.",
                                              headers=headers))
    imap_server.append(BOT, _bounce_report())

    assert once(config) == 0

    db = tmp_path / "state" / "tickets.db"
    assert scalar(db, "SELECT count(*) FROM tickets") == 0
    outcomes = query(db, "SELECT outcome, reason FROM processed ORDER BY uid")
    assert len(outcomes) == len(MACHINE_SAMPLES) + 1
    assert all(outcome == "ignored" and reason for outcome, reason in outcomes)
    assert smtp_server.received == []


def _bounce_report() -> bytes:
    return (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
            b"To: contact@cijidas.jp\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"Message-ID: <bounce-1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; x@example.com\r\n"
            b"Action: failed\r\nStatus: 5.1.1\r\n--B--\r\n")


def test_bad_input_is_recorded_and_the_worker_goes_on(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []},
                          limits={"max_message_bytes": 20 * 1024 * 1024})
    imap_server.append(BOT, b"\xff\xfe\x00garbage \x80\x81 not a mail at all\r\n\r\n\xc3\x28")
    imap_server.append(BOT, b"From: a@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
                            b"Content-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n"
                            b"--other\r\nContent-Type: text/plain\r\n\r\nhello?\r\n")
    imap_server.append(BOT, _large_mail(30 * 1024 * 1024))
    imap_server.append(BOT, customer_mail("Question", "How long do you keep my data?"))

    assert once(config) == 0

    db = tmp_path / "state" / "tickets.db"
    rows = query(db, "SELECT uid, outcome, reason FROM processed ORDER BY uid")
    assert len(rows) == 4  # every message has its processed row
    # too large: a ticket from the header alone (limits.too_large_action = "acknowledge")
    assert rows[2][1] == "ticket" and rows[2][2].startswith("too-large")
    assert rows[3][1] == "ticket"
    assert len(imap_server.messages(BOT)) == 4  # nothing deleted
    assert any("customer@example.com" in r.rcpt_tos for r in smtp_server.wait_for(1))


def _large_mail(size: int) -> bytes:
    head = customer_mail("Big attachment", "See attached.")
    boundary = b"BIG"
    chunk = (b"A" * 76 + b"\r\n") * (size // 78)
    return (b"From: big@example.com\r\nTo: contact@cijidas.jp\r\nSubject: big\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BIG\"\r\n\r\n"
            b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\n" + head[:0] +
            b"see attached\r\n--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + chunk + b"--" + boundary + b"--\r\n")


def test_run_acknowledges_new_mail_within_seconds(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []})
    worker = start_worker(config, tmp_path / "worker.log")
    db = tmp_path / "state" / "tickets.db"
    try:
        wait_until(lambda: "connected to" in (tmp_path / "worker.log").read_text(), 20,
                   "the worker to connect")
        imap_server.append(BOT, customer_mail("Complaint", "Your staff shared my phone number "
                                              "with a third party. This is unacceptable."))
        received = smtp_server.wait_for(1, timeout=15)
        assert "customer@example.com" in received[0].rcpt_tos
        assert scalar(db, "SELECT category FROM tickets") == "complaint"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, (tmp_path / "worker.log").read_text()
    assert "worker stopped" in (tmp_path / "worker.log").read_text()


@pytest.mark.slow
def test_imap_restart_and_smtp_outage_are_survived(tmp_path, imap_server, free_port):
    from bot.ops.devmail import SmtpSink

    sink = SmtpSink(port=free_port)
    config = write_config(tmp_path, imap_server, None, staff={"notify": []},
                          smtp={"host": "127.0.0.1", "port": free_port})
    log = tmp_path / "worker.log"
    worker = start_worker(config, log)
    db = tmp_path / "state" / "tickets.db"
    try:
        wait_until(lambda: "connected to" in log.read_text(), 20, "the worker to connect")
        imap_server.restart()
        imap_server.append(BOT, customer_mail("Question", "Do you sell my data?"))
        wait_until(lambda: scalar(db, "SELECT count(*) FROM tickets") == 1, 40,
                   "the ticket after the IMAP restart")
        # SMTP is down (nothing listens on free_port): the acknowledgement waits in the outbox.
        wait_until(lambda: scalar(db, "SELECT attempts FROM outbox") or 0, 30, "a send attempt")
        assert scalar(db, "SELECT status FROM outbox") == "pending"
        sink.start()
        received = sink.wait_for(1, timeout=60)
        assert len(received) == 1
        wait_until(lambda: scalar(db, "SELECT status FROM outbox") == "sent", 10, "sent mark")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        sink.stop()
    assert len(sink.received) == 1  # sent once, not again


@pytest.mark.slow
def test_crash_in_the_middle_of_a_batch_loses_nothing(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []},
                          limits={"auto_replies_per_hour": 1000, "auto_mail_per_hour": 1000},
                          mailbox={"batch_size": 20})
    total = 200
    for i in range(total):
        imap_server.append(BOT, customer_mail(f"Question {i}", f"What data do you hold? #{i}",
                                              sender=f"c{i}@example.org"))
    db = tmp_path / "state" / "tickets.db"
    log = tmp_path / "worker.log"
    worker = start_worker(config, log)
    wait_until(lambda: (scalar(db, "SELECT count(*) FROM processed") or 0) >= 40, 60,
               "part of the batch to be processed")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    done_at_kill = scalar(db, "SELECT count(*) FROM processed")
    assert done_at_kill < total, "the kill must land in the middle of the batch"

    worker = start_worker(config, log)
    try:
        wait_until(lambda: scalar(db, "SELECT count(*) FROM outbox WHERE status = 'sent'")
                   == total, 120, "every acknowledgement to be sent")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)

    assert scalar(db, "SELECT count(*) FROM processed") == total
    assert scalar(db, "SELECT count(*) FROM (SELECT uid FROM processed GROUP BY uid "
                      "HAVING count(*) > 1)") == 0
    assert scalar(db, "SELECT count(*) FROM tickets") == total
    assert scalar(db, "SELECT count(DISTINCT customer_email) FROM tickets") == total
    acked = {r for rcpts in (m.rcpt_tos for m in smtp_server.received) for r in rcpts}
    assert acked == {f"c{i}@example.org" for i in range(total)}
    # At most the one send in flight at the kill can have gone out twice.
    assert len(smtp_server.received) - total <= 1


def test_uidvalidity_change_rescans_without_duplicates(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []})
    imap_server.append(BOT, customer_mail("Question", "Do you keep my address?"))
    imap_server.append(BOT, b"From: x@example.com\r\nSubject: no message-id\r\n\r\nhello\r\n")
    assert once(config) == 0
    db = tmp_path / "state" / "tickets.db"
    assert scalar(db, "SELECT count(*) FROM tickets") == 2
    # The server renumbered the folder (as after a mailbox rebuild): simulate the new value.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mailbox_state SET uidvalidity = uidvalidity - 1")
        conn.execute("UPDATE processed SET uidvalidity = uidvalidity - 1")

    assert once(config) == 0

    assert scalar(db, "SELECT count(*) FROM tickets") == 2
    assert query(db, "SELECT outcome, reason FROM processed WHERE uidvalidity = "
                     "(SELECT uidvalidity FROM mailbox_state)") == [
        ("ignored", "already-processed"), ("ignored", "already-processed")]
    assert len(smtp_server.received) == 2


def _once_in_background(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "once"],
                            env=bot_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_once_sends_while_it_still_takes_in_mail(tmp_path, imap_server, smtp_server,
                                                 monkeypatch):
    """`once` over a backlog: the first batches' acknowledgements go out (the sender
    process) while a later mail is still in hand, not all after the last one."""
    marker = "HANG-backlog-4b2d"
    monkeypatch.setenv(HANG_ENV, marker)  # the third mail hangs until SIGTERM
    config = write_config(tmp_path, imap_server, smtp_server, mailbox={"batch_size": 1},
                          staff={"notify": []})  # acknowledgements only
    for n, text in enumerate(["How long do you keep my data?", "Who sees my address?",
                              f"Please delete my account. {marker}"]):
        imap_server.append(BOT, customer_mail(f"Question {n}", text,
                                              sender=f"c{n}@example.com"))
    worker = _once_in_background(config)
    try:
        received = smtp_server.wait_for(2, timeout=60)  # while the third mail is in hand
        assert worker.poll() is None
        assert {r.rcpt_tos[0] for r in received} == {"c0@example.com", "c1@example.com"}
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert len(smtp_server.wait_for(3, timeout=30)) == 3  # the third, after it was finished
    assert scalar(tmp_path / "state" / "tickets.db",
                  "SELECT count(*) FROM outbox WHERE status = 'sent'") == 3


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_the_sender_stops_when_once_is_killed(tmp_path, imap_server, smtp_server,
                                              monkeypatch):
    marker = "HANG-killed-once-61c0"
    monkeypatch.setenv(HANG_ENV, marker)
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": []})
    imap_server.append(BOT, customer_mail("Question", f"Who sees my address? {marker}"))
    worker = _once_in_background(config)
    try:
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
        senders = wait_until(lambda: [int(p) for p in children.read_text().split()], 60,
                             "the sender process")
    finally:
        worker.kill()  # SIGKILL: no chance to tell the sender
        worker.wait(timeout=10)
    wait_until(lambda: not any(map(_alive, senders)), 10, "the sender to notice and exit")


def test_once_with_the_smtp_server_down_tries_it_once_then_at_the_end(tmp_path, imap_server):
    """The sender of `once` does not knock on a server that is not taking mail after every
    batch: once, a quiet spell, then the last flush of the pass. Nothing is lost."""
    from types import SimpleNamespace

    from bot.ops.devmail import free_port

    down = SimpleNamespace(host="127.0.0.1", port=free_port())  # nothing listens there
    config = write_config(tmp_path, imap_server, down, mailbox={"batch_size": 2},
                          staff={"notify": []})
    for n in range(10):
        imap_server.append(BOT, customer_mail(f"Question {n}", "What data do you keep?",
                                              sender=f"c{n}@example.com"))
    done = run_cli(config, "once")
    assert done.returncode == 0, done.stderr
    tries = [line for line in done.stderr.splitlines() if "outbox: 0 sent" in line]
    assert 1 <= len(tries) <= 2, tries  # five batches
    db = tmp_path / "state" / "tickets.db"
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 10
    assert scalar(db, "SELECT count(*) FROM events WHERE type = 'smtp_outage'") == 1


@pytest.mark.parametrize(("held", "status"), [
    ([0], 0),              # nothing held: the sender goes at once
    ([2, 1, 0], 0),        # recorded after two more tries
    ([1] * 100, 3),        # never recorded: the worker must not send them again
])
def test_the_sender_records_what_the_server_took_before_it_goes(monkeypatch, held, status):
    from bot.ops import sender as sender_module

    counts = itertools.chain(held, itertools.repeat(held[-1]))
    flushes = []
    monkeypatch.setattr(sender_module.outbox, "held_count", lambda store: next(counts))
    monkeypatch.setattr(sender_module.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(sender_module, "RECORD_SECONDS", 0.05)
    sender = sender_module.Sender(lambda: None, flushes.append)
    assert sender._record_held(store=None) == status
    if held == [2, 1, 0]:
        assert len(flushes) == 2  # each try records first, and sends nothing until it has
