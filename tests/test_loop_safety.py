"""Loop and abuse safety: caps per recipient and per ticket, permanent bounces, and a second
autoresponder on loopback that answers everything without any auto-reply headers."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from botenv import BOT, customer_mail, query, write_config
from mailservers import PASSWORD
from test_verification import CUSTOMER, DELETION, T0, Desk

from bot.flows import autoreply
from bot.ops.cli import main

ROBOT = "robot@autoresponder.example"


# -- bounce reports (pure) -------------------------------------------------------------------

def dsn(recipient: str, action: str, status: str, original_id: str = "<x@cijidas.jp>") -> bytes:
    """A delivery status notification (RFC 3464) as an MTA writes it."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {BOT}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.com')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {BOT}\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n"
        "--B--\r\n").encode()


@pytest.mark.parametrize(("raw", "expected"), [
    (dsn("Alice@Example.com", "failed", "5.1.1"), [("alice@example.com", "5.1.1", True)]),
    (dsn("alice@example.com", "failed", "4.4.7"), [("alice@example.com", "4.4.7", False)]),
    (dsn("alice@example.com", "delayed", "4.4.1"), []),
    (dsn("not-an-address", "failed", "5.1.1"), []),
    (b"From: x@example.com\r\nSubject: hi\r\n\r\nno report here\r\n", []),
    (b"\xff\xfe garbage", []),
])
def test_permanent_failures(raw, expected):
    assert autoreply.permanent_failures(raw) == expected


# -- guards on a real store ------------------------------------------------------------------

@pytest.mark.parametrize(("address", "reason"), [
    (BOT, "own-address"),
    ("contact+test@cijidas.jp", "own-address"),
    ("no-reply@shop.example.com", "noreply-address"),
    ("MAILER-DAEMON@mx.example.com", "noreply-address"),
    ("postmaster@example.com", "noreply-address"),
    ("", "no-sender-address"),
    ("privacy@cijidas.jp", None),
])
def test_addresses_never_mailed(tmp_path, address, reason):
    desk = Desk(tmp_path)
    assert autoreply.blocked_reason(desk.store, desk.settings, address, T0) == reason


def test_permanent_bounce_blocks_mail_for_sixty_days(tmp_path):
    desk = Desk(tmp_path, staff={"notify": []})
    desk.receive(customer_mail("Question", "What data do you keep about me?"), T0)
    [ack_id] = [r["message_id"] for r in desk.store.rows("SELECT message_id FROM outbox")]

    desk.receive(dsn(CUSTOMER, "failed", "5.1.1", ack_id), T0 + timedelta(minutes=5))
    # A forged report about an address we never wrote to silences nobody.
    desk.receive(dsn("victim@example.org", "failed", "5.1.1", ack_id), T0 + timedelta(minutes=6))

    assert desk.store.rows("SELECT address, permanent FROM bounces") == [
        {"address": CUSTOMER, "permanent": 1}]
    later = T0 + timedelta(days=59)
    assert autoreply.blocked_reason(desk.store, desk.settings, CUSTOMER, later) == \
        "bounced-permanently"
    assert autoreply.blocked_reason(desk.store, desk.settings, "victim@example.org",
                                    later) is None
    desk.receive(customer_mail("Another question", "Do you share my data?"), later)
    suppressed = desk.store.rows("SELECT detail FROM events WHERE type = "
                                 "'acknowledgement_suppressed'")
    assert "bounced-permanently" in suppressed[0]["detail"]
    assert autoreply.blocked_reason(desk.store, desk.settings, CUSTOMER,
                                    T0 + timedelta(days=61)) is None


def test_per_ticket_cap_counts_a_rolling_day(tmp_path):
    desk = Desk(tmp_path, limits={"auto_replies_per_ticket_per_day": 2,
                                  "auto_replies_per_hour": 100})
    desk.receive(customer_mail(*DELETION, message_id="<req-1@example.com>"), T0)
    ticket_id = desk.ticket()["id"]
    for minutes in (1, 2):  # two wrong codes: the second reply reaches the cap of 2
        desk.receive(customer_mail("Re: [CJD-000001]", "code 00000000", message_id=None,
                                   headers={"In-Reply-To": "<req-1@example.com>"}),
                     T0 + timedelta(minutes=minutes))

    assert autoreply.blocked_reason(desk.store, desk.settings, CUSTOMER, T0 + timedelta(hours=1),
                                    ticket_id) == "ticket-rate-limited"
    assert autoreply.blocked_reason(desk.store, desk.settings, CUSTOMER,
                                    T0 + timedelta(days=1, minutes=3), ticket_id) is None
    assert "auto_reply_suppressed" in desk.events()


# -- a second autoresponder on loopback ------------------------------------------------------

def autoresponse(to_robot: bytes, threaded: bool) -> bytes:
    """What a careless autoresponder sends back: no Auto-Submitted, no Precedence, nothing.

    ``threaded`` ones answer in the thread and quote a ticket number of their own that
    looks like a verification code; the others start a fresh conversation every time.
    """
    incoming = email.message_from_bytes(to_robot, policy=policy.default)
    reply = EmailMessage()
    reply["From"] = f"Helpdesk <{ROBOT}>"
    reply["To"] = BOT
    reply["Subject"] = f"Re: {incoming['Subject']}" if threaded else "We received your mail"
    reply["Message-ID"] = make_msgid(domain="autoresponder.example")
    if threaded:
        reply["In-Reply-To"] = incoming["Message-ID"]
        reply["References"] = incoming["Message-ID"]
    reply.set_content("Thank you for your message. Your ticket number is 20261124.\n")
    return bytes(reply)


@pytest.mark.integration
@pytest.mark.parametrize(("threaded", "limits"), [
    # A fresh conversation every time: each is a new ticket, the per-recipient cap stops it.
    (False, {"auto_replies_per_hour": 3}),
    # In the thread of a deletion request: acknowledgement, then wrong-code replies (its
    # ticket number looks like a code) until the per-ticket cap.
    (True, {"auto_replies_per_hour": 100, "auto_replies_per_ticket_per_day": 3}),
], ids=["new-conversations", "same-thread"])
def test_autoresponder_conversation_stops_at_the_cap(tmp_path, imap_server, smtp_server,
                                                      monkeypatch, threaded, limits):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, imap_server, smtp_server, limits=limits,
                          staff={"notify": []})
    imap_server.append(BOT, customer_mail(*DELETION, sender=ROBOT))
    answered = 0
    for _ in range(12):
        assert main(["--config", str(config), "once"]) == 0
        to_robot = [r.raw for r in smtp_server.received if ROBOT in r.rcpt_tos]
        if len(to_robot) == answered:
            break  # the bot stayed silent: the conversation is over
        for raw in to_robot[answered:]:
            imap_server.append(BOT, autoresponse(raw, threaded))
        answered = len(to_robot)
    else:
        pytest.fail("the bot kept answering the autoresponder")

    db = tmp_path / "state" / "tickets.db"
    assert answered == 3
    suppressed = query(db, "SELECT count(*) FROM events WHERE type IN "
                           "('acknowledgement_suppressed', 'auto_reply_suppressed')")[0][0]
    assert suppressed >= 1  # the cap was hit and recorded, not merely never reached
