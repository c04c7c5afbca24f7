"""``inquiry-bot classify``: triage .eml files exactly as the worker would, sending nothing."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.model_file import load_triage_model
from bot.config import Settings
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message
from bot.models import Language
from bot.triage import shipped_model, triage

DEFAULT_BOT_ADDRESS = "contact@cijidas.jp"


def classify_file(path: Path, settings: Settings | None) -> dict:
    """The contract's JSON object for one file (category/language null for machine mail)."""
    mail = parse_message(path.read_bytes())
    bot_address = settings.bot.address if settings else DEFAULT_BOT_ADDRESS
    reason = machine_generated_reason(mail, bot_address)
    result: dict = {"file": str(path), "category": None, "language": None,
                    "auto_generated": reason is not None, "reason": reason,
                    "confidence": None, "cues": [], "needs_review": False}
    if reason is None:
        found = triage(mail.subject, mail.new_text, quoted=mail.body_text,
                       **_triage_options(settings))
        result.update(category=found.category.value, language=found.language.value,
                      confidence=round(found.confidence, 3), probability=found.confidence,
                      cues=list(found.cues), guard_cues=list(found.cues),
                      top_terms=list(found.top_terms), needs_review=found.needs_review,
                      review_reasons=list(found.review_reasons), model=found.model_version)
    return result


def _triage_options(settings: Settings | None) -> dict:
    if settings is None:
        return {"model": shipped_model()}
    return {"default_language": Language(settings.bot.default_language),
            "review_threshold": settings.triage.review_threshold or None,
            "language_threshold": settings.triage.language_threshold,
            "model": load_triage_model(settings)}
