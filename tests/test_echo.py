"""What automatic mail repeats of a sender's subject and name (bot/mail/echo.py): table-driven."""

from __future__ import annotations

import pytest

from bot.mail.echo import MAX_ECHOED_SUBJECT, defanged, echoed_name, echoed_subject


@pytest.mark.parametrize(("subject", "expected"), [
    ("Please delete my account", "Please delete my account"),
    ("Câu hỏi về thông tin cá nhân", "Câu hỏi về thông tin cá nhân"),
    ("URGENT: verify your account at https://evil.example/login",
     "URGENT: verify your account at"),
    ("log in at evil.example/login now", "log in at now"),
    ("visit www.evil.example", "visit"),
    ("write to help@evil.example today", "write to today"),
    ("call +84 912 345 678 now", "call now"),
    ("call (03) 1234-5678", "call"),
    ("fullwidth ｈｔｔｐｓ：／／ｅｖｉｌ．ｅｘａｍｐｌｅ", "fullwidth"),
    ("ideographic dot evil。example/x", "ideographic dot"),
    ("mailto:x@evil.example", ""),
    ("javascript:alert(1)", ""),
    ("ticket 12345 about v2.0, e.g. this", "ticket 12345 about v2.0, e.g. this"),
    ("Order 2026-11-24", "Order"),  # 8 digits: dropped like a phone number (conservative)
])
def test_echoed_subject(subject, expected):
    assert echoed_subject(subject) == expected


def test_echoed_subject_is_cut_at_a_word():
    long = "Yêu cầu xóa dữ liệu cá nhân của tôi tại cửa hàng Hà Nội ngày hôm qua và hôm nay"
    cut = echoed_subject(long)
    assert len(cut) <= MAX_ECHOED_SUBJECT + 1 and cut.endswith("…")
    assert long.startswith(cut[:-1])


@pytest.mark.parametrize(("name", "expected"), [
    ("Nguyễn Văn A", "Nguyễn Văn A"),
    ("佐藤 花子", "佐藤 花子"),
    ("Jean-Luc O'Brien", "Jean-Luc O'Brien"),
    ("Dr. Jane Smith", "Dr. Jane Smith"),
    ("Your account is locked, call +1 555 0100", ""),   # a sentence with a phone number
    ("Please verify at evil.example", ""),
    ("Support Team https://evil.example", ""),
    ("help@evil.example", ""),
    ("bob99", ""),
    ("One Two Three Four Five Six", ""),                  # reads like a sentence
    ("Nguyễn Thị Minh Khai Hoàng Anh Phương Thảo", ""),   # over 40 characters
    ("URGENT!", ""),
    ("<script>", ""),
    ("", ""),
])
def test_echoed_name(name, expected):
    assert echoed_name(name) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("verify at https://evil.example/login", "verify at hxxps[://]evil[.]example/login"),
    ("mail help@evil.example", "mail help[at]evil[.]example"),
    ("see evil.example", "see evil[.]example"),
    ("Question about my data", "Question about my data"),
])
def test_defanged(text, expected):
    assert defanged(text) == expected
