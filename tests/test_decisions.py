"""Decisions by mail, end to end against the loopback servers: a staff member answers the
notification with #done, #refuse, #partial, #nodata, #extend or #fee; the customer gets the
notice in their language; staff get a one-line confirmation, or an error mail when the
command does not fit (and then nothing at all happens)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botenv import customer_mail, query, write_config
from test_staff_flow import CUSTOMER, DELETION, STAFF, Bot, body, staff_reply

from bot.rules.sla import from_iso

pytestmark = pytest.mark.integration

DELETION_VI = ("Xóa tài khoản", "Xin chào, tôi muốn công ty xóa tài khoản và toàn bộ dữ liệu "
               "cá nhân của tôi. Cảm ơn.")
DISCLOSURE = ("Request for a copy of my data",
              "Hello, please send me a copy of all the personal data you hold about me.")
DISCLOSURE_VI = ("Yêu cầu cung cấp dữ liệu cá nhân", "Xin chào, vui lòng cung cấp cho tôi bản "
                 "sao toàn bộ dữ liệu cá nhân mà công ty đang lưu giữ về tôi. Cảm ơn.")
REASON = {"en": "We must keep invoices for seven years under the tax law.",
          "vi": "Chúng tôi phải lưu giữ hóa đơn trong bảy năm theo luật thuế."}
FIRST = {("en", "deletion"): DELETION, ("vi", "deletion"): DELETION_VI,
         ("en", "disclosure"): DISCLOSURE, ("vi", "disclosure"): DISCLOSURE_VI}

# command -> (category, commands, decision, status, what the notice says per language,
#             what the confirmation says)
CASES = {
    "done": ("deletion", "#verified\n#done {reason}", "done", "closed",
             {"en": "We have deleted your personal information as you asked.",
              "vi": "Chúng tôi đã xóa thông tin cá nhân của Quý khách theo đúng yêu cầu."},
             "identity confirmed by staff; completion notice (deleted) sent; closed"),
    "refuse": ("deletion", "#refuse {reason}", "refused", "closed",
               {"en": "We have decided not to carry out your request CJD-000001",
                "vi": "chúng tôi không thể thực hiện yêu cầu CJD-000001"},
               "refusal sent; closed"),
    "partial": ("deletion", "#verified\n#partial {reason}", "partial", "closed",
                {"en": "For the rest, we cannot do as you asked, for these reasons:",
                 "vi": "Đối với phần còn lại, chúng tôi không thể đáp ứng yêu cầu"},
                "partial-completion notice sent; closed"),
    "nodata": ("disclosure", "#verified\n#nodata", "nodata", "closed",
               {"en": "we hold no personal information about you.",
                "vi": "chúng tôi không lưu giữ thông tin cá nhân nào về Quý khách."},
               "no-data notice sent; closed"),
    "extend": ("deletion", "#extend 10 {reason}", None, "answered",
               {"en": "We will complete it by", "vi": "Chúng tôi sẽ hoàn tất chậm nhất vào ngày"},
               "completion deadline extended by 10 days to"),
    "fee": ("disclosure", "#fee", None, "waiting_customer",
            {"en": "a fee of 1,000 JPY applies to your request CJD-000001",
             "vi": "phải trả phí 1.000 yên"},
            "fee notice sent; waiting for the customer"),
}


def flat(text: str) -> str:
    return " ".join(text.split())


def make_bot(tmp_path, imap_server, smtp_server, first) -> Bot:
    config = write_config(tmp_path, imap_server, smtp_server,
                          staff={"token_secret_env": "TEST_STAFF_TOKEN_SECRET"})
    return Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server, first)


@pytest.mark.parametrize("language", ["en", "vi"])
@pytest.mark.parametrize("command", sorted(CASES))
def test_decision_reaches_the_customer_in_their_language(tmp_path, imap_server, smtp_server,
                                                         env, command, language):
    category, commands, decision, status, notice, confirmation = CASES[command]
    bot = make_bot(tmp_path, imap_server, smtp_server, FIRST[(language, category)])
    assert bot.ticket("category") == category and bot.ticket("language") == language
    staff_before = len(bot.sent_to(STAFF))

    bot.deliver(staff_reply(bot, commands.format(reason=REASON[language]), quote=False))

    to_customer = bot.sent_to(CUSTOMER)
    assert len(to_customer) == 2  # the acknowledgement, then the notice
    mail = to_customer[-1]
    text = flat(body(mail))
    assert notice[language] in text
    if "{reason}" in commands and command != "done":
        assert REASON[language] in text
    assert mail["Content-Language"] == language
    assert mail["In-Reply-To"] == bot.customer_id
    assert mail["Subject"].startswith("[CJD-000001] ")
    if language == "vi":
        assert "Dear" not in text and "request" not in text  # no English left in it
    confirmations = bot.sent_to(STAFF)[staff_before:]
    assert len(confirmations) == 1
    line = body(confirmations[0]).splitlines()[0]
    assert line.startswith("CJD-000001: ") and confirmation in line
    assert str(confirmations[0]["Reply-To"]).startswith("contact+cjd-000001.")
    assert bot.ticket("status") == status
    assert bot.ticket("decision") == decision
    assert (bot.ticket("completed_at") is not None) == (decision is not None)
    assert bot.ticket("first_response_at") is not None  # a notice answers the customer


def test_done_also_relays_the_answer_written_below_it(tmp_path, imap_server, smtp_server, env):
    bot = make_bot(tmp_path, imap_server, smtp_server, DISCLOSURE)
    bot.deliver(staff_reply(bot, "#verified\n#done\nDear Alice,\nthe file is attached.\n",
                            quote=False))

    answer, notice = bot.sent_to(CUSTOMER)[-2:]
    assert "the file is attached." in body(answer)
    assert "We have provided you with the personal information" in flat(body(notice))
    assert query(bot.db, "SELECT kind FROM messages WHERE direction = 'out' AND "
                         "kind IN ('staff_reply', 'decision') ORDER BY id") == [
        ("staff_reply",), ("decision",)]
    assert body(bot.sent_to(STAFF)[-1]).startswith(
        "CJD-000001: answer sent to the customer; identity confirmed by staff; "
        "completion notice (information provided) sent; closed")


def test_only_one_extension(tmp_path, imap_server, smtp_server, env):
    bot = make_bot(tmp_path, imap_server, smtp_server, DELETION)
    received = from_iso(bot.ticket("created_at"))
    bot.deliver(staff_reply(bot, "#extend 10 Our backup provider must confirm it.",
                            quote=False))
    extended = from_iso(bot.ticket("completion_due_at"))
    assert (extended - received) > timedelta(days=14 + 9)  # 14 days, then 10 more
    customer_mails = len(bot.sent_to(CUSTOMER))

    bot.deliver(staff_reply(bot, "#extend 5 Still waiting.", quote=False))

    assert len(bot.sent_to(CUSTOMER)) == customer_mails  # no second notice
    error = bot.sent_to(STAFF)[-1]
    assert "Command not carried out" in error["Subject"]
    assert "already extended 1 time(s); at most 1" in flat(body(error))
    assert from_iso(bot.ticket("completion_due_at")) == extended
    assert bot.ticket("extensions") == 1


@pytest.mark.parametrize(("commands", "subject", "problem"), [
    ("#refuse", "Command not understood", "give the reasons"),
    ("#extend ten days", "Command not understood", "#extend DAYS REASON"),
    ("#extend 40 The processor is slow.", "Command not carried out",
     "at most 15 days per extension"),
    ("#done", "Command not carried out", "identity is not confirmed"),
    ("#fee", "Command not carried out", "disclosure requests only"),
    ("#verified\n#done\n#refuse Too late.", "Command not carried out",
     "already has its decision"),
])
def test_a_command_that_does_not_fit_stops_the_whole_mail(tmp_path, imap_server, smtp_server,
                                                          env, commands, subject, problem):
    bot = make_bot(tmp_path, imap_server, smtp_server, DELETION)
    bot.deliver(staff_reply(bot, commands + "\nDear customer, here is our answer.",
                            quote=False))

    assert len(bot.sent_to(CUSTOMER)) == 1  # only the acknowledgement: nothing relayed
    error = bot.sent_to(STAFF)[-1]
    assert subject in error["Subject"] and problem in flat(body(error))
    assert bot.ticket("status") == "open"
    assert bot.ticket("verification_status") == "pending"  # not even #verified ran
    assert bot.ticket("completed_at") is None


def test_decision_on_a_question_is_refused(tmp_path, imap_server, smtp_server, env):
    bot = make_bot(tmp_path, imap_server, smtp_server,
                   ("Cookies", "Hello, which cookies does your website use and why?"))
    assert bot.ticket("category") == "question"
    bot.deliver(staff_reply(bot, "#done", quote=False))
    assert "only for disclosure, correction and deletion requests" in flat(
        body(bot.sent_to(STAFF)[-1]))
    # ... and with the category corrected in the same mail, it runs.
    bot.deliver(staff_reply(bot, "#category deletion\n#verified\n#done", quote=False))
    assert bot.ticket("decision") == "done" and bot.ticket("completion_due_at")


def test_admin_query_lists_requests_without_a_decision(tmp_path, imap_server, smtp_server,
                                                       env):
    from bot.ops import admin

    bot = make_bot(tmp_path, imap_server, smtp_server, DELETION)
    bot.deliver(customer_mail(*DISCLOSURE, sender="bob@example.com"))
    bot.deliver(staff_reply(bot, "We are on it.", quote=False))  # answered, not completed
    metadata = admin.load_metadata(bot.db, environ={})
    sql = metadata["databases"][bot.db.stem]["queries"]["requests_not_completed"]["sql"]

    assert [row[:3] for row in query(bot.db, sql)] == [
        ("CJD-000001", "answered", "deletion"), ("CJD-000002", "open", "disclosure")]

    bot.deliver(staff_reply(bot, "#refuse We must keep the account for a pending order.",
                            quote=False))
    assert [row[0] for row in query(bot.db, sql)] == ["CJD-000002"]


@pytest.mark.parametrize(("subject", "text", "category", "days"), [
    ("Delete my data", "Please delete my account and every record you hold about me.",
     "deletion", 14),
    ("Xóa dữ liệu", "Tôi yêu cầu công ty xóa toàn bộ dữ liệu cá nhân của tôi.", "deletion", 10),
    ("Opening hours", "What time does your support desk open on Saturdays?", "question", None),
])
def test_a_new_request_has_its_completion_deadline_at_once(tmp_path, subject, text,
                                                             category, days):
    """Set when the ticket is opened, not by the next completion pass minutes later."""
    from test_verification import Desk

    desk = Desk(tmp_path)
    desk.receive(customer_mail(subject, text), datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    ticket = desk.store.rows("SELECT category, created_at, completion_due_at FROM tickets")[0]
    assert ticket["category"] == category
    if days is None:
        assert ticket["completion_due_at"] is None
    else:
        span = from_iso(ticket["completion_due_at"]) - from_iso(ticket["created_at"])
        assert timedelta(days=days - 1) < span <= timedelta(days=days + 1)  # end of day
