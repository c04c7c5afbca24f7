"""Which triage model the worker uses: a company model trained by ``inquiry-bot train``
(in the state folder, next to the database) when present and readable, else the one that
ships in the package."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from bot.adapters.private_file import write_private
from bot.config import Settings
from bot.triage import Model, shipped_model

log = logging.getLogger(__name__)
COMPANY_MODEL_NAME = "triage-model.json"


def company_model_path(settings: Settings) -> Path:
    """Where ``inquiry-bot train`` writes the company's model."""
    return settings.database_path.parent / COMPANY_MODEL_NAME


def load_triage_model(settings: Settings) -> Model:
    """The company model if there is a valid one, else the shipped model."""
    path = company_model_path(settings)
    try:
        return _read_model(path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        return shipped_model()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("company triage model %s unreadable (%s); using the shipped model",
                    path, exc)
        return shipped_model()


@lru_cache(maxsize=2)
def _read_model(path: Path, mtime_ns: int) -> Model:
    """Parsed once per file version (``classify`` over many files, scheduler threads)."""
    return Model.from_json(path.read_text(encoding="utf-8"))


def save_company_model(settings: Settings, text: str) -> Path:
    """Write the model owner-only, atomically (a reader never sees half a file)."""
    path = company_model_path(settings)
    write_private(path, text.encode("utf-8"))
    return path
