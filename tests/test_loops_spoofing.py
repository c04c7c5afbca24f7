"""Loops and spoofing (issue 9), against the real loopback servers.

- Two bots answering each other live: ``run`` against an autoresponder thread that answers
  every mail the bot sends, with RFC 3834 headers (the bot must never answer) and without
  (plain mail, same subject, In-Reply-To set: the caps stop it). tests/test_loop_safety.py
  covers turn-by-turn ``once`` exchanges without headers and the caps themselves.
- A flood from one sender: a ticket per mail, acknowledgements stop at the per-recipient
  cap, staff get a few notices and ONE summary (``bot.flows.notify_limits``). 1,000 mails take
  about 2 s in one ``once``, so the full size runs in ``make test``.
- Spoofing: staff without token or authentication, the bot's own address from outside, and
  bounces that name another ticket's message change no ticket row (snapshot compared).
  tests/test_staff_flow.py checks the staff alert and forged tokens.
"""

from __future__ import annotations

import email
import re
import threading
import time
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from types import SimpleNamespace

import pytest
from botenv import BOT, customer_mail, query, scalar, start_worker, wait_until, write_config
from test_staff_flow import STAFF, STRANGER, Bot, staff_reply
from test_verification import DELETION, T0, Desk

from bot.flows import notify_limits
from bot.ops.cli import main

pytestmark = pytest.mark.integration

FLOOD = 1000
ROBOT = "robot@autoresponder.example"
FLOODER = "flood@example.org"
CUSTOMER = "customer@example.com"


def sent_to(smtp, address: str) -> list[EmailMessage]:
    return [email.message_from_bytes(r.raw, policy=policy.default)
            for r in list(smtp.received) if address in r.rcpt_tos]


def text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# -- two bots answering each other --------------------------------------------------------

class Autoresponder(threading.Thread):
    """A second bot on loopback: answers every mail the bot sends to :data:`ROBOT` by
    delivering its answer into the bot's mailbox - same subject, In-Reply-To set, and with
    ``rfc3834`` the ``Auto-Submitted: auto-replied`` header a well-behaved robot adds."""

    def __init__(self, imap, smtp, rfc3834: bool) -> None:
        super().__init__(name="autoresponder", daemon=True)
        self.imap, self.smtp, self.rfc3834 = imap, smtp, rfc3834
        self.answered = 0
        self.done = threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.done.is_set():
            try:  # wakes as soon as the bot's next mail arrives
                received = self.smtp.wait_for(seen + 1, timeout=0.2)
            except TimeoutError:
                continue
            for mail in received[seen:]:
                if ROBOT in mail.rcpt_tos:
                    self.imap.append(BOT, self.answer(mail.raw))
                    self.answered += 1
            seen = len(received)

    def answer(self, raw: bytes) -> bytes:
        incoming = email.message_from_bytes(raw, policy=policy.default)
        reply = EmailMessage()
        reply["From"] = f"Helpdesk <{ROBOT}>"
        reply["To"] = BOT
        reply["Subject"] = str(incoming["Subject"])
        reply["Message-ID"] = make_msgid(domain="autoresponder.example")
        reply["In-Reply-To"] = incoming["Message-ID"]
        reply["References"] = incoming["Message-ID"]
        if self.rfc3834:
            reply["Auto-Submitted"] = "auto-replied"
        # A ticket number of its own that looks like a verification code.
        reply.set_content("Thank you for your message. Your ticket number is 20261124.\n")
        return bytes(reply)


def _quiet(db: Path, robot: Autoresponder) -> bool:
    """Nothing more can happen: every mail to the robot was answered, every answer was
    processed, nothing waits in the outbox (one SQLite snapshot, read after ``answered``)."""
    answered = robot.answered
    row = query(db, "SELECT (SELECT count(*) FROM processed), (SELECT count(*) FROM outbox "
                    "WHERE recipients LIKE ?), (SELECT count(*) FROM outbox WHERE status = "
                    "'pending')", (f'%"{ROBOT}"%',))
    return bool(row) and row[0] == (1 + answered, answered, 0)


@pytest.mark.parametrize(("rfc3834", "bot_mails"), [
    (True, 1),   # the acknowledgement of the opening mail; no answer to any auto-reply
    (False, 5),  # default caps: acknowledgement + 4 "wrong code" replies, then silence
], ids=["auto-submitted", "plain-same-subject"])
@pytest.mark.slow
def test_two_bots_answering_each_other_in_run(tmp_path, imap_server, smtp_server, rfc3834,
                                              bot_mails):
    config = write_config(tmp_path, imap_server, smtp_server)  # default limits
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    robot = Autoresponder(imap_server, smtp_server, rfc3834)
    robot.start()
    # Someone typed the robot's address into a deletion request: the robot gets the
    # acknowledgement and the two bots talk.
    imap_server.append(BOT, customer_mail(*DELETION, sender=ROBOT))
    worker = start_worker(config, log)
    try:
        wait_until(lambda: _quiet(db, robot), 60, "the exchange to stop")
    finally:
        robot.done.set()
        worker.terminate()
        assert worker.wait(timeout=30) == 0, log.read_text()[-3000:]
    robot.join(timeout=10)

    assert len(sent_to(smtp_server, ROBOT)) == robot.answered == bot_mails
    ignored = query(db, "SELECT reason, count(*) FROM processed WHERE outcome = 'ignored' "
                        "GROUP BY reason")
    if rfc3834:  # ZERO replies: every auto-reply was recorded and dropped
        assert ignored == [("auto-submitted", 1)]
        assert scalar(db, "SELECT count(*) FROM tickets") == 1
    else:  # the caps stopped it, and the bot recorded why it went silent
        assert ignored == []
        assert scalar(db, "SELECT count(*) FROM events WHERE type IN "
                          "('auto_reply_suppressed', 'acknowledgement_suppressed')") >= 1
    print(f"\nloop ({'with' if rfc3834 else 'without'} RFC 3834 headers): stopped after "
          f"{bot_mails} bot mails, {robot.answered} robot mails")


# -- a flood from one sender --------------------------------------------------------------

def _flood_mail(i: int) -> bytes:
    return customer_mail("Question about my data", f"What personal data do you hold? #{i}",
                         sender=FLOODER, message_id=f"<flood-{i}@example.org>")


@pytest.mark.slow
def test_flood_from_one_sender_gets_one_summary(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)  # 5 acks, 5 notices per hour
    db = tmp_path / "state" / "tickets.db"
    with imap_server.session(BOT) as client:  # one session: 1,000 logins would dominate
        for i in range(FLOOD):
            client.append("INBOX", _flood_mail(i))
    started = time.perf_counter()
    assert main(["--config", str(config), "once"]) == 0
    elapsed = time.perf_counter() - started

    refs = [r[0] for r in query(db, "SELECT ref FROM tickets ORDER BY id")]
    assert len(refs) == FLOOD
    assert query(db, "SELECT DISTINCT customer_email FROM tickets") == [(FLOODER,)]
    assert query(db, "SELECT outcome, count(*) FROM processed GROUP BY outcome") == \
        [("ticket", FLOOD)]
    assert len(sent_to(smtp_server, FLOODER)) == 5  # limits.auto_replies_per_hour
    staff = sent_to(smtp_server, STAFF)
    notices, [summary] = staff[:5], staff[5:]
    assert [re.search(r"CJD-\d{6}", str(m["Subject"])).group(0) for m in notices] == refs[:5]
    assert summary["Subject"] == f"{FLOOD - 5} more tickets from {FLOODER} in the last hour"
    assert re.findall(r"CJD-\d{6}", text(summary)) == refs[5:]
    assert summary["Auto-Submitted"] == "auto-generated"
    assert scalar(db, "SELECT count(*) FROM events WHERE type = "
                      "'staff_notification_held'") == FLOOD - 5

    # More mail from the flooder within the hour: tickets, but no mail to staff at all.
    with imap_server.session(BOT) as client:
        for i in range(FLOOD, FLOOD + 3):
            client.append("INBOX", _flood_mail(i))
    assert main(["--config", str(config), "once"]) == 0
    assert scalar(db, "SELECT count(*) FROM tickets") == FLOOD + 3
    assert len(sent_to(smtp_server, STAFF)) == 6
    assert len(sent_to(smtp_server, FLOODER)) == 5
    print(f"\nflood: {FLOOD} mails from one sender in one `once`: {elapsed:.1f} s, "
          f"{FLOOD} tickets, 5 acknowledgements, 5 notifications + 1 summary")


def test_summary_rules_per_sender_and_hour(tmp_path):
    """Pretend clock: N notices per sender per rolling hour, one summary per sender per
    hour, other senders and follow-ups counted on their own."""
    desk = Desk(tmp_path, limits={"staff_notifications_per_sender_per_hour": 2,
                                  "auto_replies_per_hour": 100})
    minute = timedelta(minutes=1)

    def ask(sender: str, at, thread: str | None = None) -> None:
        headers = {"In-Reply-To": thread} if thread else None
        desk.receive(customer_mail("Question", "What data do you keep about me?",
                                   sender=sender, headers=headers), at)

    def summaries() -> list[EmailMessage]:
        return [m for m in desk.mails_to(STAFF) if "more tickets from" in str(m["Subject"])]

    for i in range(5):
        ask(CUSTOMER, T0 + i * minute)
    ask(STRANGER, T0 + 5 * minute)  # another sender: its own count
    assert len(desk.mails_to(STAFF)) == 3
    assert notify_limits.send_summaries(desk.store, desk.settings, T0 + 6 * minute) == 1
    [first] = summaries()
    assert first["Subject"] == f"3 more tickets from {CUSTOMER} in the last hour"
    assert re.findall(r"CJD-\d{6}", text(first)) == ["CJD-000003", "CJD-000004", "CJD-000005"]

    # A follow-up in the thread of a held ticket is held too; no second summary this hour.
    thread = desk.store.rows("SELECT message_id FROM messages WHERE ticket_id = 1")[0]
    ask(CUSTOMER, T0 + 10 * minute, thread=thread["message_id"])
    assert notify_limits.send_summaries(desk.store, desk.settings, T0 + 65 * minute) == 0
    assert notify_limits.send_summaries(desk.store, desk.settings, T0 + 66 * minute) == 1
    assert re.findall(r"CJD-\d{6}", text(summaries()[-1])) == ["CJD-000001"]
    assert notify_limits.send_summaries(desk.store, desk.settings, T0 + 130 * minute) == 0

    # Two hours later the rolling window is empty: notified one by one again.
    before = len(desk.mails_to(STAFF))
    ask(CUSTOMER, T0 + 131 * minute)
    assert len(desk.mails_to(STAFF)) == before + 1


def test_staff_notice_limit_is_validated(tmp_path):
    nowhere = SimpleNamespace(host="127.0.0.1", port=1)  # config errors stop before any I/O
    config = write_config(tmp_path, nowhere, None,
                          limits={"staff_notifications_per_sender_per_hour": 0})
    assert main(["--config", str(config), "once"]) == 2


# -- spoofing -----------------------------------------------------------------------------

@pytest.fixture
def bot(tmp_path, imap_server, smtp_server, env) -> Bot:
    """Ticket CJD-000001 (deletion, customer@example.com) and CJD-000002 (STRANGER)."""
    config = write_config(tmp_path, imap_server, smtp_server, staff={
        "token_secret_env": "TEST_STAFF_TOKEN_SECRET", "trusted_authserv_ids": ["mx.cijidas.jp"]})
    desk = Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)
    desk.deliver(customer_mail("Cau hoi", "Cong ty luu du lieu gi cua toi?", sender=STRANGER,
                               message_id="<khach-1@example.vn>"))
    return desk


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Everything a hostile mail must not change."""
    return {
        "tickets": query(db, "SELECT * FROM tickets ORDER BY id"),
        "verifications": query(db, "SELECT * FROM verifications ORDER BY ticket_id"),
        "bounces": query(db, "SELECT * FROM bounces"),
        "messages": query(db, "SELECT id, ticket_id, kind FROM messages "
                              "WHERE kind != 'notification' ORDER BY id"),
    }


def from_bot(sender: str, bot: Bot) -> bytes:
    """Mail from outside that claims to be the bot, in the customer's thread, with commands."""
    return customer_mail("Re: [CJD-000001] Please delete my account",
                         "#close\n#verified\nYour request is complete.",
                         headers={"From": f"Cijidas <{sender}>",
                                  "In-Reply-To": bot.customer_id})


def bounce(recipient: str, embedded: str | None = None, in_reply_to: str | None = None) -> bytes:
    """A multipart/report bounce from outside naming ``recipient`` as failed."""
    headers = f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else ""
    original = (f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {BOT}\r\n"
                f"To: {recipient}\r\nMessage-ID: {embedded}\r\n") if embedded else ""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: {BOT}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n{headers}"
            f"Message-ID: {make_msgid(domain='mx.example.net')}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"{original}--B--\r\n").encode()


def _ack_of(bot: Bot, customer: str) -> str:
    return scalar(bot.db, "SELECT message_id FROM outbox WHERE kind = 'acknowledgement' "
                          "AND recipients LIKE ?", (f'%"{customer}"%',))


SPOOFS = {
    # right From, no token, no authentication, commands in the customer's thread
    "staff-unauthenticated": (lambda b: staff_reply(b, "#close\n#verified\nAll done.", to=BOT),
                              "staff", "suspicious-sender"),
    "bot-address": (lambda b: from_bot(BOT, b), "ignored", "own-address"),
    "bot-plus-address": (lambda b: from_bot("contact+cjd-000001.0123456789abcdef0123@cijidas.jp",
                                            b), "ignored", "own-address"),
    # a bounce naming CJD-000001's acknowledgement, but another customer as failed
    "bounce-embedded-other-recipient": (lambda b: bounce(STRANGER, embedded=_ack_of(b, CUSTOMER)),
                                        "ignored", "delivery-report"),
    "bounce-in-reply-to-other-recipient": (
        lambda b: bounce(STRANGER, in_reply_to=_ack_of(b, CUSTOMER)), "ignored",
        "delivery-report"),
    # the customer as failed, but the named message never went to the customer
    "bounce-customer-of-staff-notice": (
        lambda b: bounce(CUSTOMER, embedded=str(b.notification["Message-ID"])), "ignored",
        "delivery-report"),
    "bounce-customer-own-message": (lambda b: bounce(CUSTOMER, embedded=b.customer_id),
                                    "ignored", "delivery-report"),
}


@pytest.mark.parametrize("case", list(SPOOFS))
def test_spoofed_mail_changes_no_ticket(bot, case):
    build, outcome, reason = SPOOFS[case]
    before = snapshot(bot.db)
    to_customers = len(sent_to(bot.smtp, CUSTOMER)) + len(sent_to(bot.smtp, STRANGER))
    assert len(before["tickets"]) == 2 and before["bounces"] == []

    bot.deliver(build(bot))

    assert query(bot.db, "SELECT outcome, reason FROM processed ORDER BY rowid DESC "
                         "LIMIT 1") == [(outcome, reason)]
    assert snapshot(bot.db) == before
    assert len(sent_to(bot.smtp, CUSTOMER)) + len(sent_to(bot.smtp, STRANGER)) == to_customers


# -- a flood from many forged senders (issue 14) ------------------------------------------

PHISHING_SUBJECT = "URGENT: verify your account at https://evil.example/login"
PHISHING_NAME = "Your account is locked, call +1 555 0100"
FORGED = 300


def _everything_in(message: EmailMessage) -> str:
    """Every decoded header and text part of a mail, as one lower-case string."""
    headers = [f"{k}: {v}" for k, v in message.items()]
    parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    return "\n".join(headers + parts).lower()


@pytest.mark.slow
def test_flood_from_many_forged_senders_is_capped(tmp_path, imap_server, smtp_server, env):
    # Default limits (auto_mail_per_hour = 100). Staff without an IMAP mailbox: the sink
    # records their mail without delivering 300 notifications into Dovecot one by one.
    desk = "desk@cijidas.jp"
    config = write_config(tmp_path, imap_server, smtp_server,
                          staff={"addresses": [desk], "notify": [desk]})
    db = tmp_path / "state" / "tickets.db"
    with imap_server.session(BOT) as client:
        for i in range(FORGED):
            client.append("INBOX", customer_mail(
                PHISHING_SUBJECT, "Please act now.", message_id=f"<phish-{i}@example.net>",
                headers={"From": f'"{PHISHING_NAME}" <victim{i}@example.net>'}))
    assert main(["--config", str(config), "once"]) == 0

    assert scalar(db, "SELECT count(*) FROM tickets") == FORGED
    received = [email.message_from_bytes(r.raw, policy=policy.default)
                for r in list(smtp_server.received)]
    to_victims = [m for m, r in zip(received, smtp_server.received, strict=True)
                  if any(a.startswith("victim") for a in r.rcpt_tos)]
    assert len(to_victims) == 100  # limits.auto_mail_per_hour; the rest wait their turn
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement' AND "
                      "status = 'pending' AND next_attempt_at >= '2000'") == FORGED - 100
    alerts = [m for m in received if "held back" in str(m["Subject"])]
    assert len(alerts) == 1 and alerts[0]["To"] == desk
    for message in received:  # acknowledgements, staff notifications, the alert
        content = _everything_in(message)
        assert "evil.example" not in content and "https://evil" not in content
    for ack in to_victims:
        content = _everything_in(ack)
        assert "555 0100" not in content and "account is locked" not in content
        assert "dear customer" in content  # the sentence-like name is not repeated
        assert str(ack["Subject"]).startswith("[CJD-")
        assert len(str(ack["Subject"])) <= len("[CJD-000000] ") + 61
    print(f"\nflood from {FORGED} forged senders: {len(to_victims)} acknowledgements sent, "
          f"{FORGED - 100} waiting, {len(alerts)} alert")
