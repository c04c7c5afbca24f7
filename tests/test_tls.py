"""TLS to the mailbox: verification is on by default and really verifies.

Needs Dovecot (pymap has no TLS here): skipped without it on a developer machine, but
with INQUIRY_BOT_REQUIRE_DOVECOT=1 (CI) a missing Dovecot fails.
"""

from __future__ import annotations

import os

import pytest
from mailservers import PASSWORD, REQUIRE_DOVECOT_ENV, DovecotServer, find_dovecot

from bot.config import MailboxSection
from bot.errors import TransientError
from bot.imap import Mailbox

BOT = "contact@cijidas.jp"


@pytest.fixture
def tls_server(tmp_path):
    if find_dovecot() is None:
        if os.environ.get(REQUIRE_DOVECOT_ENV) == "1":
            pytest.fail("Dovecot is required for the TLS tests but not installed")
        pytest.skip("Dovecot not installed")
    server = DovecotServer(tmp_path / "dovecot", tls=True)
    server.add_user(BOT, PASSWORD)
    server.start()
    yield server
    server.stop()


def mailbox_settings(server, **overrides) -> MailboxSection:
    values = {"host": "127.0.0.1", "username": BOT, "port": server.tls_port, "security": "tls",
              "timeout_seconds": 10}
    values.update(overrides)
    return MailboxSection(**values)


@pytest.mark.parametrize("security, port_attr", [("tls", "tls_port"), ("starttls", "port")])
def test_tls_with_the_servers_ca_connects(tls_server, security, port_attr):
    settings = mailbox_settings(tls_server, security=security,
                                port=getattr(tls_server, port_attr),
                                ca_file=str(tls_server.ca_file))
    mailbox = Mailbox(settings, PASSWORD)
    try:
        assert mailbox.folder.uidvalidity > 0
    finally:
        mailbox.close()


@pytest.mark.parametrize("security, port_attr", [("tls", "tls_port"), ("starttls", "port")])
def test_an_unknown_certificate_is_refused_by_default(tls_server, security, port_attr):
    settings = mailbox_settings(tls_server, security=security,
                                port=getattr(tls_server, port_attr))
    assert settings.verify_tls is True
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        Mailbox(settings, PASSWORD)


def test_verification_can_be_turned_off_explicitly(tls_server):
    mailbox = Mailbox(mailbox_settings(tls_server, verify_tls=False), PASSWORD)
    mailbox.close()
