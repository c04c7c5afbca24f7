"""Charset supersets and detection (bot.mail.charsets), addresses (bot.mail.addresses):
raw bytes in, text out, table-driven."""

from __future__ import annotations

import base64
import time
import unicodedata
from urllib.parse import quote

import pytest

from bot.mail.addresses import first_address
from bot.mail.charsets import decode_text, decode_undeclared
from bot.mail.parse import parse_message


@pytest.mark.parametrize(("data", "declared", "expected"), [
    ("我们的数据：喆".encode("gbk"), "gb2312", "我们的数据：喆"),  # GB2312 declared, GBK used
    ("髙橋①".encode("cp932"), "shift_jis", "髙橋①"),
    (b"\x1b$B-!%F%9%H\x1b(B", "iso-2022-jp", "①テスト"),  # NEC extension in ISO-2022-JP
    ("똠방각하".encode("cp949"), "euc-kr", "똠방각하"),
    ("price € 5".encode("cp1252"), "iso-8859-1", "price € 5"),
    ("Здравствуйте, я хочу удалить мои персональные данные".encode("koi8-r"), None,
     "Здравствуйте, я хочу удалить мои персональные данные"),  # undeclared 8-bit: detected
    (b"plain ascii", "x-bogus", "plain ascii"),
])
def test_decode_text(data, declared, expected):
    assert decode_text(data, declared) == expected


@pytest.mark.parametrize("data", [b"\x81\x8d\x8f", "お問い合わせ".encode("shift_jis")])
def test_undeclared_bytes_never_become_replacement_characters(data):
    assert "\ufffd" not in decode_undeclared(data)


@pytest.mark.parametrize(("header", "addr", "name"), [
    (b"alice@example.com <bob@example.com>", "bob@example.com", "alice@example.com"),
    (b"=?iso-8859-1?Q?B=FCrling,=20Andreas?= <smith@example.com>", "smith@example.com",
     "B\u00fcrling, Andreas"),
    (b'"Doe, John" <J@Example.com>', "j@example.com", "Doe, John"),
    (b"bare@example.com (Bare Name)", "bare@example.com", "Bare Name"),
    ("山田 <yamada@example.jp>".encode(), "yamada@example.jp", "山田"),
    (b"Postmaster <>", "", ""),
    # Names decode like subjects and bodies: a label's superset (GBK for gb2312) is used.
    (b"=?gb2312?b?1uzpRrv5?= <zhu@example.cn>", "zhu@example.cn", "\u6731\u9555\u57fa"),
    (b"=?windows-1258?q?Nguy=EA=DEn?= <n@example.vn>", "n@example.vn", "Nguy\u1ec5n"),
    (b"just some text", "", ""),
])
def test_from_header(header, addr, name):
    raw = b"From: " + header + b"\r\nTo: contact@cijidas.jp\r\nSubject: x\r\n\r\nhello\r\n"
    mail = parse_message(raw)
    assert (mail.from_addr, mail.from_name) == (addr, name)
    assert first_address([header.decode("utf-8", "surrogateescape")])[0] == addr


# --- whole mails through parse_message (issue 16, item 4) -------------------------------------

VI_NFC = "Tôi muốn xóa dữ liệu cá nhân"


def _cp1258(text: str) -> bytes:
    """Vietnamese as windows-1258 writes it: base letters plus combining tone marks."""
    out = b""
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            nfd = unicodedata.normalize("NFD", ch)
            tone = next(c for c in nfd if c in "\u0300\u0301\u0303\u0309\u0323")
            base = unicodedata.normalize("NFC", nfd.replace(tone, ""))
            out += base.encode("cp1258") + tone.encode("cp1258")
    return out


def _b64_word(text: str, charset: str, codec: str) -> bytes:
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec)).decode()}?=".encode()


def _mail(subject: bytes, ctype: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"From: Kh\xc3\xa1ch <customer@example.com>\r\nTo: contact@cijidas.jp\r\n"
            b"Subject: " + subject + b"\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype
            + b"\r\n" + extra + b"\r\n" + body + b"\r\n")


@pytest.mark.parametrize(("raw", "subject", "body"), [
    pytest.param(_mail(_b64_word("喆的数据", "gb2312", "gbk"), b"text/plain; charset=gb2312",
                       "请删除我们的数据：喆".encode("gbk")),
                 "喆的数据", "请删除我们的数据：喆", id="gb2312-declared-gbk-bytes"),
    pytest.param(_mail("お問い合わせ：個人情報の削除".encode("shift_jis"),
                       b"text/plain; charset=utf-8", "本文です".encode()),
                 "お問い合わせ：個人情報の削除", "本文です", id="raw-8bit-shift-jis-subject"),
    pytest.param(_mail(b"=?ISO-2022-JP?B?" + base64.b64encode(b"\x1b$B-!%F%9%H\x1b(B") + b"?=",
                       b"text/plain; charset=iso-2022-jp",
                       b"\x1b$B-!-\"$N3NG'\x1b(B"),
                 "①テスト", "①②の確認", id="iso-2022-jp-nec-extensions"),
    pytest.param(_mail(b"=?ISO-2022-JP?B?" + base64.b64encode(b"\x1b$B-!%F%9%H\x1b(B") + b"?=",
                       b"text/plain; charset=utf-8", b"x", b"X-Note: \x1b$B-!\x1b(B\r\n"),
                 "①テスト", "x", id="iso-2022-jp-encoded-word"),
    pytest.param(_mail(b"Data request", b"text/plain",
                       ("Здравствуйте! Я хочу удалить мои персональные данные из вашей базы. "
                        "Прошу подтвердить удаление.").encode("koi8-r")),
                 "Data request", "Здравствуйте! Я хочу удалить мои персональные данные из вашей "
                 "базы. Прошу подтвердить удаление.", id="koi8-r-body-undeclared"),
    pytest.param(_mail(b"=?windows-1258?B?" + base64.b64encode(_cp1258(VI_NFC)) + b"?=",
                       b"text/plain; charset=windows-1258", _cp1258(VI_NFC)),
                 VI_NFC, VI_NFC, id="windows-1258-nfc"),
])
def test_whole_mail_charsets(raw, subject, body):
    mail = parse_message(raw)
    assert mail.subject == subject
    assert mail.body_text == body
    assert "\ufffd" not in mail.subject + mail.body_text
    assert all("\ufffd" not in value for _, value in mail.headers)


def test_raw_8bit_header_is_listed_decoded():
    header = "X-Kunde: 山田太郎様のお問い合わせ\r\n".encode("shift_jis")
    raw = _mail(b"x", b"text/plain", b"x", header)
    assert ("x-kunde", "山田太郎様のお問い合わせ") in parse_message(raw).headers


@pytest.mark.parametrize(("disposition", "expected"), [
    ('attachment; filename="報告書 2024.pdf"'.encode(), "報告書 2024.pdf"),  # raw UTF-8
    ('attachment; filename="見積書_2024年.xlsx"'.encode("shift_jis"), "見積書_2024年.xlsx"),
    (b"attachment; filename*=gb2312''" + quote("喆.pdf".encode("gbk")).encode(), "喆.pdf"),
    (b'attachment; filename="' + _b64_word("見積書.pdf", "shift_jis", "cp932") + b'"',
     "見積書.pdf"),
])
def test_attachment_filenames_from_raw_bytes(disposition, expected):
    raw = (b"From: a@example.com\r\nTo: contact@cijidas.jp\r\nSubject: files\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
           + disposition + b"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    mail = parse_message(raw)
    assert [a.filename for a in mail.attachments] == [expected]
    assert mail.body_text == "see attached"


def test_detection_is_bounded_per_part():
    """Thousands of undeclared 8-bit headers: detection runs a bounded number of times."""
    header = "X-Spam: Отчёт о работе за март и апрель\r\n".encode("koi8-r")
    raw = _mail(b"x", b"text/plain", b"x", header * 400)
    started = time.perf_counter()
    mail = parse_message(raw)
    assert time.perf_counter() - started < 2.0
    assert len(mail.headers) > 400
