"""Datasette on the ticket database: read-only, on loopback unless a password is required.

The repository's datasette plugin (``admin/plugins/inquiry_bot_guard.py``) answers only to
the allowed host names (loopback names and the host of ``admin.base_url``: no DNS
rebinding), refuses blob downloads, and makes ``outbox.raw`` and every hash/token column
read as NULL in any page or query. CSV streaming of whole tables is off.

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
from urllib.parse import urlsplit

from bot.adapters.store import Store
from bot.config import PACKAGE_ROOT, Settings, load_config
from bot.errors import BotError, ConfigError
from bot.flows import audit

METADATA_PATH = PACKAGE_ROOT / "admin" / "metadata.yml"
PLUGINS_DIR = PACKAGE_ROOT / "admin" / "plugins"
# The dossier, dashboard and page overrides (admin/templates), their CSS and chart script
# (admin/static, served under /inquiry-bot/), and the plugin that shows company time.
TEMPLATES_DIR = PACKAGE_ROOT / "admin" / "templates"
STATIC_DIR = PACKAGE_ROOT / "admin" / "static"
STATIC_MOUNT = "inquiry-bot"
VIEWS_PLUGIN = "inquiry-bot-views"
GUARD_PLUGIN = "inquiry-bot-guard"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
METADATA_DATABASE_KEY = "tickets"
PASSWORD_HASH_ENV = "INQUIRY_BOT_ADMIN_PASSWORD_HASH"
ADMIN_ACTOR = "admin"
# allow_download and allow_csv_stream off: nobody takes the whole file (or a whole table)
# of personal data home with one click.
DATASETTE_SETTINGS = {"allow_download": False, "allow_csv_stream": False,
                      "sql_time_limit_ms": 3000, "facet_time_limit_ms": 500,
                      "default_page_size": 50}


class DatasetteMissing(BotError):
    """The optional ``admin`` extra is not installed."""


def load_metadata(database: Path, environ: dict[str, str] | None = None,
                  hosts: list[str] | None = None,
                  views: dict[str, str] | None = None) -> dict[str, Any]:
    """The repository's metadata, keyed by ``database``'s datasette name, with the guard
    plugin's host allow-list (``hosts``, default: loopback names), the views plugin's
    settings (``views``: see :func:`views_config`) and the password gate added when
    ``INQUIRY_BOT_ADMIN_PASSWORD_HASH`` is set (on loopback too)."""
    import yaml  # a datasette dependency: only needed when the admin extra is installed

    environ = dict(os.environ) if environ is None else environ
    metadata = yaml.safe_load(METADATA_PATH.read_text(encoding="utf-8"))
    databases = metadata["databases"]
    databases[database.stem] = databases.pop(METADATA_DATABASE_KEY)
    metadata.setdefault("plugins", {})[GUARD_PLUGIN] = {
        "allowed_hosts": list(hosts or LOOPBACK_NAMES)}
    if views:
        metadata["plugins"][VIEWS_PLUGIN] = dict(views)
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


def build_datasette(database: Path, environ: dict[str, str] | None = None,
                    hosts: list[str] | None = None,
                    views: dict[str, str] | None = None) -> Any:
    """A configured ``Datasette`` instance (what ``admin`` serves; tests use its client)."""
    from datasette.app import Datasette

    return Datasette(files=[str(database)],
                     metadata=load_metadata(database, environ, hosts, views),
                     settings=DATASETTE_SETTINGS, plugins_dir=str(PLUGINS_DIR),
                     template_dir=str(TEMPLATES_DIR),
                     static_mounts=[(STATIC_MOUNT, str(STATIC_DIR))])


def views_config(settings: Settings) -> dict[str, str]:
    """Settings of the views plugin: the company time zone (times are shown in it next to
    UTC) and the config file (for the export command the ticket dossier shows)."""
    return {"timezone": settings.bot.timezone, "config": str(settings.config_path)}


def allowed_hosts(settings: Settings, host: str) -> list[str]:
    """Host names the admin view answers to: loopback names, the host of
    ``admin.base_url``, and a bind address that is a concrete non-loopback host."""
    names = list(LOOPBACK_NAMES)
    base = urlsplit(settings.admin.base_url).hostname if settings.admin.base_url else None
    for name in (base, host):
        if name and name not in ("0.0.0.0", "::") and name.lower() not in names:
            names.append(name.lower())
    return names


def serve_command(settings: Settings, metadata_file: Path, host: str, port: int) -> list[str]:
    """The ``datasette serve`` command line for the configured database."""
    command = [sys.executable, "-m", "datasette", "serve", str(settings.database_path),
               "--metadata", str(metadata_file), "--plugins-dir", str(PLUGINS_DIR),
               "--template-dir", str(TEMPLATES_DIR),
               "--static", f"{STATIC_MOUNT}:{STATIC_DIR}",
               "--host", host, "--port", str(port)]
    for name, value in DATASETTE_SETTINGS.items():
        command += ["--setting", name, _setting_text(value)]
    return command


def check_binding(host: str, environ: dict[str, str], require_password: bool = False) -> None:
    """Refuse to listen beyond loopback (or at all, with ``admin.require_password``) unless
    a password is required; a password needs its plugin."""
    if not environ.get(PASSWORD_HASH_ENV):
        if require_password:
            raise ConfigError(f"admin.require_password: set {PASSWORD_HASH_ENV} (see README, "
                              "'Admin guide')")
        if _is_loopback(host):
            return
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
    check_binding(host, environ, settings.admin.require_password)
    metadata_file = write_metadata_file(
        settings.database_path,
        load_metadata(settings.database_path, environ, allowed_hosts(settings, host),
                      views_config(settings)))
    command = serve_command(settings, metadata_file, host, port)
    os.umask(0o077)  # should datasette be the one to create -wal/-shm, they stay owner-only
    os.execv(command[0], command)


def write_metadata_file(database: Path, metadata: dict[str, Any]) -> Path:
    """The launch-time metadata as JSON beside the database (rewritten at each launch)."""
    path = database.with_name(f"{database.stem}.datasette.json")
    # Owner-only like the database beside it, whatever the caller's umask.
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(metadata, ensure_ascii=False, indent=1))
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
    # Whatever can refuse is tried before the URL is announced (run_admin checks again).
    if importlib.util.find_spec("datasette") is None:
        raise DatasetteMissing("admin: datasette is not installed (pip install '.[admin]')")
    if not settings.database_path.exists():
        raise BotError(f"admin: no database at {settings.database_path} (run the bot first)")
    check_binding(host, dict(os.environ))
    import socket

    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise BotError(f"admin: cannot listen on {host}:{port} ({exc.strerror}); is it "
                       "already running? Choose another port with --port") from None
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
    """``inquiry-bot forget EMAIL [--force] [--vacuum]``: refs redacted, one per line (no
    address); ``--vacuum`` also rebuilds the database file."""
    with _store_for(args) as (store, _settings):
        report = audit.forget(store, args.email, _utcnow(), force=args.force,
                              vacuum=getattr(args, "vacuum", False))
    for ref in report.refs:
        print(f"{ref}\tredacted{' (was open: closed)' if ref in report.closed_refs else ''}")
    if not report.wal_truncated:
        print("warning: a reader kept the write-ahead log busy; run forget again (or "
              "--vacuum) once it is idle", file=sys.stderr)
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
