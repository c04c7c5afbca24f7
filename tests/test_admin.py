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
from botenv import BOT, REPO, bot_env, customer_mail, wait_until, write_config
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
          "sla_compliance", "tickets_per_language", "suppressed_mail", "conversation")


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
    assert "allow" not in metadata and "plugins" not in metadata


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
    """`inquiry-bot admin` started as an operator would; yields (process, base URL)."""
    from bot.ops.devmail import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "admin",
                             "--port", str(port)], cwd=REPO, env=bot_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get_json(f"{base}/-/versions.json"), 30, "datasette to answer")
        yield proc, base
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode(errors="replace")
    assert f"http://127.0.0.1:{port}/" in output


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
