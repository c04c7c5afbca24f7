"""Datasette plugin shipped with the inquiry bot (loaded with ``--plugins-dir admin/plugins``).

Three guards, whatever page, JSON, CSV or SQL is asked for:

- **Host allow-list** (DNS rebinding): a web page on some other site can make the browser
  resolve its own name to 127.0.0.1 and read the admin view from there; such requests carry
  the other site's name in ``Host``. Only the names in the plugin config ``allowed_hosts``
  (loopback names, plus the host of ``admin.base_url``) are answered; anything else gets
  421 Misdirected Request.
- **No blob downloads**: ``.blob`` URLs, ``_blob_column`` and ``/-/blob`` answer 403.
- **Secret columns read as NULL**: a SQLite authorizer on every connection datasette opens
  blanks ``outbox.raw`` (the mail as sent, possibly with an unsent code) and every column
  whose name says hash, token, secret or password (e.g. ``verifications.code_hash``) - in
  table pages, views, canned queries and hand-written SQL alike.
"""

from __future__ import annotations

import re
import sqlite3

from datasette import hookimpl

PLUGIN = "inquiry-bot-guard"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SECRET_COLUMN = re.compile(r"(hash|token|secret|password)", re.IGNORECASE)
SECRET_COLUMNS = {("outbox", "raw")}
# Virtual tables that would read the file's pages (or other files) past the authorizer.
FORBIDDEN_TABLES = {"sqlite_dbpage"}
_BLOB = re.compile(r"(\.blob$|/-/blob)")


def _config(datasette) -> dict:
    return datasette.plugin_config(PLUGIN) or {}


def host_of(value: str) -> str:
    """``Host`` header -> the bare lower-case name: port, IPv6 brackets and a trailing dot
    removed."""
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def refusal(scope: dict, allowed: set[str]) -> tuple[int, str] | None:
    """``(status, text)`` when this request must not be answered, else None."""
    headers = dict(scope.get("headers") or [])
    host = host_of(headers.get(b"host", b"").decode("latin-1"))
    if host not in allowed:
        return 421, "Misdirected request: this admin view answers only to its own host name"
    query = scope.get("query_string", b"").decode("latin-1")
    if _BLOB.search(scope.get("path", "")) or "_blob_column" in query:
        return 403, "Forbidden: downloading stored mail is switched off"
    return None


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def guarded(scope, receive, send):
            if scope.get("type") in ("http", "websocket"):
                allowed = {host_of(h) for h in _config(datasette).get(
                    "allowed_hosts", LOOPBACK_HOSTS)}
                refused = refusal(scope, allowed)
                if refused is not None:
                    await _plain(send, *refused)
                    return
            await app(scope, receive, send)
        return guarded
    return wrap


async def _plain(send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def authorize(action, table, column, _database, _trigger):
    """SQLite authorizer: secret columns read as NULL, page-reading tables refused."""
    if action == sqlite3.SQLITE_READ and table and column and (
            (table.lower(), column.lower()) in SECRET_COLUMNS or SECRET_COLUMN.search(column)):
        return sqlite3.SQLITE_IGNORE
    if table and table.lower() in FORBIDDEN_TABLES:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@hookimpl
def prepare_connection(conn):
    conn.set_authorizer(authorize)
