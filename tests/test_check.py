"""``inquiry-bot check`` against the real loopback servers (Dovecot or pymap, aiosmtpd)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botenv import bot_env, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.config import DEFAULT_TEMPLATES_DIR, load_settings
from bot.ops.check import exit_code, run_checks
from bot.ops.devmail import SmtpSink

SMTP_USER = "contact@cijidas.jp"
SMTP_PASSWORD = "smtp-secret"


@pytest.fixture
def auth_smtp() -> Iterator[SmtpSink]:
    """An SMTP server that requires AUTH (like a real submission port)."""
    sink = SmtpSink(credentials={SMTP_USER: SMTP_PASSWORD})
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def check(config: Path, imap_password: str | None = PASSWORD,
          smtp_password: str | None = SMTP_PASSWORD) -> tuple[int, dict[str, str]]:
    """Run every check; return the CLI's exit code and ``{name: "ok|FAIL detail"}``."""
    environ = {"TEST_IMAP_PASSWORD": imap_password, "TEST_SMTP_PASSWORD": smtp_password}
    findings = run_checks(config, {k: v for k, v in environ.items() if v is not None})
    return exit_code(findings), {f.name: f"{'ok' if f.ok else 'FAIL'} {f.detail}"
                                 for f in findings}


def auth_config(tmp_path: Path, imap, sink: SmtpSink, **sections: dict) -> Path:
    """A config for ``imap`` and the AUTH-requiring ``sink``; ``sections`` override keys."""
    smtp_section = {"username": SMTP_USER, "password_env": "TEST_SMTP_PASSWORD",
                    **sections.pop("smtp", {})}
    return write_config(tmp_path, imap, sink, smtp=smtp_section, **sections)


def test_a_working_setup_passes_every_check(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)
    Store(load_settings(config, {"TEST_IMAP_PASSWORD": "x", "TEST_SMTP_PASSWORD": "x"})
          .database_path).close()  # an existing, migrated database

    code, checks = check(config)

    assert code == 0, checks
    assert set(checks) == {"config", "secrets", "imap connect", "imap login", "imap folder",
                           "imap idle", "smtp connect", "smtp login", "database", "templates"}
    assert all(line.startswith("ok ") for line in checks.values()), checks
    assert "is current" in checks["database"]
    assert auth_smtp.received == []  # a check never sends mail


def test_wrong_imap_password_names_the_variable(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)

    code, checks = check(config, imap_password="wrong")

    assert code == 1
    assert checks["imap login"].startswith("FAIL")
    assert "mailbox.username" in checks["imap login"]
    assert "$TEST_IMAP_PASSWORD" in checks["imap login"]
    assert checks["smtp login"].startswith("ok")


def test_wrong_smtp_password_names_the_variable(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)

    code, checks = check(config, smtp_password="wrong")

    assert code == 1
    assert checks["smtp login"].startswith("FAIL")
    assert "$TEST_SMTP_PASSWORD" in checks["smtp login"]
    assert checks["imap login"].startswith("ok")


def test_closed_ports_say_which_keys_to_check(tmp_path, imap_server, auth_smtp, free_port):
    config = auth_config(tmp_path, imap_server, auth_smtp, mailbox={"port": free_port},
                         smtp={"port": free_port})

    code, checks = check(config)

    assert code == 1
    assert "connection refused" in checks["imap connect"]
    assert "mailbox.port" in checks["imap connect"]
    assert "connection refused" in checks["smtp connect"]
    assert "smtp.port" in checks["smtp connect"]
    assert "imap login" not in checks  # nothing to log in to


def test_missing_folder_lists_the_existing_ones(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp, mailbox={"folder": "Privacy"})

    code, checks = check(config)

    assert code == 1
    assert checks["imap folder"].startswith("FAIL")
    assert "'Privacy' does not exist" in checks["imap folder"]
    assert "INBOX" in checks["imap folder"]


def test_missing_secret_is_reported_not_crashed(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)

    code, checks = check(config, smtp_password=None)

    assert code == 1
    assert "$TEST_SMTP_PASSWORD (smtp.password_env)" in checks["secrets"]
    assert checks["smtp login"] == "FAIL skipped: no password (see secrets)"
    assert checks["imap login"].startswith("ok")


def test_cli_prints_the_report_and_exits_0(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)
    env = {**bot_env(), "TEST_SMTP_PASSWORD": SMTP_PASSWORD}

    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "check"],
                            capture_output=True, text=True, env=env, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert SMTP_PASSWORD not in result.stdout + result.stderr  # secrets never printed


def test_bad_config_exits_2_and_names_the_key(tmp_path, imap_server):
    config = write_config(tmp_path, imap_server, None, mailbox={"port": 99999})

    code, checks = check(config)

    assert code == 2
    assert checks["config"].startswith("FAIL mailbox.port: must be 1-65535")


def test_missing_and_broken_templates_are_named(tmp_path, imap_server, auth_smtp):
    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, templates)
    (templates / "vi" / "ack_deletion.j2").unlink()
    config = auth_config(tmp_path, imap_server, auth_smtp,
                         bot={"templates_dir": str(templates)})

    code, checks = check(config)
    assert code == 1
    assert checks["templates"] == f"FAIL missing in {templates}: vi/ack_deletion.j2"

    shutil.copy(templates / "en" / "ack_deletion.j2", templates / "vi" / "ack_deletion.j2")
    (templates / "en" / "ack_question.j2").write_text("{% if %}")
    code, checks = check(config)
    assert code == 1
    assert "en/ack_question.j2 line 1" in checks["templates"]


def test_database_readable_by_others_must_be_fixed(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)
    database = tmp_path / "state" / "tickets.db"
    Store(database).close()
    database.chmod(0o644)

    code, checks = check(config)

    assert code == 1
    assert checks["database"] == f"FAIL {database} is readable by others (mode 644): " \
                                 f"chmod 600 {database}"


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_with_the_test_ca_passes(tmp_path, tls_dovecot, auth_smtp, security):
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port
    config = auth_config(tmp_path, tls_dovecot, auth_smtp, mailbox={
        "security": security, "port": port, "ca_file": str(tls_dovecot.ca_file)})

    code, checks = check(config)

    assert code == 0, checks
    assert checks["imap connect"] == f"ok 127.0.0.1:{port} ({security.upper()})"


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_without_the_ca_fails_verification(tmp_path, tls_dovecot, auth_smtp, security):
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port
    config = auth_config(tmp_path, tls_dovecot, auth_smtp,
                         mailbox={"security": security, "port": port})

    code, checks = check(config)

    assert code == 1
    assert checks["imap connect"].startswith("FAIL TLS certificate of 127.0.0.1")
    assert "not trusted" in checks["imap connect"]
    assert "mailbox.ca_file" in checks["imap connect"]
