"""Helpers for integration tests: a config pointing at the loopback servers, sample mail,
running the CLI in-process or as a subprocess, and waiting on conditions."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailservers import PASSWORD

BOT = "contact@cijidas.jp"
STAFF_TOKEN_SECRET = "staff-token-secret-for-tests-42"  # read via TEST_STAFF_TOKEN_SECRET
REPO = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, imap, smtp_server, **sections: dict) -> Path:
    """A config.toml for the loopback servers; ``sections`` override/add keys."""
    base = {
        "bot": {"address": BOT},
        "mailbox": {"host": imap.host, "port": imap.port, "security": "none",
                    "username": BOT, "password_env": "TEST_IMAP_PASSWORD", "poll_seconds": 2,
                    "timeout_seconds": 10, "first_run_days": 0},  # 0: tests append, then start
        "smtp": {"host": smtp_server.host if smtp_server else "127.0.0.1",
                 "port": smtp_server.port if smtp_server else 1, "security": "none",
                 "timeout_seconds": 5},
        "storage": {"database": "state/tickets.db"},
        "staff": {"addresses": ["privacy@cijidas.jp"], "notify": ["privacy@cijidas.jp"]},
        "escalation": {"to": ["dpo@cijidas.jp"]},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    path = tmp_path / "config.toml"
    path.write_text("\n".join(_toml_section(n, v) for n, v in base.items()))
    return path


def _toml_section(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    for key, value in values.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def bot_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TEST_IMAP_PASSWORD"] = PASSWORD
    return env


def customer_mail(subject: str, body: str, sender: str = "customer@example.com",
                  name: str = "Nguyen Van A", headers: dict[str, str] | None = None,
                  message_id: str | None = None) -> bytes:
    """A plain UTF-8 mail from a customer to the bot."""
    headers = dict(headers or {})
    msg = EmailMessage()
    msg["From"] = headers.pop("From", f"{name} <{sender}>")
    msg["To"] = BOT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    for key, value in headers.items():
        msg[key] = value
    msg.set_content(body)
    return bytes(msg)


def run_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m bot --config CONFIG ARGS`` in a subprocess (like an operator would)."""
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args],
                          capture_output=True, text=True, env=bot_env(), timeout=timeout,
                          cwd=REPO)


def start_worker(config: Path, log_path: Path) -> subprocess.Popen:
    """``run`` in the background; stderr goes to ``log_path``."""
    log = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"],
                            stdout=subprocess.DEVNULL, stderr=log, env=bot_env(), cwd=REPO)


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               interval: float = 0.05) -> object:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the bot's database like an admin would (a separate connection)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def scalar(db: Path, sql: str, params: tuple = ()) -> object:
    rows = query(db, sql, params)
    return rows[0][0] if rows else None


@contextmanager
def admin_server(config: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`inquiry-bot admin` started as an operator would, on a free loopback port; yields
    (process, base URL) once datasette answers. The process's output is piped (stdout and
    stderr together): read it with ``proc.communicate()`` after the block."""
    from bot.ops.devmail import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "admin",
                             "--port", str(port)], cwd=REPO, env=bot_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{base}/-/versions.json"), 30, "datasette to answer")
        yield proc, base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False
