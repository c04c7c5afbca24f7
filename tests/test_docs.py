"""The README stays true: every command, option and config key is documented, the console
examples run and print what the README shows (the way sqlite-utils tests its docs), and the
systemd unit in deploy/ starts a command that exists.

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
    assert re.search(usage, README), f"README does not show `inquiry-bot {name}` in code"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_is_documented(name):
    parser = subcommands()[name]
    options = [opt for action in parser._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"]
    missing = [opt for opt in options if not re.search(rf"{re.escape(opt)}\b", README)]
    assert not missing, f"`inquiry-bot {name}` options missing from README: {missing}"


def test_every_config_key_is_in_the_reference_table():
    table = README[README.index("## Configuration reference"):]
    missing = [key for key in config_keys() if f"| `{key}` |" not in table]
    assert not missing, f"keys missing from README's configuration table: {missing}"


def test_the_reference_table_has_no_stale_keys():
    table = README[README.index("## Configuration reference"):]
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
    assert "/var/lib/inquiry-bot/" in README  # the README describes the same layout


def test_the_heartbeat_check_watches_the_documented_file():
    check = unit("inquiry-bot-heartbeat.service")["Service"]["ExecStart"]
    timer = unit("inquiry-bot-heartbeat.timer")["Timer"]
    assert 'heartbeat_file = "/var/lib/inquiry-bot/heartbeat"' in README
    assert "/var/lib/inquiry-bot/heartbeat -mmin -5" in check
    assert timer["OnUnitActiveSec"] == "5min"


def test_the_env_example_names_the_variables_the_config_reads():
    names = set(re.findall(r"^([A-Z_]+)=", (DEPLOY / "env.example").read_text(), flags=re.M))
    assert names == {MailboxSection.password_env, SmtpSection.password_env,
                     StaffSection.token_secret_env}
