"""Every customer template, rendered in both languages with every branch we know of: the
Vietnamese has diacritics on every sentence and no English words left in it; dates are
also given in Vietnam time; fees are written the Vietnamese way (issue 13, item 7).

Templates that exist only in English (staff mail) are internal and not checked here. A
variable this test does not know (a template added later) gets a neutral Vietnamese value,
so a new template is still rendered and checked."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import jinja2
import pytest

from bot.config import DEFAULT_TEMPLATES_DIR, settings_from_dict
from bot.mail import compose
from bot.mail.wording import agent_facts, fee_text, incident_facts, opt_out_facts
from bot.models import Language

SETTINGS = settings_from_dict(
    {"bot": {"address": "contact@cijidas.jp"}, "mailbox": {"host": "x", "username": "u"},
     "smtp": {"host": "y"}}, Path("/nonexistent/config.toml"), {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
TZ = SETTINGS.tz
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
# Customer mail names: the same file in en/ and vi/. The frames (layout, ack) and the parts
# they include are rendered inside the mails that use them.
PARTS = {"layout", "ack", "agent", "incident", "opt_out", "verification"}
NAMES = sorted({p.stem for p in (DEFAULT_TEMPLATES_DIR / "vi").glob("*.j2")}
               & {p.stem for p in (DEFAULT_TEMPLATES_DIR / "en").glob("*.j2")} - PARTS)
# English words that must never be left in a Vietnamese mail (URLs and addresses removed).
ENGLISH = frozenset({
    "the", "and", "your", "you", "please", "request", "reference", "thank", "thanks",
    "dear", "we", "will", "with", "within", "code", "information", "data", "identity",
    "delete", "deleted", "deletion", "privacy", "policy", "regards", "reply", "customer",
    "our", "for", "of", "is", "are", "not", "by", "at", "if", "or", "from", "this", "that",
    "have", "has", "been", "was", "were", "can", "may", "must", "send", "sent", "receive",
    "marketing", "stop", "stops", "consent", "withdraw", "proof", "authority", "lawyer",
    "parent", "guardian", "heir", "spouse", "representative", "manager", "protection",
    "personal", "payment", "instructions", "fee", "jpy", "yen", "correction", "disclosure",
    "complaint", "question", "incident", "attempt", "attempts", "left", "confirm",
    "confirmed", "verify", "verification", "days", "hours", "date", "time", "kind",
    "sincerely",
})
_LINK = re.compile(r"(https?://\S+|mailto:\S+|[\w.+-]+@[\w.-]+)")
_VI_LETTERS = re.compile("[àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụư"
                         "ừứửữựỳýỷỹỵ]", re.IGNORECASE)


def _variants() -> list[dict]:
    """Contexts that between them take every branch of the customer templates."""
    base = {
        "received_at": NOW, "due_at": NOW + timedelta(days=10), "verification": None,
        "category": "deletion", "tries_left": 3, "expired": False, "closed": True,
        "code_expires_at": NOW + timedelta(days=7), "verification_code": None, "max_mb": 25,
        "stop_use": False, "new_due_at": NOW + timedelta(days=40),
    }
    code = {"code": "48151623", "expires_at": (NOW + timedelta(days=7)).astimezone(TZ),
            "max_attempts": 5}
    variants = [dict(base, category=c, verification=code)
                for c in ("disclosure", "correction", "deletion")]
    variants += [dict(base, category=c) for c in ("question", "complaint", None)]
    variants += [dict(base, agent=agent_facts(r))
                 for r in ("parent", "guardian", "spouse", "heir", "representative")]
    variants += [dict(base, incident=incident_facts(NOW + timedelta(hours=72), 72, TZ),
                      category="complaint"),
                 dict(base, opt_out=opt_out_facts(NOW + timedelta(days=3), 3, TZ, pure=False),
                      verification=code),
                 dict(base, tries_left=None, expired=True, closed=False, stop_use=True,
                      verification_code="48151623")]
    return variants


VARIANTS = _variants()


@cache
def rendered(name: str, language: Language, variant: int) -> tuple[str, str]:
    """:func:`render` of ``VARIANTS[variant]``, once per test session."""
    return render(name, language, VARIANTS[variant])


def each(name: str, language: Language) -> list[tuple[str, str]]:
    return [rendered(name, language, i) for i in range(len(VARIANTS))]


def render(name: str, language: Language, context: dict) -> tuple[str, str]:
    """(text, html-as-text) of one customer mail; unknown variables get a neutral value.
    ("", "") when the mail needs a fact this context does not have (e.g. ack_opt_out
    without an opt-out): that variant does not apply to it."""
    context = dict(context)
    for _ in range(20):
        try:
            message = compose.customer_mail(
                SETTINGS, compose.CustomerThread("CJD-000001", language, "an@example.vn",
                                                 "Nguyễn Văn An", "Yêu cầu xóa dữ liệu"),
                name, context, message_id="<t@cijidas.jp>", date=NOW)
            break
        except jinja2.UndefinedError as exc:
            if "'None' has no attribute" in str(exc):
                return "", ""
            missing = re.search(r"'(\w+)' is undefined", str(exc))
            assert missing, f"{language.value}/{name}: {exc}"
            context[missing.group(1)] = _neutral(missing.group(1))
    else:
        pytest.fail(f"{language.value}/{name}: too many unknown variables")
    parts = {part.get_content_type(): part.get_payload(decode=True).decode("utf-8")
             for part in message.walk() if not part.is_multipart()}
    return parts["text/plain"], re.sub(r"<[^>]+>", " ", parts["text/html"])


def _neutral(name: str) -> object:
    if name.endswith(("_at", "_by", "date", "until")):
        return NOW + timedelta(days=5)
    if any(part in name for part in ("days", "count", "hours", "left", "level", "amount")):
        return 2
    return "Nội dung do nhân viên viết bằng tiếng Việt."


def sentences(text: str) -> list[str]:
    """Lines with at least three words once links, addresses, refs and codes are gone."""
    found = []
    for line in text.splitlines():
        line = _LINK.sub(" ", line)
        line = re.sub(r"\[?CJD-\d+\]?|\d[\d\s./:,-]*", " ", line)
        if len(re.findall(r"[^\W\d_]+", line)) >= 3:
            found.append(line.strip())
    return found


def english_words(text: str) -> set[str]:
    plain = unicodedata.normalize("NFC", _LINK.sub(" ", text)).lower()
    return {w for w in re.findall(r"[^\W\d_]+", plain) if w in ENGLISH}


@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders_in_both_languages(name):
    for language in Language:
        parts = each(name, language)
        assert sum(1 for text, html in parts if text.strip() and html.strip()) >= 1
        assert all(bool(text) == bool(html) for text, html in parts)


@pytest.mark.parametrize("name", sorted(PARTS - {"layout", "ack"}))
def test_every_part_is_used_in_both_languages(name):
    for language in Language.VI, Language.EN:
        users = [p.stem for p in (DEFAULT_TEMPLATES_DIR / language.value).glob("*.j2")
                 if f'"{language.value}/{name}.j2"' in p.read_text(encoding="utf-8")]
        assert users, f"{language.value}/{name}.j2 is included nowhere"


@pytest.mark.parametrize("name", NAMES)
def test_vietnamese_has_diacritics_and_no_english(name):
    for both in each(name, Language.VI):
        for part in both:
            for sentence in sentences(part):
                if sentence == "Cijidas LLC":
                    continue
                assert _VI_LETTERS.search(sentence), f"vi/{name}: no diacritics: {sentence!r}"
            left = english_words(part)
            assert not left, f"vi/{name}: English words {sorted(left)} in {part[:300]!r}"


def test_the_stop_list_catches_english():
    text, _ = render("ack_deletion", Language.EN, VARIANTS[2])
    assert {"your", "delete", "please"} <= english_words(text)


def test_vietnamese_dates_are_also_given_in_vietnam_time():
    text, _ = render("ack_question", Language.VI, VARIANTS[3])
    assert "12:00 ngày 24/11/2026 (giờ Nhật Bản), tức 10:00 giờ Việt Nam" in " ".join(
        text.split())


@pytest.mark.parametrize(("amount", "language", "expected"), [
    (1000, Language.EN, "1,000 JPY"),
    (1000, Language.VI, "1.000 yên"),
    (1234567, Language.VI, "1.234.567 yên"),
    (500, Language.EN, "500 JPY"),
])
def test_fee_text(amount, language, expected):
    assert fee_text(amount, language) == expected


def test_the_fee_is_written_per_language():
    context = VARIANTS[0]
    assert "1,000 JPY" in " ".join(render("ack_disclosure", Language.EN, context)[0].split())
    assert "1.000 yên" in " ".join(render("ack_disclosure", Language.VI, context)[0].split())


@pytest.mark.parametrize(("wrong", "right"), [
    ("lưu chung một hồ sơ", "lưu trong cùng một hồ sơ"),
    ("giá trị đúng", "thông tin chính xác"),
    ("Chúng tôi sẽ làm gì", "Cách chúng tôi xử lý"),
    ("Những gì có thể được giữ lại", "Thông tin có thể được tiếp tục lưu giữ"),
    ("Nếu được", "Nếu có thể"),
    ("trích dẫn lại", "chỉ xuất hiện trong phần trích dẫn thư này sẽ không được chấp nhận"),
    ("Mã số yêu cầu", "Mã yêu cầu"),
    ("mã số", "rút lại sự đồng ý"),
])
def test_the_vietnamese_corrections_are_applied_everywhere(wrong, right):
    texts = [" ".join(rendered(name, Language.VI, i)[0].split())
             for name in NAMES for i in range(len(VARIANTS))]
    assert not any(wrong in t for t in texts)
    assert any(right in t for t in texts)


def test_the_correction_ack_never_offers_the_corrected_field_as_proof():
    text = " ".join(render("ack_correction", Language.EN, VARIANTS[1])[0].split())
    assert "registered name" not in text and "phone number on your account" not in text
    assert "not the one you want corrected" in text
    assert "the correct value" not in text              # nor re-asks what was written


def test_the_disclosure_ack_names_third_party_records_and_the_method():
    en = " ".join(render("ack_disclosure", Language.EN, VARIANTS[0])[0].split())
    vi = " ".join(render("ack_disclosure", Language.VI, VARIANTS[0])[0].split())
    assert "providing your information to third parties" in en and "by post" in en
    assert "cho bên thứ ba" in vi and "bưu điện" in vi


def test_the_complaint_ack_promises_an_answer_or_a_date():
    en = " ".join(render("ack_complaint", Language.EN, VARIANTS[4])[0].split())
    assert "with our answer or the date by which we will answer" in en
