"""``inquiry-bot check`` against the real loopback servers (Dovecot or pymap, aiosmtpd)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botenv import STAFF_TOKEN_SECRET, bot_env, write_config
from mailservers import PASSWORD

from bot.adapters.store import Store
from bot.config import DEFAULT_TEMPLATES_DIR, load_settings, settings_from_dict
from bot.ops.admin import PASSWORD_HASH_ENV
from bot.ops.check import (
    check_admin_exposure,
    check_staff_auth,
    check_state_folder,
    check_transport,
    exit_code,
    format_report,
    run_checks,
)
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
          smtp_password: str | None = SMTP_PASSWORD, token_secret: str | None = STAFF_TOKEN_SECRET,
          **environ: str) -> tuple[int, dict[str, str]]:
    """Run every check; return the CLI's exit code and ``{name: "ok|WARN|FAIL detail"}``."""
    environ |= {"TEST_IMAP_PASSWORD": imap_password, "TEST_SMTP_PASSWORD": smtp_password,
                "TEST_STAFF_TOKEN_SECRET": token_secret}
    findings = run_checks(config, {k: v for k, v in environ.items() if v is not None})
    return exit_code(findings), {f.name: f"{_label(f)} {f.detail}" for f in findings}


def _label(finding) -> str:
    return "FAIL" if not finding.ok else "WARN" if finding.warning else "ok"


def auth_config(tmp_path: Path, imap, sink: SmtpSink, **sections: dict) -> Path:
    """A config for ``imap`` and the AUTH-requiring ``sink``; ``sections`` override keys."""
    smtp_section = {"username": SMTP_USER, "password_env": "TEST_SMTP_PASSWORD",
                    **sections.pop("smtp", {})}
    staff_section = {"token_secret_env": "TEST_STAFF_TOKEN_SECRET", **sections.pop("staff", {})}
    return write_config(tmp_path, imap, sink, smtp=smtp_section, staff=staff_section, **sections)


def test_a_working_setup_passes_every_check(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)
    Store(load_settings(config, {"TEST_IMAP_PASSWORD": "x", "TEST_SMTP_PASSWORD": "x"})
          .database_path).close()  # an existing, migrated database

    code, checks = check(config)

    assert code == 0, checks
    assert {"config", "secrets", "staff auth", "tls", "imap connect", "imap login",
            "imap folder", "imap idle", "smtp connect", "smtp login", "database",
            "state folder", "admin", "templates"} <= set(checks)
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
    env = {**bot_env(), "TEST_SMTP_PASSWORD": SMTP_PASSWORD,
           "TEST_STAFF_TOKEN_SECRET": STAFF_TOKEN_SECRET}

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


# -- what would bite later: table-driven over the check functions, then the report --------

MINIMAL = {"bot": {"address": "contact@cijidas.jp"},
           "mailbox": {"host": "imap.example.jp", "username": "contact@cijidas.jp"},
           "smtp": {"host": "smtp.example.jp"}}


def settings_for(tmp_path: Path, environ: dict[str, str] | None = None, **sections: dict):
    data = {name: dict(values) for name, values in MINIMAL.items()}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return settings_from_dict(data, tmp_path / "config.toml",
                              {"INQUIRY_BOT_IMAP_PASSWORD": "x", **(environ or {})})


@pytest.mark.parametrize("secret, trusted, ok", [
    ("", [], False),                           # nothing can prove a staff reply: FAIL
    (STAFF_TOKEN_SECRET, [], True),            # Reply-To tokens
    ("", ["mx.cijidas.jp"], True),             # the receiving server's Authentication-Results
    (STAFF_TOKEN_SECRET, ["mx.cijidas.jp"], True),
])
def test_staff_replies_must_be_authenticable(tmp_path, secret, trusted, ok):
    settings = settings_for(tmp_path, {"INQUIRY_BOT_STAFF_TOKEN_SECRET": secret} if secret
                            else {}, staff={"trusted_authserv_ids": trusted})

    finding = check_staff_auth(settings)

    assert finding.ok is ok, finding
    if not ok:  # the fix is named: the variable, how to make a secret, the alternative
        assert "$INQUIRY_BOT_STAFF_TOKEN_SECRET" in finding.detail
        assert "openssl rand" in finding.detail
        assert "staff.trusted_authserv_ids" in finding.detail


@pytest.mark.parametrize("mailbox, smtp, warned", [
    ({}, {}, []),
    ({"host": "127.0.0.1", "security": "none"}, {"host": "localhost", "security": "none"}, []),
    ({"security": "none", "allow_insecure": True}, {},
     ['mailbox.security = "none" to imap.example.jp']),
    ({}, {"verify_tls": False}, ["smtp.verify_tls = false"]),
    ({"verify_tls": False}, {"security": "none", "allow_insecure": True},
     ["mailbox.verify_tls = false", 'smtp.security = "none" to smtp.example.jp']),
])
def test_clear_text_or_unverified_tls_beyond_loopback_warns(tmp_path, mailbox, smtp, warned):
    findings = check_transport(settings_for(tmp_path, mailbox=mailbox, smtp=smtp))

    assert all(f.ok for f in findings)  # the config allows it, so never a FAIL, but a WARN
    assert [f.detail.split(":")[0] for f in findings if f.warning] == warned


@pytest.mark.parametrize("mode, warning", [(0o700, False), (0o750, True), (0o755, True),
                                           (0o701, True)])
def test_state_folder_open_to_others_warns(tmp_path, mode, warning):
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(mode)

    finding = check_state_folder(folder)

    assert finding.ok and finding.warning is warning
    if warning:
        assert f"(mode {mode:o}): chmod 700 {folder}" in finding.detail


def test_state_folder_not_yet_created_is_fine(tmp_path):
    finding = check_state_folder(tmp_path / "state")
    assert finding.ok and not finding.warning


@pytest.mark.parametrize("host, password_hash, ok", [
    ("127.0.0.1", "", True),
    ("localhost", "", True),
    ("0.0.0.0", "", False),       # every interface, no password: FAIL
    ("192.0.2.7", "", False),
    ("0.0.0.0", "pbkdf2_sha256$...", importlib.util.find_spec("datasette_auth_passwords")
     is not None),                # a password needs the plugin that asks for it
])
def test_datasette_beyond_loopback_needs_a_password(tmp_path, host, password_hash, ok):
    settings = settings_for(tmp_path, admin={"host": host})
    environ = {PASSWORD_HASH_ENV: password_hash} if password_hash else {}

    finding = check_admin_exposure(settings, environ)

    assert finding.ok is ok, finding
    if not password_hash and not ok:
        assert PASSWORD_HASH_ENV in finding.detail and 'admin.host = "127.0.0.1"' in finding.detail


def test_report_shows_fail_and_warn_and_exits_1(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp, admin={"host": "0.0.0.0"})
    (tmp_path / "state").mkdir(mode=0o755)
    (tmp_path / "state").chmod(0o755)

    findings = run_checks(config, {"TEST_IMAP_PASSWORD": PASSWORD,
                                   "TEST_SMTP_PASSWORD": SMTP_PASSWORD})
    report = format_report(findings).splitlines()

    assert exit_code(findings) == 1
    assert any(re.match(r"FAIL  staff auth\s+staff replies cannot be authenticated", line)
               for line in report), report
    assert any(re.match(r"FAIL  admin\s+admin.host = '0.0.0.0' is not loopback", line)
               for line in report), report
    assert any(re.match(r"WARN  state folder\s+.* chmod 700", line) for line in report), report
    assert report[-1] == "2 check(s) failed, 1 warning(s)"


def test_a_warning_alone_still_passes(tmp_path, imap_server, auth_smtp):
    config = auth_config(tmp_path, imap_server, auth_smtp)
    (tmp_path / "state").mkdir(mode=0o755)
    (tmp_path / "state").chmod(0o755)

    code, checks = check(config)

    assert code == 0, checks
    assert checks["state folder"].startswith("WARN")
    assert format_report(run_checks(config, {
        "TEST_IMAP_PASSWORD": PASSWORD, "TEST_SMTP_PASSWORD": SMTP_PASSWORD,
        "TEST_STAFF_TOKEN_SECRET": STAFF_TOKEN_SECRET})).endswith(
        "all checks passed, 1 warning(s)")


def test_every_config_problem_is_its_own_line(tmp_path, imap_server):
    config = write_config(tmp_path, imap_server, None, mailbox={"port": 99999, "hots": "x"},
                          escalation={"digest_time": "9am"})

    findings = run_checks(config, {})

    assert exit_code(findings) == 2
    details = [f.detail for f in findings if f.name == "config"]
    assert [d.split(":")[0] for d in details] == [
        "mailbox.hots", "mailbox.port", "escalation.digest_time"]
    assert "did you mean 'host'?" in details[0]
