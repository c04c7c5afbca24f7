"""PURE: where quoted earlier mail starts in a reply, across clients and languages.

:func:`new_lines` keeps what the sender wrote now and drops what they quoted:

* attribution lines ("On <date>, <name> wrote:", "Am ... schrieb ...:", "Le ... a écrit :",
  "... написал:", "2025年11月3日(月) 10:00 <x@y>:", "...님이 작성:", "... 写道："), also when a
  client wraps them over several lines or glues them to the reply ("reply On ... wrote:");
* header blocks as Outlook, Windows Mail, Yahoo and web mailers write them, plain
  ("From: ...") or bold ("*From:* ..."), in the languages listed in ``_KEYS``;
* separators ("-----Original Message-----", "---- Forwarded message ----", localised);
* lines starting with ">": a quotation when an attribution introduced it or when it has
  two lines or more; text written below or between quoted blocks (bottom-posting,
  interleaved answers) is kept.

After a header block or separator, everything below is the earlier mail: those clients do
not mark quoted lines. After an attribution, quoted lines are dropped and the sender's own
lines between them are kept. :func:`trailer_start` finds the signatures and mailing-list
footers that :mod:`bot.mail.mailtext` cuts as well.

Language coverage: English, Vietnamese, Japanese, Chinese, Korean, German, French, Spanish,
Portuguese, Italian, Dutch, Polish, Russian, Ukrainian, Czech, Turkish, Swedish, Danish,
Norwegian and Finnish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "clean", "is_attribution", "is_device_signature", "is_sign_off", "new_lines",
    "splitter_at", "trailer_start",
]

MAX_WRAP_LINES = 6  # an attribution wrapped by the client spans at most this many lines
MAX_ATTRIBUTION_CHARS = 500

# Invisible marks some clients put between words (Windows Mail puts U+200E around dates).
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060\ufeff]")
_SPACES = re.compile(r"\s+")

# --- attribution lines ------------------------------------------------------------------------

_VERBS_LATIN = (
    r"wrote|writes|sent|schrieb|a\s+écrit|a\s+ecrit|escribió|escribio|escreveu|ha\s+scritto"
    r"|schreef|verzond|geschreven|napisał\(a\)|napisała|napisał|napisal|написал\(а\)"
    r"|написала|написал|пишет|пише|написав|skrev|kirjoitti|napsal\(a\)|napsala|napsal"
    r"|yazdı|đã\s+viết|da\s+viet"
)
_VERBS_CJK = r"写道|寫道|작성|書きました|のメッセージ"
_ATTRIBUTION = re.compile(
    rf"^.{{0,{MAX_ATTRIBUTION_CHARS}}}?"
    rf"(?:(?<![^\W\d_])(?:{_VERBS_LATIN})(?![^\W\d_])|{_VERBS_CJK})"
    r"[^:：]{0,160}?[:：]$",
    re.IGNORECASE,
)
# The rules that were here first, kept as they were: Gmail in Vietnamese (with or without
# diacritics) and in Japanese, which writes no verb at all.
_ATTRIBUTION_VI = re.compile(r"^v[àa]o\s.{0,400}\s(?:đã|da)\s+vi[ếe]t\s*[:：]$", re.IGNORECASE)
_ATTRIBUTION_JA = re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日.{0,400}[:：]$")
# "---- John Smith wrote ----" (Android), "------On <date>, X wrote-----": framed, no colon.
_FRAMED_WROTE = re.compile(rf"^-{{2,}}.{{1,300}}(?:{_VERBS_LATIN})\s*-{{2,}}$", re.IGNORECASE)
# No verb: "26.06.2014, 14:41, "Name" <x@y>:" (Yandex), "Thu, 26 Jun 2014 14:00:51 +0400 от
# Name <x@y>:" (mail.ru), "пн, 3 нояб. 2025 г. в 10:00, Name <x@y>:" (Gmail in Russian),
# "2014-10-17 11:28 GMT+03:00 Name <x@y>:"; and old Gmail's "2011/4/7 Name <x@y>".
_TIME = re.compile(r"\d{1,2}:\d{2}")
_ADDRESS_END = re.compile(r"<\s?[^<>\s]+@[^<>\s]+>\s*[:：]$")
_NUMERIC_DATE = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"
_DATED_ADDRESS = re.compile(rf"^{_NUMERIC_DATE}\b.{{0,300}}<\s?[^<>\s]+@[^<>\s]+>\s*[:：]?$")
# Evidence that a "... wrote:" line is a client's attribution, not prose ("I wrote:"): a
# time, a numeric or CJK date, an address - or a year after a starter word ("On ... 2025").
# (Every branch starts with a digit: the regex engine then skips to digits.)
_EVIDENCE = re.compile(rf"\d{{1,2}}:\d{{2}}|{_NUMERIC_DATE}|\d{{1,4}}\s*[年월]")
_YEAR = re.compile(r"(?:19|20)\d{2}(?!\d)")
_SENT_VERB_ONLY = re.compile(r"(?<![^\W\d_])sent\s*[:：]$", re.IGNORECASE)
# How an attribution can begin, so that a wrapped one is not joined to the reply above it.
_STARTERS = r"On|Am|Le|El|Em|Il|Op|W\s+dniu|Den|På|Vào|Vao|Dne|Sent\s+from"
_STARTS_WITH_STARTER = re.compile(rf"^-*\s*(?:{_STARTERS})\s", re.IGNORECASE)
_START = re.compile(
    rf"^(?:-*\s*(?:{_STARTERS})\s|\d|[^\W\d_]{{2,12}}\.?,\s|.*(?:@|<\s*$|<[^>]*@))",
    re.IGNORECASE,
)
# Glued to reply text, an attribution starts with its capital: "reply On ...", not "I am".
_MIDLINE_START = re.compile(rf"(?<=[\s-])(?:{_STARTERS})\s")

# --- header blocks ----------------------------------------------------------------------------

_KEYS = {
    "from": r"from|von|de|da|van|od|от|від|från|fra|lähettäjä|kimden|từ|tu|差出人|送信者|发件人"
            r"|發件人|寄件者|보낸\s?사람",
    "date": r"sent|date|gesendet|datum|envoyé|envoye|enviado\s+el|enviado|enviada|fecha|data"
            r"|inviato|verzonden|wysłano|wyslano|отправлено|надіслано|дата|odesláno|skickat"
            r"|sendt|dato|lähetetty|päivämäärä|tarih|gönderildi|đã\s+gửi|da\s+gui|ngày\s+gửi"
            r"|送信日時|日付"
            r"|发送时间|發送時間|日期|寄件日期|时间|時間|보낸\s?날짜|날짜",
    "to": r"to|an|à|a|para|aan|do|кому|komu|till|til|vastaanottaja|kime|đến|den|tới|宛先|收件人"
          r"|收件者|받는\s?사람",
    "cc": r"cc|kopie|копия|kopia|kopio|抄送|副本|참조",
    "subject": r"subject|betreff|objet|asunto|assunto|oggetto|onderwerp|temat|тема|předmět"
               r"|ämne|emne|aihe|konu|tiêu\s+đề|chủ\s+đề|tieu\s+de|chu\s+de|件名|主题|主旨|제목",
}
_KEY_ALTERNATION = "|".join(f"(?P<{name}>{words})" for name, words in _KEYS.items())
_HEADER = re.compile(rf"^\*{{0,2}}(?:{_KEY_ALTERNATION})\s?\*{{0,2}}\s?[:：]", re.IGNORECASE)
_INLINE_KEY = re.compile(
    r"\s\*{0,2}(?:from|sent|date|to|subject|cc)\s?\*{0,2}:\s", re.IGNORECASE
)
_MAX_HEADER_CONTINUATION = 2
_MAX_HEADER_LINES = 24  # From, Sent, To, Cc, Subject, each continued: never more

# --- separators -------------------------------------------------------------------------------

_SEPARATOR_WORDS = (
    r"original\s+message|reply\s+message|ursprüngliche\s+nachricht|antwort\s+nachricht"
    r"|oprindelig\s+meddelelse|message\s+d'origine|mensaje\s+original|mensagem\s+original"
    r"|messaggio\s+originale|oorspronkelijk\s+bericht|ursprungligt\s+meddelande"
    r"|originalmeddelande|opprinnelig\s+melding|alkuperäinen\s+viesti"
    r"|wiadomość\s+oryginalna|oryginalna\s+wiadomość|исходное\s+сообщение"
    r"|оригінальне\s+повідомлення|původní\s+zpráva|orijinal\s+ileti|thư\s+gốc|tin\s+nhắn\s+gốc"
    r"|元のメッセージ|原始邮件|原始郵件|原始信件|원본\s*메시지"
    r"|forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré|mensaje\s+reenviado"
    r"|mensagem\s+encaminhada|messaggio\s+inoltrato|doorgestuurd\s+bericht"
    r"|vidarebefordrat\s+meddelande|videresendt\s+meddelelse|videresendt\s+melding"
    r"|välitetty\s+viesti|przekazana\s+wiadomość|wiadomość\s+przekazana"
    r"|пересылаемое\s+сообщение|přeposlaná\s+zpráva"
    r"|(?:thư|thu|tin\s+nhắn|tin\s+nhan)\s+(?:đã\s+|da\s+)?(?:được\s+|duoc\s+)?"
    r"(?:chuyển\s+tiếp|chuyen\s+tiep)"
    r"|転送されたメッセージ|转发的邮件|轉寄的郵件|전달된\s*메시지"
)
_SEPARATOR = re.compile(
    rf"^(?:[-=_*]{{2,}}\s*(?:{_SEPARATOR_WORDS})\s*[-=_*]{{2,}}"
    r"|begin\s+forwarded\s+message\s*:?|début\s+du\s+message\s+réexpédié\s*:?"
    r"|anfang\s+der\s+weitergeleiteten\s+nachricht\s*:?)$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^[-_=*─━]{5,}$")  # a horizontal line drawn above a header block
_LINK_LEFTOVERS = re.compile(r"https?://\S+|[()<>\[\]\s]")
_OPEN_LINK = re.compile(r"\((?:https?://|www\.)[^)\s]*$")

# --- what follows the new text ----------------------------------------------------------------

_FOOTER_RULE = re.compile(r"^_{7,}$")  # mailing-list footers (Mailman) start so
_DASH_NAME = re.compile(r"^-[^\W\d_][\w.'’]*(?:\s[^\W\d_][\w.'’]*){0,3}$")
_SIGN_OFFS = re.compile(
    r"^(?:mit\s+freundlichen\s+gr(?:ü|ue|u)(?:ß|ss)en|(?:viele|beste|liebe)\s+gr(?:ü|ue)(?:ß|ss)e"
    r"|mfg|gruß|danke|cordialement|bien\s+cordialement|bien\s+à\s+vous|merci(?:\s+beaucoup)?"
    r"|salutations|(?:un\s+)?saludos?(?:\s+cordiales)?|atentamente|(?:muchas\s+)?gracias"
    r"|atenciosamente|cumprimentos|obrigad[oa]|(?:cordiali|distinti)\s+saluti|saluti|grazie"
    r"|met\s+vriendelijke\s+groet(?:en)?|groeten|bedankt|pozdrawiam|z\s+poważaniem|dziękuję"
    r"|с\s+уважением|спасибо|всего\s+доброго|(?:med\s+)?vänliga\s+hälsningar|hälsningar|tack"
    r"|(?:med\s+)?venlig\s+hilsen|(?:med\s+)?vennlig\s+hilsen|hilsen|tak"
    r"|ystävällisin\s+terveisin|terveisin|kiitos|saygılarımla|teşekkürler"
    r"|敬具|以上|よろしくお願い致します|此致(?:敬礼)?|谢谢|謝謝|祝好|감사합니다|고맙습니다)"
    r"[\s,.!。！]*$",
    re.IGNORECASE,
)
_DEVICE = re.compile(
    r"^(?:von\s+meinem\s+.{1,30}\s+gesendet|envoyé\s+de\s+mon\s+.{1,30}"
    r"|enviado\s+(?:desde\s+mi|do\s+meu|de\s+meu)\s+.{1,30}|inviato\s+da\s+.{1,30}"
    r"|verzonden\s+(?:vanaf|met)\s+.{1,30}|wysłane\s+z\s+.{1,30}|отправлено\s+с\s+.{1,30}"
    r"|skickat\s+från\s+.{1,30}|sendt\s+fra\s+.{1,30}|lähetetty\s+.{1,30}"
    r"|.{1,20}から送信|发自我的.{1,20}|從我的.{1,20}傳送|.{1,20}에서\s*보냄"
    r"|sent\s+with\s+.{1,30}|sent\s+from\s+.{1,30}\s+mobile)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Split:
    """Where quoted mail begins at a line: its kind, its length, any reply text before it."""

    kind: str  # "attribution", "header" or "separator"
    length: int
    prefix: str = ""


def clean(line: str) -> str:
    """One line as the rules read it: invisible marks gone, spaces collapsed, ends stripped."""
    return _SPACES.sub(" ", _INVISIBLE.sub("", line)).strip()


def new_lines(lines: list[str]) -> list[str]:
    """The lines the sender wrote now, in order, without what they quoted or forwarded."""
    text = [clean(line) for line in lines]  # what the rules read; ``lines`` is what is kept
    memo = _HeaderMemo()
    kept: list[str] = []
    quoted = False  # has an attribution or a quotation been seen yet?
    index = 0
    while index < len(text):
        if text[index].startswith(">"):
            end = _quote_block_end(text, index)
            if not quoted and _is_decoration(text, index, end):
                kept.extend(lines[index:end])  # ">>> see below <<<" inside the text
            else:
                quoted = True
            index = end
            continue
        split = splitter_at(text, index, memo)
        if split is not None:
            kept = _drop_rule_above(kept + ([split.prefix] if split.prefix else []))
            after = _next_filled(text, index + split.length)
            if split.kind != "attribution" or after is None or not text[after].startswith(">"):
                break  # the earlier mail runs to the end
            quoted, index = True, after
            continue
        if not (quoted and _is_quote_remnant(text, index)):
            kept.append(lines[index])
        index += 1
    return _squeeze_blank_runs(kept)


def splitter_at(text: list[str], index: int, memo: _HeaderMemo | None = None) -> _Split | None:
    """The attribution, header block or separator starting at ``text[index]`` (lines as
    :func:`clean` returns them), if any. ``memo`` carries header reading between calls."""
    line = text[index]
    if not line or line.startswith(">"):
        return None
    if _SEPARATOR.match(line):
        return _Split("separator", 1)
    header = _header_block_length(text, index, memo or _HeaderMemo())
    if header:
        return _Split("header", header)
    return _attribution_at(text, index)


# --- attributions -----------------------------------------------------------------------------


def is_attribution(text: str) -> bool:
    """Whether ``text`` (one line, or a wrapped one joined with spaces) is an attribution."""
    return _is_attribution(clean(text))


def _is_attribution(text: str) -> bool:
    if len(text) > MAX_ATTRIBUTION_CHARS + 200:
        return False
    if _ATTRIBUTION_VI.match(text) or _ATTRIBUTION_JA.match(text):
        return True
    if _FRAMED_WROTE.match(text) or _DATED_ADDRESS.match(text):
        return True
    if text.endswith((":", "：")) and _ADDRESS_END.search(text) and _TIME.search(text):
        return True
    bare = text.strip("-").strip()
    if "@" not in bare and not _EVIDENCE.search(bare) and not (
            _STARTS_WITH_STARTER.match(bare) and _YEAR.search(bare)):
        return False  # prose such as "On Monday I wrote:" or "Last year, in 2024, I wrote:"
    if not _ATTRIBUTION.match(bare) and not _framed(text, bare):
        return False
    # "On 3 Nov 2025 I sent:" is prose; a client's "... sent:" names an address.
    return "@" in bare or not _SENT_VERB_ONLY.search(bare)


def _framed(text: str, bare: str) -> bool:
    """ "------On <date>, X wrote-----": dashes on both sides stand for the colon."""
    return text.startswith("--") and text.endswith("--") and bool(_ATTRIBUTION.match(bare + ":"))


def _attribution_at(text: list[str], index: int) -> _Split | None:
    first = text[index]
    # A wrapped attribution begins like one, or begins inside its first line ("reply On ...");
    # a line that ends in a colon and is no attribution does not begin one either.
    wraps = 1
    if not first.endswith((":", "：")) and (_START.match(first) or _MIDLINE_START.search(first)):
        wraps = MAX_WRAP_LINES
    joined = first
    for length in range(1, wraps + 1):
        if length > 1:
            if index + length - 1 >= len(text) or not _may_continue(text, index + length - 1):
                return None
            joined = f"{joined} {text[index + length - 1]}".strip()
        if len(joined) > MAX_ATTRIBUTION_CHARS + 200:
            return None
        # Only a line ending as attributions end is worth the full test (long mails).
        if joined[-1] in ":：->" and _is_attribution(joined):
            prefix = _reply_before(joined)
            if length > 1 and not _START.match(first) and not first.startswith(prefix or "\0"):
                return None  # text above an attribution is not its first line
            return _Split("attribution", length, prefix)
    return None


def _may_continue(text: list[str], index: int) -> bool:
    """A wrapped attribution never spans a paragraph break - except Polymail's, which puts
    an empty line before the "<" that opens the address."""
    if text[index]:
        return True
    return index + 1 < len(text) and text[index + 1].startswith("<")


def _reply_before(joined: str) -> str:
    """Reply text that a client glued in front of the attribution ("reply On ... wrote:")."""
    for match in _MIDLINE_START.finditer(joined):
        prefix = joined[: match.start()].rstrip(" -")
        if prefix and not _STARTS_WITH_STARTER.match(prefix) and _is_attribution(
                joined[match.start():]):
            return prefix
    return ""


# --- header blocks ----------------------------------------------------------------------------


def _header_keys(line: str) -> set[str]:
    match = _HEADER.match(line)
    if not match:
        return set()
    keys = {name for name, value in match.groupdict().items() if value}
    for inline in _INLINE_KEY.finditer(line, match.end()):  # "From: x Date: y" on one line
        keys.add(_key_of(inline.group(0)))
    return keys


def _key_of(text: str) -> str:
    match = _HEADER.match(text.strip())
    return next((n for n, v in match.groupdict().items() if v), "") if match else ""


def _header_block_length(text: list[str], index: int, memo: _HeaderMemo) -> int:
    """Lines of the header block starting at ``index``, up to where it is certain (0: none).

    A block is consecutive header lines ("From: ...", "*Sent:* ...") in any order, each
    optionally continued on up to two lines. Three keys, or a date and a sender or
    recipient: two lines such as "From: A" and "To: B" may open a customer's own letter.
    """
    if index < memo.barren_until:
        return 0  # inside a run of header lines already found to be no block
    keys: set[str] = set()
    continuation = 0
    end = index
    while end < min(len(text), index + _MAX_HEADER_LINES):
        found = memo.keys_at(text, end)
        if found:
            keys |= found
            continuation = 0
            if (len(keys) >= 3 and keys & {"from", "date"}) or (
                    "date" in keys and keys & {"from", "to"}):
                return end + 1 - index
        elif text[end] and keys and continuation < _MAX_HEADER_CONTINUATION:
            continuation += 1
        else:
            break
        end += 1
    memo.barren_until = end  # a later start in this run sees fewer keys: no block either
    return 0


class _HeaderMemo:
    """Header keys per line, read once; where a run of header lines turned out no block."""

    def __init__(self) -> None:
        self.keys: dict[int, set[str]] = {}
        self.barren_until = 0

    def keys_at(self, text: list[str], index: int) -> set[str]:
        if index not in self.keys:
            self.keys[index] = _header_keys(text[index]) if text[index] else set()
        return self.keys[index]


# --- quotations -------------------------------------------------------------------------------


def _quote_block_end(text: list[str], index: int) -> int:
    end = index
    while end < len(text) and text[end].startswith(">"):
        end += 1
    return end


def _is_decoration(text: list[str], start: int, end: int) -> bool:
    """One ">" line with text lines right above and below it: part of the text, not a quote."""
    if end - start != 1 or not start or end >= len(text):
        return False
    return all(text[i] and not text[i].startswith(">") for i in (start - 1, end))


def _is_quote_remnant(text: list[str], index: int) -> bool:
    """A line between quoted lines that belongs to them: a link the client wrapped.

    "(http://example.com/x) >" or the "_rest=1)" of a link broken on the quoted line above.
    """
    line = text[index]
    above = text[index - 1] if index else ""
    if not line or not above.startswith(">"):
        return False
    if not _LINK_LEFTOVERS.sub("", line):
        return True
    return bool(_OPEN_LINK.search(above)) and " " not in line


def _next_filled(text: list[str], index: int) -> int | None:
    for position in range(index, len(text)):
        if text[position]:
            return position
    return None


def _drop_rule_above(kept: list[str]) -> list[str]:
    """Drop the "_____" or "-----" line (and blank lines) a client draws above a header block."""
    end = len(kept)
    while end and not kept[end - 1].strip() and len(kept) - end < 3:
        end -= 1
    if end and _RULE.match(clean(kept[end - 1])):
        return kept[: end - 1]
    return kept


def _squeeze_blank_runs(lines: list[str]) -> list[str]:
    """At most one blank line in a row (dropped quotes leave blank runs behind)."""
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
    return out


# --- signatures and footers -------------------------------------------------------------------


def is_sign_off(line: str) -> bool:
    """A closing formula in one of the covered languages ("Mit freundlichen Grüßen", "敬具")."""
    return bool(_SIGN_OFFS.match(clean(line)))


def is_device_signature(line: str) -> bool:
    """A mobile client's line ("Von meinem iPhone gesendet", "iPhoneから送信")."""
    return bool(_DEVICE.match(clean(line)))


def trailer_start(lines: list[str]) -> int:
    """Where a mailing-list footer or a "-Name" signature ends the new text (len: none).

    Only below some content: a footer rule ("_______") with text above it, or a "-Name"
    line after a blank line with nothing but blank lines or a footer below it.
    """
    for index, line in enumerate(lines):
        if "_______" in line and _FOOTER_RULE.match(clean(line)) and any(
                x.strip() for x in lines[:index]):
            return _dash_name_above(lines, index)
    return _dash_name_above(lines, len(lines))


def _dash_name_above(lines: list[str], end: int) -> int:
    last = end - 1
    while last >= 0 and not clean(lines[last]):
        last -= 1
    name = clean(lines[last]) if last >= 2 else ""
    if not (_DASH_NAME.match(name) and name[1].isupper()) or clean(lines[last - 1]):
        return end  # "-my purchase history" is a list item, "-Nguyen Van A" a name
    return last if any(clean(x) for x in lines[: last - 1]) else end
