"""Config validation: every mistake stops start-up with exit code 2 and names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, resolve_config_path
from bot.ops.cli import main

MINIMAL = """
[bot]
address = "contact@cijidas.jp"
[mailbox]
host = "imap.example.jp"
username = "contact@cijidas.jp"
[smtp]
host = "smtp.example.jp"
"""
ENV = {"INQUIRY_BOT_IMAP_PASSWORD": "imap-secret"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_documented_defaults(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), ENV)
    assert settings.mailbox.port == 993 and settings.mailbox.security == "tls"
    assert settings.mailbox.verify_tls and settings.smtp.verify_tls
    assert settings.database_path == tmp_path / "state" / "tickets.db"
    assert settings.imap_password == "imap-secret"
    assert "imap-secret" not in repr(settings)


def test_repository_config_is_valid():
    settings = load_settings(Path(__file__).parent.parent / "config.toml",
                             {**ENV, "INQUIRY_BOT_SMTP_PASSWORD": "x"})
    assert settings.bot.address == "contact@cijidas.jp"
    assert settings.templates_path.name == "replies"


@pytest.mark.parametrize("extra, key", [
    ("[mailbox]\nport = 0", "mailbox.port"),
    ('[mailbox]\nport = "993"', "mailbox.port"),
    ('[smtp]\nsecurity = "ssl"', "smtp.security"),
    ('[bot]\ntimezone = "Mars/Base"', "bot.timezone"),
    ('[bot]\ndefault_language = "fr"', "bot.default_language"),
    ('[bot]\nticket_prefix = "cj"', "bot.ticket_prefix"),
    ("[bot]\ncolour = 1", "bot.colour"),
    ("[frobnicate]\nx = 1", "frobnicate"),
    ('[staff]\naddresses = ["not-an-address"]', "staff.addresses"),
    ("[staff]\nnotify = 3", "staff.notify"),
    ('[sla]\nquestion = ["5 days", "3 business days", "10 calendar days"]', "sla.question"),
    ('[escalation]\ndigest_time = "9am"', "escalation.digest_time"),
    ("[limits]\nmax_message_bytes = 0", "limits.max_message_bytes"),
    ("[mailbox]\nidle = \"yes\"", "mailbox.idle"),
])
def test_bad_values_name_the_key(tmp_path, extra, key):
    section = extra.split("\n")[0]
    text = MINIMAL.replace(section + "\n", extra + "\n", 1) if section in MINIMAL else (
        MINIMAL + extra + "\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, text), ENV)


@pytest.mark.parametrize("remove, key", [
    ('address = "contact@cijidas.jp"\n', "bot.address"),
    ('host = "imap.example.jp"\n', "mailbox.host"),
])
def test_missing_required_keys(tmp_path, remove, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, MINIMAL.replace(remove, "")), ENV)


def test_missing_password_variable_names_it(tmp_path):
    with pytest.raises(ConfigError, match="INQUIRY_BOT_IMAP_PASSWORD"):
        load_settings(write(tmp_path, MINIMAL), {})


def test_smtp_password_needed_only_with_a_username(tmp_path):
    text = MINIMAL.replace('host = "smtp.example.jp"', 'host = "smtp.example.jp"\nusername = "u"')
    with pytest.raises(ConfigError, match="smtp.password_env"):
        load_settings(write(tmp_path, text), ENV)


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "not found"),
    (lambda p: p.write_text("[bot\naddress="), "not valid TOML"),
    (lambda p: p.write_text(MINIMAL.replace("port", "x") + "[mailbox]\nport = 70000\n"),
     "not valid TOML"),  # duplicate table
    (lambda p: p.write_text(MINIMAL + "[smtp]\n"), "not valid TOML"),
])
def test_cli_exits_2_with_a_clear_message(tmp_path, capsys, monkeypatch, setup, message):
    monkeypatch.delenv("INQUIRY_BOT_IMAP_PASSWORD", raising=False)
    path = tmp_path / "config.toml"
    setup(path)
    assert main(["--config", str(path), "once"]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and message in err


@pytest.mark.parametrize("text, message", [
    (MINIMAL.replace('[mailbox]\n', '[mailbox]\nport = 99999\n'), "mailbox.port"),
    (MINIMAL, "INQUIRY_BOT_IMAP_PASSWORD"),
])
def test_cli_bad_port_and_missing_password(tmp_path, capsys, monkeypatch, text, message):
    monkeypatch.delenv("INQUIRY_BOT_IMAP_PASSWORD", raising=False)
    assert main(["--config", str(write(tmp_path, text)), "run"]) == 2
    assert message in capsys.readouterr().err


def test_config_path_resolution(monkeypatch):
    monkeypatch.delenv("INQUIRY_BOT_CONFIG", raising=False)
    assert resolve_config_path(None) == Path("config.toml")
    monkeypatch.setenv("INQUIRY_BOT_CONFIG", "/etc/bot.toml")
    assert resolve_config_path(None) == Path("/etc/bot.toml")
    assert resolve_config_path("x.toml") == Path("x.toml")


def test_relative_paths_follow_the_config_file_not_the_cwd(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    settings = load_settings(write(tmp_path, MINIMAL + '[storage]\ndatabase = "db/t.db"\n'), ENV)
    assert settings.database_path == tmp_path / "db" / "t.db"
