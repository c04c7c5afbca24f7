"""Unit tests for bot.mail.compose: every template renders, headers follow DESIGN.md, and
customer-controlled text can never inject headers, markup or template syntax."""

from __future__ import annotations

import dataclasses
import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.config import settings_from_dict
from bot.mail import compose
from bot.models import Attachment, Category, InboundMail, Language, Triage

SETTINGS = dataclasses.replace(settings_from_dict(
    {"bot": {"address": "contact@cijidas.jp"}, "mailbox": {"host": "x", "username": "u"},
     "smtp": {"host": "y"}},
    Path("config.toml"), {"INQUIRY_BOT_IMAP_PASSWORD": "p"}), cache_path=None)
REF = "CJD-000123"
CODE = "12345678"
RECEIVED = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)       # 12:00 JST
DUE = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)             # 17:00 JST
EXPIRES = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 3, 0, 5, tzinfo=UTC)
CUSTOMER_ID = "<orig-1@example.vn>"

RECEIVED_TEXT = {Language.EN: "24 November 2026, 12:00 (JST)",
                 Language.VI: "12:00 ngày 24/11/2026 (giờ Nhật Bản)"}
DUE_TEXT = {Language.EN: "8 December 2026", Language.VI: "ngày 08/12/2026"}
VERIFY_MARK = {Language.EN: "NOT send photos or scans of identity documents",
               Language.VI: "gửi ảnh chụp hoặc bản quét giấy tờ tùy thân"}
CATEGORIES = [*Category, None]


def ack(category: Category | None = Category.DISCLOSURE, language: Language = Language.EN,
        *, bilingual: bool = False, name: str = "Nguyễn Văn An",
        subject: str = "Re: Re: xin xóa dữ liệu", references: tuple[str, ...] = ("<r0@x.vn>",),
        ) -> EmailMessage:
    return compose.acknowledgement(
        SETTINGS, ref=REF, category=category, language=language, bilingual=bilingual,
        customer_name=name, customer_email="an@example.vn", original_subject=subject,
        received_at=RECEIVED, due_at=DUE, verification_code=CODE, code_expires_at=EXPIRES,
        in_reply_to=CUSTOMER_ID, references=list(references),
        message_id=compose.make_message_id(SETTINGS.bot_domain), date=NOW)


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) as a reader sees the words: tags dropped, whitespace collapsed."""
    msg = reparsed(msg)
    text = msg.get_body(("plain",)).get_content()
    html = re.sub(r"<[^>]*>", "", raw_html(msg))
    return " ".join(text.split()), " ".join(html.split())


def raw_html(msg: EmailMessage) -> str:
    return reparsed(msg).get_body(("html",)).get_content()


def reparsed(msg: EmailMessage) -> EmailMessage:
    """What the receiving side sees after the bytes cross the wire."""
    return email.message_from_bytes(bytes(msg), policy=policy.default)


# -- every acknowledgement renders with StrictUndefined, in every language ----------------

@pytest.mark.parametrize("bilingual", [False, True], ids=["mono", "bilingual"])
@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("category", CATEGORIES, ids=lambda c: c or "generic")
def test_acknowledgement_content(category, language, bilingual):
    msg = ack(category, language, bilingual=bilingual)
    languages = [Language.VI, Language.EN] if bilingual else [language]
    for body in parts(msg):
        for lang in languages:
            assert RECEIVED_TEXT[lang] in body
            assert DUE_TEXT[lang] in body
            assert (VERIFY_MARK[lang] in body) == (category in compose.VERIFIED_CATEGORIES)
            if category is not None:
                assert compose.WRONG_WORDS[lang] in body
        assert REF in body and f"[{REF}]" in body
        assert (CODE in body) == (category in compose.VERIFIED_CATEGORIES)
        assert "https://cijidas.jp/privacy" in body and "contact@cijidas.jp" in body


@pytest.mark.parametrize("language", list(Language))
def test_bilingual_is_vietnamese_first(language):
    text, html = parts(ack(Category.QUESTION, language, bilingual=True))
    for body in (text, html):
        assert body.index("Kính gửi Quý khách") < body.index("Dear ")


@pytest.mark.parametrize(("category", "language", "expected"), [
    (Category.DISCLOSURE, Language.EN, ["1,000 JPY", "electronically", "only to the email"]),
    (Category.DISCLOSURE, Language.VI, ["1.000 yên", "dạng điện tử", "chỉ được gửi đến"]),
    (Category.CORRECTION, Language.EN, ["the correct information", "never used to confirm"]),
    (Category.CORRECTION, Language.VI, ["thông tin chính xác", "không bao giờ được dùng"]),
    (Category.DELETION, Language.EN, ["stop using it", "the law requires us to keep"]),
    (Category.DELETION, Language.VI, ["ngừng sử dụng", "pháp luật yêu cầu"]),
    (Category.COMPLAINT, Language.EN, ["Personal Information Protection Manager"]),
    (Category.QUESTION, Language.VI, ["nhân viên của chúng tôi sẽ đọc câu hỏi"]),
    (None, Language.EN, ["correct or add to that information", "look into a complaint"]),
    (None, Language.VI, ["chỉnh sửa hoặc bổ sung", "xem xét một khiếu nại"]),
])
def test_category_specific_content(category, language, expected):
    for body in parts(ack(category, language)):
        for phrase in expected:
            assert phrase in body


def test_verified_category_requires_a_code():
    with pytest.raises(ValueError):
        compose.acknowledgement(
            SETTINGS, ref=REF, category=Category.DELETION, language=Language.EN,
            bilingual=False, customer_name="", customer_email="a@b.jp", original_subject="",
            received_at=RECEIVED, due_at=DUE, verification_code=None, code_expires_at=None,
            in_reply_to=None, references=[], message_id="<x@cijidas.jp>", date=NOW)


# -- short mails ------------------------------------------------------------------------

SHORT_MAILS = [
    (compose.verification_confirmed, {"due_at": DUE}, {Language.EN: "confirmed your identity",
                                                      Language.VI: "đã xác minh được"}),
    (compose.verification_wrong_code, {"tries_left": 3}, {Language.EN: "3 attempts left",
                                                          Language.VI: "còn 3 lần thử"}),
    (compose.verification_failed, {"expired": True}, {Language.EN: "the code has expired",
                                                      Language.VI: "đã hết hạn"}),
    (compose.verification_failed, {"expired": False}, {Language.EN: "too many times",
                                                       Language.VI: "quá số lần cho phép"}),
    (compose.verification_reminder, {"code_expires_at": EXPIRES, "verification_code": CODE},
     {Language.EN: CODE, Language.VI: CODE}),
    (compose.verification_reminder, {"code_expires_at": EXPIRES},
     {Language.EN: "the one-time code it contains", Language.VI: "có trong thư đó"}),
    (compose.closed_unverified, {}, {Language.EN: "We have closed request",
                                     Language.VI: "đã đóng yêu cầu"}),
    (compose.followup_added, {"due_at": DUE}, {Language.EN: DUE_TEXT[Language.EN],
                                               Language.VI: DUE_TEXT[Language.VI]}),
    (compose.too_large, {"received_at": RECEIVED}, {Language.EN: "25 MB",
                                                    Language.VI: "25 MB"}),
]


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize(("builder", "kwargs", "phrases"), SHORT_MAILS,
                         ids=[f"{b.__name__}-{i}" for i, (b, _, _) in enumerate(SHORT_MAILS)])
def test_short_mails(builder, kwargs, phrases, language):
    thread = compose.CustomerThread(REF, language, "an@example.vn", "An", "Re: hello",
                                    CUSTOMER_ID, ("<r0@x.vn>",))
    msg = builder(SETTINGS, thread, message_id="<s1@cijidas.jp>", date=NOW, **kwargs)
    assert msg["Subject"] == f"[{REF}] hello"
    assert msg["In-Reply-To"] == CUSTOMER_ID
    assert msg["Content-Language"] == language.value
    for body in parts(msg):
        assert REF in body and phrases[language] in body


def test_staff_notification():
    mail = InboundMail(
        message_id=CUSTOMER_ID, in_reply_to=None, references=(), from_addr="an@example.vn",
        from_name="An", reply_to=None, to_addrs=("contact@cijidas.jp",), cc_addrs=(),
        subject="Fwd: xin xóa <b>dữ liệu</b>", date=RECEIVED, content_type="text/plain",
        body_text="", new_text="Xin chào\n\n<script>x</script>",
        attachments=(Attachment("cccd.jpg", "image/jpeg", 1234, "00"),))
    triage = Triage(Category.DELETION, Language.VI, 0.42, 0.9, ("xóa", "dữ liệu"),
                    needs_review=True)
    msg = reparsed(compose.staff_notification(
        SETTINGS, ref=REF, triage=triage, mail=mail, due_at=DUE, verification_status="pending",
        to=["privacy@cijidas.jp", "dpo@cijidas.jp"], message_id="<n1@cijidas.jp>", date=NOW,
        reply_to="contact+CJD-000123.tok@cijidas.jp"))
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Reply-To"] == "contact+CJD-000123.tok@cijidas.jp"
    assert msg["To"] == "privacy@cijidas.jp, dpo@cijidas.jp"
    assert msg["Subject"].startswith(f"[{REF}] New deletion NEEDS REVIEW (vi): xin xóa")
    text, html = parts(msg)
    for body in (text, html):
        for phrase in (REF, "deletion", "NEEDS REVIEW", "42%", "xóa, dữ liệu", "pending",
                       "8 December 2026, 17:00 (JST)", "cccd.jpg", "#note", "#verified",
                       "#category", "#assign", "#wait", "#close", "Xin chào"):
            assert phrase in body
    assert "> <script>x</script>" in text
    assert "<script>" not in raw_html(msg) and "&lt;script&gt;x&lt;/script&gt;" in raw_html(msg)


# -- headers ----------------------------------------------------------------------------

@pytest.mark.parametrize(("subject", "language", "expected"), [
    ("Hello", Language.EN, "[CJD-000123] Hello"),
    ("Re: Re: RE: Hello", Language.EN, "[CJD-000123] Hello"),
    ("Re: [CJD-000123] Re: Hello", Language.EN, "[CJD-000123] Hello"),
    ("[CJD-000123] Fwd: FW: Hello", Language.EN, "[CJD-000123] Hello"),
    ("TL: Trả lời: Xin chào", Language.VI, "[CJD-000123] Xin chào"),
    ("Tra\u0309 lo\u031b\u0300i: Xin chào", Language.VI, "[CJD-000123] Xin chào"),  # NFD input
    ("Re[2]: AW: Sv: hi", Language.EN, "[CJD-000123] hi"),
    ("Re: [OTHER-9] hi", Language.EN, "[CJD-000123] [OTHER-9] hi"),
    ("Regarding data", Language.EN, "[CJD-000123] Regarding data"),
    ("", Language.EN, "[CJD-000123] Your privacy inquiry"),
    ("  Re:  ", Language.VI, "[CJD-000123] Yêu cầu của Quý khách về thông tin cá nhân"),
])
def test_ticket_subject(subject, language, expected):
    assert compose.ticket_subject(REF, subject, language) == expected


@pytest.mark.parametrize(("bilingual", "language", "content_language"), [
    (False, Language.EN, "en"), (False, Language.VI, "vi"), (True, Language.EN, "vi, en")])
def test_acknowledgement_headers(bilingual, language, content_language):
    msg = reparsed(ack(Category.QUESTION, language, bilingual=bilingual))
    assert msg["From"] == "Cijidas <contact@cijidas.jp>"
    assert msg["To"] == "an@example.vn"
    assert msg["Subject"] == f"[{REF}] xin xóa dữ liệu"
    assert msg["In-Reply-To"] == CUSTOMER_ID
    assert msg["References"].split() == ["<r0@x.vn>", CUSTOMER_ID]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Content-Language"] == content_language
    assert msg["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<inquiry-bot\.[0-9a-f]{32}@cijidas\.jp>", msg["Message-ID"])
    assert msg["Date"] == "Tue, 24 Nov 2026 03:00:05 +0000"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative", "text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.walk() if not p.is_multipart())


def test_references_are_capped_and_cleaned():
    refs = tuple(f"<r{i}@x.vn>" for i in range(15)) + ("junk", "<bad id@x>")
    chain = reparsed(ack(references=refs))["References"].split()
    assert len(chain) == compose.MAX_REFERENCES
    assert chain[0] == "<r0@x.vn>" and chain[-1] == CUSTOMER_ID and "<r14@x.vn>" in chain


def test_message_ids_are_fresh_and_on_our_domain():
    first, second = (compose.make_message_id("cijidas.jp") for _ in range(2))
    assert first != second and first.endswith("@cijidas.jp>")
    expected = "<inquiry-bot.CJD-1.abc@cijidas.jp>"
    assert compose.make_message_id("cijidas.jp", "CJD-1.abc") == expected
    for domain, token in (("evil.jp>\r\nBcc: x", None), ("cijidas.jp", "a b")):
        with pytest.raises(ValueError):
            compose.make_message_id(domain, token)


# -- injection --------------------------------------------------------------------------

BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
PAYLOADS = ["\r\nBcc: evil@x", "x\nBcc: evil@x", "{{ 7*7 }}", "{% for %}",
            "<script>alert(1)</script>", "evil\u202egpj.exe", "\u2066{{ 7*7 }}\u2069"]
EXPECTED_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                    "Auto-Submitted", "X-Auto-Response-Suppress", "MIME-Version",
                    "Content-Type", "Content-Language"}


@pytest.mark.parametrize("field", ["subject", "name"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
@pytest.mark.parametrize("language", list(Language))
def test_customer_text_is_inert(field, payload, language):
    value = f"Hi {payload} there"
    msg = reparsed(ack(Category.DISCLOSURE, language, bilingual=language == Language.VI,
                       **{field: value}))
    assert set(msg.keys()) == EXPECTED_HEADERS and len(msg.keys()) == len(EXPECTED_HEADERS)
    for name, header in msg.items():
        assert not BIDI.search(str(header)), name
        assert "\n" not in str(header).replace("\r\n ", "").replace("\n ", "")
    text, html = parts(msg)
    for body in (text, html, str(msg["Subject"])):
        assert "49" not in body
        assert not BIDI.search(body)
    assert "<script>" not in raw_html(msg)
    if "{" in payload and field == "subject":  # a name with markup is not repeated at all
        assert payload.strip("\u2066\u2069") in text  # shown as data, never evaluated
    if "<script>" in payload and field == "subject":
        assert "&lt;script&gt;" in raw_html(msg)


@pytest.mark.parametrize(("text", "expected"), [
    ("WRONG", True), ("  sai  ", True), ("Sai.", True), ("wrong!\nI want deletion", True),
    ("This is wrong", False), ("> WRONG", False), ("", False), ("SAI rồi", False)])
def test_is_wrong_reply(text, expected):
    assert compose.is_wrong_reply(text) is expected


def test_clean_line_strips_controls_and_bidi():
    assert compose.clean_line("a\r\nb\x00c\u202ed\u2028e\u2067f") == "a b cd ef"


# Internationalised addresses (ngườidùng@ví.vn) are usable: tests/test_smtp_faults.py.
@pytest.mark.parametrize("address", ["", "a b@c.jp", "người dùng@ví.vn", "a@ví",
                                     "a@b.jp\r\nBcc: evil@x", "no-at-sign"])
def test_unusable_recipient_is_a_value_error(address):
    with pytest.raises(ValueError):
        compose.build_mail(
            from_name="Cijidas", from_addr="contact@cijidas.jp", to=address, subject="s",
            text="t", html=None, message_id="<a@cijidas.jp>", date=NOW, in_reply_to=None,
            references=[], languages=[Language.EN], auto_submitted="auto-replied")


@pytest.mark.parametrize("category, english, vietnamese", [
    (Category.COMPLAINT, SETTINGS.bot.complaints_owner, SETTINGS.bot.complaints_owner_vi),
    (Category.DISCLOSURE, SETTINGS.disclosure.payment_instructions,
     SETTINGS.disclosure.payment_instructions_vi),
])
def test_configured_texts_appear_in_the_customers_language(category, english, vietnamese):
    vi_text, _ = parts(ack(category, Language.VI))
    en_text, _ = parts(ack(category, Language.EN))
    assert vietnamese in vi_text and english not in vi_text
    assert english in en_text and vietnamese not in en_text


def test_plain_addresses_take_the_short_way_to_the_same_header(monkeypatch):
    """compose._PLAIN_ADDRESS skips the RFC 5322 parser for dot-atom addresses: the header
    written must be what the parser's Address gives."""
    import random
    import re

    from bot.mail import compose

    rng = random.Random(3)
    atoms = ["a", "b.c", "x+tag", "o'neil", "A_B", "1", "-", "é", "a..b", ".a", "a b", "\"q\""]
    domains = ["example.org", "mail.example.co.jp", "ex-ample.vn", "localhost", "b..c", "-x.y"]
    names = ["", "Nguyễn Văn A", "Smith, John", "O'Neil", "a\"b", "=?utf-8?q?x?=", "(c)"]
    cases = {(f"{rng.choice(atoms)}@{rng.choice(domains)}", rng.choice(names))
             for _ in range(600)}
    short = {}
    for addr, name in cases:
        try:
            short[addr, name] = compose._formatted.__wrapped__(addr, name)
        except ValueError:
            short[addr, name] = ValueError
    monkeypatch.setattr(compose, "_PLAIN_ADDRESS", re.compile(r"(?!)"))  # parser only
    for (addr, name), expected in short.items():
        try:
            got = compose._formatted.__wrapped__(addr, name)
        except ValueError:
            got = ValueError
        assert got == expected, (addr, name)
    written = [v for v in short.values() if v is not ValueError]
    assert len(written) > 100 and len(written) < len(short)  # both kinds were tried


def _reference_wrap(line: str, width: int, indent: str) -> list[str]:
    """Word by word, the plain definition of the greedy wrap render.wrap_words does."""
    out: list[str] = []
    current = ""
    for word in [w for w in line.split(" ") if w]:
        candidate = f"{current} {word}" if current else (indent if out else "") + word
        if current and len(candidate) > width:
            out.append(current)
            current = indent + word
        else:
            current = candidate
    return [*out, current] if current else out


def test_wrap_words_is_the_greedy_wrap_on_plain_spaces():
    import random

    from bot.mail.render import wrap_words

    rng = random.Random(7)
    for _ in range(20_000):
        words = [rng.choice(["x" * rng.randint(0, 30), "5\u00a0December\u00a02026", "đ" * 3])
                 for _ in range(rng.randint(0, 30))]
        line = "".join(w + " " * rng.randint(1, 3) for w in words)
        line = " " * rng.randint(0, 2) + (line if rng.random() < 0.5 else line.rstrip())
        width, indent = rng.randint(1, 80), rng.choice(["", "  ", "    "])
        assert wrap_words(line, width, indent) == _reference_wrap(line, width, indent)


# -- compiled templates kept between runs ---------------------------------------------------

HOSTILE_NAME = '<b onclick="x">Ann</b> & co'


def _fresh_render(cache_dir: Path | None) -> tuple[str, str]:
    """A first render in a new process: no environment in memory, maybe a cache on disk."""
    from bot.mail import render

    render._environments.cache_clear()
    return render.render(SETTINGS.templates_path, "ack_question", Language.EN,
                         {**compose._base_context(SETTINGS), "ref": REF,
                          "customer_name": HOSTILE_NAME, "customer_email": "a@example.org",
                          "original_subject": HOSTILE_NAME, "received_at": RECEIVED,
                          "due_at": DUE, "verification": False, "incident": None,
                          "agent": None, "opt_out": False},
                         cache_dir=cache_dir)


def test_compiled_templates_render_the_same_and_keep_text_and_html_apart(tmp_path):
    """jinja2 keys its cache by template, not by environment: a text template loaded as the
    HTML one would drop the escaping. Each kind has its own files, owner-only."""
    cache = tmp_path / "state" / "cache" / "templates"
    (tmp_path / "state").mkdir(mode=0o700)
    expected = _fresh_render(None)
    assert _fresh_render(cache) == expected            # compiles, then writes the cache
    kinds = sorted({p.name.split("-", 1)[0] for p in cache.iterdir()})
    assert kinds == ["html", "text"]
    assert {oct(d.stat().st_mode & 0o777) for d in (cache, cache.parent)} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in cache.iterdir()} == {"0o600"}
    text, html = _fresh_render(cache)                  # from the cache only
    assert (text, html) == expected
    assert HOSTILE_NAME in text and "&lt;b onclick=" in html and "<b onclick" not in html


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "folder-is-a-file"])
def test_a_damaged_or_unwritable_cache_is_skipped(tmp_path, damage):
    cache = tmp_path / "cache" / "templates"
    expected = _fresh_render(None)
    _fresh_render(cache)
    for entry in cache.iterdir():
        data = entry.read_bytes()
        entry.write_bytes({"garbage": b"\x00not marshal" * 9, "truncated": data[:len(data) // 2],
                           "empty": b"", "folder-is-a-file": data}[damage])
    if damage == "folder-is-a-file":
        for entry in cache.iterdir():
            entry.unlink()
        cache.rmdir()
        cache.write_text("not a folder")
    assert _fresh_render(cache) == expected
    assert _fresh_render(cache) == expected
