"""Identity verification by email: pure decisions (table-driven), the reply handling and the
scheduled pass on a real SQLite store, and one round trip through the loopback servers."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from botenv import BOT, customer_mail, query, scalar, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.config import settings_from_dict
from bot.flows import verification
from bot.flows.service import Service
from bot.flows.verification import Due, Verdict, hash_code
from bot.models import MessageSource
from bot.ops.cli import main

REF = "CJD-000001"
CODE = "48151623"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(days=7)
CUSTOMER = "customer@example.com"
STAFF = "privacy@cijidas.jp"
DELETION = ("Please delete my account",
            "Hello, I want you to delete my account and all my personal data.\n"
            "My login ID is alice01.\nThanks, Alice")


# -- pure decisions ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("48151623", ["48151623"]),
    ("My code: 4815 1623, thanks", ["48151623"]),
    ("code 4815-1623", ["48151623"]),
    ("４８１５１６２３", ["48151623"]),                     # full-width digits
    ("Phone 090-1234-5678, code 48151623", ["48151623"]),  # phone is too long for a code
    ("> 48151623\nno code here", []),                      # quoted text is not the reply
    ("1234567 and 123456789", []),
    ("11111111 22222222 11111111", ["11111111", "22222222"]),
    ("", []),
])
def test_code_candidates(text, expected):
    assert verification.code_candidates(text) == expected


@pytest.mark.parametrize(("text", "attempts", "now", "expected"), [
    (f"here it is: {CODE}", 5, T0, (Verdict.CONFIRMED, 4)),
    ("thanks, will do", 5, T0, (Verdict.NO_CODE, 5)),
    ("12345678", 5, T0, (Verdict.WRONG, 4)),
    ("12345678", 1, T0, (Verdict.TOO_MANY, 0)),
    (CODE, 5, EXPIRES, (Verdict.EXPIRED, 5)),
    (CODE, 0, T0, (Verdict.TOO_MANY, 0)),
    # Every distinct candidate costs a try: a mail full of numbers cannot brute-force.
    ("11111111 22222222 33333333 " + CODE, 3, T0, (Verdict.TOO_MANY, 0)),
    ("11111111 " + CODE, 3, T0, (Verdict.CONFIRMED, 1)),
])
def test_check_code(text, attempts, now, expected):
    result = verification.check_code(text, ref=REF, code_hash=hash_code(REF, CODE),
                                     expires_at=EXPIRES, attempts_left=attempts, now=now)
    assert (result.verdict, result.tries_left) == expected


def test_a_used_code_never_confirms_again():
    result = verification.check_code(CODE, ref=REF, code_hash=None, expires_at=EXPIRES,
                                     attempts_left=5, now=T0)
    assert result.verdict == Verdict.WRONG


@pytest.mark.parametrize(("days", "reminded", "expected"), [
    (1, False, None),
    (3, False, Due.REMIND),
    (4, True, None),
    (7, False, Due.CLOSE),
    (8, True, Due.CLOSE),
])
def test_due_action(days, reminded, expected):
    now = T0 + timedelta(days=days)
    assert verification.due_action(code_created_at=T0, code_expires_at=EXPIRES,
                                   reminded_at=T0 + timedelta(days=3) if reminded else None,
                                   reminder_after=timedelta(days=3), now=now) == expected


@pytest.mark.parametrize(("content_type", "filename", "expected"), [
    ("image/jpeg", "cccd.jpg", True),
    ("application/pdf", "passport.pdf", True),
    ("application/octet-stream", "scan.PDF", True),
    ("text/plain", "notes.txt", False),
    ("application/zip", "", False),
])
def test_is_document(content_type, filename, expected):
    assert verification.is_document(content_type, filename) is expected


# -- reply handling on a real store --------------------------------------------------------

class Desk:
    """The bot's service on a real SQLite store, driven with explicit times."""

    def __init__(self, tmp_path: Path, **sections: dict) -> None:
        data = {"bot": {"address": BOT}, "mailbox": {"host": "x", "username": BOT},
                "smtp": {"host": "y"}, "staff": {"addresses": [STAFF], "notify": [STAFF]},
                **sections}
        self.settings = settings_from_dict(data, tmp_path / "config.toml",
                                           {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
        self.store = Store(self.settings.database_path)
        self.service = Service(self.store, self.settings)
        self.uid = 0

    def receive(self, raw: bytes, now: datetime):
        self.uid += 1
        return self.service.handle(MessageSource("INBOX", 1, self.uid), raw, now)

    def mails_to(self, address: str) -> list[EmailMessage]:
        rows = self.store.rows("SELECT raw FROM outbox WHERE recipients LIKE ? ORDER BY id",
                               (f'%"{address}"%',))
        return [email.message_from_bytes(r["raw"], policy=policy.default) for r in rows]

    def staff_mail(self, subject_part: str) -> EmailMessage:
        """The one notice to staff whose subject contains ``subject_part``."""
        [found] = [m for m in self.mails_to(STAFF) if subject_part in m["Subject"]]
        return found

    def events(self) -> list[str]:
        return [r["type"] for r in self.store.rows("SELECT type FROM events ORDER BY id")]

    def ticket(self) -> dict:
        return self.store.ticket_by_ref(REF)


def text_of(message: EmailMessage) -> str:
    """The text part with line wrapping undone, so phrases can be searched."""
    return " ".join(plain(message).split())


def plain(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def code_in(message: EmailMessage) -> str:
    return re.search(r"^\s+(\d{8})\s*$", plain(message), re.MULTILINE).group(1)


def reply(body: str, sender: str = CUSTOMER, **kwargs) -> bytes:
    return customer_mail(f"Re: [{REF}] Please delete my account", body, sender=sender,
                         headers={"In-Reply-To": "<req-1@example.com>"}, **kwargs)


@pytest.fixture
def desk(tmp_path) -> Desk:
    desk = Desk(tmp_path)
    desk.receive(customer_mail(*DELETION, message_id="<req-1@example.com>"), T0)
    assert desk.ticket()["verification_status"] == "pending"
    return desk


def test_right_code_from_the_same_address_confirms(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])

    desk.receive(reply(f"Here is my code: {code}\nAlice"), T0 + timedelta(hours=2))

    assert desk.ticket()["verification_status"] == "email_confirmed"
    assert "verification_confirmed" in desk.events()
    assert "waiting_for_customer" in desk.events()
    assert "waiting_for_customer_ended" in desk.events()
    confirmation = desk.mails_to(CUSTOMER)[-1]
    assert "We have confirmed your identity" in text_of(confirmation)
    assert confirmation["In-Reply-To"]
    # Single use: once confirmed even the hash is gone; the acknowledgement copy is masked.
    assert desk.store.verification(desk.ticket()["id"])["code_hash"] is None
    assert scalar(desk.settings.database_path, "SELECT count(*) FROM messages WHERE "
                  "kind = 'acknowledgement' AND body_text LIKE ?", (f"%{code}%",)) == 0


def test_wrong_codes_then_failure_tells_customer_and_staff(desk):
    for tries_left in (4, 3, 2, 1):
        desk.receive(reply("my code is 00000000"), T0 + timedelta(hours=1))
        assert f"You have {tries_left} attempt" in text_of(desk.mails_to(CUSTOMER)[-1])

    desk.receive(reply("my code is 00000001"), T0 + timedelta(hours=2))

    ticket = desk.ticket()
    assert (ticket["verification_status"], ticket["status"]) == ("failed", "closed_unverified")
    assert "entered wrongly too many times" in text_of(desk.mails_to(CUSTOMER)[-1])
    assert desk.staff_mail("Identity verification FAILED")
    # Even the right code no longer helps.
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(reply(code), T0 + timedelta(hours=3))
    assert desk.ticket()["verification_status"] == "failed"


def test_expired_code_in_a_reply_fails(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(reply(code), EXPIRES + timedelta(minutes=1))
    assert desk.ticket()["verification_status"] == "failed"
    assert "the code has expired" in text_of(desk.mails_to(CUSTOMER)[-1])


def test_code_from_another_address_never_confirms(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(reply(f"code {code}", sender="attacker@example.org"), T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "pending"
    assert "verification_confirmed" not in desk.events()


def test_a_reply_without_a_code_changes_nothing(desk):
    desk.receive(reply("I will send the code later."), T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "pending"
    assert len(desk.mails_to(CUSTOMER)) == 1


def test_document_attachments_are_noted_not_stored(desk):
    message = email.message_from_bytes(reply("Here is my ID card."), policy=policy.default)
    message.add_attachment(b"\xff\xd8\xff fake jpeg bytes", maintype="image", subtype="jpeg",
                           filename="cccd.jpg")

    desk.receive(bytes(message), T0 + timedelta(hours=1))

    detail = desk.store.rows("SELECT detail FROM events WHERE type = "
                             "'verification_reply_attachments'")[0]["detail"]
    assert "cccd.jpg" in detail and '"content_stored": false' in detail
    assert "cccd.jpg" in text_of(desk.staff_mail("image/PDF attachments"))
    stored = desk.store.rows("SELECT body_text, attachments FROM messages WHERE direction='in'")
    assert all("fake jpeg" not in (r["body_text"] + r["attachments"]) for r in stored)


@pytest.mark.parametrize("word", ["WRONG", "sai"])
def test_wrong_word_puts_the_ticket_up_for_review(desk, word):
    desk.receive(reply(f"{word}\nI only wanted to ask a question."), T0 + timedelta(hours=1))
    assert desk.ticket()["needs_review"] == 1
    assert "customer_says_wrong_category" in desk.events()
    staff = desk.staff_mail("category is WRONG")
    assert "I only wanted to ask a question." in text_of(staff)


# -- the scheduled pass --------------------------------------------------------------------

def test_pass_reminds_once_then_closes_unverified(desk):
    settings, store = desk.settings, desk.store
    assert verification.verification_pass(store, settings, T0 + timedelta(days=1)).reminded == 0

    report = verification.verification_pass(store, settings, T0 + timedelta(days=3, hours=1))
    again = verification.verification_pass(store, settings, T0 + timedelta(days=4))

    assert (report.reminded, again.reminded) == (1, 0)
    assert "still waiting for you to confirm" in text_of(desk.mails_to(CUSTOMER)[-1])

    closed = verification.verification_pass(store, settings, EXPIRES + timedelta(minutes=1))

    assert closed.closed == 1
    ticket = desk.ticket()
    assert (ticket["status"], ticket["verification_status"]) == ("closed_unverified", "failed")
    assert ticket["closed_at"]
    assert "We have closed request" in text_of(desk.mails_to(CUSTOMER)[-1])
    assert desk.staff_mail("identity never confirmed")
    assert desk.events().count("verification_reminder") == 1
    assert verification.verification_pass(store, settings, EXPIRES + timedelta(days=1)).closed == 0


def test_pass_leaves_confirmed_tickets_alone(desk):
    desk.receive(reply(code_in(desk.mails_to(CUSTOMER)[0])), T0 + timedelta(hours=1))
    report = verification.verification_pass(desk.store, desk.settings, EXPIRES + timedelta(days=1))
    assert report == verification.PassReport(0, 0)
    assert desk.ticket()["status"] == "open"


# -- through the real servers --------------------------------------------------------------

@pytest.mark.integration
def test_round_trip_confirmation_over_imap_and_smtp(tmp_path, imap_server, smtp_server,
                                                    monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail(*DELETION, message_id="<req-1@example.com>"))
    assert main(["--config", str(config), "once"]) == 0
    smtp_server.wait_for(2)
    [ack_raw] = imap_server.messages(CUSTOMER)
    ack = email.message_from_bytes(ack_raw, policy=policy.default)

    imap_server.append(BOT, customer_mail(
        f"Re: {ack['Subject']}", f"My code is {code_in(ack)}\n\n> quoted ack",
        headers={"In-Reply-To": ack["Message-ID"], "References": ack["Message-ID"]}))
    assert main(["--config", str(config), "once"]) == 0

    db = tmp_path / "state" / "tickets.db"
    assert query(db, "SELECT verification_status FROM tickets") == [("email_confirmed",)]
    smtp_server.wait_for(3)
    confirmation = email.message_from_bytes(imap_server.messages(CUSTOMER)[-1],
                                            policy=policy.default)
    assert confirmation["In-Reply-To"] and "[CJD-000001]" in confirmation["Subject"]
    assert "We have confirmed your identity" in text_of(confirmation)
