"""The datasette admin view: metadata, SQL views and canned queries against a database the
real pipeline filled, read-only serving on loopback, and reading while the bot writes."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from botenv import BOT, REPO, admin_server, bot_env, customer_mail, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.errors import ConfigError
from bot.ops import admin
from bot.ops.cli import main

pytestmark = pytest.mark.integration

CUSTOMERS = {
    "alice@example.com": ("Please delete my account",
                          "Hello, I want you to delete my account and all my personal data.\n"
                          "Thanks, Alice"),
    "binh@example.vn": ("Câu hỏi về thông tin cá nhân",
                        "Xin chào, tôi muốn hỏi công ty sử dụng thông tin cá nhân của tôi như "
                        "thế nào? Cảm ơn."),
    "carol@example.com": ("Complaint about spam",
                          "I am very unhappy: you shared my email address with advertisers "
                          "without my consent. This is unacceptable and I want to complain."),
    "dave@example.com": ("hello", "ok"),
}
CANNED = ("open_tickets_by_due_date", "overdue", "awaiting_verification", "needs_review",
          "sla_compliance", "tickets_per_language", "suppressed_mail", "quarantined",
          "ignored_by_content",
          "conversation", "requests_not_completed", "ticket", "dashboard", "mail_per_week",
          "response_times", "open_by_category", "triage_corrections")


@pytest.fixture
def filled_db(tmp_path, imap_server, smtp_server, monkeypatch) -> Path:
    """Four tickets and one out-of-office through IMAP -> `once`; then staff-side facts:
    Binh's question answered on time, Carol's complaint overdue."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    config = write_config(tmp_path, imap_server, smtp_server)
    for sender, (subject, body) in CUSTOMERS.items():
        imap_server.append(BOT, customer_mail(subject, body, sender=sender, name="Customer"))
    imap_server.append(BOT, customer_mail("Out of office", "I am away until Monday.",
                                          sender="erin@example.com",
                                          headers={"Auto-Submitted": "auto-replied"}))
    assert main(["--config", str(config), "once"]) == 0
    db = tmp_path / "state" / "tickets.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tickets SET status = 'answered', first_response_at = created_at "
                     "WHERE customer_email = 'binh@example.vn'")
        conn.execute("UPDATE tickets SET due_at = '2020-01-01T00:00:00Z' "
                     "WHERE customer_email = 'carol@example.com'")
    return db


def fetch_json(ds, path: str) -> dict:
    async def get() -> dict:
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        return response.json()
    return asyncio.run(get())


def canned(ds, db: Path, name: str, params: str = "") -> tuple[list[str], list[dict]]:
    data = fetch_json(ds, f"/{db.stem}/{name}.json?_shape=objects{params}")
    assert data["ok"], data.get("error")
    return data["columns"], data["rows"]


def test_every_canned_query_against_a_pipeline_database(filled_db):
    ds = admin.build_datasette(filled_db, environ={})
    queries = fetch_json(ds, f"/{filled_db.stem}.json")["queries"]
    assert sorted(q["name"] for q in queries) == sorted(CANNED)

    columns, rows = canned(ds, filled_db, "open_tickets_by_due_date")
    assert columns[:4] == ["ref", "status", "category", "language"]
    assert {r["customer_email"] for r in rows} == {  # Binh's question is answered
        "carol@example.com", "alice@example.com", "dave@example.com"}
    assert [r["due_at"] for r in rows] == sorted(r["due_at"] for r in rows)
    assert [(r["customer_email"], r["overdue"]) for r in rows][0] == ("carol@example.com", 1)
    assert [r["overdue"] for r in rows[1:]] == [0, 0]

    _, rows = canned(ds, filled_db, "overdue")
    assert [(r["category"], r["customer_email"]) for r in rows] == [
        ("complaint", "carol@example.com")]
    assert rows[0]["hours_overdue"] > 24

    _, rows = canned(ds, filled_db, "awaiting_verification")
    assert [(r["category"], r["attempts_left"]) for r in rows] == [("deletion", 5)]
    assert rows[0]["code_expires_at"] > rows[0]["created_at"]

    _, rows = canned(ds, filled_db, "needs_review")
    assert [r["subject"] for r in rows] == ["hello"]

    columns, rows = canned(ds, filled_db, "sla_compliance")
    assert columns == ["month", "category", "tickets", "answered_on_time", "answered_late",
                       "open", "closed_without_response"]
    by_category = {r["category"]: r for r in rows}
    assert by_category["question"]["answered_on_time"] == 1
    assert by_category["question"]["open"] == 1  # dave's unclear mail
    assert by_category["complaint"]["open"] == 1
    assert sum(r["tickets"] for r in rows) == 4

    _, rows = canned(ds, filled_db, "tickets_per_language")
    assert {r["language"]: r["tickets"] for r in rows} == {"en": 3, "vi": 1}

    _, rows = canned(ds, filled_db, "suppressed_mail")
    assert [(r["reason"], r["messages"]) for r in rows] == [("auto-submitted", 1)]

    ref = Store(filled_db).ticket_by_ref("CJD-000001")["ref"]
    columns, rows = canned(ds, filled_db, "conversation", f"&ref={ref}")
    assert columns == ["created_at", "direction", "kind", "from_addr", "to_addrs", "subject",
                       "body_text", "attachments"]
    assert [(r["direction"], r["kind"]) for r in rows] == [
        ("in", "customer"), ("out", "acknowledgement"), ("out", "notification")]
    assert "delete my account" in rows[0]["body_text"]


def test_ticket_pages_render_with_metadata(filled_db):
    ds = admin.build_datasette(filled_db, environ={})

    async def pages() -> tuple[str, str, int]:
        table = await ds.client.get(f"/{filled_db.stem}/tickets")
        row = await ds.client.get(f"/{filled_db.stem}/tickets/1")
        download = await ds.client.get(f"/{filled_db.stem}.db")
        return table.text, row.text, download.status_code

    table, row, download = asyncio.run(pages())
    assert "One row per customer request" in table      # table description
    assert 'class="facet-info' in table and "verification_status" in table  # facets
    assert "CJD-000001" in row and "alice@example.com" in row
    assert download == 403  # allow_download is off: no one-click copy of the whole file


def test_metadata_describes_every_visible_table_and_column(tmp_path):
    db = tmp_path / "tickets.db"
    Store(db).close()
    tables = admin.load_metadata(db, environ={})["databases"]["tickets"]["tables"]
    with sqlite3.connect(db) as conn:
        schema = {name: (kind, [r[1] for r in conn.execute(f"PRAGMA table_info([{name}])")])
                  for name, kind in conn.execute(
                      "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')")}
    visible = {n: v for n, v in schema.items() if not tables.get(n, {}).get("hidden")}
    # A view's column may borrow the description of the table column it shows.
    table_columns = {c for n, (kind, _) in visible.items() if kind == "table"
                     for c in tables.get(n, {}).get("columns", {})}
    missing = [n for n in visible if "description" not in tables.get(n, {})]
    for name, (kind, columns) in visible.items():
        described = set(tables.get(name, {}).get("columns", {}))
        if kind == "view":
            described |= table_columns
        missing += [f"{name}.{c}" for c in columns if c not in described]
    assert missing == [], missing


def test_metadata_key_follows_the_database_file_name(tmp_path):
    metadata = admin.load_metadata(tmp_path / "bot.db", environ={})
    assert list(metadata["databases"]) == ["bot"]
    assert "allow" not in metadata
    assert list(metadata["plugins"]) == [admin.GUARD_PLUGIN]  # the guard, no password gate


def test_password_gate_when_a_hash_is_configured(tmp_path):
    metadata = admin.load_metadata(tmp_path / "tickets.db",
                                   environ={admin.PASSWORD_HASH_ENV: "pbkdf2_sha256$x"})
    assert metadata["allow"] == {"id": "admin"}
    assert metadata["plugins"]["datasette-auth-passwords"] == {
        "admin_password_hash": {"$env": admin.PASSWORD_HASH_ENV}}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_refuses_non_loopback_without_password(host):
    with pytest.raises(ConfigError, match="admin.host"):
        admin.check_binding(host, {})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_password(host):
    admin.check_binding(host, {})


def test_serve_command_is_read_only_and_local(tmp_path):
    from bot.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[bot]\naddress = "contact@cijidas.jp"\n[mailbox]\nhost = "h"\n'
                      'username = "u"\n[smtp]\nhost = "h"\n')
    settings = load_settings(config, environ={}, require_secrets=False)
    command = admin.serve_command(settings, tmp_path / "m.json", settings.admin.host,
                                  settings.admin.port)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "8001"
    # -i/--immutable would read a live WAL database as if it never changed.
    assert "-i" not in command and "--immutable" not in command
    assert "allow_download" in command


@contextmanager
def serving_admin(config: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`inquiry-bot admin` as an operator starts it; it announces its URL."""
    with admin_server(config) as (proc, base):
        yield proc, base
    output = proc.communicate(timeout=20)[0].decode(errors="replace")
    assert f"{base}/" in output


def test_admin_command_serves_live_data_read_only(filled_db, tmp_path):
    """Loopback, opened mode=ro, and it sees the worker's new commits."""
    with serving_admin(tmp_path / "config.toml") as (proc, base):
        table = f"{base}/{filled_db.stem}/tickets.json?_shape=objects"
        assert _get_json(table)["filtered_table_rows_count"] == 4
        assert _database_fds_writable(proc.pid, filled_db) == [False]  # opened mode=ro
        with sqlite3.connect(filled_db) as conn:  # the worker writes on; datasette sees it
            conn.execute("UPDATE tickets SET status = 'closed' WHERE id = 1")
        assert _get_json(f"{table}&id=1")["rows"][0]["status"] == "closed"
        assert oct(filled_db.stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_ticket_page_in_headless_chromium(filled_db, tmp_path):
    with serving_admin(tmp_path / "config.toml") as (_proc, base):
        page = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
             f"{base}/{filled_db.stem}/tickets/1"],
            capture_output=True, text=True, timeout=120)
    assert "CJD-000001" in page.stdout
    assert "alice@example.com" in page.stdout
    assert "Links from other tables" in page.stdout
    assert f'href="/{filled_db.stem}/messages?ticket_id=1"' in page.stdout  # its mail


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def _database_fds_writable(pid: int, database: Path) -> list[bool]:
    """For each descriptor datasette (``pid``) holds on ``database``: is it writable?"""
    import psutil

    return sorted({handle.mode != "r" for handle in psutil.Process(pid).open_files()
                   if Path(handle.path) == database.resolve()})


WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, "tests")
from botenv import customer_mail
from bot.config import load_settings
from bot.models import MessageSource
from bot.flows.service import Service
from bot.adapters.store import Store

settings = load_settings(Path(sys.argv[1]), require_secrets=False)
service = Service(Store(settings.database_path), settings)
for uid in range(1, int(sys.argv[2]) + 1):
    raw = customer_mail("Question about my data", f"What data do you keep about me? #{uid}",
                        sender=f"customer{uid}@example.com")
    service.handle(MessageSource("INBOX", 1, uid), raw, datetime.now(UTC))
"""


@pytest.mark.slow
def test_reading_never_blocks_the_writer(tmp_path):
    """datasette queries in a loop while another process writes 1,000 tickets through the
    worker's per-message path (Service.handle: one transaction per mail)."""
    tickets = 1000
    config = write_config(tmp_path, SimpleNamespace(host="127.0.0.1", port=1), None)
    db = tmp_path / "state" / "tickets.db"
    Store(db).close()  # migrated before both sides start
    ds = admin.build_datasette(db, environ={})
    paths = [f"/{db.stem}/{name}.json?_shape=objects&ref=CJD-000001" for name in CANNED] + [
        f"/{db.stem}/tickets.json?_sort_desc=created_at", f"/{db.stem}/tickets/1"]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(config), str(tickets)],
                              cwd=REPO, env=bot_env(), stderr=subprocess.PIPE)

    async def read_while_writing() -> tuple[int, list[str]]:
        reads, failures = 0, []
        while writer.poll() is None:
            for path in paths:
                response = await ds.client.get(path)
                reads += 1
                expected = (200, 404) if path.endswith("/1") else (200,)  # 404: not yet
                if response.status_code not in expected or "locked" in response.text:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")
        return reads, failures

    reads, failures = asyncio.run(read_while_writing())
    stderr = writer.stderr.read().decode(errors="replace") if writer.stderr else ""
    assert writer.returncode == 0, stderr[-2000:]
    assert "locked" not in stderr
    assert failures == []
    assert reads > len(paths)  # the reader really ran alongside the writer
    count = fetch_json(ds, f"/{db.stem}/tickets.json?_size=1")["filtered_table_rows_count"]
    assert count == tickets  # read-only, yet it sees every commit


# -- the guard plugin: Host allow-list, no blobs, secret columns withheld (issue 14) -------

RAW_MARKER = "RAWMARKER-verify-code-48151623"
HASH_MARKER = "HASHMARKER0123456789abcdef"
TOKEN_MARKER = "TOKENMARKER-a1b2c3"


@pytest.fixture
def secrets_db(tmp_path) -> Path:
    """A ticket with an unsent mail (raw bytes), a code hash and a token-like column."""
    db = tmp_path / "tickets.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO tickets (ref, status, category, language, created_at, "
                     "due_at, customer_email) VALUES ('CJD-000001', 'open', 'deletion', 'en', "
                     "'2026-11-24T03:00:00Z', '2026-12-04T14:59:59Z', 'alice@example.com')")
        conn.execute("INSERT INTO outbox (message_id, ticket_id, kind, recipients, raw, "
                     "sensitive, status, attempts, created_at, next_attempt_at) VALUES "
                     "('<m@cijidas.jp>', 1, 'acknowledgement', '[\"alice@example.com\"]', ?, 1, "
                     "'pending', 0, '2026-11-24T03:00:00Z', '2026-11-24T03:00:00Z')",
                     (f"Subject: {RAW_MARKER}\r\n\r\n{RAW_MARKER}\r\n".encode(),))
        conn.execute("INSERT INTO verifications (ticket_id, code_hash, expires_at, "
                     "attempts_left, created_at) VALUES (1, ?, '2026-12-01T03:00:00Z', 5, "
                     "'2026-11-24T03:00:00Z')", (HASH_MARKER,))
        conn.execute("CREATE TABLE staff_links (id INTEGER PRIMARY KEY, reply_token TEXT)")
        conn.execute("INSERT INTO staff_links (reply_token) VALUES (?)", (TOKEN_MARKER,))
    return db


def get(ds, path: str, host: str | None = None):
    async def fetch():
        headers = {"host": host} if host is not None else {}
        return await ds.client.get(path, headers=headers)
    return asyncio.run(fetch())


@pytest.mark.parametrize(("host", "status"), [
    ("localhost", 200), ("127.0.0.1:8001", 200), ("[::1]:8001", 200), ("LOCALHOST.", 200),
    ("admin.cijidas.jp", 200),  # the host of admin.base_url
    ("evil.example", 421), ("evil.example:8001", 421), ("127.0.0.1.evil.example", 421),
    ("localhost.evil.example", 421), ("", 421)])
def test_only_allowed_host_names_are_answered(secrets_db, host, status):
    """DNS rebinding: a page on evil.example resolving its name to 127.0.0.1 sends
    ``Host: evil.example``; the admin view does not answer it."""
    hosts = admin.allowed_hosts(_settings(secrets_db.parent, "http://admin.cijidas.jp:8001"),
                                "127.0.0.1")
    ds = admin.build_datasette(secrets_db, environ={}, hosts=hosts)
    for path in ("/", f"/{secrets_db.stem}/tickets.json", f"/{secrets_db.stem}/tickets"):
        response = get(ds, path, host=host)
        assert response.status_code == status, (path, response.text[:200])
        if status != 200:
            assert "alice@example.com" not in response.text


def test_allowed_hosts_follow_the_config(tmp_path):
    assert admin.allowed_hosts(_settings(tmp_path, ""), "127.0.0.1") == [
        "localhost", "127.0.0.1", "::1"]
    assert admin.allowed_hosts(_settings(tmp_path, "https://admin.cijidas.jp/"), "0.0.0.0") \
        == ["localhost", "127.0.0.1", "::1", "admin.cijidas.jp"]


@pytest.mark.parametrize("path", [
    "/{db}/outbox/1.blob?_blob_column=raw", "/{db}/outbox/1.blob",
    "/{db}/outbox/1.json?_blob_column=raw", "/-/blob/{db}/outbox/raw/1",
    "/{db}.blob?sql=select+raw+from+outbox&_blob_column=raw"])
def test_blob_downloads_are_refused(secrets_db, path):
    ds = admin.build_datasette(secrets_db, environ={})
    response = get(ds, path.format(db=secrets_db.stem))
    assert response.status_code == 403
    assert RAW_MARKER not in response.text


def test_secret_columns_are_in_no_page_or_json(secrets_db):
    ds = admin.build_datasette(secrets_db, environ={})
    db = secrets_db.stem
    paths = [f"/{db}/outbox", f"/{db}/outbox.json", f"/{db}/outbox/1", f"/{db}/outbox/1.json",
             f"/{db}/outbox.json?_shape=objects&_col=raw", f"/{db}/verifications",
             f"/{db}/verifications.json", f"/{db}/verifications/1.json",
             f"/{db}/awaiting_verification.json", f"/{db}/staff_links.json",
             f"/{db}.json?sql=select+raw,+hex(raw),+cast(raw+as+text)+from+outbox",
             f"/{db}.json?sql=select+*+from+verifications",
             f"/{db}.json?sql=select+code_hash+from+verifications+where+code_hash+like+'HASH%25'",
             f"/{db}.json?sql=select+reply_token+from+staff_links",
             f"/{db}/outbox.csv", f"/{db}/verifications.csv"]
    for path in paths:
        response = get(ds, path)
        assert response.status_code in (200, 400), (path, response.status_code)
        for marker in (RAW_MARKER, HASH_MARKER, TOKEN_MARKER):
            assert marker not in response.text, (path, marker)
        assert RAW_MARKER.encode().hex().upper() not in response.text, path
    rows = get(ds, f"/{db}/outbox.json?_shape=objects").json()["rows"]
    assert rows[0]["raw"] is None and rows[0]["status"] == "pending"  # the row itself is shown
    rows = get(ds, f"/{db}/verifications.json?_shape=objects").json()["rows"]
    assert rows[0]["code_hash"] is None and rows[0]["attempts_left"] == 5


def test_csv_streaming_is_off(secrets_db):
    ds = admin.build_datasette(secrets_db, environ={})
    assert get(ds, "/-/settings.json").json()["allow_csv_stream"] is False
    assert get(ds, f"/{secrets_db.stem}/tickets.csv?_stream=on").status_code == 400


def test_password_gate_on_loopback(secrets_db):
    """With the hash set, every page needs the admin login, on loopback too."""
    ds = admin.build_datasette(secrets_db, environ={admin.PASSWORD_HASH_ENV: "pbkdf2_sha256$x"})
    db = secrets_db.stem
    for path in (f"/{db}/tickets", f"/{db}/tickets.json", f"/{db}/open_tickets_by_due_date"):
        assert get(ds, path).status_code == 403, path
    cookie = ds.sign({"a": {"id": admin.ADMIN_ACTOR}}, "actor")

    async def as_admin():
        return await ds.client.get(f"/{db}/tickets.json", cookies={"ds_actor": cookie})
    assert asyncio.run(as_admin()).status_code == 200


def test_require_password_refuses_to_start_without_a_hash():
    with pytest.raises(ConfigError, match="admin.require_password"):
        admin.check_binding("127.0.0.1", {}, require_password=True)


def test_serve_command_loads_the_guard(tmp_path):
    command = admin.serve_command(_settings(tmp_path, ""), tmp_path / "m.json", "127.0.0.1",
                                  8001)
    assert command[command.index("--plugins-dir") + 1] == str(admin.PLUGINS_DIR)
    assert command[command.index("allow_csv_stream") + 1] == "off"


def _settings(folder: Path, base_url: str):
    from bot.config import settings_from_dict

    return settings_from_dict(
        {"bot": {"address": BOT}, "mailbox": {"host": "h", "username": "u"},
         "smtp": {"host": "h"}, "admin": {"base_url": base_url}},
        folder / "config.toml", {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
