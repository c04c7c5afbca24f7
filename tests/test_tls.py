"""TLS to the mailbox: verification is on by default and really verifies.

Needs Dovecot (pymap has no TLS here): skipped without it on a developer machine, but
with INQUIRY_BOT_REQUIRE_DOVECOT=1 (CI) a missing Dovecot fails.
"""

from __future__ import annotations

import pytest
from mailservers import PASSWORD

from bot.adapters.imap import Mailbox
from bot.config import MailboxSection
from bot.errors import TransientError

BOT = "contact@cijidas.jp"


def mailbox_settings(server, **overrides) -> MailboxSection:
    values = {"host": "127.0.0.1", "username": BOT, "port": server.tls_port, "security": "tls",
              "timeout_seconds": 10}
    values.update(overrides)
    return MailboxSection(**values)


@pytest.mark.parametrize("security, port_attr", [("tls", "tls_port"), ("starttls", "port")])
def test_tls_with_the_servers_ca_connects(tls_dovecot, security, port_attr):
    settings = mailbox_settings(tls_dovecot, security=security,
                                port=getattr(tls_dovecot, port_attr),
                                ca_file=str(tls_dovecot.ca_file))
    mailbox = Mailbox(settings, PASSWORD)
    try:
        assert mailbox.folder.uidvalidity > 0
    finally:
        mailbox.close()


@pytest.mark.parametrize("security, port_attr", [("tls", "tls_port"), ("starttls", "port")])
def test_an_unknown_certificate_is_refused_by_default(tls_dovecot, security, port_attr):
    settings = mailbox_settings(tls_dovecot, security=security,
                                port=getattr(tls_dovecot, port_attr))
    assert settings.verify_tls is True
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        Mailbox(settings, PASSWORD)


def test_verification_can_be_turned_off_explicitly(tls_dovecot):
    mailbox = Mailbox(mailbox_settings(tls_dovecot, verify_tls=False), PASSWORD)
    mailbox.close()
