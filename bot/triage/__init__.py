"""Triage of a customer's mail: category (with probability, cues and review reasons) and
language.

Deterministic and free of I/O apart from reading the shipped model file once
(:func:`shipped_model`). ``text`` is the customer's new text only (quotes and signature
already removed by :func:`bot.mail.parse.split_new_text`); ``quoted`` is read only when the
new text is a bare "see below".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bot.models import Category, Language, Triage
from bot.triage.classify import classify
from bot.triage.decide import read_rules
from bot.triage.features import model_text
from bot.triage.language import detect_language
from bot.triage.model import Model
from bot.triage.text import clean_subject

__all__ = ["Category", "Language", "Model", "Triage", "classify", "detect_language",
           "shipped_model", "triage"]

SHIPPED_MODEL = Path(__file__).with_name("model.json")
TOP_TERMS = 5


@lru_cache(maxsize=1)
def shipped_model() -> Model:
    """The model that ships in the package (rebuilt by ``bench/triage_eval.py
    --write-model``); a company model trained by ``inquiry-bot train`` replaces it."""
    return Model.from_json(SHIPPED_MODEL.read_text(encoding="utf-8"))


def triage(subject: str, text: str, *, default_language: Language = Language.EN,
           review_threshold: float | None = None, language_threshold: float = 0.7,
           model: Model | None = None, quoted: str = "") -> Triage:
    """Classify one human mail.

    The category is the model's; ``needs_review`` is set when its probability is below
    ``review_threshold`` (default: the threshold stored with the model), when an explicit
    request phrase contradicts it, or when the mail reads as two requests.
    A mail of fewer than three words is always reviewed.
    ``bilingual`` is set when the language confidence is below ``language_threshold``
    (the acknowledgement is then sent in Vietnamese and English).
    """
    model = model or shipped_model()
    read = model_text(subject, text, quoted)
    prediction = model.predict(read, explain=TOP_TERMS)
    reading = read_rules(subject, text, read)
    threshold = model.review_threshold if review_threshold is None else review_threshold
    decision = reading.decide(prediction, threshold)
    language, language_confidence, _ = _language(subject, text, default_language)
    return Triage(
        category=decision.category,
        language=language,
        confidence=round(decision.probability, 3),
        language_confidence=language_confidence,
        cues=reading.cues,
        needs_review=decision.needs_review,
        bilingual=language_confidence < language_threshold,
        model_version=model.version,
        top_terms=prediction.top_terms,
        review_reasons=decision.review_reasons,
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
