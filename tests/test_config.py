"""Config validation: every mistake stops start-up with exit code 2 and names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, ConfigProblems, load_settings, resolve_config_path
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


def _with(section: str, lines: str) -> str:
    return MINIMAL.replace(f"[{section}]\n", f"[{section}]\n{lines}\n", 1)


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_security_none_to_a_remote_host_is_a_config_error(tmp_path, capsys, section):
    text = _with(section, 'security = "none"')
    with pytest.raises(ConfigError, match=rf"{section}\.security: .*not loopback.*"
                                          rf"{section}\.allow_insecure"):
        load_settings(write(tmp_path, text), ENV)
    assert main(["--config", str(write(tmp_path, text)), "once"]) == 2
    assert f"{section}.security" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost",
                                  "LOCALHOST.", "mail.localhost"])
def test_security_none_is_fine_on_loopback(tmp_path, host):
    text = MINIMAL.replace('host = "imap.example.jp"', f'host = "{host}"\nsecurity = "none"')
    assert load_settings(write(tmp_path, text), ENV).mailbox.security == "none"


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.1", "0.0.0.0", "localhost.evil.example",
                                  "127.0.0.1.nip.io", "imap.example.jp"])
def test_security_none_refused_for_hosts_that_only_look_local(tmp_path, host):
    text = MINIMAL.replace('host = "imap.example.jp"', f'host = "{host}"\nsecurity = "none"')
    with pytest.raises(ConfigError, match=r"mailbox\.security"):
        load_settings(write(tmp_path, text), ENV)


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_allow_insecure_permits_security_none(tmp_path, section):
    text = _with(section, 'security = "none"\nallow_insecure = true')
    settings = load_settings(write(tmp_path, text), ENV)
    assert getattr(settings, section).security == "none"


def test_staff_token_and_dkim_keys(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), ENV)
    assert settings.staff.token_days == 30 and not settings.staff.dkim_domain_signs_for_all
    with pytest.raises(ConfigError, match=r"staff\.token_days"):
        load_settings(write(tmp_path, MINIMAL + "[staff]\ntoken_days = 0\n"), ENV)
    with pytest.raises(ConfigError, match=r"staff\.dkim_domain_signs_for_all"):
        load_settings(write(tmp_path, MINIMAL + '[staff]\ndkim_domain_signs_for_all = "yes"\n'),
                      ENV)


# -- every problem at once, with a suggestion for each unknown name ------------------------

TYPOS = """
[bot]
adress = "contact@cijidas.jp"
token_days = 3
[mailbox]
hots = "imap.example.jp"
username = "contact@cijidas.jp"
port = 99999
[smtp]
host = "smtp.example.jp"
securty = "tls"
[stafff]
addresses = []
[escalation]
digest_time = "9am"
"""


def test_every_problem_is_listed_at_once_with_did_you_mean(tmp_path):
    with pytest.raises(ConfigProblems) as caught:
        load_settings(write(tmp_path, TYPOS), {})

    assert list(caught.value.problems) == [
        "stafff: unknown section; did you mean 'staff'?",
        "bot.adress: unknown key; did you mean 'address'?",
        "bot.token_days: unknown key; did you mean 'staff.token_days'?",  # wrong section
        "bot.address: missing (required)",
        "mailbox.hots: unknown key; did you mean 'host'?",
        "mailbox.host: missing (required)",
        "smtp.securty: unknown key; did you mean 'security'?",
        "mailbox.port: must be 1-65535, got 99999",
        "escalation.digest_time: must be HH:MM, got '9am'",
        "mailbox.password_env: environment variable INQUIRY_BOT_IMAP_PASSWORD is not set "
        "(or set mailbox.password)",
    ]


@pytest.mark.parametrize("text, expected", [
    ('[bot]\ncolour = 1', ["bot.colour: unknown key"]),  # nothing close: no guess
    ('[frobnicate]\nx = 1', ["frobnicate: unknown section (known: bot, mailbox"]),
    ('[mailbox]\nport = "993"\nidle = "yes"',
     ["mailbox.port: must be int", "mailbox.idle: must be bool"]),
    ('[sla]\nquestion = ["5 days", "3 days", "10 calendar days"]\nbusiness_hours = "9-6"',
     ["sla.question: '5 days'", "sla.question: '3 days'", "sla.business_hours"]),
    ('[staff]\naddresses = ["a", "privacy@cijidas.jp", "b@"]',
     ["staff.addresses: 'a' is not", "staff.addresses: 'b@' is not"]),
    ('[bot]\nticket_prefix = "cj"\ndefault_language = "fr"\ntimezone = "Mars/Base"',
     ["bot.default_language", "bot.ticket_prefix", "bot.timezone"]),
])
def test_problems_of_every_kind_are_collected(tmp_path, text, expected):
    section = text.split("\n")[0]
    full = (MINIMAL.replace(section + "\n", text + "\n", 1) if section in MINIMAL
            else MINIMAL + text + "\n")
    with pytest.raises(ConfigProblems) as caught:
        load_settings(write(tmp_path, full), ENV)
    problems = caught.value.problems
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems


def test_a_bad_value_is_reported_once_not_again_as_its_stand_in(tmp_path):
    # port = "x" is a type error; checking goes on with the default, which is not reported.
    with pytest.raises(ConfigProblems) as caught:
        load_settings(write(tmp_path, _with("mailbox", 'port = "x"')), ENV)
    assert len(caught.value.problems) == 1


def test_cli_prints_every_problem_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("INQUIRY_BOT_IMAP_PASSWORD", raising=False)
    path = write(tmp_path, TYPOS)

    assert main(["--config", str(path), "once"]) == 2

    err = capsys.readouterr().err
    assert f"config error: 10 problems in {path.resolve()}:" in err
    assert "  mailbox.hots: unknown key; did you mean 'host'?\n" in err
    assert "  escalation.digest_time: must be HH:MM" in err
