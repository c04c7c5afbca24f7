"""Features of a customer's text for the learned category model. PURE.

Word 1-2-grams and character 2-5-grams (inside word boundaries) of the folded text
(:func:`bot.triage.text.fold`: lower-case, no diacritics), so "xoá", "xóa" and "xoa" are
one feature and teencode shares character n-grams with the full words. Training passes this
analyzer to scikit-learn, so the model file and the run-time scorer see identical features.
"""

from __future__ import annotations

import re

from bot.triage.text import clean_subject, fold

MAX_CHARS = 4000          # the opening of a long letter says what it is about
MIN_NEW_WORDS = 4         # below this, the quoted mail says what a bare "see below" means
_TOKEN = re.compile(r"[a-z0-9]+")


def model_text(subject: str, text: str, quoted: str = "") -> str:
    """What the model reads: the subject and the new text (plus the quote when the new
    text is a bare "see below")."""
    body = text
    if quoted and len(_TOKEN.findall(fold(text))) < MIN_NEW_WORDS:
        rest = quoted.replace(text.strip(), "", 1) if text.strip() else quoted
        body = f"{text}\n{rest}" if rest.strip() else text
    return f"{clean_subject(subject)}\n{body}"[:MAX_CHARS]


def tokens(text: str) -> list[str]:
    """Word tokens of the folded text."""
    return _TOKEN.findall(fold(text))


def bigrams(words: list[str]) -> list[str]:
    """``w:`` word-bigram features of a token list."""
    return [f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def token_features(token: str) -> list[str]:
    """The unigram and every character 2-5-gram (inside `` token ``) of one token."""
    padded = f" {token} "
    features = [f"w:{token}"]
    for size in range(2, 6):
        features += [f"c:{padded[i:i + size]}" for i in range(len(padded) - size + 1)]
    return features


def analyze(text: str) -> list[str]:
    """Feature names of ``text``: ``w:`` word n-grams and ``c:`` character n-grams."""
    words = tokens(text)
    features = bigrams(words)
    for token in words:
        features += token_features(token)
    return features

