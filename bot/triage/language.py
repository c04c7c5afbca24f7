"""vi or en: Vietnamese-specific evidence first, langdetect (seeded, vi/en only) to settle.

langdetect alone misreads short or diacritic-less Vietnamese ("toi muon xoa tai khoan" comes
back as Finnish), so it only breaks ties: words with Vietnamese diacritics and common
Vietnamese / English function words decide whenever they are clear.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache
from pathlib import Path

from bot.models import Language
from bot.triage.text import fold, words

# Diacritic-less Vietnamese syllables that are frequent in customer mail and are not English
# words; chat shorthand included (ko, dc, tk, mk, sdt ...). Ambiguous ones (a, e, k, on, an,
# ad, the) are left out on purpose.
_VI_WORDS_TEXT = """
toi cua khong duoc muon xin chao ban minh tai khoan nhung thong tin cho va voi nhe nha giup
vui long cam em anh chi cong ty du lieu hoi biet xoa sua gui nhan ca la co cac mot nay dang
da bi nhu nao gi sao vay roi nua thi cung ve tu trong khi lam hay luu ho so dia chi ten
ngay dung ma moi cu lai ben nguoi viec quy kinh trong tren duoi hon rat qua ah oi nhi
ko dc duoc tk mk mik sdt vs hok hong khg kg ak nv tt ds mn ng tui
"""
VI_WORDS = frozenset(_VI_WORDS_TEXT.split())

_EN_WORDS_TEXT = """
the i you your my me is are was were please to of and what how which who why do does did
can could would should will it this that for with have has had about from not don dont want
know be been am we our us they if or but there any all yes thank thanks hello dear regards
sorry just only also get got see would like need an in at by i'm im
"""
EN_WORDS = frozenset(_EN_WORDS_TEXT.split())

# Combining marks that only Vietnamese uses among Latin scripts (hook above, dot below,
# horn, breve): a token with one of them is very strong evidence.
_STRONG_VI_MARKS = frozenset("\u0309\u0323\u031b\u0306")
_STRENGTH = 0.9          # logistic slope: one clear word alone stays below 0.7 confidence
_LANGDETECT_WEIGHT = 2.0  # most langdetect can move the score (a couple of words' worth)
_DECISIVE = 3.0           # beyond this, langdetect cannot change the answer: skip it


def detect_language(text: str, default: Language) -> tuple[Language, float, tuple[str, ...]]:
    """Language of ``text`` with a 0.5..1 confidence and the evidence used.

    Weak evidence (very short or mixed text) gives a confidence near 0.5 and, when there is
    no evidence at all, ``default``.
    """
    score, cues = _word_evidence(text)
    if abs(score) < _DECISIVE:
        ld_score, ld_cue = _langdetect_evidence(text)
        score += ld_score
        cues += ld_cue
    if score == 0:
        return default, 0.5, tuple(cues) or ("no language evidence",)
    p_vi = 1.0 / (1.0 + math.exp(-_STRENGTH * max(-50.0, min(50.0, score))))  # no overflow
    language = Language.VI if score > 0 else Language.EN
    return language, round(max(p_vi, 1.0 - p_vi), 3), tuple(cues)


def _word_evidence(text: str) -> tuple[float, list[str]]:
    diacritic, vi_plain, english = [], [], []
    for token in words(text):
        marks = _vi_marks(token)
        if marks:
            diacritic.append((token, 1.5 if marks & _STRONG_VI_MARKS or "đ" in token else 1.0))
        elif not token.isascii():
            continue
        elif token in VI_WORDS:
            vi_plain.append(token)
        elif token in EN_WORDS:
            english.append(token)
    score = sum(w for _, w in diacritic) + 0.8 * len(vi_plain) - 0.8 * len(english)
    cues = []
    if diacritic:
        cues.append(f"vi diacritics: {len(diacritic)} words ({_sample(t for t, _ in diacritic)})")
    if vi_plain:
        cues.append(f"vi words: {len(vi_plain)} ({_sample(vi_plain)})")
    if english:
        cues.append(f"en words: {len(english)} ({_sample(english)})")
    return score, cues


def _vi_marks(token: str) -> frozenset[str]:
    """Combining marks of ``token`` (plus 'đ'), empty for plain ASCII."""
    if token.isascii():
        return frozenset()
    marks = {c for c in unicodedata.normalize("NFD", token) if unicodedata.combining(c)}
    if "đ" in token:
        marks.add("đ")
    return frozenset(marks)


def _sample(tokens: object) -> str:
    unique = list(dict.fromkeys(tokens))  # type: ignore[call-overload]
    return ", ".join(unique[:4])


def _langdetect_evidence(text: str) -> tuple[float, list[str]]:
    """langdetect's vi-vs-en log-odds, scaled down for short text (where it is unreliable)."""
    letters = sum(1 for c in fold(text) if c.isascii() and c.isalpha())
    if letters < 8:
        return 0.0, []
    p_vi = _langdetect_p_vi(text[:400])
    if p_vi is None:
        return 0.0, []
    weight = min(1.0, letters / 80)
    score = _LANGDETECT_WEIGHT * weight * (2 * p_vi - 1)
    return score, [f"langdetect: vi {p_vi:.2f} (weight {weight:.2f})"]


def _langdetect_p_vi(text: str) -> float | None:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.append(text)
    try:
        probabilities = {p.lang: p.prob for p in detector.get_probabilities()}
    except LangDetectException:
        return None
    vi, en = probabilities.get("vi", 0.0), probabilities.get("en", 0.0)
    return vi / (vi + en) if vi + en else None


@lru_cache(maxsize=1)
def _factory():  # type: ignore[no-untyped-def]
    """A private langdetect factory holding only the vi and en profiles, seeded."""
    import langdetect
    from langdetect.detector_factory import DetectorFactory

    profiles = Path(langdetect.__file__).parent / "profiles"
    factory = DetectorFactory()
    factory.load_json_profile([(profiles / lang).read_text(encoding="utf-8")
                               for lang in ("vi", "en")])
    factory.set_seed(0)
    return factory
