"""Unit tests for bot.mail.parse: decoding, body choice, attachments, new-text splitting."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from pathlib import Path

import pytest

from bot.mail.parse import (
    MAX_BODY_CHARS,
    MAX_NEW_TEXT_CHARS,
    Budget,
    cut_reasons,
    html_to_text,
    parse_message,
    split_new_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mime"
VI_TEXT = "Tôi muốn xóa dữ liệu cá nhân của tôi. Cảm ơn."
JA_TEXT = "個人情報の開示をお願いします。"


_TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def to_cp1258(text: str) -> bytes:
    """Encode as Windows-1258 does: base vowel precomposed, tone mark as a combining char."""
    out = []
    for char in text:
        parts = unicodedata.normalize("NFD", char)
        base = "".join(c for c in parts if c not in _TONE_MARKS)
        out.append(
            unicodedata.normalize("NFC", base) + "".join(c for c in parts if c in _TONE_MARKS)
        )
    return "".join(out).encode("cp1258")


def mail(headers: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = f"From: a@example.com\r\nSubject: test\r\n{headers}Content-Type: {content_type}\r\n"
    return head.encode("ascii") + b"\r\n" + body


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- charsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "text", "cte"),
    [
        ("utf-8", VI_TEXT, "8bit"),
        ("windows-1258", VI_TEXT, "8bit"),
        ("iso-8859-1", "Grüße aus München, café", "8bit"),
        ("iso-2022-jp", JA_TEXT, "7bit"),
        ("utf-8", VI_TEXT, "base64"),
        ("windows-1258", VI_TEXT, "quoted-printable"),
    ],
)
def test_body_charsets(charset: str, text: str, cte: str) -> None:
    data = to_cp1258(text) if charset == "windows-1258" else text.encode(charset)
    if cte == "base64":
        import base64

        data = base64.encodebytes(data)
    elif cte == "quoted-printable":
        import quopri

        data = quopri.encodestring(data)
    raw = mail(f"Content-Transfer-Encoding: {cte}\r\n", data, f"text/plain; charset={charset}")
    parsed = parse_message(raw)
    assert parsed.body_text == unicodedata.normalize("NFC", text)
    assert parsed.defects == ()


@pytest.mark.parametrize(
    ("declared", "data", "expected"),
    [
        ("us-ascii", VI_TEXT.encode("utf-8"), VI_TEXT),  # lying charset, really UTF-8
        ("x-no-such-charset", VI_TEXT.encode("utf-8"), VI_TEXT),
        ("utf-8", "café €".encode("cp1252"), "café €"),  # invalid UTF-8 -> cp1252
        ("zlib", b"plain", "plain"),  # a bytes codec, not a text charset
    ],
)
def test_lying_or_unknown_charsets_fall_back(declared: str, data: bytes, expected: str) -> None:
    parsed = parse_message(mail("", data, f"text/plain; charset={declared}"))
    assert parsed.body_text == expected


def test_decomposed_vietnamese_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", VI_TEXT)
    assert decomposed != VI_TEXT
    subject = Header(decomposed, "utf-8").encode()
    raw = mail("", decomposed.encode("utf-8")).replace(
        b"Subject: test", b"Subject: " + subject.encode()
    )
    parsed = parse_message(raw)
    assert parsed.body_text == VI_TEXT
    assert parsed.subject == VI_TEXT


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("=?utf-8?B?WcOqdSBj4bqndSB4w7NhIGThu68gbGnhu4d1?=", "Yêu cầu xóa dữ liệu"),
        ("=?UTF-8?Q?Y=C3=AAu_c=E1=BA=A7u?= =?UTF-8?Q?_x=C3=B3a?=", "Yêu cầu xóa"),
        (Header(JA_TEXT, "iso-2022-jp").encode(), JA_TEXT),
        ("=?windows-1258?Q?C=E1m_=F4n?=", "Cám ôn"),
        ("Re: plain\r\n folded\tsubject", "Re: plain folded subject"),
        ("bell\x07 and\x00 nul", "bell and nul"),
        ("=?bogus-charset?Q?abc?=", "abc"),
        ("=?utf-8?B?!!!notbase64?=", "=?utf-8?B?!!!notbase64?="),
    ],
)
def test_subject_decoding(encoded: str, expected: str) -> None:
    raw = f"From: a@example.com\r\nSubject: {encoded}\r\n\r\nbody".encode("latin-1")
    assert parse_message(raw).subject == expected


def test_raw_utf8_and_raw_iso2022jp_headers() -> None:
    raw = b"From: x@y.jp\r\nSubject: " + VI_TEXT.encode("utf-8") + b"\r\n\r\nbody"
    assert parse_message(raw).subject == VI_TEXT
    raw = b"From: x@y.jp\r\nSubject: " + JA_TEXT.encode("iso-2022-jp") + b"\r\n\r\nbody"
    assert parse_message(raw).subject == JA_TEXT


def test_subject_is_capped() -> None:
    raw = b"From: a@b.c\r\nSubject: " + b"x" * 50_000 + b"\r\n\r\nbody"
    assert len(parse_message(raw).subject) == 1_000


def test_addresses_ids_and_date() -> None:
    name = Header("Nguyễn Văn A", "utf-8").encode()
    raw = (
        f"From: {name} <Nguyen.A@Example.VN>\r\n"
        "Reply-To: Other <Other@Example.VN>\r\n"
        'To: contact@cijidas.jp, "Staff, Privacy" <PRIVACY@cijidas.jp>\r\n'
        "Cc: undisclosed-recipients:;\r\n"
        "Message-ID: <abc@x.vn>\r\n"
        "In-Reply-To: <parent@x> (comment) <other@x>\r\n"
        "References: <root@x>\r\n <parent@x>\r\n"
        "Date: Tue, 4 Nov 2025 09:15:00 +0700\r\n\r\nbody"
    ).encode("ascii")
    parsed = parse_message(raw)
    assert (parsed.from_addr, parsed.from_name) == ("nguyen.a@example.vn", "Nguyễn Văn A")
    assert parsed.reply_to == "other@example.vn"
    assert parsed.to_addrs == ("contact@cijidas.jp", "privacy@cijidas.jp")
    assert parsed.cc_addrs == ()
    assert parsed.message_id == "<abc@x.vn>"
    assert parsed.in_reply_to == "<parent@x>"
    assert parsed.references == ("<root@x>", "<parent@x>")
    assert parsed.date == datetime(2025, 11, 4, 9, 15, tzinfo=timezone(timedelta(hours=7)))
    assert parsed.header("message-id") == "<abc@x.vn>"


def test_missing_headers() -> None:
    parsed = parse_message(b"\r\nJust a body")
    assert parsed.message_id is None and parsed.in_reply_to is None and parsed.date is None
    assert (parsed.from_addr, parsed.from_name, parsed.subject) == ("", "", "")
    assert parsed.reply_to is None and parsed.to_addrs == () and parsed.references == ()
    assert parsed.content_type == "text/plain"
    assert parsed.body_text == "Just a body"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 4 Nov 2025 09:15:00 -0000", datetime(2025, 11, 4, 9, 15, tzinfo=UTC)),
        ("yesterday-ish", None),
        ("Tue, 4 Nov 99999 09:15:00 +0000", None),
    ],
)
def test_dates_are_aware_or_none(date: str, expected: datetime | None) -> None:
    parsed = parse_message(f"From: a@b.c\r\nDate: {date}\r\n\r\nx".encode())
    assert parsed.date == expected
    assert parsed.date is None or parsed.date.tzinfo is not None


def test_many_addresses_and_headers_are_capped() -> None:
    to = ", ".join(f"user{i}@example.com" for i in range(3_000))
    extra = "".join(f"X-Junk-{i}: {'v' * 10_000}\r\n" for i in range(600))
    raw = f"From: a@b.c\r\nTo: {to}\r\n{extra}\r\nbody".encode()
    parsed = parse_message(raw)
    assert len(parsed.to_addrs) == 1_000
    assert len(parsed.headers) == 500
    assert max(len(value) for _, value in parsed.headers) <= 4_096
    assert "too-many-headers" in parsed.defects


def test_sender_cannot_spoof_the_embedded_id_pseudo_header() -> None:
    raw = b"From: a@b.c\r\nX-Bot-Embedded-Message-ID: <ack-1@cijidas.jp>\r\n\r\nhi"
    parsed = parse_message(raw)
    assert parsed.header("x-bot-embedded-message-id") is None
    assert "spoofed-pseudo-header" in parsed.defects


# --- body structure and attachments -----------------------------------------------------------


def test_html_only_mail_becomes_text_without_the_quote() -> None:
    parsed = parse_message(fixture("gmail_html_only.eml"))
    assert parsed.content_type == "text/html"
    assert "alert" not in parsed.body_text and "color" not in parsed.body_text
    assert "Tôi muốn xóa dữ liệu & tài khoản.\nCảm ơn" in parsed.body_text
    assert "- email\n- phone" in parsed.body_text
    assert "> Thank you for contacting us." in parsed.body_text
    assert parsed.new_text.startswith("Xin chào,")
    assert parsed.new_text.endswith("- phone")
    assert parsed.in_reply_to == "<ack-42@cijidas.jp>"
    assert parsed.from_addr == "tran.b@gmail.com" and parsed.from_name == "Tran Thi B"


def test_alternative_prefers_plain_and_lists_attachments() -> None:
    parsed = parse_message(fixture("outlook_reply.eml"))
    assert parsed.content_type == "multipart/mixed"
    assert parsed.part_types == (
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
        "image/png",
    )
    assert "<p>" not in parsed.body_text and "We received your request." in parsed.body_text
    assert parsed.new_text == "Please find my ID attached."
    assert parsed.cc_addrs == ("legal@example.com", "boss@example.com")
    pdf, png = parsed.attachments
    assert (pdf.filename, pdf.content_type, pdf.size) == ("id.pdf", "application/pdf", 15)
    assert pdf.sha256 == hashlib.sha256(b"%PDF-1.4\nhello\n").hexdigest()
    assert (png.filename, png.content_type) == ("", "image/png")
    assert png.sha256 == hashlib.sha256(b"\x89PNG\r\n\x1a\n").hexdigest()


def test_bounce_exposes_embedded_message_id() -> None:
    parsed = parse_message(fixture("dsn_bounce.eml"))
    assert parsed.content_type == "multipart/report"
    assert parsed.header("x-bot-embedded-message-id") == "<ack-7@cijidas.jp>"
    assert parsed.body_text == "This is the mail system. Your message could not be delivered."
    assert "message/delivery-status" in parsed.part_types
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]


def test_rfc822_headers_part_exposes_embedded_message_id() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"From: contact@cijidas.jp\r\nMessage-ID: <ack-9@cijidas.jp>\r\n\r\n--b--\r\n"
    )
    parsed = parse_message(mail("", body, 'multipart/report; boundary="b"'))
    assert parsed.header("x-bot-embedded-message-id") == "<ack-9@cijidas.jp>"


def test_text_attachment_is_not_body_and_body_is_capped() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 300_000 + b"\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
        b"filename*=utf-8''d%E1%BB%AF%20li%E1%BB%87u.txt\r\n\r\nsecret\r\n--b--\r\n"
    )
    parsed = parse_message(mail("", body, 'multipart/mixed; boundary="b"'))
    assert len(parsed.body_text) == MAX_BODY_CHARS and "body-truncated" in parsed.defects
    (attachment,) = parsed.attachments
    assert attachment.filename == "dữ liệu.txt"
    assert attachment.sha256 == hashlib.sha256(b"secret").hexdigest()


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two<br>Three</p>", "One\n\nTwo\nThree"),
        ("<div>a &amp; b &lt;c&gt; &#7879;</div>", "a & b <c> ệ"),
        ("<style>x{}</style><script>bad()</script>kept", "kept"),
        ("<table><tr><td>k</td><td>v</td></tr></table>", "k v"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<![if !supportLists]>x<![endif]><!-- c -->y", "xy"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


# --- new text ---------------------------------------------------------------------------------

SPLIT_CASES = [
    (
        "gmail-en",
        "Please delete my data.\n\nOn Mon, Nov 3, 2025 at 10:00 AM Cijidas <c@x> wrote:\n> Hi",
        "Please delete my data.",
    ),
    (
        "gmail-wrapped",
        "Yes.\n\nOn Mon, 3 Nov 2025 at 10:00, Cijidas <contact@cijidas.jp>\nwrote:\n> Hi",
        "Yes.",
    ),
    (
        "gmail-vi",
        "Vâng.\n\nVào Th 2, 3 thg 11, 2025 vào lúc 10:00 Cijidas <c@x> đã viết:\n> Xin chào",
        "Vâng.",
    ),
    (
        "gmail-vi-no-diacritics",
        "Vang\n\nVao Th 2, 3 thg 11, 2025 vao luc 10:00 C <c@x> da viet:\n> X",
        "Vang",
    ),
    ("gmail-ja", "はい。\n\n2025年11月3日(月) 10:00 Cijidas <c@x>:\n> こんにちは", "はい。"),
    (
        "outlook",
        "Fine.\n\n" + "_" * 32 + "\nFrom: Cijidas <c@x>\nSent: Monday\nTo: me\n\nold",
        "Fine.",
    ),
    ("outlook-vi", "Được.\n\nTừ: Cijidas <c@x>\nĐã gửi: Thứ Hai\nĐến: tôi\n\ncũ", "Được."),
    ("original-message", "Ok\n-----Original Message-----\nFrom: x\nold", "Ok"),
    ("quoted-lines", "My answer\n> old line\n> more", "My answer"),
    (
        "forwarded-gmail",
        "See below\n\n---------- Forwarded message ---------\nFrom: x",
        "See below",
    ),
    ("forwarded-apple", "FYI\n\nBegin forwarded message:\n\nFrom: x", "FYI"),
    ("sig-delimiter", "Delete my account.\n-- \nJohn\n+84 90 000", "Delete my account."),
    (
        "sign-off-en",
        "Delete my account please.\n\nBest regards,\nJohn Smith\nACME Ltd.",
        "Delete my account please.",
    ),
    (
        "sign-off-vi",
        "Xin hãy xóa tài khoản.\n\nTrân trọng,\nNguyễn Văn A",
        "Xin hãy xóa tài khoản.",
    ),
    (
        "sign-off-vi-plain",
        "Xoa tai khoan giup toi\n\nCam on\nNguyen Van A",
        "Xoa tai khoan giup toi",
    ),
    ("iphone", "Delete it\n\nSent from my iPhone", "Delete it"),
    (
        "bottom-posting",
        "On Mon, 3 Nov 2025 at 10:00 C <c@x> wrote:\n> old\n\nMy answer below",
        "My answer below",
    ),
    ("only-quote-kept", "> everything is quoted", "> everything is quoted"),
    ("only-signoff-kept", "Thanks,\nJohn", "Thanks,\nJohn"),
    (
        "prose-on-wrote",
        "On Monday I wrote: the app is broken",
        "On Monday I wrote: the app is broken",
    ),
    (
        "sign-off-before-long-text",
        "Thanks,\nI also want to know:\n- what data\n- why",
        "Thanks,\nI also want to know:\n- what data\n- why",
    ),
    (
        "from-in-prose",
        "From: my old phone I sent a request.\nPlease check.",
        "From: my old phone I sent a request.\nPlease check.",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in SPLIT_CASES], ids=[c[0] for c in SPLIT_CASES]
)
def test_split_new_text(text: str, expected: str) -> None:
    assert split_new_text(text) == expected


# --- robustness -------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    raw = b"Content-Type: text/plain\r\n\r\ndeep hello\r\n"
    for i in range(depth):
        raw = (
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
            + raw
            + b"\r\n--b%d--\r\n" % i
        )
    return b"From: a@b.c\r\nSubject: deep\r\n" + raw


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: image/gif\r\n\r\nGIF\r\n" for _ in range(count))
    return mail(
        "",
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" + parts + b"--b--",
        'multipart/mixed; boundary="b"',
    )


HOSTILE = {
    "empty": b"",
    "nul-bytes": b"From: a\x00@b.c\r\nSubject: x\x00y\r\n\r\nbo\x00dy",
    "random": bytes(random.Random(7).randrange(256) for _ in range(20_000)),
    "truncated-mime": mail(
        "", b"--b\r\nContent-Type: text/plain\r\n\r\nhal", 'multipart/mixed; boundary="b"'
    ),
    "missing-boundary": mail("", b"no boundary here", "multipart/mixed"),
    "bad-base64": mail("Content-Transfer-Encoding: base64\r\n", b"!!!***"),
    "bad-headers": (
        b"From: <<<@@>>>\r\nTo: ;;;,,,\r\nDate: \r\nMessage-ID:\r\nContent-Type: /\r\n\r\nx"
    ),
    "header-only": b"From: a@b.c\r\nSubject: x",
    "no-colon": b"this is not a header\r\nnor this\r\n\r\nbody",
    "nesting-1000": nested(1000),
    "parts-5000": many_parts(5000),
    "bad-rfc2231": mail(
        "Content-Disposition: attachment; filename*=bogus''%ZZ%\r\n",
        b"x",
        "application/x; name*0*=x'y'%FF",
    ),
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.size == len(raw)
    assert len(parsed.body_text) <= MAX_BODY_CHARS
    assert len(parsed.part_types) <= 1_000 and len(parsed.attachments) <= 200
    for text in (
        parsed.body_text,
        parsed.new_text,
        parsed.subject,
        *[v for _, v in parsed.headers],
    ):
        text.encode("utf-8")  # no lone surrogates: everything must be storable
        assert "\x00" not in text


def test_deep_nesting_is_cut_and_the_body_says_so() -> None:
    parsed = parse_message(nested(1000))
    assert "cut:nesting" in parsed.defects and cut_reasons(parsed) == ["nesting"]
    assert parsed.subject == "deep"
    assert parsed.body_text.endswith("(nested too deep); the whole mail stays in the mailbox.]")


def test_many_parts_are_capped_with_a_defect() -> None:
    parsed = parse_message(many_parts(5000))
    assert parsed.new_text == "hi"
    assert parsed.body_text.startswith("hi\n\n[The bot read only part of this mail (too many")
    assert "too-many-parts" in parsed.defects and "too-many-attachments" in parsed.defects
    assert "cut:parts" in parsed.defects


def test_new_text_is_capped_for_triage_but_the_body_is_kept() -> None:
    parsed = parse_message(mail("", b"Please delete my data. " * 10_000, "text/plain"))
    assert len(parsed.new_text) == MAX_NEW_TEXT_CHARS < len(parsed.body_text)


def test_a_whole_mail_has_no_cut_note() -> None:
    parsed = parse_message(many_parts(100))
    assert parsed.body_text == "hi" and cut_reasons(parsed) == []


def test_a_spent_time_budget_cuts_the_mail() -> None:
    ticks = iter(range(1000))
    budget = Budget(lambda: next(ticks), deadline=3)  # spent after three looks at the clock
    parsed = parse_message(many_parts(500), budget)
    assert cut_reasons(parsed) == ["time"]
    assert "(time limit)" in parsed.body_text and len(parsed.attachments) < 500


def test_non_bytes_input_does_not_raise() -> None:
    assert parse_message("Subject: str\n\nbody").subject == "str"  # type: ignore[arg-type]
    assert parse_message(None).body_text == ""  # type: ignore[arg-type]


def test_8bit_garbage_in_ids_is_still_storable_text() -> None:
    raw = b"From: a@b.c\r\nMessage-ID: <id\xc7@x>\r\nReferences: <r\xff@x>\r\n\r\nx"
    parsed = parse_message(raw)
    for value in (parsed.message_id, *parsed.references):
        assert value is not None
        value.encode("utf-8")
