"""Failing mail servers and a failing database, against aiosmtpd on loopback (issue 14).

- A refused login (535 after a password rotation) keeps every mail - verification codes
  included - pending for as long as it lasts; staff get ONE alert when sending works again.
- Only a refusal of one mail (5xx to RCPT or DATA) fails a row; 530/550 to MAIL FROM, 530
  to RCPT and a dropped connection are outages (table-driven against a scripted server).
- A database locked during a flush: the accepted mail is recorded first thing once the
  store is writable again, and nothing is sent twice.
- An internationalised customer address goes out with SMTPUTF8 where the server offers it;
  elsewhere the row fails with a clear error and the ticket is flagged - never an exception.
"""

from __future__ import annotations

import email
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from botenv import customer_mail

from bot.adapters import outage, outbox
from bot.adapters.store import Store
from bot.config import settings_from_dict
from bot.flows.service import Service
from bot.mail import compose
from bot.models import MessageSource
from bot.ops.devmail import SmtpSink, free_port

pytestmark = pytest.mark.integration

BOT = "contact@cijidas.jp"
STAFF = "privacy@cijidas.jp"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
CODE_MAIL = b"Subject: your code\r\nTo: c1@example.com\r\n\r\nYour code: 48151623\r\n"
EAI_CUSTOMER = "nguyễn@example.vn"


def make(tmp_path: Path, port: int, username: str = "", **sections: dict):
    data = {"bot": {"address": BOT}, "mailbox": {"host": "x", "username": "u"},
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                     "timeout_seconds": 5, "username": username},
            "staff": {"addresses": [STAFF], "notify": [STAFF]}, **sections}
    settings = settings_from_dict(data, tmp_path / "config.toml",
                                  {"INQUIRY_BOT_IMAP_PASSWORD": "p",
                                   "INQUIRY_BOT_SMTP_PASSWORD": "rotated-password"})
    return Store(settings.database_path), settings


def queue(store: Store, *mails: tuple[str, bytes, bool], at: datetime = NOW) -> None:
    """``(recipient, raw, sensitive)`` rows, in one transaction."""
    with store.transaction() as conn:
        for i, (recipient, raw, sensitive) in enumerate(mails):
            store.enqueue(conn, message_id=f"<m{i}-{at.timestamp():.0f}@cijidas.jp>",
                          ticket_id=None, recipients=[recipient], raw=raw,
                          kind="acknowledgement", now=at, sensitive=sensitive)


def rows(store: Store) -> list[tuple]:
    return [tuple(r.values()) for r in store.rows(
        "SELECT status, attempts, raw IS NOT NULL AS has_raw FROM outbox ORDER BY id")]


def events(store: Store, type_: str) -> list[dict]:
    return [json.loads(r["detail"]) for r in store.rows(
        "SELECT detail FROM events WHERE type = ? ORDER BY id", (type_,))]


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


# -- 535, then the password is fixed ----------------------------------------------------

def test_refused_login_keeps_every_mail_and_alerts_staff_once(tmp_path):
    with SmtpSink(credentials={BOT: "old-password"}) as sink:  # the bot's password is new
        store, settings = make(tmp_path, sink.port, username=BOT)
        queue(store, ("c1@example.com", CODE_MAIL, True),
              ("c2@example.com", b"Subject: ack\r\n\r\nthanks\r\n", False),
              ("c3@example.com", b"Subject: answer\r\n\r\nanswer\r\n", False))
        # Longer than the ~1.5 days a failing mail is retried: a login outage never fails it.
        moments = [NOW + timedelta(hours=2 * i) for i in range(outbox.MAX_ATTEMPTS + 5)]
        for moment in moments:
            report = outbox.flush(store, settings, lambda moment=moment: moment)
            assert report.sent == 0 and report.failed == 0
        assert rows(store) == [("pending", len(moments), 1)] * 3  # codes and bytes kept
        assert sink.received == []
        [began] = events(store, "smtp_outage")  # one record per outage, not per attempt
        assert began["auth"] is True and "535" in began["error"]
        assert "535" in outage.digest_line(store, settings)

        sink.credentials[BOT] = "rotated-password"  # the server takes the login again
        recovered = moments[-1] + timedelta(hours=2)
        report = outbox.flush(store, settings, lambda: recovered)

        assert report.sent == 4  # three delayed mails + the alert, each once
        assert [r[0] for r in rows(store)] == ["sent"] * 4
        code = next(r for r in sink.received if "c1@example.com" in r.rcpt_tos)
        assert b"48151623" in code.raw  # the verification code survived the outage
        [alert] = [parsed(r.raw) for r in sink.received if STAFF in r.rcpt_tos]
        assert str(alert["Subject"]).startswith("Sending mail was failing from 2026-11-24 "
                                                "12:00 JST to ")
        assert str(alert["Subject"]).endswith(": 3 mails delayed")
        assert "refused the bot's login" in alert.get_body().get_content()
        assert outage.current(store) is None and outage.digest_line(store, settings) is None

        # A second outage within the hour: recorded, but staff are not alerted again.
        sink.credentials[BOT] = "rotated-again"
        queue(store, ("c4@example.com", b"Subject: x\r\n\r\nx\r\n", False), at=recovered)
        outbox.flush(store, settings, lambda: recovered + timedelta(minutes=10))
        sink.credentials[BOT] = "rotated-password"
        outbox.flush(store, settings, lambda: recovered + timedelta(minutes=20))
    assert len(sink.received) == 5
    assert [e["alerted"] for e in events(store, "smtp_outage_ended")] == [True, False]
    assert len(events(store, "smtp_outage")) == 2


def test_short_connection_outage_is_not_news(tmp_path, free_port):
    """A server restart (connection refused for a minute): logged, no alert."""
    store, settings = make(tmp_path, free_port)
    queue(store, ("c1@example.com", b"Subject: ack\r\n\r\nthanks\r\n", False))
    outbox.flush(store, settings, lambda: NOW)
    assert events(store, "smtp_outage")[0]["auth"] is False
    with SmtpSink(port=free_port) as sink:
        assert outbox.flush(store, settings, lambda: NOW + timedelta(minutes=1)).sent == 1
    assert [r.rcpt_tos for r in sink.received] == [("c1@example.com",)]
    assert events(store, "smtp_outage_ended")[0]["alerted"] is False


# -- which refusals fail a mail ----------------------------------------------------------

class Scripted:
    """aiosmtpd handler: answers the next MAIL/RCPT/DATA with a scripted reply once."""

    def __init__(self) -> None:
        self.replies: dict[str, str] = {}
        self.received: list[tuple[str, list[str], bytes, list[str]]] = []

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        if reply := self.replies.pop("MAIL", None):
            return reply
        envelope.mail_from, envelope.mail_options = address, list(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if reply := self.replies.pop("RCPT", None):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if reply := self.replies.pop("DATA", None):
            return reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content, list(envelope.mail_options)))
        return "250 OK"


@contextmanager
def scripted_server(smtputf8: bool = False) -> Iterator[tuple[Scripted, int]]:
    handler, port = Scripted(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.mark.parametrize(("command", "reply", "first", "second", "outage_kind"), [
    ("RCPT", "550 5.1.1 no such user", ("failed", 1, 0), ("sent", 1, 0), None),
    ("DATA", "554 5.6.0 message refused", ("failed", 1, 0), ("sent", 1, 0), None),
    ("DATA", "451 4.3.0 try again later", ("pending", 1, 1), ("sent", 1, 0), None),
    ("RCPT", "450 4.2.0 mailbox busy", ("pending", 1, 1), ("sent", 1, 0), None),
    # Not about the mail: the server does not take mail from us now. Nothing fails, the
    # session ends, and the rest waits untried.
    ("MAIL", "530 5.7.0 Authentication required", ("pending", 1, 1), ("pending", 1, 1),
     True),
    ("RCPT", "530 5.7.0 Authentication required", ("pending", 1, 1), ("pending", 1, 1),
     True),
    ("MAIL", "550 5.7.1 sender not allowed", ("pending", 1, 1), ("pending", 1, 1), False),
    ("MAIL", "421 4.3.2 shutting down", ("pending", 1, 1), ("pending", 1, 1), False),
])
def test_only_a_refusal_of_the_mail_itself_is_permanent(tmp_path, command, reply, first,
                                                        second, outage_kind):
    with scripted_server() as (server, port):
        store, settings = make(tmp_path, port)
        queue(store, ("c1@example.com", b"Subject: a\r\n\r\na\r\n", False),
              ("c2@example.com", b"Subject: b\r\n\r\nb\r\n", False))
        server.replies[command] = reply
        outbox.flush(store, settings, lambda: NOW)
    status = store.rows("SELECT status, attempts, status = 'pending' AND raw IS NOT NULL "
                        "FROM outbox ORDER BY id")
    assert [tuple(r.values()) for r in status] == [first, second]
    began = events(store, "smtp_outage")
    assert [e["auth"] for e in began] == ([] if outage_kind is None else [outage_kind])


# -- the database cannot record a send ---------------------------------------------------

def test_locked_database_during_a_flush_sends_nothing_twice(tmp_path):
    with SmtpSink() as sink:
        store, settings = make(tmp_path, sink.port)
        store.conn.execute("PRAGMA busy_timeout = 100")  # fail fast instead of after 10 s
        queue(store, *[(f"c{i}@example.com", f"Subject: {i}\r\n\r\n{i}\r\n".encode(), False)
                       for i in range(4)])
        locker = sqlite3.connect(store.path, isolation_level=None, timeout=0)

        def clock() -> datetime:
            # Another connection takes the write lock once the server accepted mail 2.
            if len(sink.received) == 2 and not locker.in_transaction:
                locker.execute("BEGIN IMMEDIATE")
            return NOW

        report = outbox.flush(store, settings, clock)
        assert (report.sent, report.held) == (1, 1)  # mail 2 went out but is not recorded
        assert len(sink.received) == 2
        assert outbox.held_count(store) == 1
        for _ in range(3):  # still locked: nothing is sent, not even mail 3
            assert outbox.flush(store, settings, clock) == outbox.FlushReport(held=1)
        assert len(sink.received) == 2
        assert [r[0] for r in rows(store)] == ["sent", "pending", "pending", "pending"]

        locker.execute("ROLLBACK")  # writable again
        report = outbox.flush(store, settings, lambda: NOW + timedelta(seconds=1))
        locker.close()
    assert report.sent == 2 and outbox.held_count(store) == 0
    assert rows(store) == [("sent", 1, 1)] * 4  # mail 2 recorded first, once
    ids = [parsed(r.raw)["Subject"] for r in sink.received]
    assert sorted(ids) == ["0", "1", "2", "3"]  # every mail exactly once


# -- internationalised customer addresses ------------------------------------------------

TRUSTED = ("mx.cijidas.jp; dkim=pass header.d=cijidas.jp header.i=privacy@cijidas.jp; "
           "spf=pass smtp.mailfrom=privacy@cijidas.jp; dmarc=pass header.from=cijidas.jp")


def eai_ticket_with_staff_answer(tmp_path: Path, port: int) -> tuple[Store, object]:
    """A ticket from nguyễn@example.vn (acknowledged) and a staff answer to relay."""
    store, settings = make(tmp_path, port, staff={
        "addresses": [STAFF], "notify": [STAFF], "trusted_authserv_ids": ["mx.cijidas.jp"]})
    service = Service(store, settings)
    raw = customer_mail("Câu hỏi về dữ liệu", "Công ty lưu những dữ liệu gì của tôi?",
                        sender=EAI_CUSTOMER, name="Nguyễn Văn A",
                        message_id="<hoi-1@example.vn>")
    service.handle(MessageSource("INBOX", 1, 1), raw, NOW)
    answer = customer_mail("Re: [CJD-000001] Câu hỏi về dữ liệu",
                           "Kính gửi Quý khách, chúng tôi chỉ lưu địa chỉ email.\n",
                           sender=STAFF, name="Tanaka Yuki",
                           headers={"Authentication-Results": TRUSTED,
                                    "In-Reply-To": "<hoi-1@example.vn>"})
    service.handle(MessageSource("INBOX", 1, 2), answer, NOW + timedelta(minutes=5))
    kinds = [r["kind"] for r in store.rows(
        "SELECT kind FROM outbox WHERE recipients LIKE '%example.vn%' ORDER BY id")]
    assert kinds == ["acknowledgement", "staff_reply"], (kinds, store.rows(
        "SELECT outcome, reason FROM processed"))
    return store, settings


def test_eai_customer_is_answered_with_smtputf8(tmp_path):
    with scripted_server(smtputf8=True) as (server, port):
        store, settings = eai_ticket_with_staff_answer(tmp_path, port)
        outbox.flush(store, settings, lambda: NOW + timedelta(minutes=6))
    to_customer = [m for m in server.received if m[1] == [EAI_CUSTOMER]]
    assert len(to_customer) == 2  # acknowledgement and the staff answer
    for _sender, _rcpts, raw, options in to_customer:
        assert "SMTPUTF8" in options
        assert f"To: {EAI_CUSTOMER}\r\n".encode() in raw  # RFC 6532: raw UTF-8 header
        assert b"Content-Transfer-Encoding: base64" in raw  # the body stays 7-bit
    assert events(store, "mail_not_sent") == []


def test_eai_customer_without_smtputf8_flags_the_ticket(tmp_path):
    with scripted_server(smtputf8=False) as (server, port):
        store, settings = eai_ticket_with_staff_answer(tmp_path, port)
        outbox.flush(store, settings, lambda: NOW + timedelta(minutes=6))  # never raises
    assert all(m[1] == [STAFF] for m in server.received) and server.received  # staff only
    failed = store.rows("SELECT kind, last_error FROM outbox WHERE status = 'failed' "
                        "ORDER BY id")
    assert [r["kind"] for r in failed] == ["acknowledgement", "staff_reply"]
    assert all("SMTPUTF8" in r["last_error"] for r in failed)
    assert store.ticket_by_ref("CJD-000001")["needs_review"] == 1
    assert [e["reason"] for e in events(store, "mail_not_sent")] == ["smtputf8"] * 2


@pytest.mark.parametrize(("address", "usable"), [
    ("nguyễn@example.vn", True), ("ngườidùng@ví.vn", True), ("josé.o'neil@correo.es", True),
    ("người dùng@ví.vn", False), ("nguyễn@example", False), ("nguyễn\r\nBcc: x@y.z", False),
    ("\"nguyễn\"@example.vn", False), ("nguyễn@@example.vn", False)])
def test_internationalised_addresses(address, usable):
    assert compose.is_sendable_address(address) is usable
    if usable:
        settings = settings_from_dict(
            {"bot": {"address": BOT}, "mailbox": {"host": "x", "username": "u"},
             "smtp": {"host": "y"}}, Path("config.toml"), {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
        message = compose.internal_mail(settings, to=address, subject="s", text="t",
                                        message_id="<a@cijidas.jp>", date=NOW)
        assert compose.recipients_of(message) == [address]
        assert f"To: {address}\r\n".encode() in bytes(message)
