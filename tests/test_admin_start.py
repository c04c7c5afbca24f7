"""``inquiry-bot admin`` refuses before it announces a URL: nothing is printed that would send
an admin to a page that never comes up."""

from __future__ import annotations

import os
import socket
import sys
from types import SimpleNamespace

import pytest
from botenv import write_config

from bot.adapters.store import Store
from bot.config import load_settings
from bot.ops.cli import main

ANNOUNCEMENT = "datasette on http://"
NO_SERVER = SimpleNamespace(host="127.0.0.1", port=1)  # admin never talks to the mail servers


@pytest.fixture(autouse=True)
def no_exec(monkeypatch):
    """Should a check be missing, admin would exec datasette in place of pytest."""
    def refuse(*_args):
        raise AssertionError("admin went on to start datasette")

    monkeypatch.setattr(os, "execv", refuse)


@pytest.fixture
def config(tmp_path):
    path = write_config(tmp_path, NO_SERVER, None)
    Store(load_settings(path, require_secrets=False).database_path).close()
    return path


def test_without_datasette(config, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasette", None)  # as if the admin extra were missing

    assert main(["--config", str(config), "admin"]) == 1

    out, err = capsys.readouterr()
    assert ANNOUNCEMENT not in out
    assert "datasette is not installed (pip install '.[admin]')" in err


def test_without_a_database(tmp_path, capsys):
    config = write_config(tmp_path, NO_SERVER, None)

    assert main(["--config", str(config), "admin"]) == 1

    out, err = capsys.readouterr()
    assert ANNOUNCEMENT not in out and "no database at" in err


def test_beyond_loopback_without_a_password(config, capsys, monkeypatch):
    monkeypatch.delenv("INQUIRY_BOT_ADMIN_PASSWORD_HASH", raising=False)

    assert main(["--config", str(config), "admin", "--host", "0.0.0.0"]) == 2

    out, err = capsys.readouterr()
    assert ANNOUNCEMENT not in out and "admin.host" in err


def test_port_already_taken(config, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        assert main(["--config", str(config), "admin", "--port", str(port)]) == 1

    out, err = capsys.readouterr()
    assert ANNOUNCEMENT not in out
    assert f"cannot listen on 127.0.0.1:{port}" in err
