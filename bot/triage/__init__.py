"""Triage of a customer's mail: category (with confidence and cues) and language.

Pure and deterministic: no I/O, no clock. ``text`` is the customer's new text only (quotes
and signature already removed by :func:`bot.mail.parse.split_new_text`).
"""

from __future__ import annotations

from bot.models import Category, Language, Triage
from bot.triage.classify import classify
from bot.triage.language import detect_language
from bot.triage.text import clean_subject

__all__ = ["Category", "Language", "Triage", "classify", "detect_language", "triage"]


def triage(subject: str, text: str, *, default_language: Language = Language.EN,
           review_threshold: float = 0.55, language_threshold: float = 0.7) -> Triage:
    """Classify one human mail.

    ``needs_review`` is set when the category confidence is below ``review_threshold``;
    ``bilingual`` when the language confidence is below ``language_threshold`` (the
    acknowledgement is then sent in Vietnamese and English).
    """
    category, confidence, cues = classify(subject, text)
    language, language_confidence, _ = _language(subject, text, default_language)
    return Triage(
        category=category,
        language=language,
        confidence=confidence,
        language_confidence=language_confidence,
        cues=cues,
        needs_review=confidence < review_threshold,
        bilingual=language_confidence < language_threshold,
    )


def _language(subject: str, text: str,
              default: Language) -> tuple[Language, float, tuple[str, ...]]:
    """Decide on the customer's own text; fall back to the subject only when it is silent."""
    result = detect_language(text, default)
    if result[1] == 0.5 and clean_subject(subject):
        from_subject = detect_language(clean_subject(subject), default)
        if from_subject[1] > 0.5:
            return from_subject
    return result
