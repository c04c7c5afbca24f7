"""Staff authentication against the real loopback servers (issue 14).

- Forged Authentication-Results: sender-controlled text that a trusted receiving server
  copies into its header (encoded-word or quoted envelope sender, comments), a forged header
  below the real one, a pass for another signer of the domain, SPF alone: none of them lets
  a stranger with ``From: privacy@cijidas.jp`` relay text or run commands.
- Routing tokens: one notification (and token) per staff recipient; another staff member's
  token and an expired token are rejected with a clear reason; no token reaches the
  customer's ``export`` or any database row datasette shows.
- ``-v`` never logs mail; the state folder is owner-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botenv import (
    BOT,
    STAFF_TOKEN_SECRET,
    customer_mail,
    query,
    run_cli,
    scalar,
    write_config,
)
from test_staff_flow import CUSTOMER, STAFF, Bot, body, staff_reply

from bot.ops.cli import main, owner_only_folder
from bot.rules.conversation import parse_reply_address, reply_address

pytestmark = pytest.mark.integration

OTHER_STAFF = "dpo@cijidas.jp"
TRUSTED = "mx.cijidas.jp"
INJECTED = "dkim=pass header.i=privacy@cijidas.jp"  # what every forger wants the bot to read
ROUTING = "contact+"  # any plus-address of the bot


@pytest.fixture
def bot(tmp_path, imap_server, smtp_server, env):
    """Two staff members, both notified; ticket CJD-000001 from the customer."""
    return _bot(tmp_path, imap_server, smtp_server)


def _bot(tmp_path, imap_server, smtp_server, **staff) -> Bot:
    config = write_config(tmp_path, imap_server, smtp_server, staff={
        "addresses": [STAFF, OTHER_STAFF], "notify": [STAFF, OTHER_STAFF],
        "token_secret_env": "TEST_STAFF_TOKEN_SECRET", "trusted_authserv_ids": [TRUSTED],
        **staff})
    return Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server)


def with_auth_results(raw: bytes, *values: str) -> bytes:
    """Prepend Authentication-Results headers, topmost first, as receiving servers do."""
    return "".join(f"Authentication-Results: {v}\n" for v in values).encode() + raw


def last_processed(bot: Bot) -> tuple:
    return query(bot.db, "SELECT outcome, reason FROM processed ORDER BY rowid DESC LIMIT 1")[0]


def suspicious_reasons(bot: Bot) -> list[str]:
    return [json.loads(detail)["reason"] for _, detail in bot.events("suspicious_sender")]


# -- forged Authentication-Results ----------------------------------------------------------

FORGED = {
    # the envelope sender, copied by the trusted server into smtp.mailfrom, spells a pass
    # once encoded words are decoded (the header used to be read decoded)
    "encoded-word-mailfrom": [
        f"{TRUSTED}; spf=pass smtp.mailfrom="
        "=?us-ascii?q?x=3B_dkim=3Dpass_header.i=3Dprivacy=40cijidas.jp_?=@evil.example"],
    "quoted-local-part": [f'{TRUSTED}; spf=pass smtp.mailfrom="x; {INJECTED} "@evil.example'],
    # a nested comment: removing only the innermost one left the rest readable
    "nested-comment": [f"{TRUSTED}; dkim=fail (bad signature (key rotated) ; {INJECTED} ; "
                       "see logs) header.d=evil.example"],
    # a quoted local part inside a comment: its ")" would close the comment early
    "quote-in-comment": [f'{TRUSTED}; spf=pass (domain of "a) ; {INJECTED} (b"@evil.example '
                         "designates 192.0.2.1) smtp.mailfrom=evil.example"],
    # the real header says fail; the sender's own header below it says pass
    "lower-forged-header": [
        f"{TRUSTED}; dkim=none; spf=softfail smtp.mailfrom=evil.example; "
        "dmarc=fail header.from=cijidas.jp",
        f"{TRUSTED}; {INJECTED}; dmarc=pass header.from=cijidas.jp"],
    # a real pass, but for the domain's newsletter service, not for the staff address
    "other-signer-of-the-domain": [
        f"{TRUSTED}; dkim=pass header.d=cijidas.jp header.i=@cijidas.jp header.s=newsletter"],
    "other-address-of-the-domain": [
        f"{TRUSTED}; dkim=pass header.i=newsletter@cijidas.jp header.d=cijidas.jp"],
    "spf-only": [f"{TRUSTED}; spf=pass smtp.mailfrom=privacy@cijidas.jp"],
}


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_authentication_results_authenticate_nobody(bot, case):
    forged = with_auth_results(
        staff_reply(bot, "#verified\n#close\nYour data is deleted. Confirm your password at "
                         "https://evil.example/login", to=BOT), *FORGED[case])
    bot.deliver(forged)

    assert last_processed(bot) == ("staff", "suspicious-sender")
    assert suspicious_reasons(bot) == ["not-authenticated"]
    assert len(bot.sent_to(CUSTOMER)) == 1  # only the acknowledgement
    assert bot.ticket("status") == "open"
    assert bot.ticket("verification_status") != "staff_verified"


@pytest.mark.parametrize("header", [
    f"{TRUSTED}; dkim=pass header.d=cijidas.jp header.i=@cijidas.jp; "
    "dmarc=pass (p=reject) header.from=cijidas.jp",
    f"{TRUSTED};\n\tdkim=pass (2048-bit key) header.d=cijidas.jp header.i=privacy@cijidas.jp",
])
def test_a_real_pass_for_the_staff_address_authenticates(bot, header):
    bot.deliver(with_auth_results(staff_reply(bot, "We have deleted your account.", to=BOT),
                                  header))

    assert last_processed(bot) == ("staff", "relayed")
    assert "We have deleted your account." in body(bot.sent_to(CUSTOMER)[-1])


def test_domain_signature_counts_only_when_configured(tmp_path, imap_server, smtp_server, env):
    desk = _bot(tmp_path, imap_server, smtp_server, dkim_domain_signs_for_all=True)
    desk.deliver(with_auth_results(staff_reply(desk, "Answer.", to=BOT),
                                   *FORGED["other-signer-of-the-domain"]))
    assert last_processed(desk) == ("staff", "relayed")
    desk.deliver(with_auth_results(staff_reply(desk, "Answer.", to=BOT),
                                   *FORGED["spf-only"]))  # SPF still never counts
    assert last_processed(desk) == ("staff", "suspicious-sender")


# -- routing tokens -----------------------------------------------------------------------

def test_each_staff_recipient_gets_a_token_of_their_own(bot):
    [mine] = bot.sent_to(STAFF)
    [theirs] = bot.sent_to(OTHER_STAFF)
    assert mine["To"] == STAFF and theirs["To"] == OTHER_STAFF  # one mail per recipient
    assert mine["Reply-To"] != theirs["Reply-To"]
    token = parse_reply_address(str(theirs["Reply-To"]), BOT)
    today = datetime.now(UTC).date()
    assert token.ref == "CJD-000001"
    assert token.expires in (today + timedelta(days=30), today + timedelta(days=31))

    bot.notification = theirs
    bot.deliver(staff_reply_from(bot, OTHER_STAFF, "Answered by the DPO.", theirs["Reply-To"]))
    assert last_processed(bot) == ("staff", "relayed")
    assert "Answered by the DPO." in body(bot.sent_to(CUSTOMER)[-1])


def staff_reply_from(bot: Bot, sender: str, text: str, to) -> bytes:
    """A reply to ``bot.notification`` written by ``sender``."""
    raw = staff_reply(bot, text, to=str(to))
    return raw.replace(f"<{STAFF}>".encode(), f"<{sender}>".encode(), 1)


def test_another_staff_members_token_is_rejected(bot):
    mine = bot.sent_to(STAFF)[-1]  # privacy@'s notification, forwarded to or seen by dpo@
    bot.deliver(staff_reply_from(bot, OTHER_STAFF, "#close\nClosing this.", mine["Reply-To"]))

    assert last_processed(bot) == ("staff", "suspicious-sender")
    assert suspicious_reasons(bot) == ["token-of-other-address"]
    assert bot.ticket("status") == "open" and len(bot.sent_to(CUSTOMER)) == 1


def test_an_expired_token_is_rejected(bot):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    expired = reply_address(BOT, "CJD-000001", STAFF_TOKEN_SECRET, STAFF, yesterday)
    bot.deliver(staff_reply(bot, "#close\nA late answer.", to=expired))

    assert last_processed(bot) == ("staff", "suspicious-sender")
    assert suspicious_reasons(bot) == ["token-expired"]
    alert = bot.sent_to(STAFF)[-1]
    assert "token-expired" in body(alert) and "within 30 days" in body(alert)
    assert bot.ticket("status") == "open" and len(bot.sent_to(CUSTOMER)) == 1


def test_tokens_reach_neither_the_export_nor_datasette(bot, tmp_path):
    reply_to = str(bot.notification["Reply-To"])
    bot.deliver(staff_reply(bot, f"We deleted it.\n(Internal: reply to {reply_to})",
                            to=f"Cijidas <{reply_to}>"))
    bot.deliver(customer_mail("Re: [CJD-000001] Please delete my account", "Thank you!",
                              message_id="<req-2@example.com>"))  # notifies staff again
    assert last_processed(bot)[0] == "followup"

    assert query(bot.db, "SELECT to_addrs FROM messages WHERE kind = 'staff_reply' AND "
                         "direction = 'in'") == [(BOT,)]
    assert ROUTING not in body(bot.sent_to(CUSTOMER)[-1])
    exported = run_cli(bot.config, "export", "CJD-000001")
    assert exported.returncode == 0, exported.stderr
    assert "We deleted it." in exported.stdout and ROUTING not in exported.stdout
    assert rows_with(bot.db, ROUTING) == []


def rows_with(db: Path, needle: str) -> list[str]:
    """``table.column`` of every stored value (text or bytes) that contains ``needle``:
    what datasette could show or offer for download."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%'")]
        found = []
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            for row in cursor:
                found += [f"{table}.{name}" for name, value in zip(names, row, strict=True)
                          if _contains(value, needle)]
        return sorted(set(found))
    finally:
        conn.close()


def _contains(value: object, needle: str) -> bool:
    if isinstance(value, bytes):
        return needle.encode() in value.lower()
    return isinstance(value, str) and needle in value.lower()


# -- logging and state folder --------------------------------------------------------------

def test_verbose_logging_never_contains_mail(tmp_path, imap_server, smtp_server):
    config = write_config(tmp_path, imap_server, smtp_server)
    secret_text = "Marker-5b1e: my passport number is B1234567"
    imap_server.append(BOT, customer_mail("Please delete my data", secret_text,
                                          headers={"X-Marker": "Header-marker-93c2"}))

    result = run_cli(config, "-v", "once")

    assert result.returncode == 0, result.stderr[-2000:]
    assert scalar(tmp_path / "state" / "tickets.db", "SELECT count(*) FROM tickets") == 1
    assert "1 new message(s) handled" in result.stderr  # logging works ...
    for marker in ("Marker-5b1e", "B1234567", "Header-marker-93c2"):
        assert marker not in result.stderr  # ... but never shows the mail
    assert "BODY[]" not in result.stderr  # no IMAP protocol trace at all


def test_state_folder_is_made_owner_only(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # as a checkout leaves it (git keeps no folder modes)

    assert main(["--config", str(config), "once"]) == 0

    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "tickets.db").stat().st_mode) == 0o600


def test_new_state_folders_and_their_parents_are_owner_only(tmp_path):
    folder = tmp_path / "a" / "b" / "state"
    old = os.umask(0o022)
    try:
        owner_only_folder(folder)
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
