"""Hostile mail end to end through the real servers: injection attempts stay inert in every
mail the bot sends, and mail over ``limits.max_message_bytes`` is answered from its header."""

from __future__ import annotations

import base64
import email
from email import policy

import pytest
from botenv import BOT, customer_mail, query, scalar, write_config
from hostile import ALLOWED_HEADERS

from bot.ops.cli import main

pytestmark = pytest.mark.integration

STAFF = "privacy@cijidas.jp"
ATTACK = "{{ 7*7 }} {% if true %}TPL{% endif %} <script>alert(1)</script> \u202egnp.exe"


def _hostile_raw() -> bytes:
    """Subject and display name carry CR/LF (as encoded words), templates, HTML, RTL."""
    name = base64.b64encode("Eve\r\nBcc: victim@example.net\r\n {{ 7*7 }} \u202e".encode())
    return (b"From: =?utf-8?b?" + name + b"?= <eve@example.com>\r\n"
            b"To: contact@cijidas.jp\r\n"
            b"Subject: =?utf-8?b?" + base64.b64encode(
                ("Question\r\nBcc: victim@example.net\r\n\r\n" + ATTACK).encode()) + b"?=\r\n"
            b"Message-ID: <attack-1@example.com>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n"
            b"<p>What personal data do you hold?</p><script>alert(2)</script>"
            b"<p>{{ 7*7 }} {% raw %}\xe2\x80\xae</p>\r\n")


def _check_inert(raw: bytes) -> None:
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert {k.lower() for k in msg} <= ALLOWED_HEADERS
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    assert "victim" not in str(msg["To"])
    subject = str(msg["Subject"])
    assert "\u202e" not in subject and "\n" not in subject
    texts = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
    assert texts, "a text part"
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        content = part.get_content()
        assert "\u202e" not in content
        # the {% if %} was never executed: TPL only appears inside the literal tag
        assert content.count("TPL") == content.count("%}TPL{%")
        if part.get_content_type() == "text/html":
            assert "<script" not in content.lower()
            assert "&lt;script&gt;" in content or "script" not in content
    assert any("{{ 7*7 }}" in t or "{{ 7*7 }}" in subject for t in texts + [subject])


def test_injection_is_inert_in_every_mail_the_bot_sends(tmp_path, imap_server, smtp_server,
                                                        env):
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, _hostile_raw())

    assert main(["--config", str(config), "once"]) == 0

    received = smtp_server.wait_for(2)
    assert sorted(r.rcpt_tos for r in received) == [("eve@example.com",), (STAFF,)]
    for mail in received:
        _check_inert(mail.raw)
    # ... and {{ 7*7 }} was never evaluated: the literal survives in both subjects.
    for mail in received:
        subject = str(email.message_from_bytes(mail.raw, policy=policy.default)["Subject"])
        assert "{{ 7*7 }}" in subject and "49" not in subject
    db = tmp_path / "state" / "tickets.db"
    assert scalar(db, "SELECT count(*) FROM tickets") == 1
    # What reached the customer's and staff's real mailboxes is the same inert mail.
    for owner in ("eve@example.com", STAFF):
        if imap_server.has_user(owner):
            for raw in imap_server.messages(owner):
                _check_inert(raw)


def _big_mail(size: int, sender: str = "big@example.com", headers: str = "") -> bytes:
    head = (f"From: Big Sender <{sender}>\r\nTo: {BOT}\r\nSubject: Scans of my documents\r\n"
            f"Message-ID: <big-{sender}>\r\n{headers}MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n").encode()
    body = (b"--B\r\nContent-Type: text/plain\r\n\r\nSECRET-BODY-MARKER please delete my data\r\n"
            b"--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    body += (b"QUFB" * 19 + b"\r\n") * (size // 78) + b"--B--\r\n"
    return head + body


@pytest.mark.parametrize("imap_server", ["dovecot", "pymap"], indirect=True)  # partial FETCH
@pytest.mark.parametrize("action", ["acknowledge", "quarantine"])
def test_too_large_mail_is_answered_from_its_header_or_quarantined(tmp_path, imap_server,
                                                                   smtp_server, env, action):
    limit = 200_000
    config = write_config(tmp_path, imap_server, smtp_server, staff={"notify": [STAFF]},
                          limits={"max_message_bytes": limit, "too_large_action": action})
    imap_server.append(BOT, _big_mail(300_000))
    imap_server.append(BOT, _big_mail(300_000, "robot@example.com",
                                      "Auto-Submitted: auto-generated\r\n"))
    imap_server.append(BOT, customer_mail("Question", "How long do you keep my data?"))

    assert main(["--config", str(config), "once"]) == 0

    db = tmp_path / "state" / "tickets.db"
    rows = query(db, "SELECT uid, outcome, reason FROM processed ORDER BY uid")
    assert len(rows) == 3 and rows[2][1] == "ticket"
    assert all(reason and "too-large: " in reason for _, _, reason in rows[:2])
    assert len(imap_server.messages(BOT)) == 3  # nothing deleted
    if action == "quarantine":
        assert [r[1] for r in rows[:2]] == ["quarantined", "quarantined"]
        received = smtp_server.wait_for(2)  # the good mail: acknowledgement + notification
        assert "big@example.com" not in {t for r in received for t in r.rcpt_tos}
        return
    assert [r[1] for r in rows[:2]] == ["ticket", "ignored"]  # machine mail gets no reply
    received = smtp_server.wait_for(4)
    acks = [r for r in received if r.rcpt_tos == ("big@example.com",)]
    assert len(acks) == 1
    ack = email.message_from_bytes(acks[0].raw, policy=policy.default)
    text = ack.get_body(preferencelist=("plain",)).get_content()
    assert "than we can accept" in text and "CJD-000001" in text
    assert ack["In-Reply-To"] == "<big-big@example.com>"
    # Only the header was read: the body never reached the database.
    assert scalar(db, "SELECT needs_review FROM tickets WHERE ref = 'CJD-000001'") == 1
    stored = "".join(r[0] or "" for r in query(db, "SELECT body_text FROM messages"))
    assert "SECRET-BODY-MARKER" not in stored
    assert not any(b"SECRET-BODY-MARKER" in r.raw for r in received)
    assert all(len(r.raw) < limit for r in received)


def test_config_rejects_an_unknown_too_large_action(tmp_path, imap_server, env):
    config = write_config(tmp_path, imap_server, None, limits={"too_large_action": "drop"})
    assert main(["--config", str(config), "once"]) == 2
