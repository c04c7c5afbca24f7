"""OAuth 2.0 for IMAP and SMTP, against real loopback servers: the token server in
tests/tokenserver.py (RFC 6749 token endpoint, introspection, msal's discovery, Google's
JWT-bearer grant), Dovecot checking XOAUTH2/OAUTHBEARER tokens at its introspection
endpoint (``passdb oauth2``), and aiosmtpd with an ``auth_XOAUTH2`` handler that asks
the same endpoint. Time is a test clock (no sleeps); the servers are real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from botenv import BOT, REPO, bot_env, customer_mail, query, write_config
from mailservers import (
    PASSWORD,
    REQUIRE_DOVECOT_ENV,
    TEST_USERS,
    OAuthDovecotServer,
    find_dovecot,
)
from tokenserver import JWT_BEARER, OAuthSmtpServer, TokenServer

from bot.adapters import oauth
from bot.adapters.imap import Mailbox
from bot.adapters.oauth import OAuthError, OAuthLogin, TokenSource
from bot.adapters.smtp import AUTH, Envelope, send_all
from bot.config import load_settings
from bot.errors import ConfigError, TransientError
from bot.ops.check import run_checks

CLIENT_ID = "inquiry-bot-app"
CLIENT_SECRET = "app-secret-for-tests"
SECRET_ENV = "INQUIRY_BOT_OAUTH2_CLIENT_SECRET"
REFRESH_ENV = "INQUIRY_BOT_OAUTH2_REFRESH_TOKEN"
SHARED = "privacy@cijidas.jp"
NOWHERE = SimpleNamespace(host="127.0.0.1", port=1)


class Clock:
    """The token source's clock; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def token_server(tmp_path: Path):
    with TokenServer(workdir=tmp_path) as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET, mailbox=BOT)
        yield server


@pytest.fixture
def oauth_dovecot(tmp_path: Path, token_server: TokenServer):
    """Dovecot taking XOAUTH2 and OAUTHBEARER, checking tokens at the token server."""
    yield from _oauth_dovecot(tmp_path, token_server, ("xoauth2", "oauthbearer"))


@pytest.fixture
def xoauth2_dovecot(tmp_path: Path, token_server: TokenServer):
    """Dovecot taking XOAUTH2 only (like Exchange Online)."""
    yield from _oauth_dovecot(tmp_path, token_server, ("xoauth2",))


def _oauth_dovecot(tmp_path: Path, token_server: TokenServer, mechanisms: tuple[str, ...]):
    if find_dovecot() is None:
        if os.environ.get(REQUIRE_DOVECOT_ENV) == "1":
            pytest.fail("Dovecot is required for the XOAUTH2 tests but is not installed")
        pytest.skip("IMAP XOAUTH2 needs Dovecot (pymap has no OAuth): apt-get install "
                    "dovecot-imapd")
    server = OAuthDovecotServer(tmp_path / "dovecot-oauth", token_server.introspection_url,
                                mechanisms=mechanisms)
    for address in TEST_USERS:
        server.add_user(address, PASSWORD)
    with server:
        yield server


def oauth_config(tmp_path: Path, tokens: TokenServer, imap=NOWHERE, smtp=None,
                 more: dict | None = None, **oauth2: str) -> Path:
    """A config whose mailbox (and smtp, when given) logs in with OAuth 2.0; ``more``
    adds or overrides keys: ``{"section": {"key": value}}``."""
    sections = {"mailbox": {"auth": "oauth2"}, "smtp": {"auth": "oauth2"} if smtp else {},
                "oauth2": {"provider": "generic", "token_url": tokens.token_url,
                           "client_id": CLIENT_ID, **oauth2}}
    for name, values in (more or {}).items():
        sections[name].update(values)
    return write_config(tmp_path, imap, smtp, **sections)


def environ(**extra: str) -> dict[str, str]:
    return {SECRET_ENV: CLIENT_SECRET, **extra}


def settings_of(config: Path, **extra: str):
    return load_settings(config, environ(**extra))


def source_of(settings, clock: Clock, alerts: list | None = None) -> TokenSource:
    """A token source; with ``alerts`` staff alerts are collected there instead of mailed."""
    if alerts is None:
        return TokenSource(settings, clock=clock)
    return TokenSource(settings, clock=clock, alert=lambda error, now: alerts.append(error))


def saved_refresh_token(path: Path) -> str:
    try:
        return json.loads(path.read_text())["refresh_token"]
    except (OSError, ValueError, KeyError):
        return ""


# -- configuration ----------------------------------------------------------------------

def _problems(config: Path, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env)
    return list(getattr(caught.value, "problems", None) or [str(caught.value)])


@pytest.mark.parametrize("oauth2,missing", [
    ({}, ["oauth2.provider"]),
    ({"provider": "generic"}, ["oauth2.token_url", "oauth2.client_id"]),
    ({"provider": "microsoft"}, ["oauth2.tenant", "oauth2.client_id"]),
    ({"provider": "microsoft", "tenant": "t", "client_id": "c", "grant": "refresh_token",
      "refresh_token_env": ""}, ["oauth2.refresh_token_env"]),
    ({"provider": "google", "client_secret_env": ""}, ["oauth2.client_secret_env"]),
    ({"provider": "google", "grant": "refresh_token"}, ["oauth2.client_id"]),
])
def test_oauth2_names_every_key_its_provider_needs(tmp_path, oauth2, missing):
    config = write_config(tmp_path, NOWHERE, None, mailbox={"auth": "oauth2"}, oauth2=oauth2)
    problems = _problems(config, environ(**{REFRESH_ENV: "rt-first"}))
    assert sorted(p.split(":")[0] for p in problems) == sorted(missing), problems
    assert all('mailbox.auth = "oauth2"' in p for p in problems)


@pytest.mark.parametrize("sections,key", [
    ({"oauth2": {"token_url": "http://tokens.example.com/token"}}, "oauth2.token_url"),
    ({"oauth2": {"provider": "microsoft", "tenant": "t",
                 "token_url": "http://127.0.0.1:9/t/oauth2/v2.0/token"}}, "oauth2.token_url"),
    ({"oauth2": {"grant": "password"}}, "oauth2.grant"),
    ({"mailbox": {"auth": "xoauth2"}}, "mailbox.auth"),
])
def test_bad_oauth2_values_name_their_key(tmp_path, token_server, sections, key):
    config = oauth_config(tmp_path, token_server, more=sections)
    problems = _problems(config, environ())
    assert [p.split(":")[0] for p in problems] == [key], problems


def test_oauth2_needs_no_password_but_its_own_secrets(tmp_path, token_server):
    app = oauth_config(tmp_path, token_server)
    assert [p.split(":")[0] for p in _problems(app, {})] == ["oauth2.client_secret_env"]
    # A public client with a refresh token needs no client secret; no IMAP password either.
    config = oauth_config(tmp_path, token_server, grant="refresh_token")
    assert [p.split(":")[0] for p in _problems(config, {})] == ["oauth2.refresh_token_env"]
    settings = settings_of(config, **{REFRESH_ENV: "rt-first"})
    assert settings.imap_password == ""
    assert settings.oauth2_refresh_token == "rt-first"
    # A saved (rotated) refresh token is enough once the first one has been used.
    settings.oauth2_state_path.parent.mkdir(parents=True)
    settings.oauth2_state_path.write_text('{"refresh_token": "rt-2", "seed": ""}')
    assert settings_of(config).oauth2_refresh_token == ""


@pytest.mark.parametrize("smtp_username,expected", [("", BOT), (SHARED, SHARED)])
def test_the_smtp_sasl_user_is_smtp_username_or_the_mailbox(tmp_path, token_server,
                                                            smtp_username, expected):
    config = oauth_config(tmp_path, token_server, smtp=NOWHERE,
                          more={"smtp": {"username": smtp_username}})
    settings = settings_of(config)
    assert oauth.sasl_user(settings, "imap") == BOT
    login = oauth.credential(settings, "smtp")
    assert isinstance(login, OAuthLogin) and login.user == expected


# -- tokens: cache, renewal, refresh-token rotation ----------------------------------------

def test_a_token_is_kept_and_renewed_five_minutes_before_it_expires(tmp_path, token_server,
                                                                   clock):
    source = source_of(settings_of(oauth_config(tmp_path, token_server)), clock, [])
    first = source.token(BOT)
    assert source.token(BOT) == first
    clock.advance(minutes=54)  # 6 minutes left: still good
    assert source.token(BOT) == first
    assert len(token_server.grants("client_credentials")) == 1
    clock.advance(minutes=2)  # 4 minutes left: renewed now, not when it fails
    second = source.token(BOT)
    assert second != first and token_server.check(second) == BOT
    assert len(token_server.grants("client_credentials")) == 2
    assert token_server.requests[0].scope == ""  # generic: no scope unless configured


def test_a_rotated_refresh_token_is_saved_before_it_is_used(tmp_path, token_server, clock):
    first = token_server.issue_refresh_token(CLIENT_ID, BOT)
    settings = settings_of(oauth_config(tmp_path, token_server, grant="refresh_token"),
                           **{REFRESH_ENV: first})
    state = settings.oauth2_state_path
    presented: list[tuple[str, str]] = []  # (token the bot presents, token saved right then)
    token_server.on_refresh = lambda token: presented.append((token, saved_refresh_token(state)))
    source = source_of(settings, clock, [])

    access = source.token(BOT)
    rotated = saved_refresh_token(state)
    assert rotated and rotated != first and token_server.check(access) == BOT
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    clock.advance(hours=1)
    source.token(BOT)

    assert [token for token, _ in presented] == [first, rotated]
    assert presented[1][1] == rotated  # on disk before the server ever saw it
    assert [r.answered for r in token_server.grants("refresh_token")] == [200, 200]
    assert saved_refresh_token(state) not in (first, rotated)  # rotated again, saved again


def test_after_a_restart_the_saved_refresh_token_wins_unless_a_new_one_is_given(
        tmp_path, token_server, clock):
    first = token_server.issue_refresh_token(CLIENT_ID, BOT)
    config = oauth_config(tmp_path, token_server, grant="refresh_token")
    source_of(settings_of(config, **{REFRESH_ENV: first}), clock, []).token(BOT)
    rotated = saved_refresh_token(settings_of(config).oauth2_state_path)

    # Restart: the environment still holds the first token, which no longer works.
    source_of(settings_of(config, **{REFRESH_ENV: first}), clock, []).token(BOT)
    assert token_server.grants("refresh_token")[-1].refresh_token == rotated
    assert token_server.grants("refresh_token")[-1].answered == 200

    # An operator puts a brand-new refresh token into the environment: that one wins.
    brand_new = token_server.issue_refresh_token(CLIENT_ID, BOT)
    source_of(settings_of(config, **{REFRESH_ENV: brand_new}), clock, []).token(BOT)
    assert token_server.grants("refresh_token")[-1].refresh_token == brand_new
    assert token_server.grants("refresh_token")[-1].answered == 200


def test_a_revoked_refresh_token_alerts_staff_at_once(tmp_path, token_server, clock):
    first = token_server.issue_refresh_token(CLIENT_ID, BOT)
    settings = settings_of(oauth_config(tmp_path, token_server, grant="refresh_token"),
                           **{REFRESH_ENV: first})
    token_server.revoke_refresh_tokens()
    alerts: list[str] = []
    source = source_of(settings, clock, alerts)
    with pytest.raises(OAuthError, match="invalid_grant") as caught:
        source.token(BOT)
    assert caught.value.refused
    assert len(alerts) == 1 and "invalid_grant" in alerts[0]


# -- the token endpoint failing -------------------------------------------------------------

def test_a_token_endpoint_that_is_down_is_retried_with_backoff(tmp_path, token_server, clock):
    alerts: list[str] = []
    source = source_of(settings_of(oauth_config(tmp_path, token_server)), clock, alerts)
    token_server.down = True

    with pytest.raises(OAuthError, match="temporarily_unavailable") as caught:
        source.token(BOT)
    assert not caught.value.refused  # may pass by itself
    hits = token_server.hits
    with pytest.raises(OAuthError, match="next try after"):
        source.token(BOT)  # backing off: nobody is asked
    assert token_server.hits == hits
    assert alerts == []  # an endpoint down for a moment is not news

    clock.advance(minutes=16)  # still down after 15 minutes: now staff hear of it, once
    with pytest.raises(OAuthError):
        source.token(BOT)
    clock.advance(minutes=16)
    with pytest.raises(OAuthError):
        source.token(BOT)
    assert token_server.hits == hits + 2 and len(alerts) == 1

    token_server.down = False
    clock.advance(minutes=16)
    assert token_server.check(source.token(BOT)) == BOT


def test_when_renewing_fails_the_old_token_serves_until_it_expires(tmp_path, token_server,
                                                                 clock):
    source = source_of(settings_of(oauth_config(tmp_path, token_server)), clock, [])
    first = source.token(BOT)
    token_server.down = True
    clock.advance(minutes=56)  # 4 minutes left: renewal is due, and fails
    assert source.token(BOT) == first
    clock.advance(minutes=5)  # expired: now the failure is the caller's
    with pytest.raises(OAuthError):
        source.token(BOT)


def test_an_unreachable_token_endpoint_is_a_transient_error(tmp_path, token_server, clock):
    source = source_of(settings_of(oauth_config(tmp_path, token_server)), clock, [])
    token_server.stop()
    with pytest.raises(TransientError, match="unreachable"):
        source.token(BOT)


def test_a_wrong_client_secret_alerts_once_and_backs_off(tmp_path, token_server, clock):
    alerts: list[str] = []
    settings = load_settings(oauth_config(tmp_path, token_server), {SECRET_ENV: "expired"})
    source = source_of(settings, clock, alerts)
    for _ in range(3):
        with pytest.raises(OAuthError, match="invalid_client") as caught:
            source.token(BOT)
        assert caught.value.refused
        clock.advance(minutes=20)
    assert len(token_server.grants("client_credentials")) == 3  # one per backoff period
    assert len(alerts) == 1
    assert CLIENT_SECRET not in alerts[0] and "expired" not in alerts[0]


# -- IMAP: Dovecot checks the tokens --------------------------------------------------------

def imap_settings(tmp_path, tokens, server, smtp=None, **oauth2):
    return settings_of(oauth_config(tmp_path, tokens, imap=server, smtp=smtp, **oauth2))


def test_imap_logs_in_with_a_token_and_refreshes_once_after_a_revocation(
        tmp_path, token_server, oauth_dovecot, clock):
    settings = imap_settings(tmp_path, token_server, oauth_dovecot)
    login = OAuthLogin(BOT, source_of(settings, clock))
    oauth_dovecot.append(BOT, customer_mail("Hello", "Is my data safe?"))

    mailbox = Mailbox(settings.mailbox, login)
    assert len(mailbox.uids_after(0)) == 1
    mailbox.close()
    token_server.revoke_access_tokens()  # e.g. an admin revoked the app's sessions
    Mailbox(settings.mailbox, login).close()

    assert len(token_server.grants("client_credentials")) == 2  # the first, one fresh one
    assert query(settings.database_path, "SELECT type FROM events") == []  # no alert
    assert "method=OAUTHBEARER" in oauth_dovecot.log_path.read_text()


def test_imap_uses_xoauth2_where_oauthbearer_is_not_offered(tmp_path, token_server,
                                                            xoauth2_dovecot, clock):
    settings = imap_settings(tmp_path, token_server, xoauth2_dovecot)
    Mailbox(settings.mailbox, OAuthLogin(BOT, source_of(settings, clock))).close()
    log = xoauth2_dovecot.log_path.read_text()
    assert "method=XOAUTH2" in log and "method=OAUTHBEARER" not in log


def test_a_token_imap_keeps_refusing_backs_off_and_alerts_staff_once(
        tmp_path, token_server, oauth_dovecot, clock):
    settings = imap_settings(tmp_path, token_server, oauth_dovecot)
    login = OAuthLogin(BOT, source_of(settings, clock))  # the real alert: event + staff mail
    token_server.app_mailbox[CLIENT_ID] = "someone-else@cijidas.jp"  # access policy changed

    with pytest.raises(TransientError, match="refused"):
        Mailbox(settings.mailbox, login)
    assert len(token_server.grants("client_credentials")) == 2  # one refresh, no more
    introspections = token_server.introspections
    with pytest.raises(TransientError, match="next try after"):
        Mailbox(settings.mailbox, login)  # at once again: backing off, nobody asked
    assert token_server.introspections == introspections
    clock.advance(minutes=2)
    with pytest.raises(TransientError, match="refused"):
        Mailbox(settings.mailbox, login)  # after the backoff: one token, one try
    assert len(token_server.grants("client_credentials")) == 3

    db = settings.database_path
    assert [t for (t,) in query(db, "SELECT type FROM events ORDER BY id")] == [
        oauth.FAILURE_EVENT, oauth.ALERT_EVENT]  # once for the streak
    alerts = query(db, "SELECT recipients, raw FROM outbox")
    assert len(alerts) == 1 and json.loads(alerts[0][0]) == ["privacy@cijidas.jp"]
    assert b"cannot log in to the mailbox (OAuth 2.0)" in alerts[0][1]
    assert CLIENT_SECRET.encode() not in alerts[0][1]

    token_server.app_mailbox[CLIENT_ID] = BOT  # fixed: the next login works
    clock.advance(minutes=2)
    Mailbox(settings.mailbox, login).close()


# -- SMTP: aiosmtpd's auth_XOAUTH2 asks the token server -----------------------------------

def _envelope(key: int = 1) -> Envelope:
    return Envelope(key, BOT, ["customer@example.com"],
                    customer_mail("Re: your question", "We answer soon.", sender=BOT))


@pytest.mark.parametrize("oauthbearer", [False, True], ids=["xoauth2", "oauthbearer"])
def test_smtp_sends_with_a_token_and_refreshes_once_after_a_revocation(
        tmp_path, token_server, clock, oauthbearer):
    with OAuthSmtpServer(token_server, oauthbearer=oauthbearer) as server:
        settings = settings_of(oauth_config(tmp_path, token_server, smtp=server))
        login = oauth.credential(settings, "smtp", source_of(settings, clock, []))
        results: list = []
        send_all(settings.smtp, login, [_envelope(1)], results.append)
        token_server.revoke_access_tokens()
        send_all(settings.smtp, login, [_envelope(2)], results.append)
        server.wait_for(2)

    assert [r.status for r in results] == ["sent", "sent"]
    mechanism = "OAUTHBEARER" if oauthbearer else "XOAUTH2"
    assert server.handler.mechanisms_used == [mechanism] * 3  # ok, refused, ok
    assert len(token_server.grants("client_credentials")) == 2


def test_smtp_refusing_every_token_is_an_auth_outage_and_alerts_staff(tmp_path, token_server,
                                                                     clock):
    with OAuthSmtpServer(token_server) as server:
        settings = settings_of(oauth_config(tmp_path, token_server, smtp=server))
        alerts: list[str] = []
        login = oauth.credential(settings, "smtp", source_of(settings, clock, alerts))
        token_server.app_mailbox[CLIENT_ID] = "someone-else@cijidas.jp"
        results: list = []
        send_all(settings.smtp, login, [_envelope(1), _envelope(2)], results.append)

    assert [(r.status, r.failure) for r in results] == [("transient", AUTH)] * 2
    assert "535" in (results[0].error or "")
    assert len(token_server.grants("client_credentials")) == 2
    assert len(alerts) == 1 and server.received == []


# -- the providers' own libraries -------------------------------------------------------------

def test_microsoft_client_credentials_through_msal(tmp_path, clock):
    with TokenServer(tls=True, workdir=tmp_path) as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET, mailbox=BOT)
        config = write_config(tmp_path, NOWHERE, None, mailbox={"auth": "oauth2"}, oauth2={
            "provider": "microsoft", "tenant": "contoso", "client_id": CLIENT_ID,
            "token_url": server.microsoft_token_url("contoso"), "ca_file": str(server.ca_file)})
        token = source_of(settings_of(config), clock, []).token(BOT)
        assert server.check(token) == BOT
    (grant,) = server.grants("client_credentials")
    assert grant.scope == "https://outlook.office365.com/.default"


def test_microsoft_refresh_tokens_rotate_through_msal(tmp_path, clock):
    with TokenServer(tls=True, workdir=tmp_path) as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET)
        first = server.issue_refresh_token(CLIENT_ID, BOT)
        config = write_config(tmp_path, NOWHERE, None, mailbox={"auth": "oauth2"}, oauth2={
            "provider": "microsoft", "tenant": "contoso", "client_id": CLIENT_ID,
            "grant": "refresh_token", "token_url": server.microsoft_token_url("contoso"),
            "ca_file": str(server.ca_file)})
        settings = settings_of(config, **{REFRESH_ENV: first})
        source = source_of(settings, clock, [])
        assert server.check(source.token(BOT)) == BOT
        rotated = saved_refresh_token(settings.oauth2_state_path)
        clock.advance(hours=1)
        assert server.check(source.token(BOT)) == BOT
    assert rotated and [g.refresh_token for g in server.grants("refresh_token")] == [first,
                                                                                      rotated]
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in server.requests[0].scope


def test_msal_refuses_plain_http_so_the_config_does_too(tmp_path, token_server):
    config = write_config(tmp_path, NOWHERE, None, mailbox={"auth": "oauth2"}, oauth2={
        "provider": "microsoft", "tenant": "contoso", "client_id": CLIENT_ID,
        "token_url": token_server.microsoft_token_url("contoso")})
    assert [p.split(":")[0] for p in _problems(config, environ())] == ["oauth2.token_url"]


def _service_account(token_server: TokenServer) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "inquiry-bot@cijidas-mail.iam.gserviceaccount.com"
    token_server.service_accounts[email] = key.public_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "client_email": email, "client_id": "1234",
                       "private_key": pem, "private_key_id": "k1",
                       "token_uri": "https://oauth2.googleapis.com/token"})


@pytest.mark.parametrize("as_file", [False, True], ids=["key-in-env", "key-file"])
def test_google_service_account_acts_as_each_mailbox(tmp_path, token_server, clock, as_file):
    key = _service_account(token_server)
    if as_file:
        (tmp_path / "key.json").write_text(key)
        key = str(tmp_path / "key.json")
    config = write_config(tmp_path, NOWHERE, NOWHERE, mailbox={"auth": "oauth2"},
                          smtp={"auth": "oauth2", "username": SHARED},
                          oauth2={"provider": "google", "token_url": token_server.token_url})
    settings = load_settings(config, {SECRET_ENV: key})
    source = source_of(settings, clock, [])
    imap_token = source.token(oauth.sasl_user(settings, "imap"))
    smtp_token = source.token(oauth.sasl_user(settings, "smtp"))
    assert source.token(BOT) == imap_token  # kept per mailbox

    assert token_server.check(imap_token) == BOT and token_server.check(smtp_token) == SHARED
    grants = token_server.grants(JWT_BEARER)
    assert [g.subject for g in grants] == [BOT, SHARED]
    assert {g.scope for g in grants} == {"https://mail.google.com/"}


# -- check, and the whole bot ---------------------------------------------------------

def test_check_shows_the_token_and_logs_in_with_it(tmp_path, token_server, oauth_dovecot):
    with OAuthSmtpServer(token_server) as server:
        config = oauth_config(tmp_path, token_server, imap=oauth_dovecot, smtp=server)
        good = {f.name: f for f in run_checks(config, environ())}
        bad = {f.name: f for f in run_checks(config, {SECRET_ENV: "expired"})}

    assert good["oauth2 token"].ok and "valid until" in good["oauth2 token"].detail
    assert good["imap login"].ok and "OAuth 2.0" in good["imap login"].detail
    assert good["smtp login"].ok and good["secrets"].ok
    assert not bad["oauth2 token"].ok
    assert "invalid_client" in bad["oauth2 token"].detail
    assert f"${SECRET_ENV}" in bad["oauth2 token"].detail
    assert not settings_of(config).database_path.exists()  # a check alerts nobody


def test_once_reads_and_answers_with_one_token(tmp_path, token_server, oauth_dovecot):
    oauth_dovecot.append(BOT, customer_mail("Question", "What data do you keep about me?"))
    with OAuthSmtpServer(token_server) as server:
        config = oauth_config(tmp_path, token_server, imap=oauth_dovecot, smtp=server)
        env = {**bot_env(), SECRET_ENV: CLIENT_SECRET}
        env.pop("TEST_IMAP_PASSWORD")  # no password anywhere
        result = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "once"],
                                capture_output=True, text=True, env=env, timeout=120,
                                cwd=REPO)
        assert result.returncode == 0, result.stderr
        received = server.wait_for(1)

    assert any("customer@example.com" in rcpts for _, rcpts, _ in received)
    assert len(token_server.grants("client_credentials")) == 1  # IMAP and SMTP share it
    for secret in [CLIENT_SECRET, *token_server.access]:
        assert secret not in result.stderr
