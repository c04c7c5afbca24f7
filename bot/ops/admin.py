"""Datasette on the ticket database: read-only, on loopback unless a password is required.

Datasette opens a database that is not ``--immutable`` with ``mode=ro``: it cannot write,
yet it sees every commit of the worker (``immutable=1`` would promise SQLite that the file
never changes, so datasette would read stale or torn pages of a live WAL database). WAL
mode lets these readers run while the worker writes without either side waiting.

The metadata lives in ``admin/metadata.yml``; its database key is renamed at launch to the
configured file's stem, because datasette names a database after its file.
"""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.adapters.store import Store
from bot.config import PACKAGE_ROOT, Settings, load_config
from bot.errors import BotError, ConfigError
from bot.flows import audit

METADATA_PATH = PACKAGE_ROOT / "admin" / "metadata.yml"
METADATA_DATABASE_KEY = "tickets"
PASSWORD_HASH_ENV = "INQUIRY_BOT_ADMIN_PASSWORD_HASH"
ADMIN_ACTOR = "admin"
# allow_download off: nobody takes the whole file of personal data home with one click.
DATASETTE_SETTINGS = {"allow_download": False, "sql_time_limit_ms": 3000,
                      "facet_time_limit_ms": 500, "default_page_size": 50}


class DatasetteMissing(BotError):
    """The optional ``admin`` extra is not installed."""


def load_metadata(database: Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The repository's metadata, keyed by ``database``'s datasette name, with the password
    gate added when ``INQUIRY_BOT_ADMIN_PASSWORD_HASH`` is set."""
    import yaml  # a datasette dependency: only needed when the admin extra is installed

    environ = dict(os.environ) if environ is None else environ
    metadata = yaml.safe_load(METADATA_PATH.read_text(encoding="utf-8"))
    databases = metadata["databases"]
    databases[database.stem] = databases.pop(METADATA_DATABASE_KEY)
    if environ.get(PASSWORD_HASH_ENV):
        metadata = with_password_gate(metadata)
    return metadata


def with_password_gate(metadata: dict[str, Any]) -> dict[str, Any]:
    """Require the ``admin`` login of datasette-auth-passwords for every page."""
    gated = copy.deepcopy(metadata)
    gated.setdefault("plugins", {})["datasette-auth-passwords"] = {
        f"{ADMIN_ACTOR}_password_hash": {"$env": PASSWORD_HASH_ENV}}
    gated["allow"] = {"id": ADMIN_ACTOR}
    return gated


def build_datasette(database: Path, environ: dict[str, str] | None = None) -> Any:
    """A configured ``Datasette`` instance (what ``admin`` serves; tests use its client)."""
    from datasette.app import Datasette

    return Datasette(files=[str(database)], metadata=load_metadata(database, environ),
                     settings=DATASETTE_SETTINGS)


def serve_command(settings: Settings, metadata_file: Path, host: str, port: int) -> list[str]:
    """The ``datasette serve`` command line for the configured database."""
    command = [sys.executable, "-m", "datasette", "serve", str(settings.database_path),
               "--metadata", str(metadata_file), "--host", host, "--port", str(port)]
    for name, value in DATASETTE_SETTINGS.items():
        command += ["--setting", name, _setting_text(value)]
    return command


def check_binding(host: str, environ: dict[str, str]) -> None:
    """Refuse to listen beyond loopback unless a password is required."""
    if _is_loopback(host):
        return
    if not environ.get(PASSWORD_HASH_ENV):
        raise ConfigError(f"admin.host: {host!r} is not loopback; set {PASSWORD_HASH_ENV} "
                          "(see README, 'Admin guide') to require a password first")
    if importlib.util.find_spec("datasette_auth_passwords") is None:
        raise DatasetteMissing("admin: datasette-auth-passwords is not installed "
                               "(pip install datasette-auth-passwords)")


def run_admin(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Replace this process with datasette serving the ticket database (until Ctrl-C).

    exec rather than a child process: signals from a terminal or systemd reach datasette
    itself, and no orphan keeps serving personal data after the parent is gone.
    """
    if importlib.util.find_spec("datasette") is None:
        raise DatasetteMissing("admin: datasette is not installed (pip install '.[admin]')")
    if not settings.database_path.exists():
        raise BotError(f"admin: no database at {settings.database_path} (run the bot first)")
    host = host or settings.admin.host
    port = settings.admin.port if port is None else port
    environ = dict(os.environ)
    check_binding(host, environ)
    metadata_file = write_metadata_file(settings.database_path,
                                        load_metadata(settings.database_path, environ))
    command = serve_command(settings, metadata_file, host, port)
    os.umask(0o077)  # should datasette be the one to create -wal/-shm, they stay owner-only
    os.execv(command[0], command)


def write_metadata_file(database: Path, metadata: dict[str, Any]) -> Path:
    """The launch-time metadata as JSON beside the database (rewritten at each launch)."""
    path = database.with_name(f"{database.stem}.datasette.json")
    path.write_text(json.dumps(metadata, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setting_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def cmd_admin(args: Any) -> int:
    """``inquiry-bot admin [--host H] [--port P]``: serve until Ctrl-C."""
    settings = load_config(args.config, require_secrets=False)
    host = args.host or settings.admin.host
    port = settings.admin.port if args.port is None else args.port
    print(f"datasette on http://{host}:{port}/ (read-only; Ctrl-C stops)", flush=True)
    run_admin(settings, host, port)
    return 0  # not reached: run_admin execs datasette


# -- data-protection commands ----------------------------------------------------------

def cmd_export(args: Any) -> int:
    """``inquiry-bot export REF``: the ticket's history as JSON on stdout."""
    with _store_for(args) as (store, _settings):
        data = audit.export_ticket(store, args.ref, _utcnow())
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_purge(args: Any) -> int:
    """``inquiry-bot purge [--dry-run]``: one ref per line of what is (or would be) redacted."""
    with _store_for(args) as (store, settings):
        report = audit.purge(store, settings, _utcnow(), dry_run=args.dry_run)
    for ref in report.refs:
        print(f"{ref}\t{'would redact' if report.dry_run else 'redacted'}")
    return 0


def cmd_forget(args: Any) -> int:
    """``inquiry-bot forget EMAIL [--force]``: refs redacted, one per line (no address)."""
    with _store_for(args) as (store, _settings):
        report = audit.forget(store, args.email, _utcnow(), force=args.force)
    for ref in report.refs:
        print(f"{ref}\tredacted{' (was open: closed)' if ref in report.closed_refs else ''}")
    return 0


@contextmanager
def _store_for(args: Any) -> Iterator[tuple[Store, Settings]]:
    settings = load_config(args.config, require_secrets=False)
    store = Store(settings.database_path)
    try:
        yield store, settings
    finally:
        store.close()


def _utcnow() -> datetime:
    return datetime.now(UTC)
