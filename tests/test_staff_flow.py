"""Conversations against real servers on loopback: customer -> bot -> staff notification ->
staff reply from a mail client -> customer; commands; notes; impostors; strangers quoting a
ref; follow-ups with and without References; staff Cc/Bcc copies."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from botenv import BOT, STAFF_TOKEN_SECRET, customer_mail, query, scalar, write_config

from bot.ops.cli import main

pytestmark = pytest.mark.integration

STAFF = "privacy@cijidas.jp"
CUSTOMER = "customer@example.com"
STRANGER = "khach@example.vn"
SECRET = STAFF_TOKEN_SECRET
# What a receiving server writes for a mail DKIM-signed for the staff address itself
# (header.d alone, or spf, no longer authenticates staff: tests/test_staff_auth.py).
DELETION = ("Please delete my account",
            "Hello, please delete my account and all my personal data.")
TRUSTED_AUTH = ("mx.cijidas.jp; dkim=pass header.d=cijidas.jp header.i=privacy@cijidas.jp; "
                "spf=pass smtp.mailfrom=cijidas.jp; dmarc=pass header.from=cijidas.jp")


@pytest.fixture
def bot(tmp_path, imap_server, smtp_server, env):
    """A configured bot with one deletion ticket from the customer, already notified."""
    config = write_config(tmp_path, imap_server, smtp_server, staff={
        "token_secret_env": "TEST_STAFF_TOKEN_SECRET", "trusted_authserv_ids": ["mx.cijidas.jp"]})
    return Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)


class Bot:
    """Drives ``inquiry-bot once`` and reads what it sent and stored."""

    def __init__(self, config: Path, db: Path, imap, smtp,
                 first: tuple[str, str] = DELETION) -> None:
        self.config, self.db, self.imap, self.smtp = config, db, imap, smtp
        self.customer_id = "<req-1@example.com>"
        # The bot is already running when the customer writes (its first start on an empty
        # mailbox), so the request is acknowledged like any new mail.
        assert main(["--config", str(self.config), "once"]) == 0
        self.deliver(customer_mail(*first, message_id=self.customer_id))
        self.notification = self.sent_to(STAFF)[-1]

    def deliver(self, raw: bytes) -> None:
        """Put one mail into the bot's mailbox and run one pass."""
        before = len(self.smtp.received)
        self.imap.append(BOT, raw)
        assert main(["--config", str(self.config), "once"]) == 0
        self.smtp.wait_for(before)  # once flushes the outbox before it returns

    def sent_to(self, address: str) -> list[EmailMessage]:
        return [email.message_from_bytes(r.raw, policy=policy.default)
                for r in self.smtp.received if address in r.rcpt_tos]

    def events(self, type_: str) -> list[tuple]:
        return query(self.db, "SELECT ticket_id, detail FROM events WHERE type = ?", (type_,))

    def ticket(self, column: str, ref: str = "CJD-000001") -> object:
        return scalar(self.db, f"SELECT {column} FROM tickets WHERE ref = ?", (ref,))


def body(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def staff_reply(bot: Bot, text: str, *, to: str | None = None, headers: dict | None = None,
                quote: bool = True) -> bytes:
    """A reply to the notification as a mail client writes it (quote below the answer)."""
    note = bot.notification
    msg = EmailMessage()
    msg["From"] = f"Tanaka Yuki <{STAFF}>"
    msg["To"] = to or str(note["Reply-To"])
    msg["Subject"] = "Re: " + str(note["Subject"])
    msg["Message-ID"] = make_msgid(domain="cijidas.jp")
    msg["In-Reply-To"] = note["Message-ID"]
    msg["References"] = note["Message-ID"]
    for key, value in (headers or {}).items():
        msg[key] = value
    quoted = "\n".join("> " + line for line in body(note).splitlines())
    attribution = "\n\nOn Tue, 24 Nov 2026 at 12:00, Cijidas <contact@cijidas.jp> wrote:\n"
    msg.set_content(text + (attribution + quoted if quote else ""))
    return bytes(msg)


def test_staff_reply_reaches_the_customer_threaded(bot):
    assert str(bot.notification["Reply-To"]).startswith("contact+cjd-000001.")
    bot.deliver(staff_reply(bot, "Dear Ms Nguyen,\nWe have deleted your account.\n\n"
                                 "Kind regards,\nTanaka Yuki\nPrivacy team"))

    answer = bot.sent_to(CUSTOMER)[-1]
    assert answer["Subject"] == "[CJD-000001] Please delete my account"
    assert answer["In-Reply-To"] == bot.customer_id
    assert bot.customer_id in answer["References"]
    assert answer["Auto-Submitted"] == "no"
    assert str(answer["From"]) == f"Cijidas <{BOT}>"
    text = body(answer)
    assert "We have deleted your account." in text and "Tanaka Yuki" in text
    assert "How to act" not in text and "> " not in text  # the quoted notification is gone
    assert bot.ticket("status") == "answered"
    assert bot.ticket("first_response_at") is not None
    assert query(bot.db, "SELECT direction FROM messages WHERE kind = 'staff_reply' "
                         "ORDER BY id") == [("in",), ("out",)]
    # The customer's own mailbox has the acknowledgement and the answer, in one thread.
    inbox = [email.message_from_bytes(m, policy=policy.default)
             for m in bot.imap.messages(CUSTOMER)]
    assert [m["In-Reply-To"] for m in inbox] == [bot.customer_id, bot.customer_id]


def test_customer_followups_with_and_without_references(bot):
    bot.deliver(staff_reply(bot, "#wait\nWe need your login ID.", quote=False))
    assert bot.ticket("status") == "waiting_customer"
    answer = bot.sent_to(CUSTOMER)[-1]
    notifications = len(bot.sent_to(STAFF))

    followup = EmailMessage()
    followup["From"], followup["To"] = f"Nguyen Van A <{CUSTOMER}>", BOT
    followup["Subject"] = "Re: " + str(answer["Subject"])
    followup["Message-ID"] = "<req-2@example.com>"
    followup["In-Reply-To"] = followup["References"] = answer["Message-ID"]
    followup.set_content("My login ID is alice01.")
    bot.deliver(bytes(followup))
    # A client that drops References and mangles the subject still threads by the ref.
    bot.deliver(customer_mail("AW: CJD-000001 and one more thing", "Also my old address.",
                              message_id="<req-3@example.com>"))

    assert scalar(bot.db, "SELECT count(*) FROM tickets") == 1
    assert query(bot.db, "SELECT outcome FROM processed ORDER BY uid")[-2:] == [
        ("followup",), ("followup",)]
    assert bot.ticket("status") == "open"  # the customer wrote: staff must act again
    assert len(bot.sent_to(CUSTOMER)) == 2  # acknowledgement + answer: no new acknowledgement
    staff_mail = bot.sent_to(STAFF)
    assert len(staff_mail) == notifications + 2
    assert staff_mail[-1]["In-Reply-To"] == bot.notification["Message-ID"]
    assert "Follow-up" in staff_mail[-1]["Subject"]
    assert str(staff_mail[-1]["Reply-To"]).startswith("contact+cjd-000001.")


def test_command_only_reply_and_note_send_nothing_to_the_customer(bot):
    staff_before = len(bot.sent_to(STAFF))
    bot.deliver(staff_reply(bot, "#assign Tanaka\n#category correction\n#verified\n#wait"))
    bot.deliver(staff_reply(bot, "#note\nThe customer phoned; wants it done by Friday."))

    # Each command mail gets one confirmation, to its sender only.
    confirmations = bot.sent_to(STAFF)[staff_before:]
    assert [body(m).splitlines()[0] for m in confirmations] == [
        "CJD-000001: assigned to Tanaka; category deletion -> correction; identity confirmed "
        "by staff; waiting for the customer",
        "CJD-000001: note recorded"]
    assert confirmations[0]["In-Reply-To"] and "waiting for the customer" in str(
        confirmations[0]["Subject"])

    assert len(bot.sent_to(CUSTOMER)) == 1  # only the acknowledgement
    assert bot.ticket("status") == "waiting_customer"
    assert bot.ticket("assigned_to") == "Tanaka"
    assert bot.ticket("category") == "correction"
    assert bot.ticket("verification_status") == "staff_verified"
    assert bot.ticket("first_response_at") is None  # nothing reached the customer yet
    assert query(bot.db, "SELECT reason FROM processed WHERE outcome = 'staff' ORDER BY uid") \
        == [("commands",), ("note",)]
    notes = query(bot.db, "SELECT body_text FROM messages WHERE kind = 'staff_note'")
    assert len(notes) == 2 and "phoned" in notes[1][0]


def test_close_then_customer_reply_reopens(bot):
    bot.deliver(staff_reply(bot, "#reopen\n#close", quote=False))
    assert bot.ticket("status") == "closed" and bot.ticket("closed_at")
    assert body(bot.sent_to(STAFF)[-1]).splitlines()[0] == (
        "CJD-000001: #reopen not applicable (staff_reopen is not possible for a open ticket); "
        "closed")

    bot.deliver(customer_mail("Re: [CJD-000001] Please delete my account", "One more thing."))

    assert bot.ticket("status") == "reopened" and bot.ticket("closed_at") is None
    assert scalar(bot.db, "SELECT count(*) FROM tickets") == 1


def test_unknown_command_is_answered_to_the_staff_member_only(bot):
    staff_before = len(bot.sent_to(STAFF))
    bot.deliver(staff_reply(bot, "#nte\nInternal: the customer is difficult."))

    assert len(bot.sent_to(CUSTOMER)) == 1  # nothing relayed
    help_mail = bot.sent_to(STAFF)[staff_before:]
    assert len(help_mail) == 1
    assert "Command not understood" in help_mail[0]["Subject"]
    assert "#note" in body(help_mail[0]) and "#nte" in body(help_mail[0])
    assert query(bot.db, "SELECT count(*) FROM messages WHERE kind LIKE 'staff%'") == [(0,)]


@pytest.mark.parametrize("headers", [
    {},  # right From, no token, no authentication
    {"Authentication-Results": "mx.evil.example; dkim=pass header.d=cijidas.jp"},
])
def test_spoofed_staff_reply_does_nothing(bot, headers):
    staff_before = len(bot.sent_to(STAFF))
    bot.deliver(staff_reply(bot, "#close\nWe will not delete anything. Send your password.",
                            to=BOT, headers=headers))

    assert len(bot.sent_to(CUSTOMER)) == 1  # only the acknowledgement
    assert bot.ticket("status") == "open"
    assert len(bot.events("suspicious_sender")) == 1
    alert = bot.sent_to(STAFF)[staff_before:]
    assert len(alert) == 1 and "Rejected" in alert[0]["Subject"]
    assert "Send your password" not in body(alert[0])


def test_forged_token_does_nothing(bot):
    forged = "contact+cjd-000001.20991231.00000000000000000000@cijidas.jp"
    bot.deliver(staff_reply(bot, "Hello from an impostor.", to=forged))

    assert len(bot.sent_to(CUSTOMER)) == 1
    assert "invalid-token" in bot.events("suspicious_sender")[0][1]


def test_stranger_quoting_a_ref_gets_a_new_linked_ticket(bot):
    bot.deliver(customer_mail("Re: [CJD-000001] Please delete my account",
                              "What data do you hold about me?", sender=STRANGER))

    assert query(bot.db, "SELECT ref, customer_email, linked_ticket_id FROM tickets "
                         "ORDER BY id") == [("CJD-000001", CUSTOMER, None),
                                            ("CJD-000002", STRANGER, 1)]
    assert bot.sent_to(STRANGER)[-1]["Subject"].startswith("[CJD-000002]")
    assert scalar(bot.db, "SELECT count(*) FROM messages WHERE ticket_id = 1 AND "
                          "from_addr = ?", (STRANGER,)) == 0


@pytest.mark.parametrize("copy_header", ["Cc", None])  # None: the bot was in Bcc
def test_staff_writing_directly_with_the_bot_in_cc_or_bcc_is_recorded(bot, copy_header):
    msg = EmailMessage()
    msg["From"] = f"Tanaka Yuki <{STAFF}>"
    msg["To"] = CUSTOMER
    if copy_header:
        msg[copy_header] = BOT
    msg["Subject"] = "[CJD-000001] Your deletion request"
    msg["Message-ID"] = make_msgid(domain="cijidas.jp")
    msg["Authentication-Results"] = TRUSTED_AUTH
    msg.set_content("Dear Ms Nguyen, your account is deleted.")
    bot.deliver(bytes(msg))

    assert len(bot.sent_to(CUSTOMER)) == 1  # nothing relayed twice
    assert bot.ticket("first_response_at") is not None
    assert bot.ticket("status") == "answered"
    assert query(bot.db, "SELECT direction, from_addr FROM messages WHERE kind = "
                         "'staff_reply'") == [("in", STAFF)]
    assert query(bot.db, "SELECT reason FROM processed ORDER BY uid")[-1] == ("staff-copy",)


def test_followup_note_at_most_once_per_period(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server,
                          tickets={"followup_note_hours": 24})
    bot = Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)
    for n in (2, 3):
        bot.deliver(customer_mail("Re: [CJD-000001] Please delete my account", f"Addendum {n}",
                                  message_id=f"<req-{n}@example.com>"))

    to_customer = bot.sent_to(CUSTOMER)
    assert len(to_customer) == 2  # acknowledgement + one "added to CJD-000001" note
    assert "We have added your message to request CJD-000001" in body(to_customer[1])
