"""Reply extraction: the customer's new text across mail clients and languages.

The tables are our own mails, written the way each client and language writes them (not
copied from any other project). The last test runs the fixture set taken from talon's and
email_reply_parser's suites (tests/fixtures/replies/) and holds the match rate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.mail import quotes
from bot.mail.parse import parse_message, split_new_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import reply_extraction  # noqa: E402

NEW = "Please delete my personal data."
OLD = "> Thank you for contacting Cijidas.\n> Your reference is #A-1042."
ADDR = "Cijidas Support <contact@cijidas.jp>"


def reply(attribution: str, new: str = NEW, old: str = OLD) -> str:
    return f"{new}\n\n{attribution}\n{old}\n"


# --- attribution lines, one or more per language ------------------------------------------

ATTRIBUTIONS = [
    ("en-gmail", f"On Mon, Nov 3, 2025 at 10:00 AM {ADDR} wrote:"),
    ("en-apple", f"On 3 Nov 2025, at 10:00, {ADDR} wrote:"),
    ("en-thunderbird", "On 03/11/2025 10:00, Cijidas Support wrote:"),
    ("en-outlook-mac", 'On 11/3/25, 10:00 AM, "Cijidas Support" <contact@cijidas.jp> wrote:'),
    ("vi-gmail", f"Vào Th 2, 3 thg 11, 2025 vào lúc 10:00 {ADDR} đã viết:"),
    ("vi-no-diacritics", f"Vao Th 2, 3 thg 11, 2025 vao luc 10:00 {ADDR} da viet:"),
    ("ja-gmail", f"2025年11月3日(月) 10:00 {ADDR}:"),
    ("ja-verb", f"2025/11/03 10:00、{ADDR} は書きました:"),
    ("zh-cn-gmail", f"{ADDR} 于2025年11月3日周一 10:00写道："),
    ("zh-tw-gmail", f"{ADDR} 於 2025年11月3日 週一 上午10:00寫道："),
    ("ko-gmail", f"2025년 11월 3일 (월) 오전 10:00, {ADDR}님이 작성:"),
    ("de-gmail", f"Am Mo., 3. Nov. 2025 um 10:00 Uhr schrieb {ADDR}:"),
    ("de-apple", f"Am 03.11.2025 um 10:00 schrieb {ADDR}:"),
    ("fr-gmail", f"Le lun. 3 nov. 2025 à 10:00, {ADDR} a écrit :"),
    ("es-gmail", "El lun, 3 nov 2025 a las 10:00, Cijidas Support (<contact@cijidas.jp>) "
                 "escribió:"),
    ("pt-gmail", f"Em seg., 3 de nov. de 2025 às 10:00, {ADDR} escreveu:"),
    ("it-gmail", f"Il giorno lun 3 nov 2025 alle ore 10:00 {ADDR} ha scritto:"),
    ("nl-gmail", f"Op ma 3 nov 2025 om 10:00 schreef {ADDR}:"),
    ("nl-apple", f"Op 3 nov. 2025, om 10:00 heeft {ADDR} het volgende geschreven:"),
    ("pl-gmail", f"pon., 3 lis 2025 o 10:00 {ADDR} napisał(a):"),
    ("pl-thunderbird", f"W dniu 3.11.2025 o 10:00, {ADDR} napisał:"),
    ("ru-gmail-no-verb", f"пн, 3 нояб. 2025 г. в 10:00, {ADDR}:"),
    ("ru-verb", "03.11.2025 10:00, Cijidas Support пишет:"),
    ("ru-wrote", f"3 ноября 2025 г., в 10:00, {ADDR} написал:"),
    ("uk-gmail", f"пн, 3 лист. 2025 р. о 10:00 {ADDR} пише:"),
    ("cs-thunderbird", f"Dne 03. 11. 2025 v 10:00 {ADDR} napsal(a):"),
    ("tr-gmail", f"{ADDR}, 3 Kas 2025 Pzt, 10:00 tarihinde şunu yazdı:"),
    ("sv-gmail", f"Den mån 3 nov. 2025 kl 10:00 skrev {ADDR}:"),
    ("da-gmail", f"Den man. 3. nov. 2025 kl. 10.00 skrev {ADDR}:"),
    ("no-gmail", f"man. 3. nov. 2025 kl. 10:00 skrev {ADDR}:"),
    ("fi-gmail", "Cijidas Support (contact@cijidas.jp) kirjoitti ma 3.11.2025 klo 10.00:"),
    ("android-framed", "---- Cijidas Support wrote ----"),
    ("yandex", '03.11.2025, 10:00, "Cijidas Support" <contact@cijidas.jp>:'),
    ("mail-ru", f"Понедельник, 3 ноября 2025, 10:00 +09:00 от {ADDR}:"),
    ("iso-date", f"2025-11-03 10:00 GMT+09:00 {ADDR}:"),
]


@pytest.mark.parametrize("attribution", [a for _, a in ATTRIBUTIONS],
                         ids=[i for i, _ in ATTRIBUTIONS])
def test_attribution_ends_the_new_text(attribution: str) -> None:
    assert split_new_text(reply(attribution)) == NEW


@pytest.mark.parametrize("attribution", [a for _, a in ATTRIBUTIONS],
                         ids=[i for i, _ in ATTRIBUTIONS])
def test_unquoted_history_below_an_attribution_is_cut(attribution: str) -> None:
    text = f"{NEW}\n\n{attribution}\n\nThank you for contacting Cijidas.\nRegards"
    assert split_new_text(text) == NEW


WRAPPED = [
    ("two-lines", "On Mon, Nov 3, 2025 at 10:00 AM Cijidas Support <\ncontact@cijidas.jp> "
                  "wrote:"),
    ("three-lines", "On Mon, Nov 3, 2025 at 10:00 AM Cijidas Support\n<contact@cijidas.jp>\n"
                    "wrote:"),
    ("no-space-before-wrote", "On Mon, Nov 3, 2025 at 10:00 AM, Cijidas Support\n"
                              "<contact@cijidas.jp>wrote:"),
    ("no-space-one-line", "On Mon, Nov 3, 2025 at 10:00 AM Cijidas <contact@cijidas.jp>wrote:"),
    ("de-wrapped", "Am 03.11.2025 um 10:00 schrieb Cijidas Support\n<contact@cijidas.jp>:"),
    ("fr-wrapped", "Le lun. 3 nov. 2025 à 10:00, Cijidas Support <contact@cijidas.jp>\na écrit :"),
    ("iso-wrapped", "2025-11-03 10:00 GMT+09:00 Cijidas Support <\ncontact@cijidas.jp>:"),
]


@pytest.mark.parametrize("attribution", [a for _, a in WRAPPED], ids=[i for i, _ in WRAPPED])
def test_wrapped_attribution(attribution: str) -> None:
    assert split_new_text(reply(attribution)) == NEW


def test_attribution_glued_to_the_reply() -> None:
    text = f"{NEW} On Mon, Nov 3, 2025 at 10:00 AM {ADDR} wrote:\n{OLD}"
    assert split_new_text(text) == NEW
    text = f"{NEW}--- On Mon, Nov 3, 2025 at 10:00 AM {ADDR} wrote:\n{OLD}"
    assert split_new_text(text) == NEW


def test_a_name_inside_an_attribution_is_not_taken_for_its_start() -> None:
    text = reply("On Mon, Nov 3, 2025 at 10:00 AM Anne Le Gall <anne@example.fr> wrote:")
    assert split_new_text(text) == NEW


# --- header blocks (Outlook and others), plain and bold ------------------------------------

HEADERS = {
    "en": ("From", "Sent", "To", "Subject", "Monday, November 3, 2025 10:00 AM"),
    "de": ("Von", "Gesendet", "An", "Betreff", "Montag, 3. November 2025 10:00"),
    "fr": ("De ", "Envoyé ", "À ", "Objet ", "lundi 3 novembre 2025 10:00"),
    "es": ("De", "Enviado el", "Para", "Asunto", "lunes, 3 de noviembre de 2025 10:00"),
    "pt": ("De", "Enviado", "Para", "Assunto", "segunda-feira, 3 de novembro de 2025 10:00"),
    "it": ("Da", "Inviato", "A", "Oggetto", "lunedì 3 novembre 2025 10:00"),
    "nl": ("Van", "Verzonden", "Aan", "Onderwerp", "maandag 3 november 2025 10:00"),
    "pl": ("Od", "Wysłano", "Do", "Temat", "poniedziałek, 3 listopada 2025 10:00"),
    "ru": ("От", "Отправлено", "Кому", "Тема", "3 ноября 2025 г. 10:00"),
    "sv": ("Från", "Skickat", "Till", "Ämne", "den 3 november 2025 10:00"),
    "da": ("Fra", "Sendt", "Til", "Emne", "3. november 2025 10:00"),
    "no": ("Fra", "Sendt", "Til", "Emne", "mandag 3. november 2025 10:00"),
    "fi": ("Lähettäjä", "Lähetetty", "Vastaanottaja", "Aihe", "maanantai 3. marraskuuta 2025"),
    "vi": ("Từ", "Đã gửi", "Đến", "Chủ đề", "Thứ Hai, ngày 3 tháng 11 năm 2025 10:00"),
    "ja": ("差出人", "送信日時", "宛先", "件名", "2025年11月3日 10:00"),
    "zh-cn": ("发件人", "发送时间", "收件人", "主题", "2025年11月3日 10:00"),
    "zh-tw": ("寄件者", "寄件日期", "收件者", "主旨", "2025年11月3日 上午 10:00"),
    "ko": ("보낸 사람", "보낸 날짜", "받는 사람", "제목", "2025년 11월 3일 월요일 오전 10:00"),
    "uk": ("Від", "Надіслано", "Кому", "Тема", "3 листопада 2025 р. 10:00"),
    "cs": ("Od", "Odesláno", "Komu", "Předmět", "pondělí 3. listopadu 2025 10:00"),
    "tr": ("Kimden", "Gönderildi", "Kime", "Konu", "3 Kasım 2025 Pazartesi 10:00"),
}


def header_block(keys: tuple[str, ...], bold: bool) -> str:
    sender, sent, to, subject, date = keys
    mark = "*" if bold else ""
    values = (ADDR, date, "Nguyen Van A <a@example.vn>", "RE: request #A-1042")
    pairs = zip((sender, sent, to, subject), values, strict=True)
    return "\n".join(f"{mark}{key}:{mark} {value}" for key, value in pairs)


@pytest.mark.parametrize("bold", [False, True], ids=["plain", "bold"])
@pytest.mark.parametrize("language", list(HEADERS))
def test_header_block_ends_the_new_text(language: str, bold: bool) -> None:
    text = f"{NEW}\n\n{header_block(HEADERS[language], bold)}\n\nThank you for contacting us."
    assert split_new_text(text) == NEW


@pytest.mark.parametrize("rule", ["_" * 32, "-" * 30, " " + "-" * 30])
def test_line_drawn_above_a_header_block_goes_with_it(rule: str) -> None:
    text = f"{NEW}\n{rule}\n\n{header_block(HEADERS['en'], True)}\n\nOld text"
    assert split_new_text(text) == NEW


def test_bold_header_wrapped_over_two_lines() -> None:
    text = (f"{NEW}\n\n  *From:* contact@cijidas.jp [mailto:\n  contact@cijidas.jp]\n"
            "  *Sent:* Monday, November 3, 2025 10:00 AM\n  *To:* a@example.vn\n\nOld")
    assert split_new_text(text) == NEW


def test_header_fields_on_one_line() -> None:  # how some HTML renders a bold header block
    text = f"{NEW}\n\nFrom: contact@cijidas.jp Date: Mon, 3 Nov 2025 10:00:00 +0900\n\nOld"
    assert split_new_text(text) == NEW


SEPARATORS = [
    "-----Original Message-----", "----- Original Message -----",
    "-----Ursprüngliche Nachricht-----", "-----Message d'origine-----",
    "-----Mensaje original-----", "-----Mensagem original-----",
    "-----Messaggio originale-----", "-----Oorspronkelijk bericht-----",
    "-----Wiadomość oryginalna-----", "-----Исходное сообщение-----",
    "-----Оригінальне повідомлення-----", "-----Původní zpráva-----",
    "-----Ursprungligt meddelande-----", "-----Oprindelig meddelelse-----",
    "-----Opprinnelig melding-----", "-----Alkuperäinen viesti-----",
    "-----Thư gốc-----", "-----元のメッセージ-----",
    "------------------ 原始邮件 ------------------",
    "-----원본 메시지-----", "---------- Forwarded message ---------",
    "---------- Weitergeleitete Nachricht ----------", "Begin forwarded message:",
]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_separator_ends_the_new_text(separator: str) -> None:
    text = f"{NEW}\n\n{separator}\nFrom: {ADDR}\nSubject: request\n\nOld text"
    assert split_new_text(text) == NEW


# --- text below and between quotes ---------------------------------------------------------

ATTR = f"On Mon, Nov 3, 2025 at 10:00 AM {ADDR} wrote:"
KEPT_AROUND_QUOTES = [
    ("bottom-posting", f"{ATTR}\n{OLD}\n\n{NEW}", NEW),
    ("top-and-bottom", f"Hello,\n\n{ATTR}\n{OLD}\n\n{NEW}", f"Hello,\n\n{NEW}"),
    ("interleaved",
     f"{ATTR}\n> Which data should we delete?\nMy purchase history.\n> Since when?\n"
     "Since 2023.\n> Anything else?\n", "My purchase history.\nSince 2023."),
    ("interleaved-with-blank-lines",
     f"{ATTR}\n\n> Which data?\n\nMy purchase history.\n\n> Since when?\n\nSince 2023.",
     "My purchase history.\n\nSince 2023."),
    ("thunderbird-below", "On 03/11/2025 10:00, Cijidas wrote:\n> Which data?\nAll of it.",
     "All of it."),
    ("unattributed-quote-above", f"{OLD}\n{NEW}", NEW),
    ("wrapped-link-in-quote",
     f"{NEW}\n\n{ATTR}\n> See (https://cijidas.jp/ticket?id=1042&\nkey=ab12)\n> Regards",
     NEW),
    ("link-line-in-quote", f"{NEW}\n\n{ATTR}\n> See the ticket\n (https://cijidas.jp/t/1) >\n"
                           "> Regards", NEW),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in KEPT_AROUND_QUOTES],
                         ids=[c[0] for c in KEPT_AROUND_QUOTES])
def test_text_below_or_between_quotes_is_kept(text: str, expected: str) -> None:
    assert split_new_text(text) == expected


# --- prose that looks like a quote, and is not --------------------------------------------

NOT_QUOTES = [
    "On Monday I wrote: the app is broken",
    "Hello,\nLast year, in 2024, I wrote:\n- my address\n- my phone number",
    "Hello,\nOn 3 Nov I sent:\n- my passport\n- my bill",
    "From: my old phone I sent a request.\nPlease check.",
    "Kính gửi Công ty,\nTừ: Nguyễn Văn A\nĐến: Phòng chăm sóc khách hàng\nTôi muốn xóa dữ liệu.",
    "Invitation:\nDate: Wednesday 3 November 2025\nTime: 10:00\nPlace: Hanoi office",
    "Please read this:\n>>> https://cijidas.jp/privacy <<<\nand tell me what you keep.",
    "I am fine. Am I right that you keep my data until 2026?",
    "Blah-blah\nOn blah-blah",
]


@pytest.mark.parametrize("text", NOT_QUOTES)
def test_prose_is_kept_whole(text: str) -> None:
    assert split_new_text(text) == text


# --- signatures and footers ----------------------------------------------------------------

SIGN_OFFS = [
    "Mit freundlichen Grüßen\nMax Mustermann", "Cordialement,\nJean Dupont",
    "Saludos cordiales,\nAna García", "Atenciosamente,\nJoão Silva",
    "Cordiali saluti\nMarco Rossi", "Met vriendelijke groet,\nJan de Vries",
    "Pozdrawiam\nAnna Kowalska", "С уважением,\nИван Петров",
    "Med vänliga hälsningar\nAnna Svensson", "Venlig hilsen\nJens Hansen",
    "Med vennlig hilsen\nOla Nordmann", "Ystävällisin terveisin\nMatti Virtanen",
    "よろしくお願いいたします。\n山田太郎", "此致\n王明", "감사합니다.\n김민수",
    "Trân trọng,\nNguyễn Văn A",
    "Von meinem iPhone gesendet", "Envoyé de mon iPhone", "Enviado desde mi iPhone",
    "iPhoneから送信", "发自我的iPhone", "iPhone에서 보냄",
    "-Nguyen Van A",
    "-Nguyen Van A\n\n_______________________________________________\nprivacy mailing list\n"
    "https://lists.example.org/privacy",
]


@pytest.mark.parametrize("signature", SIGN_OFFS)
def test_signature_is_cut(signature: str) -> None:
    assert split_new_text(f"{NEW}\n\n{signature}") == NEW


def test_dash_bullets_are_not_a_signature() -> None:
    text = "I want to receive:\n\n-my purchase history"
    assert split_new_text(text) == text


# --- HTML-only mail: the quote containers of each client -----------------------------------


def html_mail(html: str) -> bytes:
    return ("From: Nguyen Van A <a@example.vn>\r\nTo: contact@cijidas.jp\r\nSubject: Re: x\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html).encode("utf-8")


A = "Cijidas &lt;<a href='mailto:c@cijidas.jp'>c@cijidas.jp</a>&gt;"
HTML_REPLIES = [
    ("gmail_quote", f"<div dir='ltr'>{NEW}</div><br><div class='gmail_quote'>"
                    f"<div dir='ltr' class='gmail_attr'>On Mon, Nov 3, 2025 at 10:00 AM {A} "
                    "wrote:<br></div><blockquote class='gmail_quote'>Hello<br>Which data?"
                    "</blockquote></div>"),
    ("gmail_quote-de", f"<div dir='ltr'>{NEW}</div><div class='gmail_quote'><div "
                       f"class='gmail_attr'>Am Mo., 3. Nov. 2025 um 10:00 Uhr schrieb {A}:</div>"
                       "<blockquote class='gmail_quote'>Hallo<br>Welche Daten?</blockquote></div>"),
    ("gmail_signature", f"<div dir='ltr'>{NEW}<br clear='all'><br><span "
                        "class='gmail_signature_prefix'>-- </span><br><div dir='ltr' "
                        "class='gmail_signature'>Nguyen Van A<br>+84 90 000 0000</div></div>"),
    ("apple-blockquote-cite", f"<html><body><div>{NEW}</div><div><br><blockquote type='cite'>"
                              f"<div>On 3 Nov 2025, at 10:00, {A} wrote:</div><br><div>Which "
                              "data?</div></blockquote></div></body></html>"),
    ("outlook-divRplyFwdMsg", f"<div>{NEW}</div><hr style='display:inline-block;width:98%'>"
                              "<div id='divRplyFwdMsg' dir='ltr'><font><b>From:</b> "
                              f"{A}<br><b>Sent:</b> Monday, November 3, 2025 10:00 AM<br>"
                              "<b>To:</b> Nguyen Van A<br><b>Subject:</b> Re: request</font>"
                              "</div><div>Which data should we delete?</div>"),
    ("outlook-divRplyFwdMsg-ja", f"<div>{NEW}</div><hr><div id='divRplyFwdMsg'><b>差出人:</b> "
                                 f"{A}<br><b>送信日時:</b> 2025年11月3日 10:00<br><b>宛先:</b> "
                                 "Nguyen Van A<br><b>件名:</b> Re: 依頼</div><div>古い本文</div>"),
    ("thunderbird-moz-cite-prefix", f"<p>{NEW}</p><div class='moz-cite-prefix'>On 03/11/2025 "
                                    "10:00, Cijidas wrote:<br></div><blockquote type='cite' "
                                    "cite='mid:x@cijidas.jp'>Which data?<br>Since when?"
                                    "</blockquote>"),
    ("yandex", f"<div>{NEW}</div><div>&nbsp;</div><div>03.11.2025, 10:00, \"Cijidas\" "
               "&lt;c@cijidas.jp&gt;:</div><blockquote><div>Здравствуйте</div><div>Какие "
               "данные?</div></blockquote>"),
    ("mail-ru", f"<div>{NEW}</div><br><br>Понедельник, 3 ноября 2025, 10:00 +09:00 от {A}:<br>"
                "<blockquote style='border-left:1px solid #0857A6'><div>Здравствуйте</div>"
                "<div>Какие данные?</div></blockquote>"),
    ("windows-mail-ru", f"<div>{NEW}</div><div><b>От:</b> Cijidas<br><b>Отправлено:</b> "
                        "\u200eпонедельник\u200e, \u200e3\u200e \u200eноября\u200e \u200e2025"
                        "\u200e г. \u200e10\u200e:\u200e00<br><b>Кому:</b> Nguyen Van A</div>"
                        "<div>Здравствуйте</div>"),
]


@pytest.mark.parametrize("html", [h for _, h in HTML_REPLIES], ids=[i for i, _ in HTML_REPLIES])
def test_html_quote_containers(html: str) -> None:
    assert parse_message(html_mail(html)).new_text == NEW


# --- the module's own guarantees ------------------------------------------------------------


def test_new_lines_keeps_lines_as_written() -> None:
    lines = ["  Indented answer\u00a0", "", ATTR, "> old", "Below"]
    assert quotes.new_lines(lines) == ["  Indented answer\u00a0", "", "Below"]


def test_long_hostile_text_stays_fast() -> None:
    import time

    for text in ("On 1 wrote:\n" * 16_000, "> a\nb\n" * 30_000, "-A\n\n" * 40_000,
                 "On 12:00 <x@y\n" * 14_000, "From: a\nTo: b\n" * 14_000):
        started = time.perf_counter()
        split_new_text(text[:200_000])
        assert time.perf_counter() - started < 2.0


# --- the fixture set from talon and email_reply_parser -------------------------------------

REACHED = {"overall": 111 / 115, "talon": 89 / 92, "email_reply_parser": 22 / 23}
MARGIN = 0.03  # three cases in a hundred, so that a fix elsewhere can cost one case


def test_fixture_match_rate_holds() -> None:
    table = reply_extraction.rates(reply_extraction.evaluate())
    assert table["overall"][1] == 115, "the fixture set changed: update REACHED"
    for source, reached in REACHED.items():
        hit, total = table[source]
        assert hit / total >= reached - MARGIN, f"{source}: {hit}/{total}"


def test_match_is_strict() -> None:
    case = reply_extraction.Case("s", "n", b"", "Hello\nthere", "Thanks,\nAlex")
    assert reply_extraction.matches(case, " Hello  there ")
    assert reply_extraction.matches(case, "Hello there\n\nThanks, Alex")
    assert reply_extraction.matches(case, "> Hello\n> there")  # a kept quote, drawn as one
    assert not reply_extraction.matches(case, "Hello there Thanks")
    assert not reply_extraction.matches(case, "Hello there\n> On Mon, Bob wrote:")
    assert not reply_extraction.matches(case, "Hello")
