"""Shared pytest fixtures: real mail servers on loopback (DESIGN.md "Testing with real servers")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langdetect import DetectorFactory
from mailservers import PASSWORD, TEST_USERS, make_imap_server

from bot.devmail import ImapServerBase, SmtpSink
from bot.devmail import free_port as _free_port

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
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server(imap_server: ImapServerBase) -> Iterator[SmtpSink]:
    """A recording SMTP server that delivers into ``imap_server``'s mailboxes."""
    sink = SmtpSink(deliver_into=imap_server)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port with nothing listening on it (e.g. for connection-refused tests)."""
    return _free_port()
