"""Issuing one-time identity codes, and the server-side key their digests are made with.

The key: derived from the staff token secret (``staff.token_secret_env``) when it is set,
so it lives outside the database folder; otherwise a random key in ``verification.key``
beside the database (0600, created on first use). Either way a copy of the database alone
(a backup, a datasette export) no longer lets anyone recover a code by trying all 10^8.
Changing the staff token secret invalidates the codes already sent (their customers can
start again; staff can confirm by hand with ``#verified``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from bot.adapters.store import Store
from bot.config import Settings
from bot.rules.verification import code_digest

CODE_DIGITS = 8
KEY_FILE = "verification.key"
_KEY_LABEL = b"inquiry-bot verification codes v1"


def code_key(settings: Settings) -> bytes:
    """The HMAC key of verification codes (see the module docstring)."""
    if settings.staff_token_secret:
        return hmac.new(settings.staff_token_secret.encode(), _KEY_LABEL,
                        hashlib.sha256).digest()
    return _key_file(settings.database_path.parent / KEY_FILE)


@lru_cache(maxsize=8)
def _key_file(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (owner-only); made once, then only read."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"{path}: verification key too short") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def issue_code(store: Store, settings: Settings, conn: sqlite3.Connection, ticket_id: int,
               ref: str, now: datetime) -> tuple[str, datetime]:
    """A new code for ``ticket_id`` (replacing any earlier one); only its digest is stored.

    Returns the code (to put in the mail, never stored) and its expiry.
    """
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    expires = now + timedelta(days=settings.verification.code_ttl_days)
    store.add_verification(conn, ticket_id, code_digest(code_key(settings), ref, code),
                           expires, settings.verification.max_attempts, now)
    store.add_event(conn, ticket_id, now, "waiting_for_customer",
                    {"for": "identity verification"})
    return code, expires
