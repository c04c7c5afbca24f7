"""Plain-text bounces (no delivery-status part): recognised as machine mail, their failed
recipients recorded in ``bounces`` and on the original ticket, later mail to them suppressed.

The fixtures in tests/fixtures/bounces/ are written after what Exchange/Outlook, Lotus
Domino, qmail, Postfix and Exim send; ``{RECIPIENT}``, ``{ORIGINAL_ID}``... are filled in
with the acknowledgement the bot really sent."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from botenv import BOT, customer_mail
from test_verification import CUSTOMER, T0, Desk

from bot.flows import autoreply
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
FAILURES = ["domino_failure", "exchange_ndr", "exim_failed", "postfix_plain", "qmail_failure"]


def fixture(name: str, recipient: str = CUSTOMER, original: str = "<ack-1@cijidas.jp>",
            subject: str = "[CJD-000001] Question") -> bytes:
    text = (FIXTURES / f"{name}.eml").read_text()
    text = text.format(BOT=BOT, RECIPIENT=recipient, ORIGINAL_ID=original, SUBJECT=subject)
    return text.replace("\n", "\r\n").encode()


@pytest.mark.parametrize("name", [*FAILURES, "exchange_warning"])
def test_recognised_as_machine_mail(name):
    assert machine_generated_reason(parse_message(fixture(name)), BOT) is not None


@pytest.mark.parametrize("name", FAILURES)
def test_failed_recipient_read(name):
    assert [(a, p) for a, _, p in autoreply.permanent_failures(fixture(name))] == [
        (CUSTOMER, True)]


def test_a_delivery_warning_is_no_failure():
    assert autoreply.permanent_failures(fixture("exchange_warning")) == []


@pytest.mark.parametrize(("headers", "reason"), [
    ("From: Postmaster <>\r\n", "mailer-daemon"),  # Lotus Domino: the name, no address
    ("Return-Path: <MAILER-DAEMON@mx.example.com>\r\nFrom: Alice <alice@example.com>\r\n",
     "mailer-daemon"),
    ("From: Alice <alice@example.com>\r\n", None),
])
def test_daemon_senders_without_other_signs(headers, reason):
    raw = (headers + f"To: {BOT}\r\nSubject: Hello\r\n\r\nHello there, a question.\r\n").encode()
    assert machine_generated_reason(parse_message(raw), BOT) == reason


def _ack_sent(desk: Desk) -> str:
    desk.receive(customer_mail("Question", "What data do you keep about me?"), T0)
    [row] = desk.store.rows("SELECT message_id FROM outbox")
    return row["message_id"]


@pytest.mark.parametrize("name", FAILURES)
def test_bounce_recorded_and_later_acknowledgement_suppressed(tmp_path, name):
    desk = Desk(tmp_path, staff={"notify": []})
    ack_id = _ack_sent(desk)
    ticket = desk.ticket()

    handled = desk.receive(fixture(name, original=ack_id),
                           T0 + timedelta(minutes=5))

    assert handled.outcome.value == "ignored"
    assert desk.store.rows("SELECT address, permanent, ticket_id FROM bounces") == [
        {"address": CUSTOMER, "permanent": 1, "ticket_id": ticket["id"]}]
    [event] = desk.store.rows("SELECT ticket_id, detail FROM events WHERE type = 'bounce'")
    assert event["ticket_id"] == ticket["id"]
    assert json.loads(event["detail"])["failed_recipients"] == [CUSTOMER]
    desk.receive(customer_mail("Another question", "Do you share my data?"),
                 T0 + timedelta(days=1))
    suppressed = desk.store.rows("SELECT detail FROM events WHERE type = "
                                 "'acknowledgement_suppressed'")
    assert suppressed and "bounced-permanently" in suppressed[0]["detail"]


def test_warning_and_forged_recipient_record_nothing(tmp_path):
    desk = Desk(tmp_path, staff={"notify": []})
    ack_id = _ack_sent(desk)
    desk.receive(fixture("exchange_warning", original=ack_id),
                 T0 + timedelta(minutes=5))
    desk.receive(fixture("qmail_failure", recipient="victim@example.org", original=ack_id),
                 T0 + timedelta(minutes=6))
    assert desk.store.rows("SELECT address FROM bounces") == []
    assert autoreply.blocked_reason(desk.store, desk.settings, CUSTOMER,
                                    T0 + timedelta(days=1)) is None
