"""Signals in a customer's mail that change how a request is handled, beside its category.
PURE.

- **opt-out**: stop marketing / unsubscribe / withdraw consent to marketing / no more
  SMS or calls. Honoured on the sender's address alone (Japan's Specified E-mail Act
  Art. 3(3), APPI Art. 35): no identity code.
- **erasure**: the mail also asks to delete or erase data or an account. An opt-out that
  also asks for erasure is not a pure opt-out: the erasure still needs verification.
- **incident**: personal data reached the wrong person, leaked or was exposed.
- **agent**: someone writes for another person (parent of a minor, guardian, spouse,
  heir of a deceased customer, lawyer or other representative).

The rules read folded text (lower-case, no diacritics, đ -> d: :func:`bot.triage.text.fold`),
so Vietnamese with and without diacritics match alike. They describe ways of saying these
things, not individual mails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.triage.text import clean_subject, fold

MAX_CHARS = 20_000  # bounds the time on a huge mail (about 0.2 s at worst)

def _either(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching wherever one of ``patterns`` does: a sentence is searched once,
    not once per phrase."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# What marketing sends are called (en / vi, folded).
_SENDS_EN = (r"(marketing|newsletters?|promo\w*( (e-?mails?|messages|offers))?|"
             r"advertis\w*|ads|offers|e-?mails?|mails?|messages|sms|texts?( messages)?|"
             r"(phone )?calls|campaigns?|mailings?|updates|spam|surveys?|catalog\w*|"
             r"push( notifications)?)")
_SENDS_VI = (r"(quang cao|tiep thi|marketing|khuyen mai|ban tin|newsletter|email|e-mail|"
             r"thu|mail|tin nhan|sms|cuoc goi|goi dien|uu dai|chuong trinh|khao sat|"
             r"catalog\w*|an pham|dm|thong bao)")
_ME_VI = r"(toi|minh|em|e|tui|mk|chung toi)"
_STOP_VI = r"(ngung|ngung lai|dung|dung lai|thoi|dung co|xin dung|tam dung|tat)"

_OPT_OUT = _either((
    # en
    r"\bunsub(scrib\w*)?\b",
    r"\bopt(-| )?(me )?out\b",
    r"\b(stop|cease|quit)( \w+){0,2} (sending|emailing|e-mailing|texting|calling|"
    r"contacting|spamming|messaging)\b",
    rf"\b(stop|cease|end|turn off|switch off|disable)( \w+){{0,3}} {_SENDS_EN}",
    rf"\bno (more|further) {_SENDS_EN}",
    r"\b(do not|don ?t|never) (send|email|e-mail|text|call|contact|message) me\b",
    rf"\b(do not|don ?t) want( \w+){{0,3}} {_SENDS_EN}( \w+){{0,2}} (any ?more|again)",
    r"\b(remove|take|delete|erase) (me|my (e-?mail|address|number))( \w+){0,3} (off|from) "
    r"(the |your |this |that |these |all )?(\w+ ){0,2}lists?\b",
    rf"\b(remove|take) me (off|from) (\w+ ){{0,2}}{_SENDS_EN}",
    r"\b(address|e-?mail|number)( \w+){0,2} removed from (\w+ ){0,2}lists?\b",
    rf"\b(withdraw\w*|revok\w*|retract\w*|cancel\w*)( \w+){{0,2}} consent( \w+){{0,12}} "
    rf"{_SENDS_EN}",
    r"\b(withdraw\w*|revok\w*|retract\w*)( my| our)? consent\b\W*$",
    # vi
    rf"\bhuy (dang ky|nhan)( \w+){{0,3}} {_SENDS_VI}",
    r"\bhuy dang ky\b",
    rf"\b({_STOP_VI}|khong) (gui|goi|nhan tin|lien he|lien lac|nhan)( \w+){{0,4}} {_SENDS_VI}",
    rf"\b{_STOP_VI} (gui|goi dien|goi|nhan tin)( \w+){{0,3}} (cho|den|toi) {_ME_VI}\b",
    rf"\b{_STOP_VI} gui( \w+){{0,2}} nua\b",
    rf"\b{_STOP_VI}( \w+){{0,3}} {_SENDS_VI}",
    rf"\b(khong|ko|k|hong) (muon |can |thich )?nhan( \w+){{0,3}} {_SENDS_VI}",
    r"\b(khong|ko|k|hong) (muon|can|thich) (bi goi|bi lam phien|duoc lien he|bi lien he)",
    rf"\btu choi (nhan|nhung|cac)( \w+){{0,3}} {_SENDS_VI}",
    rf"\brut (lai )?(su )?dong y( \w+){{0,12}} {_SENDS_VI}",
    r"\brut (lai )?(su )?dong y\b\W*$",
    rf"\b(xoa|go|loai|bo) {_ME_VI}( \w+){{0,3}} khoi (danh sach|ds)",
    r"\b(xoa|go|loai|bo)( \w+){0,4} khoi (danh sach|ds) (gui|goi|nhan|email|quang cao|"
    r"tiep thi|khuyen mai|sms|tin nhan)",
))
_NOT_OPT_OUT = _either((
    r"\b(do not|don ?t|not) (want to |wish to )?(unsubscribe|opt out)\b",
    r"\b(how|where) (do|can|could|should) (i|we) (unsubscribe|opt out)\b",
    r"\bkhong (muon )?huy dang ky\b",
))
_ERASURE = _either((
    r"\b(delet|eras|purg|destroy)\w*\b(?!( \w+){0,4} (from|off) "
    r"(the |your )?(\w+ )?(mailing|e-?mail|marketing|newsletter|sms|contact) list)",
    r"\bremov\w*( \w+){0,3} (my )?(data|account|information|details|profile|records)\b",
    r"\b(close|cancel|terminate) (my|the) (account|membership)\b",
    r"\bforget (me|about me)\b",
    r"\bxoa\b(?!( \w+){0,5} khoi (danh sach|ds))",
    r"\bhuy (tai khoan|tk|account|thanh vien)\b",
    r"\bdong (tai khoan|tk)\b",
))
_INCIDENT = _either((
    # en: sent to / received by the wrong person, leaked, exposed
    r"\b(sent|delivered|mailed|e-?mailed|forwarded|shown|given|disclosed|addressed|went)"
    r"( \w+){0,3} to (the wrong|a wrong|someone else|somebody else|another (person|customer|"
    r"address)|a stranger|(a |an )?(other|different) (person|customer|address))",
    r"\breceived( \w+){0,2} (someone|somebody|another (customer|person)|other (customers|"
    r"people)|a stranger)",
    r"\b(someone|somebody) else s (data|information|details|order|invoice|email|address|"
    r"name|account|parcel|package|letter)",
    r"\b(data|information|details|privacy|security|personal) (breach|leak\w*|incident)",
    r"\b(was|were|been|got|is|are|being) (leaked|exposed|hacked|compromised|breached|"
    r"made public|published online)",
    r"\bleak(ed|ing)?( \w+){0,3} (my|our|customer|customers|personal|data|information)",
    r"\bunauthori[sz]ed (access|disclosure|use)\b",
    r"\bwrong recipients?\b",
    r"\b(visible|shown) to (all|other|every)( \w+){0,2} (recipients|customers|people|users)",
    r"\b(in|into) (the )?(cc|to)( field| line)? (instead of|not) bcc\b",
    # vi
    r"\bro ri\b",
    r"\b(bi|da bi|lam|de) (lo|ro ri|tiet lo|cong khai|danh cap|hack|xam nhap)\b",
    r"\blo (thong tin|du lieu|email|so dien thoai|sdt|dia chi|ho so)\b",
    r"\b(gui|giao|chuyen)( \w+){0,5} (nham|sai|lon) (cho |den |toi |sang )?(nguoi|dia chi|"
    r"email|khach|so)",
    r"\bnham (nguoi|dia chi|email|khach)\b",
    r"\b(gui|giao|chuyen)( \w+){0,6} (cho|den|toi|sang) (mot )?(nguoi khac|nguoi la|"
    r"khach hang khac|dia chi khac|email khac)",
    r"\bnhan (duoc|dc)( \w+){0,4} cua (nguoi khac|khach hang khac|nguoi la|mot nguoi khac)",
    r"\b(thong tin|du lieu|don hang|hoa don|email) cua (nguoi khac|khach hang khac)",
    r"\btruy cap trai phep\b",
))
# A question or a supposition is not a report ("if you ever had a data breach ...?").
_HYPOTHETICAL = re.compile(r"\?\s*$|\b(if|whether|in case|ever|neu|lieu|gia su)\b")
# (relation, patterns); the first relation that matches wins, so the most specific
# (a deceased customer, a guardian) comes before the general ones.
_AGENT = [(relation, _either(patterns)) for relation, patterns in (
    ("heir", (
        r"\b(passed away|deceased|late (husband|wife|father|mother|son|daughter|parent|"
        r"brother|sister))\b",
        r"\b(who|he|she|husband|wife|father|mother|son|daughter|customer) (has |had )?died\b",
        r"\b(heir|heirs|executor|estate of|next of kin)\b",
        r"\b(death certificate|qua doi|tu tran|da khuat|nguoi thua ke|thua ke|giay chung tu)\b",
        r"\b(da )?mat (ngay|vao (ngay|thang|nam)|nam|thang|tu nam|cach day)\b",
    )),
    ("guardian", (
        r"\b(legal )?guardian(ship)?\b", r"\b(nguoi )?giam ho\b",
    )),
    ("representative", (
        r"\b(on behalf of|for and on behalf|acting for)\b",
        r"\b(i am|i m|we are|as|in my capacity as) (a |an |the |their |his |her )?(\w+ )?"
        r"(lawyer|attorney|solicitor|counsel|legal representative|representative|agent)\b",
        r"\b(power of attorney|my client|our client|law firm)\b",
        r"\b(thay mat|dai dien cho|dai dien theo|uy quyen|than chu)\b",
        r"\b(toi|chung toi) la (luat su|nguoi dai dien)\b",
    )),
    ("parent", (
        r"\bmy (son|daughter|child|children|kid|kids)\b",
        r"\b(i am|i m|as) (his|her|their|the) (mother|father|parent|mum|mom|dad)\b",
        r"\b(he|she|they|son|daughter|child|who) (is|are) (still )?(a )?minors?\b",
        r"\b(under 18|underage)\b",
        r"\bcon (trai|gai) (cua )?(toi|minh|em)\b",
        r"\b(cua|cho|giup) (con|be) (toi|minh|em|nha (toi|minh))\b",
        r"\b(con|be) (\w+ ){0,2}([1-9]|1[0-7]) tuoi\b",
        r"\b(phu huynh|chua thanh nien|tre vi thanh nien)\b",
    )),
    ("spouse", (
        r"\bmy (wife|husband|spouse)( s)? (\w+ ){0,2}(data|account|information|details|"
        r"profile|records|personal)",
        r"\b(for|of|on behalf of) my (wife|husband|spouse)\b",
        r"\b(cua|cho|giup|ho) (vo|chong) (cua )?(toi|minh|em)\b",
    )),
)]


@dataclass(frozen=True)
class Signals:
    """What :func:`detect` found; ``agent`` is the relation, or "" when none."""

    opt_out: bool = False
    erasure: bool = False
    incident: bool = False
    agent: str = ""

    @property
    def pure_opt_out(self) -> bool:
        """Only an opt-out: handled without an identity code."""
        return self.opt_out and not self.erasure


def detect(subject: str, text: str) -> Signals:
    """The signals of a mail (``text``: the customer's new text, quotes removed); only the
    first :data:`MAX_CHARS` characters are read (what a person asks comes early)."""
    text = (text or "")[:MAX_CHARS]
    lines = [fold(line) for line in (clean_subject(subject), *text.splitlines())]
    sentences = [s for line in lines for s in _sentences(line)]
    opt_out = _any(_OPT_OUT, sentences) and not _any(_NOT_OPT_OUT, sentences)
    reports = [s for s in sentences if not _HYPOTHETICAL.search(s)]
    return Signals(opt_out=opt_out, erasure=_any(_ERASURE, sentences),
                   incident=_any(_INCIDENT, reports), agent=_agent(sentences))


def _sentences(line: str) -> list[str]:
    """Sentences of one folded line, punctuation kept at their ends, spaces collapsed."""
    parts = re.split(r"(?<=[.!?;])\s+", re.sub(r"[’'`]", " ", line))
    return [" ".join(p.split()) for p in parts if p.strip()]


def _any(pattern: re.Pattern[str], sentences: list[str]) -> bool:
    return any(map(pattern.search, sentences))


def _agent(sentences: list[str]) -> str:
    for relation, patterns in _AGENT:
        if _any(patterns, sentences):
            return relation
    return ""
