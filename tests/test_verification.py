"""Identity verification by email: pure decisions (table-driven), the reply handling, category
changes and the scheduled pass on a real SQLite store, and round trips through the loopback
servers (tests/test_privacy_requests.py has the other request kinds end to end)."""

from __future__ import annotations

import email
import hashlib
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from botenv import BOT, STAFF_TOKEN_SECRET, customer_mail, query, scalar, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.config import settings_from_dict
from bot.flows import codes, verification
from bot.flows.service import Service
from bot.flows.verification import Due, Verdict
from bot.models import MessageSource
from bot.ops.cli import main
from bot.rules import verification as rules
from bot.rules.verification import CategoryChange, Standing

REF = "CJD-000001"
CODE = "48151623"
KEY = b"k" * 32
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
    assert rules.code_candidates(text) == expected


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
    result = rules.check_code(text, ref=REF, code_hash=rules.code_digest(KEY, REF, CODE),
                              key=KEY, expires_at=EXPIRES, attempts_left=attempts, now=now)
    assert (result.verdict, result.tries_left) == expected


def test_codes_are_keyed_and_old_unkeyed_rows_still_match():
    stored = rules.code_digest(KEY, REF, CODE)
    assert stored.startswith("hmac-sha256:")
    assert hashlib.sha256(f"{REF}:{CODE}".encode()).hexdigest() not in stored
    assert rules.code_matches(stored, KEY, REF, CODE)
    assert not rules.code_matches(stored, b"another key 0123456789abcdef0123", REF, CODE)
    assert not rules.code_matches(stored, KEY, "CJD-000002", CODE)
    # A row written before codes were keyed (unkeyed sha256) stays verifiable until expiry.
    legacy = hashlib.sha256(f"{REF}:{CODE}".encode()).hexdigest()
    assert rules.code_matches(legacy, KEY, REF, CODE)
    assert not rules.code_matches(legacy, KEY, REF, "00000000")


def test_a_used_code_never_confirms_again():
    result = rules.check_code(CODE, ref=REF, code_hash=None, key=KEY, expires_at=EXPIRES,
                              attempts_left=5, now=T0)
    assert result.verdict == Verdict.WRONG


@pytest.mark.parametrize(("referenced", "carries_ref", "from_customer", "expected"), [
    (["<ack@cijidas.jp>"], False, True, Standing.THREADED),
    (["<x@example.com>", "ack@cijidas.jp"], False, True, Standing.THREADED),
    (["<x@example.com>"], True, True, Standing.REF_ONLY),
    (["<x@example.com>"], False, True, Standing.NONE),
    ([None], True, False, Standing.NONE),               # someone else: never
    (["<ack@cijidas.jp>"], True, False, Standing.NONE),
])
def test_reply_standing(referenced, carries_ref, from_customer, expected):
    assert rules.reply_standing(referenced, ["<ack@cijidas.jp>"], carries_ref=carries_ref,
                                from_customer=from_customer) == expected


PENDING_DELETION = {"verification_status": "pending", "category": "deletion"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, None),
    ({"first_response_at": "2026-11-25T00:00:00Z"}, "staff-answered"),
    ({"completed_at": "2026-11-25T00:00:00Z"}, "completed"),
    ({"decision": "refused"}, "decided"),
    ({"closed_at": "2026-11-25T00:00:00Z"}, "closed"),
    ({"category": "question"}, "not-a-request"),
    ({"verification_status": "email_confirmed"}, "not-pending"),
    ({"verification_status": "staff_verified"}, "not-pending"),
])
def test_stop_reason(changes, expected):
    assert rules.stop_reason({**PENDING_DELETION, **changes}) == expected


@pytest.mark.parametrize(("new", "status", "expected"), [
    ("deletion", "not_required", CategoryChange.START),
    ("disclosure", None, CategoryChange.START),
    ("question", "pending", CategoryChange.CANCEL),
    ("complaint", "pending", CategoryChange.CANCEL),
    ("correction", "pending", None),            # still a request: the code stays
    ("deletion", "email_confirmed", None),
    ("question", "not_required", None),
    ("question", "email_confirmed", None),
])
def test_category_change(new, status, expected):
    assert rules.category_change(new, status) == expected


@pytest.mark.parametrize(("days", "reminded", "expected"), [
    (1, False, None),
    (3, False, Due.REMIND),
    (4, True, None),
    (7, False, Due.CLOSE),
    (8, True, Due.CLOSE),
])
def test_due_action(days, reminded, expected):
    now = T0 + timedelta(days=days)
    assert rules.due_action(code_created_at=T0, code_expires_at=EXPIRES,
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
    assert rules.is_document(content_type, filename) is expected


# -- reply handling on a real store --------------------------------------------------------

class Desk:
    """The bot's service on a real SQLite store, driven with explicit times."""

    def __init__(self, tmp_path: Path, **sections: dict) -> None:
        data = {"bot": {"address": BOT}, "mailbox": {"host": "x", "username": BOT},
                "smtp": {"host": "y"}, "staff": {"addresses": [STAFF], "notify": [STAFF]},
                "escalation": {"to": ["dpo@cijidas.jp"]}, **sections}
        self.settings = settings_from_dict(data, tmp_path / "config.toml",
                                           {"INQUIRY_BOT_IMAP_PASSWORD": "p",
                                            "INQUIRY_BOT_STAFF_TOKEN_SECRET": STAFF_TOKEN_SECRET})
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

    def ticket(self, ref: str = REF) -> dict:
        return self.store.ticket_by_ref(ref)

    def code_row(self) -> dict:
        return self.store.verification(self.ticket()["id"])

    def run_pass(self, now: datetime) -> verification.PassReport:
        return verification.verification_pass(self.store, self.settings, now)

    def staff_answer(self, text: str, now: datetime) -> None:
        """Staff reply to their notification (the Reply-To token authenticates them)."""
        note = [m for m in self.mails_to(STAFF) if m["Reply-To"]][0]
        msg = EmailMessage()
        msg["From"], msg["To"] = STAFF, str(note["Reply-To"])
        msg["Subject"] = "Re: " + str(note["Subject"])
        msg["Message-ID"] = f"<staff-{self.uid}@cijidas.jp>"
        msg["In-Reply-To"] = note["Message-ID"]
        msg.set_content(text)
        assert self.receive(bytes(msg), now).reason in ("relayed", "commands", "note")

    def change_category(self, old: str, new: str, now: datetime) -> None:
        """What bot.flows.staff does on ``#category``: the row, then on_category_changed."""
        with self.store.transaction() as conn:
            self.store.update_ticket(conn, self.ticket()["id"], category=new, needs_review=0)
            verification.on_category_changed(self.store, self.settings, conn, self.ticket(),
                                             old, new, now)


def text_of(message: EmailMessage) -> str:
    """The text part with line wrapping undone, so phrases can be searched."""
    return " ".join(plain(message).split())


def plain(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def code_in(message: EmailMessage) -> str | None:
    found = re.search(r"^\s+(\d{8})\s*$", plain(message), re.MULTILINE)
    return found.group(1) if found else None


def answer(desk: Desk, body: str, sender: str = CUSTOMER, *, to: EmailMessage | None = None,
           **kwargs) -> bytes:
    """The customer's reply to our mail ``to`` (default: the acknowledgement)."""
    ours = to or desk.mails_to(CUSTOMER)[0]
    return customer_mail(f"Re: {ours['Subject']}", body, sender=sender,
                         headers={"In-Reply-To": ours["Message-ID"],
                                  "References": f"<req-1@example.com> {ours['Message-ID']}"},
                         **kwargs)


def reply(body: str, sender: str = CUSTOMER, **kwargs) -> bytes:
    """A follow-up that carries the ref and answers the customer's own first mail (not
    ours): its right code confirms, its wrong numbers cost none of the customer's tries."""
    return customer_mail(f"Re: [{REF}] Please delete my account", body, sender=sender,
                         headers={"In-Reply-To": "<req-1@example.com>"}, **kwargs)


def forged(body: str, n: int) -> bytes:
    """From the customer's address with the ref, but not a reply to any mail of ours."""
    return customer_mail(f"[{REF}] my code", body, message_id=f"<forged-{n}@example.org>")


@pytest.fixture
def desk(tmp_path) -> Desk:
    desk = Desk(tmp_path)
    desk.receive(customer_mail(*DELETION, message_id="<req-1@example.com>"), T0)
    assert desk.ticket()["verification_status"] == "pending"
    return desk


def test_right_code_from_the_same_address_confirms(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])

    desk.receive(answer(desk, f"Here is my code: {code}\nAlice"), T0 + timedelta(hours=2))

    assert desk.ticket()["verification_status"] == "email_confirmed"
    assert "verification_confirmed" in desk.events()
    assert "waiting_for_customer" in desk.events()
    assert "waiting_for_customer_ended" in desk.events()
    confirmation = desk.mails_to(CUSTOMER)[-1]
    assert "We have confirmed your identity" in text_of(confirmation)
    assert confirmation["In-Reply-To"]
    # Single use: once confirmed even the hash is gone; the acknowledgement copy is masked.
    assert desk.code_row()["code_hash"] is None
    assert scalar(desk.settings.database_path, "SELECT count(*) FROM messages WHERE "
                  "kind = 'acknowledgement' AND body_text LIKE ?", (f"%{code}%",)) == 0


def test_the_stored_code_is_an_hmac_under_the_server_key(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    stored = desk.code_row()["code_hash"]
    assert stored == rules.code_digest(codes.code_key(desk.settings), REF, code)
    assert stored != rules.legacy_digest(REF, code)


def test_an_old_unkeyed_code_row_is_still_accepted(desk):
    with desk.store.transaction() as conn:  # what a database from before the HMAC holds
        desk.store.update_verification(conn, desk.ticket()["id"],
                                       code_hash=rules.legacy_digest(REF, "13572468"))
    desk.receive(answer(desk, "13572468"), T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "email_confirmed"


def test_wrong_codes_then_failure_tells_customer_and_staff(desk):
    for tries_left in (4, 3, 2, 1):
        desk.receive(answer(desk, "my code is 00000000"), T0 + timedelta(hours=1))
        assert f"You have {tries_left} attempt" in text_of(desk.mails_to(CUSTOMER)[-1])

    desk.receive(answer(desk, "my code is 00000001"), T0 + timedelta(hours=2))

    ticket = desk.ticket()
    assert (ticket["verification_status"], ticket["status"]) == ("failed", "closed_unverified")
    assert "entered wrongly too many times" in text_of(desk.mails_to(CUSTOMER)[-1])
    assert "send a new email" in text_of(desk.mails_to(CUSTOMER)[-1])
    assert desk.staff_mail("Identity verification FAILED")
    # Even the right code no longer helps.
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(answer(desk, code), T0 + timedelta(hours=3))
    assert desk.ticket()["verification_status"] == "failed"


def test_forged_followups_cost_no_tries_and_close_nothing(desk):
    """Someone who knows the address and the ref but never saw our mail: five numbers
    and more, in mails that carry the ref but reply to nothing of ours."""
    for n in range(7):
        desk.receive(forged(f"{n:08d} {n + 10:08d}", n), T0 + timedelta(minutes=n + 1))

    ticket, row = desk.ticket(), desk.code_row()
    assert (ticket["verification_status"], ticket["status"]) == ("pending", "open")
    assert row["attempts_left"] == 5                   # the customer's tries are intact
    assert row["unthreaded_attempts_left"] == 0        # the guessing budget is spent
    assert "verification_failed" not in desk.events()
    # The real customer replies to the acknowledgement: it still works.
    desk.receive(answer(desk, code_in(desk.mails_to(CUSTOMER)[0])), T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "email_confirmed"


def test_a_ref_only_mail_from_the_customer_may_confirm(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(forged("oops, a typo: 11112222", 1), T0 + timedelta(minutes=1))
    assert "Reply" in text_of(desk.mails_to(CUSTOMER)[-1])   # how to answer properly
    assert desk.code_row()["attempts_left"] == 5
    desk.receive(forged(f"the code is {code}", 2), T0 + timedelta(minutes=2))
    assert desk.ticket()["verification_status"] == "email_confirmed"


def test_a_mail_referencing_neither_costs_nothing(desk):
    # Joins the ticket by its References (the customer's own first mail), no ref anywhere.
    desk.receive(customer_mail("more", "00000000 00000001 00000002",
                               headers={"In-Reply-To": "<req-1@example.com>"}),
                 T0 + timedelta(hours=1))
    assert desk.code_row()["attempts_left"] == 5
    assert desk.code_row()["unthreaded_attempts_left"] == 5
    assert "verification_code_not_counted" in desk.events()
    assert len(desk.mails_to(CUSTOMER)) == 1


def test_expired_code_in_a_reply_fails(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(answer(desk, code), EXPIRES + timedelta(minutes=1))
    assert desk.ticket()["verification_status"] == "failed"
    assert "the code has expired" in text_of(desk.mails_to(CUSTOMER)[-1])


def test_failure_after_staff_answered_leaves_the_ticket_open(desk):
    desk.staff_answer("We are looking into it.", T0 + timedelta(hours=1))
    code = code_in(desk.mails_to(CUSTOMER)[0])

    desk.receive(answer(desk, code), EXPIRES + timedelta(minutes=1))

    ticket = desk.ticket()
    assert ticket["verification_status"] == "failed"
    assert ticket["status"] != "closed_unverified" and ticket["closed_at"] is None
    assert "Your request stays open" in text_of(desk.mails_to(CUSTOMER)[-1])


def test_code_from_another_address_never_confirms(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.receive(answer(desk, f"code {code}", sender="attacker@example.org"),
                 T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "pending"
    assert "verification_confirmed" not in desk.events()


def test_a_reply_without_a_code_changes_nothing(desk):
    desk.receive(answer(desk, "I will send the code later."), T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "pending"
    assert len(desk.mails_to(CUSTOMER)) == 1


def test_document_attachments_are_noted_not_stored(desk):
    message = email.message_from_bytes(answer(desk, "Here is my ID card."),
                                       policy=policy.default)
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
    desk.receive(answer(desk, f"{word}\nI only wanted to ask a question."),
                 T0 + timedelta(hours=1))
    assert desk.ticket()["needs_review"] == 1
    assert "customer_says_wrong_category" in desk.events()
    staff = desk.staff_mail("category is WRONG")
    assert "I only wanted to ask a question." in text_of(staff)


# -- the scheduled pass --------------------------------------------------------------------

def test_pass_reminds_once_then_closes_unverified(desk):
    assert desk.run_pass(T0 + timedelta(days=1)).reminded == 0

    report = desk.run_pass(T0 + timedelta(days=3, hours=1))
    again = desk.run_pass(T0 + timedelta(days=4))

    assert (report.reminded, again.reminded) == (1, 0)
    assert "still waiting for you to confirm" in text_of(desk.mails_to(CUSTOMER)[-1])

    closed = desk.run_pass(EXPIRES + timedelta(minutes=1))

    assert closed.closed == 1
    ticket = desk.ticket()
    assert (ticket["status"], ticket["verification_status"]) == ("closed_unverified", "failed")
    assert ticket["closed_at"]
    assert "We have closed request" in text_of(desk.mails_to(CUSTOMER)[-1])
    assert desk.staff_mail("identity never confirmed")
    assert desk.events().count("verification_reminder") == 1
    assert desk.run_pass(EXPIRES + timedelta(days=1)).closed == 0


def test_pass_leaves_confirmed_tickets_alone(desk):
    desk.receive(answer(desk, code_in(desk.mails_to(CUSTOMER)[0])), T0 + timedelta(hours=1))
    assert desk.run_pass(EXPIRES + timedelta(days=1)) == verification.PassReport(0, 0)
    assert desk.ticket()["status"] == "open"


def test_staff_answering_stops_reminder_and_expiry(desk):
    desk.staff_answer("We removed you from the newsletter.", T0 + timedelta(hours=5))
    sent = len(desk.mails_to(CUSTOMER))

    assert desk.run_pass(T0 + timedelta(days=3, hours=1)) == verification.PassReport(0, 0)
    assert desk.run_pass(T0 + timedelta(days=8)) == verification.PassReport(0, 0)

    ticket = desk.ticket()
    assert ticket["status"] != "closed_unverified" and ticket["verification_status"] == "pending"
    assert len(desk.mails_to(CUSTOMER)) == sent          # no reminder, no closure notice
    assert desk.events().count("verification_reminders_stopped") == 1


@pytest.mark.parametrize("column", ["completed_at", "closed_at"])
def test_completed_or_closed_requests_get_no_reminder(desk, column):
    with desk.store.transaction() as conn:
        desk.store.update_ticket(conn, desk.ticket()["id"], **{column: "2026-11-25T00:00:00Z"})
    assert desk.run_pass(T0 + timedelta(days=3, hours=1)).reminded == 0
    assert desk.run_pass(T0 + timedelta(days=8)).closed == 0


# -- a request the bot is unsure about: no code until staff pick the category --------------

@pytest.fixture
def unsure(tmp_path) -> Desk:
    desk = Desk(tmp_path, triage={"review_threshold": 0.9999})  # every mail needs review
    desk.receive(customer_mail(*DELETION, message_id="<req-1@example.com>"), T0)
    return desk


def test_an_unsure_request_is_never_left_with_an_unsent_code(unsure):
    ticket = unsure.ticket()
    assert ticket["needs_review"] == 1 and ticket["category"] == "deletion"
    assert ticket["verification_status"] == "not_required"
    assert unsure.code_row() is None
    [ack] = unsure.mails_to(CUSTOMER)
    assert code_in(ack) is None
    assert "we will send you a code and instructions in a separate email" in text_of(ack)
    assert "NO identity code was sent" in text_of(unsure.mails_to(STAFF)[0])
    # The old failure: "the code contained in our previous mail" on day 3, closed on day 8.
    assert unsure.run_pass(T0 + timedelta(days=3, hours=1)) == verification.PassReport(0, 0)
    assert unsure.run_pass(T0 + timedelta(days=8)) == verification.PassReport(0, 0)
    assert unsure.ticket()["status"] == "open"
    assert len(unsure.mails_to(CUSTOMER)) == 1


def test_category_into_a_request_sends_the_code_and_it_works(unsure):
    unsure.change_category("deletion", "deletion", T0 + timedelta(hours=2))

    assert unsure.ticket()["verification_status"] == "pending"
    start = unsure.mails_to(CUSTOMER)[-1]
    code = code_in(start)
    assert code and "understood it as a request to delete" in text_of(start)
    assert start["In-Reply-To"] == "<req-1@example.com>"
    assert "verification_started" in unsure.events()
    assert scalar(unsure.settings.database_path, "SELECT count(*) FROM messages WHERE "
                  "body_text LIKE ?", (f"%{code}%",)) == 0     # masked in the copy

    unsure.receive(answer(unsure, code, to=start), T0 + timedelta(hours=3))
    assert unsure.ticket()["verification_status"] == "email_confirmed"


def test_category_away_from_a_request_cancels_the_code(desk):
    code = code_in(desk.mails_to(CUSTOMER)[0])
    desk.change_category("deletion", "question", T0 + timedelta(hours=1))

    assert desk.ticket()["verification_status"] == "not_required"
    assert desk.code_row()["code_hash"] is None
    assert "verification_cancelled" in desk.events()
    assert desk.run_pass(T0 + timedelta(days=8)) == verification.PassReport(0, 0)
    assert desk.ticket()["status"] == "open"
    desk.receive(answer(desk, code), T0 + timedelta(days=1))   # a late code changes nothing
    assert desk.ticket()["verification_status"] == "not_required"


def test_category_between_request_types_keeps_the_code(desk):
    desk.change_category("deletion", "correction", T0 + timedelta(hours=1))
    assert desk.ticket()["verification_status"] == "pending"
    assert len(desk.mails_to(CUSTOMER)) == 1


# -- through the real servers --------------------------------------------------------------

def _start(config: Path) -> None:
    """A first pass on the empty mailbox: later mail is new mail, acknowledged."""
    assert main(["--config", str(config), "once"]) == 0


@pytest.mark.integration
def test_round_trip_confirmation_over_imap_and_smtp(tmp_path, imap_server, smtp_server,
                                                    monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, imap_server, smtp_server)
    _start(config)
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
