"""The request signals (bot.triage.signals) and the request plan (bot.rules.requests):
table-driven, English and Vietnamese with and without diacritics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.rules.requests import plan_request, tightened
from bot.rules.sla import Deadlines
from bot.triage.signals import detect


@pytest.mark.parametrize("text", [
    "Please unsubscribe me from your newsletter.",
    "Stop sending me marketing emails!",
    "I withdraw my consent to marketing.",
    "No more SMS or calls please",
    "Please take me off your mailing list.",
    "Remove me from this list please.",
    "turn off marketing push notifications for my account pls",
    "Xin hủy đăng ký nhận bản tin",
    "Xin hủy đăng ký nhận bản tin".replace("ủ", "u").replace("ă", "a").replace("ý", "y")
    .replace("ậ", "a").replace("ả", "a"),
    "ngung gui email quang cao cho toi",
    "Đừng gọi cho tôi nữa",
    "Tôi muốn rút lại sự đồng ý nhận quảng cáo",
    "rut lai su dong y nhan quang cao",
    "xoa toi khoi danh sach gui thu",
    "Tôi không muốn nhận email quảng cáo nữa",
])
def test_opt_out_is_detected(text):
    found = detect("", text)
    assert found.opt_out and found.pure_opt_out


@pytest.mark.parametrize("text", [
    "How do I unsubscribe?",
    "I do not want to unsubscribe, I like the newsletter.",
    "Please stop using my data for profiling.",
    "Where is my order?",
    "Tôi muốn hỏi về chính sách bảo mật.",
])
def test_not_an_opt_out(text):
    assert not detect("", text).opt_out


@pytest.mark.parametrize(("text", "erasure"), [
    ("Please delete my account and stop sending me emails.", True),
    ("Xin xóa tài khoản và ngừng gửi email quảng cáo cho tôi.", True),
    ("xin xoa tai khoan va ngung gui email quang cao cho toi", True),
    ("Please delete me from your mailing list.", False),   # a list, not the data
    ("xoa toi khoi danh sach gui thu", False),
])
def test_erasure_besides_an_opt_out(text, erasure):
    found = detect("", text)
    assert found.opt_out and found.erasure is erasure


@pytest.mark.parametrize(("text", "incident"), [
    ("Your invoice with my address was sent to the wrong person", True),
    ("I received someone else's order confirmation", True),
    ("The newsletter showed all recipients in the To field instead of BCC", True),
    ("My personal data was leaked on a forum.", True),
    ("Thông tin của tôi bị lộ", True),
    ("thong tin cua toi bi lo", True),
    ("Công ty gửi nhầm hóa đơn của tôi cho người khác", True),
    ("toi nhan duoc don hang cua nguoi khac", True),
    ("If Cijidas ever has a data breach, will you notify customers?", False),
    ("Co bi lo du lieu ko?", False),
    ("Please send me a copy of my data.", False),
    ("Tôi lo lắng về dữ liệu của mình.", False),
])
def test_incident(text, incident):
    assert detect("", text).incident is incident


@pytest.mark.parametrize(("text", "relation"), [
    ("I am writing on behalf of my mother who passed away", "heir"),
    ("Mẹ tôi đã qua đời, tôi muốn xóa tài khoản của bà.", "heir"),
    ("My son is 15, please delete his account", "parent"),
    ("Xin xóa tài khoản của con trai tôi", "parent"),
    ("xin xoa tai khoan cua con trai toi", "parent"),
    ("I am her legal guardian.", "guardian"),
    ("Tôi là luật sư của ông A", "representative"),
    ("We act for our client, Mr A, under a power of attorney.", "representative"),
    ("please delete my wife's account", "spouse"),
    ("Xin xóa tài khoản của vợ tôi", "spouse"),
    ("Please delete my account.", ""),
    ("I will call my lawyer about this.", ""),
    ("My husband and I bought a sofa.", ""),
    ("Tôi 30 tuổi và đã mất mật khẩu.", ""),
    ("It is a minor issue.", ""),
])
def test_agent(text, relation):
    assert detect("", text).agent == relation


@pytest.mark.parametrize(("category", "review", "signals", "expected"), [
    # (request_kind, ack_kind, agent, needs_code, stop_sends)
    ("deletion", False, {}, (None, None, "", True, False)),
    ("deletion", True, {}, (None, None, "", False, False)),           # unsure: no code yet
    ("question", False, {}, (None, None, "", False, False)),
    ("deletion", False, {"opt_out": True}, ("opt_out", "opt_out", "", False, True)),
    ("deletion", False, {"opt_out": True, "erasure": True}, (None, None, "", True, True)),
    ("question", False, {"opt_out": True}, (None, None, "", False, False)),
    ("deletion", False, {"opt_out": True, "agent": "spouse"},
     (None, None, "spouse", True, False)),                             # not on their address
    ("complaint", False, {"incident": True}, ("incident", None, "", False, False)),
    ("disclosure", False, {"incident": True}, ("incident", None, "", True, False)),
    ("complaint", False, {"agent": "parent"}, (None, None, "", False, False)),
    ("disclosure", False, {"agent": "heir"}, (None, None, "heir", True, False)),
])
def test_plan_request(category, review, signals, expected):
    plan = plan_request(category, needs_review=review, **signals)
    assert (plan.request_kind, plan.ack_kind, plan.agent, plan.needs_code,
            plan.stop_sends) == expected


def test_an_unreadable_mail_is_only_reviewed():
    plan = plan_request("deletion", needs_review=True, readable=False)
    assert (plan.request_kind, plan.needs_code) == (None, False)


def test_tightened_moves_the_answer_up_never_back():
    t0 = datetime(2026, 11, 24, tzinfo=UTC)
    due = Deadlines(t0 + timedelta(days=10), t0 + timedelta(days=5), t0 + timedelta(days=14))
    sooner = tightened(due, t0 + timedelta(days=3), None)
    assert (sooner.respond_at, sooner.escalate_at, sooner.hard_at) == \
        (t0 + timedelta(days=3), t0 + timedelta(days=3), due.hard_at)
    assert tightened(due, t0 + timedelta(days=20)) == due
    assert tightened(due) == due
