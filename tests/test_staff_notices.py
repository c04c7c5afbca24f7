"""Staff notifications show the ticket as the customer's mail left it (issue: staff always
know what happened): a confirmed code reads confirmed, a reply to a closed ticket says it
reopened the ticket, and the review reasons and model terms are shown."""

from __future__ import annotations

from datetime import timedelta

from botenv import customer_mail
from test_verification import DELETION, STAFF, T0, Desk, code_in, reply, text_of

from bot.adapters.store import utc_iso


def test_followup_notice_shows_the_state_after_the_mail(tmp_path):
    desk = Desk(tmp_path)
    desk.receive(customer_mail(*DELETION, message_id="<req-1@example.com>"), T0)
    code = code_in(desk.mails_to("customer@example.com")[0])

    desk.receive(reply(f"My code is {code}"), T0 + timedelta(hours=1))

    notice = [m for m in desk.mails_to(STAFF) if "Follow-up" in m["Subject"]][-1]
    assert "Verification: email_confirmed" in text_of(notice)


def test_reply_to_a_closed_ticket_says_it_reopened_it(tmp_path):
    desk = Desk(tmp_path)
    desk.receive(customer_mail("Opening hours", "When is your Osaka store open on Sundays?",
                               message_id="<req-1@example.com>"), T0)
    ticket = desk.store.ticket_by_ref("CJD-000001")
    with desk.store.transaction() as conn:
        desk.store.update_ticket(conn, ticket["id"], status="closed",
                                 closed_at=utc_iso(T0 + timedelta(hours=1)))

    desk.receive(customer_mail("Re: [CJD-000001] Opening hours", "And on public holidays?",
                               headers={"In-Reply-To": "<req-1@example.com>"}),
                 T0 + timedelta(days=1))

    notice = desk.staff_mail("Reopened by the customer")
    assert "This reply reopened the closed ticket." in text_of(notice)
    assert "Status: reopened" in text_of(notice)


def test_new_ticket_notice_explains_a_review(tmp_path):
    desk = Desk(tmp_path)
    desk.receive(customer_mail("hi", "hello"), T0)

    notice = desk.staff_mail("NEEDS REVIEW")
    assert "Why review: " in text_of(notice) and "too little text" in text_of(notice)


def test_mail_without_a_usable_sender_is_a_review_ticket_and_gets_no_reply(tmp_path):
    desk = Desk(tmp_path)
    raw = (b"From: nobody-here\r\nTo: contact@cijidas.jp\r\nSubject: help\r\n"
           b"Message-ID: <x1@example.com>\r\n\r\nPlease delete my account.\r\n")

    desk.receive(raw, T0)

    [ticket] = desk.store.rows("SELECT customer_email, needs_review FROM tickets")
    assert ticket == {"customer_email": "", "needs_review": 1}
    kinds = [r["kind"] for r in desk.store.rows("SELECT kind FROM outbox")]
    assert kinds == ["notification"]
    assert "no usable sender address" in text_of(desk.staff_mail("NEEDS REVIEW"))
