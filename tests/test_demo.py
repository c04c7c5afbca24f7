"""``inquiry-bot demo`` run as an operator would: a subprocess, its own folder under tmp_path."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from botenv import query, wait_until

from bot.config import CATEGORIES
from bot.ops.demo import PASSWORD, SAMPLES, STAFF
from bot.ops.devmail import LOOPBACK, port_is_open

PORTS = re.compile(r"IMAP (\d+), SMTP (\d+)")


def demo_command(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bot", "demo", "--dir", str(folder), *extra]


def test_every_sample_gets_its_ticket_and_acknowledgement(tmp_path):
    folder = tmp_path / "demo"

    result = subprocess.run(demo_command(folder, "--exit-after-samples"), capture_output=True,
                            text=True, timeout=180, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    db = folder / "tickets.db"
    tickets = query(db, "SELECT ref, category, customer_email FROM tickets ORDER BY id")
    assert sorted(t[1] for t in tickets) == sorted(CATEGORIES)  # one sample per category
    humans = [s for s in SAMPLES if "Auto-Submitted" not in s[3]]
    assert len(tickets) == len(humans)
    acks = query(db, "SELECT t.ref, o.status, o.sent_at FROM outbox o JOIN tickets t "
                     "ON t.id = o.ticket_id WHERE o.kind = 'acknowledgement'")
    assert sorted(a[0] for a in acks) == sorted(t[0] for t in tickets)
    assert all(status == "sent" and sent_at for _ref, status, sent_at in acks)
    assert query(db, "SELECT outcome, count(*) FROM processed GROUP BY outcome") == [
        ("ignored", 1), ("ticket", len(humans))]
    # The live table shows each ticket and the moment its acknowledgement was sent ...
    for ref, _category, customer in tickets:
        assert re.search(rf"NEW TICKET\s+{ref}\s.*{re.escape(customer)}", result.stdout)
        assert re.search(rf"ack sent\s+{ref}\s+-> {re.escape(customer)}", result.stdout)
    # ... while the worker's log lines go to the demo folder, not the terminal.
    assert "INFO" not in result.stdout + result.stderr
    assert "outcome=ticket" in (folder / "bot.log").read_text()


def test_ctrl_c_stops_everything_and_leaves_nothing_listening(tmp_path):
    folder, output = tmp_path / "demo", tmp_path / "stdout.txt"
    with output.open("w") as stdout:
        demo = subprocess.Popen(demo_command(folder), stdout=stdout, stderr=subprocess.STDOUT,
                                text=True, cwd=tmp_path)
    try:
        wait_until(lambda: "Press Ctrl-C" in output.read_text() or demo.poll() is not None,
                   timeout=120, what="the demo to answer the samples and wait")
        shown = output.read_text()
        assert demo.poll() is None, shown
        imap_port, smtp_port = map(int, PORTS.search(shown).groups())
        assert port_is_open(LOOPBACK, imap_port) and port_is_open(LOOPBACK, smtp_port)
        assert f"SMTP 127.0.0.1:{smtp_port}" in shown  # how to send your own mail
        assert f"{STAFF} / {PASSWORD}" in shown  # how to open the staff mailbox

        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    assert demo.returncode == 0, output.read_text()
    assert "nothing is listening any more" in output.read_text()
    assert not port_is_open(LOOPBACK, imap_port)
    assert not port_is_open(LOOPBACK, smtp_port)
