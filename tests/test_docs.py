"""The README and the pages in docs/ stay true: every command, option and config key is
documented, the console examples run and print what the README shows (the way sqlite-utils
tests its docs), and the systemd unit in deploy/ starts a command that exists.

README convention: ```console blocks hold runnable examples that need no mail server.
Lines starting with ``$ `` are commands (run from the repository root with a throw-away
config); the lines after one are output the command must print, in order (whitespace
normalised); a line ``...`` stands for any output.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from bot.config import _SECTIONS, MailboxSection, Settings, SmtpSection, StaffSection
from bot.ops import cli

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS_DIR = REPO / "docs"
# The README and the reader pages in docs/ are checked as one text: a command or option may
# be documented in whichever page its reader uses.
PAGES = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS_DIR.glob("*.md"))}
ALL_DOCS = "\n".join([README, *PAGES.values()])
CONFIG_PAGE = PAGES["configuration.md"]
DEPLOY = REPO / "deploy"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """``{name: parser}`` of every subcommand of ``inquiry-bot``."""
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def config_keys() -> list[str]:
    """Every ``section.key`` the config accepts, from the Settings dataclasses."""
    hints = typing.get_type_hints(Settings)
    return [f"{section}.{field.name}" for section in _SECTIONS
            for field in dataclasses.fields(hints[section])]


def console_examples() -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` from every ```console block of the README."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                examples.append((line[2:], []))
            elif examples and line.strip():
                examples[-1][1].append(line)
    return examples


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_is_documented(name):
    usage = rf"`inquiry-bot (?:\[[^\]`]*\] |--config \S+ )*{re.escape(name)}\b"
    assert re.search(usage, ALL_DOCS), f"no page shows `inquiry-bot {name}` in code"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_is_documented(name):
    parser = subcommands()[name]
    options = [opt for action in parser._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"]
    missing = [opt for opt in options if not re.search(rf"{re.escape(opt)}\b", ALL_DOCS)]
    assert not missing, f"`inquiry-bot {name}` options missing from the docs: {missing}"


def test_every_config_key_is_in_the_reference_table():
    table = CONFIG_PAGE[CONFIG_PAGE.index("## Configuration reference"):]
    missing = [key for key in config_keys() if f"| `{key}` |" not in table]
    assert not missing, f"keys missing from docs/configuration.md's table: {missing}"


def test_the_reference_table_has_no_stale_keys():
    table = CONFIG_PAGE[CONFIG_PAGE.index("## Configuration reference"):]
    table = table[:table.index("\n## ")]
    documented = re.findall(r"^\| `(\w+\.\w+)` \|", table, flags=re.M)
    assert documented, "no configuration table found"
    assert sorted(set(documented) - set(config_keys())) == []


def test_readme_has_runnable_examples():
    commands = [command for command, _ in console_examples()]
    assert any(c.startswith("python -m bot") for c in commands)
    assert any(" classify " in c for c in commands)
    assert any(" escalate " in c and "--dry-run" in c for c in commands)


@pytest.mark.parametrize("command,expected", console_examples(),
                         ids=[c for c, _ in console_examples()])
def test_readme_example_runs(command, expected, tmp_path):
    result = subprocess.run(_argv(command), capture_output=True, text=True, timeout=120,
                            cwd=REPO, env=_offline_env(tmp_path))
    assert result.returncode == 0, result.stderr
    _assert_shows(result.stdout, expected)


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "inquiry-bot":
        return [sys.executable, "-m", "bot", *words[1:]]
    assert words[:3] == ["python", "-m", "bot"], f"not a bot command: {command}"
    return [sys.executable, *words[1:]]


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment plus a config whose database lives in tmp_path."""
    config = tmp_path / "config.toml"
    config.write_text('[bot]\naddress = "contact@cijidas.jp"\n'
                      '[mailbox]\nhost = "127.0.0.1"\nusername = "contact@cijidas.jp"\n'
                      '[smtp]\nhost = "127.0.0.1"\n'
                      '[storage]\ndatabase = "tickets.db"\n'
                      '[escalation]\nto = ["dpo@cijidas.jp"]\n')
    return {**os.environ, "INQUIRY_BOT_CONFIG": str(config)}


def _assert_shows(output: str, expected: list[str]) -> None:
    """Every expected line appears in ``output``, in order; ``...`` skips any output."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    position = 0
    for line in expected:
        if line.strip() == "...":
            continue
        wanted = " ".join(line.split())
        try:
            position = actual.index(wanted, position) + 1
        except ValueError:
            raise AssertionError(f"README shows {wanted!r}; the command printed:\n"
                                 f"{output}") from None


# -- deploy/ ------------------------------------------------------------------------------

def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / name)
    return parser


def test_the_service_runs_the_worker_with_the_documented_safeguards():
    service = unit("inquiry-bot.service")["Service"]
    argv = shlex.split(service["ExecStart"])
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert service["Restart"] == "on-failure" and service["RestartSec"]
    assert service["EnvironmentFile"] == "/etc/inquiry-bot/env"
    assert service["User"] == "inquiry-bot"
    assert service["StateDirectoryMode"] == "0700"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/inquiry-bot" in service["ReadWritePaths"]
    assert "/var/lib/inquiry-bot/" in PAGES["deployment.md"]  # the page shows the layout


def test_the_heartbeat_check_watches_the_documented_file():
    check = unit("inquiry-bot-heartbeat.service")["Service"]["ExecStart"]
    timer = unit("inquiry-bot-heartbeat.timer")["Timer"]
    assert 'heartbeat_file = "/var/lib/inquiry-bot/heartbeat"' in PAGES["deployment.md"]
    assert "/var/lib/inquiry-bot/heartbeat -mmin -5" in check
    assert timer["OnUnitActiveSec"] == "5min"


def test_the_env_example_names_the_variables_the_config_reads():
    names = set(re.findall(r"^([A-Z_]+)=", (DEPLOY / "env.example").read_text(), flags=re.M))
    assert names == {MailboxSection.password_env, SmtpSection.password_env,
                     StaffSection.token_secret_env}


# -- docs/deployment.md -------------------------------------------------------------------
# The deployment page is followed on a bare host with nothing else open: every command it
# runs must parse with the real CLI, every key it names must exist, every unit it installs
# must be in deploy/.

DEPLOYMENT_PAGE = REPO / "docs" / "deployment.md"


def deployment_text() -> str:
    return DEPLOYMENT_PAGE.read_text(encoding="utf-8")


def deployment_shell_commands() -> list[list[str]]:
    """argv (after the program) of every ``.../bin/inquiry-bot`` call in the page's ```sh
    blocks, continuation lines joined and trailing comments dropped."""
    calls = []
    for block in re.findall(r"```sh\n(.*?)```", deployment_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "bin/inquiry-bot " in line:
                words = shlex.split(line.split("bin/inquiry-bot ", 1)[1], comments=True)
                calls.append(words)
    return calls


def deployment_inline_code() -> list[str]:
    """Inline code spans of the page, outside fenced blocks."""
    prose = re.sub(r"```.*?```", "", deployment_text(), flags=re.S)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def test_deployment_page_commands_parse_with_the_real_cli():
    calls = deployment_shell_commands()
    assert {"check", "once"} <= {words[2] for words in calls if words[:1] == ["--config"]}
    parser = cli.build_parser()
    for words in calls:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"docs/deployment.md runs `inquiry-bot {' '.join(words)}`, which the "
                        "CLI rejects")


def test_deployment_page_names_only_existing_subcommands_and_options():
    commands = subcommands()
    mentioned = []
    for span in deployment_inline_code():
        words = span.split()
        if words[:1] == ["inquiry-bot"]:
            words = [w for w in words[1:] if not w.startswith("-") and w != "PATH"][:1] + [
                w for w in words[1:] if w.startswith("--") and w != "--config"]
        if not words or words[0] not in commands and not span.startswith("inquiry-bot "):
            continue
        assert words[0] in commands, f"docs/deployment.md: `{span}`: no such subcommand"
        known = {opt for action in commands[words[0]]._actions for opt in action.option_strings}
        unknown = [w for w in words[1:] if w.startswith("--") and w not in known]
        assert not unknown, f"docs/deployment.md: `{span}`: {unknown} not options of {words[0]}"
        mentioned.append(words[0])
    assert {"check", "admin", "once"} <= set(mentioned)


def test_deployment_page_names_only_existing_config_keys():
    import tomllib

    keys = set(config_keys())
    file_name = re.compile(r"\w+\.(db|toml|json|md|service|timer)\b")  # tickets.db
    named = {m[0] for span in deployment_inline_code()
             if (m := re.match(r"(\w+)\.(\w+)\b", span)) and m[1] in _SECTIONS
             and not file_name.match(span)}
    for block in re.findall(r"```toml\n(.*?)```", deployment_text(), flags=re.S):
        for section, values in tomllib.loads(block).items():
            named |= {f"{section}.{key}" for key in values}
    assert {"storage.database", "bot.heartbeat_file", "mailbox.first_run_days"} <= named
    assert sorted(named - keys) == [], "docs/deployment.md names keys the config rejects"


def test_deployment_page_units_are_the_ones_in_deploy():
    named = set(re.findall(r"\binquiry-bot[\w-]*\.(?:service|timer)\b", deployment_text()))
    shipped = {path.name for path in DEPLOY.iterdir() if path.suffix in (".service", ".timer")}
    assert sorted(named - shipped) == [], "the page installs units deploy/ does not have"
    assert sorted(shipped - named) == [], "units in deploy/ the page does not explain"
    assert "deploy/env.example" in deployment_text() and (DEPLOY / "env.example").exists()


def test_deployment_page_installs_editable_with_the_admin_extra():
    # templates/ and admin/ are read from the checkout: a plain `pip install .` lacks them
    installs = [line for block in re.findall(r"```sh\n(.*?)```", deployment_text(), flags=re.S)
                for line in block.splitlines() if "bin/pip install" in line]
    assert ".venv/bin/pip install -e '.[admin]'" in installs[0]
    assert all(" -e '.[admin" in line or "datasette-auth-passwords==" in line
               for line in installs), installs
    for extra in ("oauth-microsoft", "oauth-google"):
        assert extra in (REPO / "pyproject.toml").read_text() and f"admin,{extra}" in \
            deployment_text()


def test_the_admin_unit_serves_read_only_as_the_bots_user_on_loopback():
    service = unit("inquiry-bot-admin.service")["Service"]
    args = cli.build_parser().parse_args(shlex.split(service["ExecStart"])[1:])
    assert args.command == "admin" and args.host is None  # admin.host: 127.0.0.1
    assert service["User"] == "inquiry-bot" and service["Group"] == "inquiry-bot"
    assert service["EnvironmentFile"] == "-/etc/inquiry-bot/admin.env"  # no mail passwords
    assert service["IPAddressAllow"] == "localhost" and service["IPAddressDeny"] == "any"
    from bot.ops.admin import PASSWORD_HASH_ENV

    assert PASSWORD_HASH_ENV in (DEPLOY / "inquiry-bot-admin.service").read_text()
    assert f"{PASSWORD_HASH_ENV}='pbkdf2_sha256$" in deployment_text()


def test_the_backup_unit_takes_an_online_copy_as_the_bots_user():
    service = unit("inquiry-bot-backup.service")["Service"]
    timer = unit("inquiry-bot-backup.timer")["Timer"]
    assert service["User"] == "inquiry-bot" and service["UMask"] == "0077"
    script = service["ExecStart"]
    assert 'sqlite3 tickets.db ".backup $$out"' in script  # $$: a literal $ for systemd
    assert "%%F" in script and "PRAGMA quick_check" in script
    assert timer["OnCalendar"] and timer["Persistent"] == "true"


def test_the_env_example_requires_the_token_secret():
    text = (DEPLOY / "env.example").read_text()
    assert "Optional" not in text and "REQUIRED" in text and "openssl rand -hex 32" in text


def test_deployment_page_layout_matches_the_units():
    """The paths the page configures are the ones the units use (the README's Deployment
    section, which the two deploy/ tests above read, moves to this page)."""
    text = deployment_text()
    worker = unit("inquiry-bot.service")["Service"]
    heartbeat = unit("inquiry-bot-heartbeat.service")["Service"]["ExecStart"]
    assert 'heartbeat_file = "/var/lib/inquiry-bot/heartbeat"' in text
    assert "/var/lib/inquiry-bot/heartbeat -mmin -5" in heartbeat
    assert 'database = "/var/lib/inquiry-bot/tickets.db"' in text
    assert worker["ReadWritePaths"] == "/var/lib/inquiry-bot" and worker["StateDirectory"] \
        == "inquiry-bot"
    assert f"EnvironmentFile={worker['EnvironmentFile']}" in \
        (DEPLOY / "inquiry-bot.service").read_text()
    assert f"install -m 0600 -o root -g root /opt/inquiry-bot/deploy/env.example " \
        f"{worker['EnvironmentFile']}" in text
