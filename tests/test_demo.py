"""``inquiry-bot demo`` run as an operator would: a subprocess, its own folder under tmp_path."""

from __future__ import annotations

import email
import re
import shlex
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from botenv import query, scalar, wait_until
from imapclient import IMAPClient

from bot.config import CATEGORIES
from bot.ops.cli import main
from bot.ops.demo import ACCOUNTS, BOT, PASSWORD, SAMPLES, STAFF, taken_event
from bot.ops.devmail import LOOPBACK, DevImapServer, SmtpSink, port_is_open

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


# -- the whole staff loop, from a mail client, against the running demo ----------------------

LOGIN = re.compile(r"^  (staff|dpo|bot|customer)\s+(\S+@\S+)\s+/\s+(\S+)\s", re.MULTILINE)
ALICE = "alice@example.com"


class RunningDemo:
    """``inquiry-bot demo`` as a subprocess, used only through what it prints and its ports."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder, self.output = folder, output
        shown = self.table()
        self.imap_port, self.smtp_port = map(int, PORTS.search(shown).groups())
        self.logins = {address: password for _role, address, password in LOGIN.findall(shown)}

    def table(self) -> str:
        return self.output.read_text()

    def mailbox(self, address: str) -> list[EmailMessage]:
        """Every mail in ``address``'s INBOX, read over IMAP with its printed login."""
        with IMAPClient(LOOPBACK, port=self.imap_port, ssl=False, timeout=10) as client:
            client.login(address, self.logins[address])
            client.select_folder("INBOX", readonly=True)
            fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        return [email.message_from_bytes(data[b"BODY[]"], policy=policy.default)
                for _uid, data in sorted(fetched.items())]

    def find(self, address: str, text: str) -> EmailMessage | None:
        """The first mail in ``address``'s INBOX whose subject or text contains ``text``."""
        return next((m for m in self.mailbox(address)
                     if text in str(m["Subject"]) or text in plain_text(m)), None)

    def send(self, msg: EmailMessage) -> None:
        """Submit ``msg`` as a mail client does (envelope from its headers; no login)."""
        with smtplib.SMTP(LOOPBACK, self.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)


def plain_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part else ""


def client_reply(notification: EmailMessage, text: str) -> EmailMessage:
    """A reply as neomutt or Thunderbird writes it: to the Reply-To, threaded, the answer
    above the quoted notification."""
    reply = EmailMessage()
    reply["From"] = f"Privacy team <{STAFF}>"
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = f"Re: {notification['Subject']}"
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = make_msgid(domain="cijidas.jp")
    reply["In-Reply-To"] = notification["Message-ID"]
    reply["References"] = notification["Message-ID"]
    quoted = "\n".join(f"> {line}".rstrip() for line in plain_text(notification).splitlines())
    reply.set_content(f"{text}\nOn Mon, 30 Nov 2026 at 12:46, Cijidas <{BOT}> wrote:\n{quoted}\n")
    return reply


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[RunningDemo]:
    base = tmp_path_factory.mktemp("running-demo")
    folder, output = base / "demo", base / "stdout.txt"
    with output.open("w") as stdout:
        process = subprocess.Popen(demo_command(folder), stdout=stdout,
                                   stderr=subprocess.STDOUT, text=True, cwd=base)
    try:
        wait_until(lambda: "Press Ctrl-C" in output.read_text() or process.poll() is not None,
                   timeout=120, what="the demo to answer the samples and wait")
        assert process.poll() is None, output.read_text()
        yield RunningDemo(folder, output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_demo_prints_every_login_and_the_admin_command(demo):
    assert demo.logins == {address: PASSWORD for _role, address, _name, _use in ACCOUNTS}
    assert {ALICE, STAFF, "lan@example.vn", "ken@example.jp", "dpo@cijidas.jp"} <= set(demo.logins)
    for address in demo.logins:  # each login works as printed
        demo.mailbox(address)
    config = demo.folder / "config.toml"
    command = re.search(r"Admin view \(datasette, read-only\):\s+(.+ admin)\b", demo.table())
    assert command, demo.table()
    words = shlex.split(command.group(1))
    assert words[-3:] == ["--config", str(config), "admin"]
    assert Path(words[0]).name in ("inquiry-bot", Path(sys.executable).name)
    muttrc = (demo.folder / "muttrc-privacy").read_text()
    assert f'set folder = "imap://127.0.0.1:{demo.imap_port}/"' in muttrc
    assert f'set smtp_url = "smtp://127.0.0.1:{demo.smtp_port}/"' in muttrc


def test_the_demo_has_its_own_owner_only_staff_secret(demo):
    env = demo.folder / "env"
    assert env.stat().st_mode & 0o777 == 0o600
    assert (demo.folder / "config.toml").stat().st_mode & 0o777 == 0o600
    assert (demo.folder / "bot.log").stat().st_mode & 0o777 == 0o600
    secret = dict(line.split("=", 1) for line in env.read_text().splitlines()
                  if "=" in line and not line.startswith("#"))["DEMO_STAFF_TOKEN_SECRET"]
    assert len(secret) >= 32
    assert secret not in demo.table()
    config = (demo.folder / "config.toml").read_text()
    assert 'token_secret_env = "DEMO_STAFF_TOKEN_SECRET"' in config


def test_staff_answer_from_a_mail_client_reaches_the_customer(demo):
    notification = wait_until(lambda: demo.find(STAFF, "Please delete my account"), timeout=30,
                              what="the staff notification about Alice's ticket")
    ref = re.search(r"\[(CJD-\d+)\]", notification["Subject"]).group(1)
    assert notification["Reply-To"] and notification["Reply-To"] != BOT

    demo.send(client_reply(notification, "Dear Alice,\n\nwe have deleted your account and "
                           "every piece of personal data about you.\n"))

    answer = wait_until(lambda: demo.find(ALICE, "every piece of personal data"), timeout=30,
                        what="the staff answer in Alice's mailbox")
    assert ref in answer["Subject"]
    text = plain_text(answer)
    assert "wrote:" not in text and "How to act" not in text  # the quote stays behind
    wait_until(lambda: re.search(rf"staff answer\s+{ref}\s.*\n(.*\n)*.*answer sent\s+{ref}\s+"
                                 rf"-> {ALICE}", demo.table()), timeout=30,
               what="the answer and its sending in the live table")

    # A note stays internal ...
    demo.send(client_reply(notification, "#note Alice also called; confirmed by phone.\n"))
    wait_until(lambda: re.search(rf"staff note\s+{ref}\s", demo.table()), timeout=30,
               what="the note in the live table")
    assert demo.find(ALICE, "confirmed by phone") is None
    assert scalar(demo.folder / "tickets.db", "SELECT count(*) FROM messages WHERE kind = "
                  "'staff_note' AND body_text LIKE '%confirmed by phone%'") == 1

    # ... and #close closes the ticket.
    demo.send(client_reply(notification, "#close\n"))
    wait_until(lambda: scalar(demo.folder / "tickets.db", "SELECT status FROM tickets WHERE "
                              "ref = ?", (ref,)) == "closed", timeout=30, what="#close")


def test_staff_mail_that_cannot_be_authenticated_shows_as_rejected(demo):
    notification = wait_until(lambda: demo.find(STAFF, "Complaint about marketing emails"),
                              timeout=30, what="the notification about Bob's ticket")
    ref = re.search(r"\[(CJD-\d+)\]", notification["Subject"]).group(1)
    forged = client_reply(notification, "We will keep sending newsletters.\n")
    forged.replace_header("To", BOT)  # the bot's plain address: no Reply-To token

    demo.send(forged)

    wait_until(lambda: re.search(rf"REJECTED\s+{ref}\s.*suspicious-sender", demo.table()),
               timeout=30, what="the rejection in the live table")
    assert not re.search(rf"staff answer\s+{ref}\s", demo.table())
    assert demo.find("bob@example.com", "keep sending newsletters") is None


def test_mail_to_an_unknown_mailbox_is_refused(demo):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ALICE, "nobody@example.com", "hello"
    msg.set_content("hello")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        demo.send(msg)

    assert refused.value.recipients["nobody@example.com"][0] == 550


# -- pieces: the SMTP server's delivery rules, the table's wording, the missing extra -------

def test_plus_addresses_reach_the_base_mailbox_and_strangers_are_refused():
    with DevImapServer() as imap, SmtpSink(deliver_into=imap, reject_unknown=True) as sink:
        imap.add_user(BOT, PASSWORD)
        with smtplib.SMTP(LOOPBACK, sink.port, timeout=10) as smtp:
            smtp.sendmail(STAFF, ["contact+cjd-000001.x.y@cijidas.jp", BOT],
                          b"Subject: answer\r\n\r\nanswer\r\n")
            refused = smtp.sendmail(STAFF, [BOT, "stranger@cijidas.jp"],
                                    b"Subject: two\r\n\r\ntwo\r\n")

        assert refused == {"stranger@cijidas.jp": (550, b"5.1.1 <stranger@cijidas.jp>: "
                                                        b"no such mailbox here")}
        received = sink.wait_for(2)
        assert received[0].delivered_to == (BOT,)  # once, though addressed twice
        assert len(imap.messages(BOT)) == 2


@pytest.mark.parametrize("outcome, reason, event, shown", [
    ("ticket", "", "NEW TICKET", "alice@example.com"),
    ("staff", "relayed", "staff answer", "(relayed)"),
    ("staff", "note", "staff note", "(note)"),
    ("staff", "commands", "staff command", "(commands)"),
    ("staff", "suspicious-sender", "REJECTED", "(suspicious-sender: not authenticated"),
    ("staff", "commands-rejected", "REJECTED", "(commands-rejected: command not understood"),
    ("staff", "something-new", "staff mail", "(something-new)"),  # never claims success
])
def test_the_table_never_shows_rejected_staff_mail_as_an_answer(outcome, reason, event, shown):
    got_event, who = taken_event(outcome, reason, "alice@example.com")
    assert got_event == event and who.startswith(shown)


def test_demo_without_the_demo_extra_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymap", None)  # as after `pip install .`

    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 2

    assert "the demo needs the demo extra: pip install '.[demo]'" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
