"""Shared pytest fixtures: real mail servers on loopback (DESIGN.md "Testing with real servers")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from botenv import STAFF_TOKEN_SECRET
from langdetect import DetectorFactory
from mailservers import (
    PASSWORD,
    REQUIRE_DOVECOT_ENV,
    TEST_USERS,
    DovecotServer,
    find_dovecot,
    make_imap_server,
)

from bot.ops.devmail import ImapServerBase, SmtpSink
from bot.ops.devmail import free_port as _free_port

# langdetect is randomised unless seeded; tests must be deterministic.
DetectorFactory.seed = 0


@pytest.fixture
def imap_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImapServerBase]:
    """A running IMAP server with fresh mailboxes for :data:`mailservers.TEST_USERS`.

    Dovecot when installed, else pymap. Force one with
    ``@pytest.mark.parametrize("imap_server", ["dovecot", "pymap"], indirect=True)``.
    """
    server = make_imap_server(tmp_path, kind=getattr(request, "param", None))
    for address in TEST_USERS:
        server.add_user(address, PASSWORD)
    with server:
        yield server


@pytest.fixture
def smtp_server(imap_server: ImapServerBase) -> Iterator[SmtpSink]:
    """A recording SMTP server that delivers into ``imap_server``'s mailboxes."""
    with SmtpSink(deliver_into=imap_server) as sink:
        yield sink


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port with nothing listening on it (e.g. for connection-refused tests)."""
    return _free_port()


@pytest.fixture
def tls_dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    """Dovecot with a self-signed certificate (implicit TLS on .tls_port, STARTTLS on .port)."""
    if find_dovecot() is None:
        if os.environ.get(REQUIRE_DOVECOT_ENV) == "1":
            pytest.fail("Dovecot is required for the TLS checks but is not installed")
        pytest.skip("TLS checks need Dovecot (apt-get install dovecot-imapd)")
    server = DovecotServer(tmp_path / "dovecot-tls", tls=True)
    server.add_user("contact@cijidas.jp", PASSWORD)
    with server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets a config from :func:`botenv.write_config` names, for in-process CLI runs."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_STAFF_TOKEN_SECRET", STAFF_TOKEN_SECRET)
