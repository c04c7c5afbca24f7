"""``inquiry-bot classify``: triage .eml files exactly as the worker would, sending nothing."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message
from bot.models import Language
from bot.triage import triage

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
        found = triage(mail.subject, mail.new_text, **_triage_options(settings))
        result.update(category=found.category.value, language=found.language.value,
                      confidence=round(found.confidence, 3), cues=list(found.cues),
                      needs_review=found.needs_review)
    return result


def _triage_options(settings: Settings | None) -> dict:
    if settings is None:
        return {}
    return {"default_language": Language(settings.bot.default_language),
            "review_threshold": settings.triage.review_threshold,
            "language_threshold": settings.triage.language_threshold}
