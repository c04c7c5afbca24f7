"""``inquiry-bot check``'s look at an existing database: nothing created or migrated."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.adapters.schema import MIGRATIONS


@dataclass(frozen=True)
class DatabaseProbe:
    """An existing database as ``inquiry-bot check`` sees it (nothing created or migrated)."""

    writable: bool
    schema_version: int  # migrations applied
    latest_version: int  # migrations this code knows
    error: str | None = None


def probe_database(path: Path) -> DatabaseProbe:
    """Can ``path`` (which exists) take a write lock, and how far is it migrated?

    Read-only on purpose: a check must not migrate a database an older worker still uses.
    """
    latest = len(MIGRATIONS)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                               timeout=2)
    except sqlite3.Error as exc:
        return DatabaseProbe(False, 0, latest, str(exc))
    try:
        conn.execute("BEGIN IMMEDIATE")  # the lock a worker's write would need
        conn.execute("ROLLBACK")
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                 "name = 'schema_migrations'").fetchone()
        version = (conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
                   if has_table else 0)
        return DatabaseProbe(True, version or 0, latest)
    except sqlite3.Error as exc:
        return DatabaseProbe(False, 0, latest, str(exc))
    finally:
        conn.close()
