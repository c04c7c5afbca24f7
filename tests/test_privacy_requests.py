"""Privacy requests that need more than a category (issue 13): opt-outs without a code,
incidents that reach the DPO in the ticket's own transaction, requests made for someone
else, and verification that never strands a request. First on a real SQLite store with
explicit times (Desk), then end to end through the loopback IMAP/SMTP servers, with time
driven by ``inquiry-bot tick --now``."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from botenv import BOT, customer_mail, query, scalar, write_config
from test_verification import CUSTOMER, STAFF, T0, Desk, code_in, text_of

from bot.ops.cli import main

DPO = "dpo@cijidas.jp"
KHACH = "khach@example.vn"
OPT_OUT = ("Stop marketing emails",
           "Hello,\nPlease stop sending me marketing emails. I do not want any newsletters "
           "anymore.\nThanks, Alice")
OPT_OUT_VI = ("Ngừng gửi quảng cáo",
              "Chào Cijidas,\nXin ngừng gửi email quảng cáo và tin nhắn khuyến mãi cho tôi.\n"
              "Cảm ơn, An")
INCIDENT = ("Invoice sent to the wrong person",
            "Hello,\nYou sent my invoice, with my name and home address, to another customer. "
            "She forwarded it to me. This is a data leak.\nAlice")
INCIDENT_VI = ("Hóa đơn gửi nhầm người",
               "Công ty đã gửi nhầm hóa đơn có họ tên và địa chỉ của tôi cho một khách hàng "
               "khác. Thông tin của tôi bị lộ.\nAn")
HEIR = ("Delete my late mother's account",
        "Hello,\nMy mother passed away in January. As her son, I ask you to delete her account "
        "and all her personal data.\nMichael")
PARENT_VI = ("Xóa tài khoản của con tôi",
             "Chào công ty,\nCon trai tôi 14 tuổi đã đăng ký tài khoản. Tôi là mẹ của cháu, xin "
             "xóa tài khoản và toàn bộ dữ liệu của cháu.\nMai")
DELETION = ("Please delete my account",
            "Hello, please delete my account and all my personal data.\nAlice")
BOTH = ("Please delete my account",
        "Hello, please delete my account and all my personal data. Also stop sending me "
        "emails.\nAlice")


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path)


def ticket_of(desk: Desk, raw: bytes, now: datetime = T0) -> dict:
    ref = desk.receive(raw, now).ref
    return desk.store.ticket_by_ref(ref)


# -- opt-out and withdrawal of consent -----------------------------------------------------

@pytest.mark.parametrize(("mail", "marker", "stop_date"), [
    (OPT_OUT, "Marketing stops.", "27 November 2026"),
    (OPT_OUT_VI, "Ngừng gửi thông tin tiếp thị.", "27/11/2026"),
])
def test_an_opt_out_needs_no_code_and_says_when_the_sends_stop(desk, mail, marker, stop_date):
    ticket = ticket_of(desk, customer_mail(*mail))  # received Tue 24 Nov: + 3 business days

    assert (ticket["category"], ticket["request_kind"]) == ("deletion", "opt_out")
    assert ticket["verification_status"] == "not_required"
    assert desk.store.verification(ticket["id"]) is None
    [ack] = desk.mails_to(CUSTOMER)
    assert code_in(ack) is None
    assert marker in text_of(ack) and stop_date in text_of(ack)
    notification = text_of(desk.mails_to(STAFF)[0])
    assert f"OPT-OUT: stop the marketing sends (email, SMS, calls, post) for {CUSTOMER}" \
        in notification
    # The answer is due when the sends must have stopped, not 10 days later.
    assert ticket["due_at"] == "2026-11-27T14:59:59Z"
    assert desk.run_pass(T0 + timedelta(days=8)).closed == 0


def test_opt_out_with_erasure_still_needs_the_code(desk):
    ticket = ticket_of(desk, customer_mail(*BOTH))

    assert ticket["request_kind"] is None and ticket["verification_status"] == "pending"
    [ack] = desk.mails_to(CUSTOMER)
    assert code_in(ack) and "Marketing stops." in text_of(ack)
    notification = text_of(desk.mails_to(STAFF)[0])
    assert "OPT-OUT" in notification and "the erasure still needs one" in notification


# -- incidents -----------------------------------------------------------------------------

@pytest.mark.parametrize(("mail", "owner"), [
    (INCIDENT, "Personal Information Protection Manager"),
    (INCIDENT_VI, "Người quản lý bảo vệ thông tin cá nhân"),
])
def test_an_incident_reaches_the_dpo_at_once(desk, mail, owner):
    ticket = ticket_of(desk, customer_mail(*mail))

    assert ticket["request_kind"] == "incident"
    [notice] = desk.mails_to(DPO)
    assert "INCIDENT" in notice["Subject"] and ticket["ref"] in notice["Subject"]
    assert "72 hours" in text_of(notice) and CUSTOMER in text_of(notice)
    assert "incident_notified" in desk.events()
    ack = text_of(desk.mails_to(CUSTOMER)[0])
    assert owner in ack
    deadline = T0 + timedelta(hours=72)
    assert ticket["due_at"] <= deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "INCIDENT reported" in text_of(desk.mails_to(STAFF)[0])


def test_the_incident_notice_commits_with_the_ticket_or_not_at_all(desk, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk gone at the last write")

    monkeypatch.setattr(desk.store, "record_processed", fail)
    with pytest.raises(RuntimeError):
        desk.receive(customer_mail(*INCIDENT), T0)
    assert desk.store.count("tickets") == 0
    assert desk.store.count("outbox") == 0            # no DPO mail without its ticket

    monkeypatch.undo()
    desk.receive(customer_mail(*INCIDENT), T0)
    assert desk.store.count("tickets") == 1 and len(desk.mails_to(DPO)) == 1


# -- agents and relatives ------------------------------------------------------------------

@pytest.mark.parametrize(("mail", "relation", "proof", "no_images"), [
    (HEIR, "heir", "death certificate", "NOT send these documents"),
    (PARENT_VI, "parent", "giấy khai sinh", "gửi các giấy tờ này"),
])
def test_a_request_for_someone_else_is_flagged_and_asks_for_authority(desk, mail, relation,
                                                                      proof, no_images):
    ticket = ticket_of(desk, customer_mail(*mail))

    assert ticket["agent_relation"] == relation
    assert "agent_relation" in desk.store.rows(
        "SELECT detail FROM events WHERE type = 'ticket_created'")[0]["detail"]
    ack = text_of(desk.mails_to(CUSTOMER)[0])
    assert proof in ack and no_images in ack
    assert "ON BEHALF of someone else" in text_of(desk.mails_to(STAFF)[0])


def test_an_ordinary_request_has_no_agent_incident_or_opt_out(desk):
    ticket = ticket_of(desk, customer_mail(*DELETION))
    assert (ticket["agent_relation"], ticket["request_kind"]) == (None, None)
    ack = text_of(desk.mails_to(CUSTOMER)[0])
    assert "someone else" not in ack and "Marketing stops" not in ack
    assert "ACTION:" not in text_of(desk.mails_to(STAFF)[0])


# -- end to end through the loopback servers -------------------------------------------------

class Bot:
    """``inquiry-bot once`` and ``tick --now`` against the loopback servers."""

    def __init__(self, config: Path, db: Path, imap, smtp) -> None:
        self.config, self.db, self.imap, self.smtp = config, db, imap, smtp
        self.once()  # the first start, on an empty mailbox: later mail is new mail

    def once(self) -> None:
        assert main(["--config", str(self.config), "once"]) == 0

    def deliver(self, raw: bytes) -> None:
        before = len(self.smtp.received)
        self.imap.append(BOT, raw)
        self.once()
        self.smtp.wait_for(before)

    def tick(self, at: datetime) -> None:
        assert main(["--config", str(self.config), "tick", "--now", at.isoformat()]) == 0

    def sent_to(self, address: str) -> list[EmailMessage]:
        return [email.message_from_bytes(r.raw, policy=policy.default)
                for r in self.smtp.received if address in r.rcpt_tos]

    def ticket(self, column: str, ref: str = "CJD-000001") -> object:
        return scalar(self.db, f"SELECT {column} FROM tickets WHERE ref = ?", (ref,))

    def staff_reply(self, text: str, ref: str = "CJD-000001") -> None:
        """Staff answer from their mail client, to their own notification's Reply-To."""
        [note] = [m for m in self.sent_to(STAFF)
                  if m["Reply-To"] and f"[{ref}] New" in str(m["Subject"])]
        msg = EmailMessage()
        msg["From"], msg["To"] = f"Tanaka Yuki <{STAFF}>", str(note["Reply-To"])
        msg["Subject"] = "Re: " + str(note["Subject"])
        msg["Message-ID"] = make_msgid(domain="cijidas.jp")
        msg["In-Reply-To"] = msg["References"] = note["Message-ID"]
        msg.set_content(text)
        self.deliver(bytes(msg))

    def customer_reply(self, to: EmailMessage, text: str, sender: str = CUSTOMER) -> None:
        self.deliver(customer_mail(f"Re: {to['Subject']}", text, sender=sender,
                                   headers={"In-Reply-To": to["Message-ID"],
                                            "References": to["Message-ID"]}))


@pytest.fixture
def bot(tmp_path, imap_server, smtp_server, env) -> Bot:
    config = write_config(tmp_path, imap_server, smtp_server,
                          staff={"token_secret_env": "TEST_STAFF_TOKEN_SECRET"})
    return Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.integration
def test_e2e_staff_answer_stops_reminder_and_closure(bot):
    bot.deliver(customer_mail(*DELETION))                  # CJD-000001, answered below
    bot.deliver(customer_mail(*DELETION, sender=KHACH))    # CJD-000002, never answered
    bot.staff_reply("We removed you from the newsletter; your account follows.")
    answered = len(bot.sent_to(CUSTOMER))

    bot.tick(_now() + timedelta(days=3, hours=1))
    bot.tick(_now() + timedelta(days=8))

    assert len(bot.sent_to(CUSTOMER)) == answered           # no reminder, no "nothing deleted"
    assert bot.ticket("status") == "answered"
    assert bot.ticket("verification_status") == "pending"
    # The unanswered one got both, so the passes really ran at those times.
    texts = [text_of(m) for m in bot.sent_to(KHACH)]
    assert any("still waiting for you to confirm" in t for t in texts)
    assert any("We have closed request" in t for t in texts)
    assert bot.ticket("status", "CJD-000002") == "closed_unverified"


@pytest.mark.integration
def test_e2e_unsure_request_then_staff_category_both_ways(tmp_path, imap_server, smtp_server,
                                                         env):
    config = write_config(tmp_path, imap_server, smtp_server,
                          staff={"token_secret_env": "TEST_STAFF_TOKEN_SECRET"},
                          triage={"review_threshold": 0.9999})
    bot = Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)
    bot.deliver(customer_mail(*DELETION))
    [ack] = bot.sent_to(CUSTOMER)
    assert code_in(ack) is None and bot.ticket("verification_status") == "not_required"

    bot.tick(_now() + timedelta(days=3, hours=1))           # the stranded-code case: nothing
    bot.tick(_now() + timedelta(days=8))
    assert len(bot.sent_to(CUSTOMER)) == 1 and bot.ticket("status") == "open"

    bot.staff_reply("#category deletion")                   # into a request type
    start = bot.sent_to(CUSTOMER)[-1]
    assert code_in(start) and bot.ticket("verification_status") == "pending"
    bot.staff_reply("#category question")                   # and away again
    assert bot.ticket("verification_status") == "not_required"
    bot.tick(_now() + timedelta(days=9))
    assert bot.ticket("status") == "open"

    bot.staff_reply("#category deletion")                   # back: a new code that works
    latest = bot.sent_to(CUSTOMER)[-1]
    assert code_in(latest) != code_in(start)
    bot.customer_reply(latest, f"code: {code_in(latest)}")
    assert bot.ticket("verification_status") == "email_confirmed"


@pytest.mark.integration
def test_e2e_opt_out_without_a_code(bot):
    bot.deliver(customer_mail(*OPT_OUT))

    [ack] = bot.sent_to(CUSTOMER)
    assert code_in(ack) is None and "Marketing stops." in text_of(ack)
    [note] = [m for m in bot.sent_to(STAFF) if "[CJD-000001] New" in str(m["Subject"])]
    assert f"stop the marketing sends (email, SMS, calls, post) for {CUSTOMER}" in text_of(note)
    assert (bot.ticket("request_kind"), bot.ticket("verification_status")) == \
        ("opt_out", "not_required")
    bot.tick(_now() + timedelta(days=8))
    assert bot.ticket("status") != "closed_unverified"


@pytest.mark.integration
def test_e2e_incident_mail_reaches_the_dpo_mailbox(bot):
    bot.deliver(customer_mail(*INCIDENT))

    [notice] = [email.message_from_bytes(raw, policy=policy.default)
                for raw in bot.imap.messages(DPO)]
    assert "INCIDENT" in notice["Subject"]
    assert query(bot.db, "SELECT count(*) FROM events WHERE type = 'incident_notified'") == [(1,)]
    assert "possible data incident" in text_of(bot.sent_to(CUSTOMER)[0])


@pytest.mark.integration
def test_e2e_forged_followups_cost_no_tries(bot):
    bot.deliver(customer_mail(*DELETION))
    [ack] = bot.sent_to(CUSTOMER)
    for n in range(3):   # the ref and the address, but no reply to our mail
        bot.deliver(customer_mail("[CJD-000001] code", f"{n}1234567 {n}7654321 {n}2223334"))

    assert query(bot.db, "SELECT attempts_left FROM verifications") == [(5,)]
    assert bot.ticket("status") == "open"
    bot.customer_reply(ack, f"my code {code_in(ack)}")
    assert bot.ticket("verification_status") == "email_confirmed"


@pytest.mark.integration
def test_e2e_agent_flag(bot):
    bot.deliver(customer_mail(*HEIR))

    assert bot.ticket("agent_relation") == "heir"
    ack = text_of(bot.sent_to(CUSTOMER)[0])
    assert "death certificate" in ack and "NOT send these documents" in ack
    [note] = [m for m in bot.sent_to(STAFF) if "[CJD-000001] New" in str(m["Subject"])]
    assert re.search(r"ON BEHALF of someone else \(heir\)", text_of(note))
