"""The loopback mail servers behave like real ones for the clients the bot uses.

Every IMAP test runs against Dovecot and against the pymap fallback. The Dovecot cases skip
only when Dovecot is absent and not required (INQUIRY_BOT_REQUIRE_DOVECOT unset).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import ssl
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import mailservers
import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from mailservers import PASSWORD, REQUIRE_DOVECOT_ENV, DovecotServer, find_dovecot

from bot.ops.devmail import DevImapServer, ImapServerBase, SmtpSink, port_is_open

pytestmark = pytest.mark.integration

DOVECOT_MISSING = find_dovecot() is None
SKIP_DOVECOT = pytest.mark.skipif(
    DOVECOT_MISSING and os.environ.get(REQUIRE_DOVECOT_ENV) != "1",
    reason="dovecot not installed (set INQUIRY_BOT_REQUIRE_DOVECOT=1 to make this an error)")
BOTH_KINDS = pytest.mark.parametrize(
    "imap_server", [pytest.param("dovecot", marks=SKIP_DOVECOT), "pymap"], indirect=True)

CONTACT = "contact@cijidas.jp"
CUSTOMER = "customer@example.com"


def raw_mail(subject: str, to: str = CONTACT) -> bytes:
    """A minimal RFC 5322 message with CRLF line ends, as IMAP stores it."""
    return (f"From: {CUSTOMER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nBody of {subject}\r\n"
            ).encode()


@BOTH_KINDS
def test_fixture_reports_the_requested_kind(imap_server: ImapServerBase, request) -> None:
    assert imap_server.kind == request.node.callspec.params["imap_server"]
    assert imap_server.host == "127.0.0.1"
    assert port_is_open(imap_server.host, imap_server.port)


@BOTH_KINDS
def test_append_then_uid_search_and_fetch_body_peek(imap_server: ImapServerBase) -> None:
    imap_server.append(CONTACT, raw_mail("first"))
    imap_server.append(CONTACT, raw_mail("second"))
    with imap_server.session(CONTACT) as client:
        client.select_folder("INBOX")
        uids = client.search(["UNSEEN"])
        fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        subjects = [email.message_from_bytes(fetched[uid][b"BODY[]"])["Subject"]
                    for uid in sorted(uids)]
        assert subjects == ["first", "second"]
        # PEEK must not mark anything read: the bot decides when a mail counts as handled.
        assert all(b"\\Seen" not in fetched[uid][b"FLAGS"] for uid in uids)
        assert len(client.search(["UNSEEN"])) == 2
    assert imap_server.messages(CONTACT) == [raw_mail("first"), raw_mail("second")]


@BOTH_KINDS
def test_wrong_password_is_refused(imap_server: ImapServerBase) -> None:
    client = IMAPClient(imap_server.host, port=imap_server.port, ssl=False, timeout=5)
    with pytest.raises(LoginError):
        client.login(CONTACT, "not-the-password")


@BOTH_KINDS
def test_mailboxes_are_separate_and_folders_are_created(imap_server: ImapServerBase) -> None:
    imap_server.append(CUSTOMER, raw_mail("for the customer", to=CUSTOMER))
    imap_server.append(CONTACT, raw_mail("quarantined"), folder="Quarantine")
    assert imap_server.messages(CONTACT) == []
    assert imap_server.messages(CONTACT, "Quarantine") == [raw_mail("quarantined")]
    assert imap_server.messages(CUSTOMER) == [raw_mail("for the customer", to=CUSTOMER)]


@BOTH_KINDS
def test_user_added_while_running_can_log_in(imap_server: ImapServerBase) -> None:
    imap_server.add_user("late@example.org", "pw-late")
    imap_server.append("late@example.org", raw_mail("hello late"))
    assert len(imap_server.messages("late@example.org")) == 1


@BOTH_KINDS
def test_append_from_second_connection_wakes_idle(imap_server: ImapServerBase) -> None:
    with imap_server.session(CONTACT) as idler:
        idler.select_folder("INBOX")
        idler.idle()
        started = time.monotonic()
        imap_server.append(CONTACT, raw_mail("wake up"))  # its own connection
        responses = idler.idle_check(timeout=5)
        elapsed = time.monotonic() - started
        idler.idle_done()
    assert (1, b"EXISTS") in responses
    assert elapsed < 5


@BOTH_KINDS
def test_restart_cuts_sessions_and_comes_back_on_same_port_with_mail(
        imap_server: ImapServerBase) -> None:
    imap_server.append(CONTACT, raw_mail("before outage"))
    port = imap_server.port
    client = imap_server.connect(CONTACT)
    client.select_folder("INBOX")

    imap_server.restart()

    with pytest.raises((OSError, IMAPClient.AbortError, IMAPClient.Error)):
        client.noop()
    assert imap_server.port == port
    assert imap_server.messages(CONTACT) == [raw_mail("before outage")]


def test_pymap_restart_can_drop_mail_but_keeps_users() -> None:
    server = DevImapServer()
    server.add_user(CONTACT, PASSWORD)
    with server:
        server.append(CONTACT, raw_mail("gone after restart"))
        server.restart(keep_data=False)
        assert server.messages(CONTACT) == []


@pytest.mark.parametrize("kind", [pytest.param("dovecot", marks=SKIP_DOVECOT), "pymap"])
def test_stop_leaves_nothing_listening(kind: str, tmp_path: Path) -> None:
    server = mailservers.make_imap_server(tmp_path, kind=kind)
    server.add_user(CONTACT, PASSWORD)
    server.start()
    port = server.port
    assert port_is_open("127.0.0.1", port)
    server.stop()
    assert not port_is_open("127.0.0.1", port)


def test_require_dovecot_fails_instead_of_falling_back(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mailservers, "find_dovecot", lambda: None)
    monkeypatch.delenv(REQUIRE_DOVECOT_ENV, raising=False)
    assert isinstance(mailservers.make_imap_server(tmp_path), DevImapServer)
    monkeypatch.setenv(REQUIRE_DOVECOT_ENV, "1")
    with pytest.raises(RuntimeError, match="dovecot-imapd"):
        mailservers.make_imap_server(tmp_path)


def ack_message(to: list[str], subject: str = "Re: [CJD-000001] your request") -> EmailMessage:
    message = EmailMessage()
    message["From"] = CONTACT
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content("Xin chào Quý khách,\nChúng tôi đã nhận được yêu cầu của Quý khách.\n")
    return message


@BOTH_KINDS
def test_aiosmtplib_mail_is_recorded_and_delivered_to_imap_inbox(
        smtp_server: SmtpSink, imap_server: ImapServerBase) -> None:
    message = ack_message([CUSTOMER, "stranger@nowhere.test"])
    asyncio.run(aiosmtplib.send(message, hostname=smtp_server.host, port=smtp_server.port,
                                start_tls=False, timeout=10))

    [received] = smtp_server.wait_for(1)
    assert received.mail_from == CONTACT
    assert received.rcpt_tos == (CUSTOMER, "stranger@nowhere.test")
    assert received.delivered_to == (CUSTOMER,)
    [stored] = imap_server.messages(CUSTOMER)
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["Subject"] == "Re: [CJD-000001] your request"
    assert "Quý khách" in parsed.get_content()


def test_smtp_sink_can_reject_then_accept(smtp_server: SmtpSink) -> None:
    smtp_server.reject_next(1)
    send = aiosmtplib.send(ack_message([CUSTOMER]), hostname=smtp_server.host,
                           port=smtp_server.port, start_tls=False, timeout=10)
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        asyncio.run(send)
    assert refused.value.code == 451
    assert smtp_server.received == []

    asyncio.run(aiosmtplib.send(ack_message([CUSTOMER]), hostname=smtp_server.host,
                                port=smtp_server.port, start_tls=False, timeout=10))
    assert len(smtp_server.wait_for(1)) == 1


def test_smtp_sink_with_credentials_requires_auth() -> None:
    with SmtpSink(credentials={"bot": "smtp-pw"}) as sink:
        with pytest.raises(aiosmtplib.SMTPResponseException):
            asyncio.run(aiosmtplib.send(ack_message([CUSTOMER]), hostname=sink.host,
                                        port=sink.port, start_tls=False, timeout=10))
        asyncio.run(aiosmtplib.send(ack_message([CUSTOMER]), hostname=sink.host,
                                    port=sink.port, start_tls=False, timeout=10,
                                    username="bot", password="smtp-pw"))
        assert sink.wait_for(1)[0].rcpt_tos == (CUSTOMER,)


def test_smtp_sink_stop_then_start_reuses_the_port(free_port: int) -> None:
    sink = SmtpSink(port=free_port)
    with sink:
        assert port_is_open("127.0.0.1", free_port)
    assert not port_is_open("127.0.0.1", free_port)
    with sink:  # back up after the outage, same port, same record
        asyncio.run(aiosmtplib.send(ack_message([CUSTOMER]), hostname=sink.host,
                                    port=free_port, start_tls=False, timeout=10))
        assert len(sink.wait_for(1)) == 1


def test_wait_for_times_out_with_a_clear_message() -> None:
    with SmtpSink() as sink, pytest.raises(TimeoutError, match="expected 1 message"):
        sink.wait_for(1, timeout=0.05)


@SKIP_DOVECOT
def test_dovecot_tls_verifies_against_the_generated_ca(tmp_path: Path) -> None:
    server = DovecotServer(tmp_path / "tls", tls=True)
    server.add_user(CONTACT, PASSWORD)
    with server:
        assert server.ca_file is not None
        trusted = ssl.create_default_context(cafile=str(server.ca_file))
        implicit = IMAPClient("127.0.0.1", port=server.tls_port, ssl=True, ssl_context=trusted)
        implicit.login(CONTACT, PASSWORD)
        implicit.logout()

        starttls = IMAPClient("127.0.0.1", port=server.port, ssl=False)
        starttls.starttls(trusted)
        starttls.login(CONTACT, PASSWORD)
        starttls.logout()

        untrusted = ssl.create_default_context()  # system CAs only
        with pytest.raises(ssl.SSLCertVerificationError):
            IMAPClient("127.0.0.1", port=server.tls_port, ssl=True, ssl_context=untrusted)
