"""OAuth 2.0 for IMAP and SMTP: access tokens, and SASL XOAUTH2 / OAUTHBEARER logins.

One :class:`TokenSource` per process (:func:`source_for`) serves the IMAP session and the
outbox alike. It keeps tokens in memory and gets a new one :data:`REFRESH_EARLY` before
expiry. When a mail server refuses a token, the next login fetches one fresh token; if that
is refused too - or the token endpoint fails - logins back off (:data:`BACKOFF_START`
doubling to :data:`BACKOFF_MAX`) without asking anyone, and staff get ONE alert for the
streak (at once when the provider or server refused; after :data:`ALERT_AFTER` when the
endpoint is merely unreachable; across restarts at most once per :data:`ALERT_INTERVAL`).

With the ``refresh_token`` grant a rotated refresh token is written to the state folder
(:class:`RefreshTokenStore`: 0600, atomic) before it is used, and before the access token
that came with it is handed out; on start the saved one wins over ``$refresh_token_env``
when it descends from that same token (an operator who puts a new token there wins).

The provider side (msal, google-auth, plain RFC 6749) is :mod:`bot.adapters.oauth_grants`.
Neither a token nor a secret is ever logged.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import imaplib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.adapters.oauth_grants import Grant, OAuthError, make_grant, token_url_of
from bot.adapters.private_file import write_private
from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.mail import compose
from bot.models import MessageKind

log = logging.getLogger(__name__)

REFRESH_EARLY = timedelta(minutes=5)
BACKOFF_START = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
ALERT_AFTER = timedelta(minutes=15)
ALERT_INTERVAL = timedelta(hours=6)
FAILURE_EVENT = "oauth2_auth_failed"
ALERT_EVENT = "oauth2_alert"

__all__ = ["OAuthError", "OAuthLogin", "TokenSource", "credential", "source_for"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: datetime
    obtained_at: datetime


# -- the token source ---------------------------------------------------------------------

class TokenSource:
    """Access tokens for the configured ``[oauth2]`` provider (thread-safe)."""

    def __init__(self, settings: Settings, grant: Grant | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 alert: Callable[[str, datetime], None] | None = None) -> None:
        self.conf = settings.oauth2
        self.grant = grant or make_grant(self.conf, settings.oauth2_client_secret)
        self.clock = clock
        self.alert = alert if alert is not None else _staff_alert(settings)
        self.refresh_tokens = (RefreshTokenStore(settings.oauth2_state_path,
                                                 settings.oauth2_refresh_token)
                               if self.conf.grant == "refresh_token" else None)
        self.per_mailbox = self.conf.provider == "google" and \
            self.conf.grant == "client_credentials"
        self._tokens: dict[str, Token] = {}
        self._lock = threading.RLock()
        self._streak = _Streak()

    def token(self, user: str) -> str:
        """A valid access token for ``user``'s mailbox, fetched only when needed."""
        key = self._key(user)
        with self._lock:
            now = self.clock()
            cached = self._tokens.get(key)
            if cached and now < cached.expires_at - REFRESH_EARLY:
                return cached.value
            still_valid = cached.value if cached and now < cached.expires_at else None
            if now < self._streak.retry_at:  # backing off: ask nobody
                if still_valid:
                    return still_valid
                raise self._streak.backoff_error()
            try:
                fresh = self._fetch(key, now)
            except OAuthError as exc:
                self._failed(exc, now)
                if still_valid:  # refreshing early failed; the old token works a while
                    return still_valid
                raise
            self._tokens[key] = fresh
            return fresh.value

    def rejected(self, user: str, token: str, error: str) -> None:
        """A mail server refused ``token``: drop it; the caller may try once more with a
        fresh one. Raises :class:`OAuthError` when no retry is left (backoff, alert)."""
        with self._lock:
            key = self._key(user)
            if (cached := self._tokens.get(key)) and cached.value == token:
                del self._tokens[key]
            if self._streak.retry_allowed():
                log.warning("oauth2: %s; trying once with a fresh token", error)
                return
            exc = OAuthError(error, refused=True)
            self._failed(exc, self.clock())
            raise exc

    def accepted(self) -> None:
        """A mail server took a token: any failure streak is over."""
        with self._lock:
            if self._streak.since is not None:
                log.warning("oauth2: logins work again (failing since %s)",
                            self._streak.since.isoformat(timespec="seconds"))
            self._streak = _Streak()

    def status(self) -> dict[str, Any]:
        """What ``check`` shows: expiry of the cached tokens, the failure streak."""
        with self._lock:
            return {"expires_at": min((t.expires_at for t in self._tokens.values()),
                                      default=None),
                    "failing_since": self._streak.since, "last_error": self._streak.error,
                    "refresh_token": (self.refresh_tokens.describe()
                                      if self.refresh_tokens else "")}

    def _key(self, user: str) -> str:
        return user.lower() if self.per_mailbox else ""

    def _fetch(self, subject: str, now: datetime) -> Token:
        if self.refresh_tokens is None:
            issued = self.grant.fetch(subject, "")
        else:
            with self.refresh_tokens.locked():
                current = self.refresh_tokens.current()
                issued = self.grant.fetch(subject, current)
                if issued.refresh_token and issued.refresh_token != current:
                    self.refresh_tokens.save(issued.refresh_token)  # before anything uses it
        return Token(issued.access_token, now + timedelta(seconds=issued.expires_in), now)

    def _failed(self, exc: OAuthError, now: datetime) -> None:
        if self._streak.failed(str(exc), exc.refused, now):
            try:
                self.alert(str(exc), now)
            except Exception as alert_exc:  # noqa: BLE001 - an alert must never break login
                log.warning("oauth2: could not record the alert: %s", alert_exc)
        log.warning("oauth2: %s (next try not before %s)", exc,
                    self._streak.retry_at.isoformat(timespec="seconds"))


@dataclass
class _Streak:
    """Consecutive authentication failures: backoff, one retry, one alert."""

    since: datetime | None = None
    failures: int = 0
    retry_at: datetime = datetime.min.replace(tzinfo=UTC)
    error: str = ""
    retried: bool = False
    alerted: bool = False

    def backoff_error(self) -> OAuthError:
        since = self.since.isoformat(timespec="seconds") if self.since else "?"
        return OAuthError(f"authentication failing since {since} ({self.error}); next try "
                          f"after {self.retry_at.isoformat(timespec='seconds')}", refused=True)

    def retry_allowed(self) -> bool:
        """The first refusal of a streak may be retried with a fresh token; no other."""
        allowed, self.retried = not self.retried, True
        return allowed

    def failed(self, error: str, refused: bool, now: datetime) -> bool:
        """Record one failure; True when staff should be alerted now."""
        self.since = self.since or now
        self.failures += 1
        self.error = error
        self.retried = True  # after a failure, no free retry until a login succeeds
        self.retry_at = now + min(BACKOFF_START * 2 ** (self.failures - 1), BACKOFF_MAX)
        if self.alerted or not (refused or now - self.since >= ALERT_AFTER):
            return False
        self.alerted = True
        return True


# -- rotated refresh tokens ---------------------------------------------------------------

class RefreshTokenStore:
    """The refresh token in use: ``initial`` (from the environment), or the newest rotated
    one saved in ``path`` when it descends from that same initial token.

    The file holds the token, a fingerprint of the initial token it descends from and when
    it was saved; it is written owner-only and atomically (temp file, fsync, rename), and
    re-read before every refresh, so two processes (the worker and ``check``) never
    present a token the other has already rotated away (an flock serialises refreshes).
    """

    def __init__(self, path: Path, initial: str) -> None:
        self.path, self.initial = path, initial

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{self.path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def current(self) -> str:
        saved = self._read()
        if saved and (not self.initial or saved.get("seed") == _fingerprint(self.initial)):
            return str(saved.get("refresh_token") or "")
        if not self.initial:
            raise OAuthError("no refresh token: set the environment variable named by "
                             "oauth2.refresh_token_env", refused=True)
        return self.initial

    def save(self, token: str) -> None:
        """Write ``token`` durably; raise :class:`OAuthError` if the folder refuses."""
        saved = self._read() or {}
        seed = _fingerprint(self.initial) if self.initial else saved.get("seed", "")
        record = {"refresh_token": token, "seed": seed, "saved_at": utcnow().isoformat()}
        try:
            write_private(self.path, json.dumps(record).encode())
        except OSError as exc:
            raise OAuthError(f"cannot save the rotated refresh token to {self.path}: "
                             f"{exc.strerror}; the bot needs a writable state folder",
                             refused=True) from None

    def describe(self) -> str:
        saved = self._read()
        if saved and (not self.initial or saved.get("seed") == _fingerprint(self.initial)):
            return f"rotated, saved {saved.get('saved_at', '?')[:19]}Z in {self.path}"
        return "from the environment (not rotated yet)"

    def _read(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


# -- logins ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OAuthLogin:
    """What the IMAP and SMTP adapters log in with instead of a password."""

    user: str
    source: TokenSource

    def token(self) -> str:
        return self.source.token(self.user)

    def rejected(self, token: str, error: str) -> None:
        self.source.rejected(self.user, token, error)

    def imap(self, client: Any, host: str, port: int) -> None:
        """AUTHENTICATE an imapclient session: OAUTHBEARER when offered, else XOAUTH2."""
        mechanism = "OAUTHBEARER" if client.has_capability("AUTH=OAUTHBEARER") else "XOAUTH2"
        while True:
            token = self.token()
            responder = _Responder(sasl_response(mechanism, self.user, token, host, port),
                                   mechanism)
            try:
                # imaplib directly (imapclient's helpers answer an error challenge with the
                # token again): the empty answer RFC 7628 and Google's XOAUTH2 expect.
                client._imap.authenticate(mechanism, responder)
            except imaplib.IMAP4.abort:
                raise  # the connection broke: no verdict on the token
            except imaplib.IMAP4.error as exc:
                self.rejected(token, f"IMAP {mechanism} refused for {self.user}: {exc}")
                continue
            self.source.accepted()
            return

    async def smtp(self, client: Any, host: str, port: int) -> None:
        """AUTH on an aiosmtplib session: OAUTHBEARER when offered, else XOAUTH2."""
        if client.last_ehlo_response is None:
            await client.ehlo()
        methods = [m.lower() for m in client.server_auth_methods]
        mechanism = "OAUTHBEARER" if "oauthbearer" in methods else "XOAUTH2"
        while True:
            token = self.token()
            initial = base64.b64encode(sasl_response(mechanism, self.user, token, host, port))
            reply = await client.execute_command(b"AUTH", mechanism.encode(), initial)
            if reply.code == 334:  # an error challenge: finish the exchange to get the code
                reply = await client.execute_command(_error_ack(mechanism))
            if reply.code == 235:
                self.source.accepted()
                return
            self.rejected(token, f"SMTP {mechanism} refused for {self.user}: "
                                 f"{reply.code} {reply.message[:200]}")


class _Responder:
    """imaplib authobject: the initial response, then the error acknowledgement."""

    def __init__(self, initial: bytes, mechanism: str) -> None:
        self.answers = [initial]
        self.mechanism = mechanism

    def __call__(self, challenge: bytes) -> bytes:
        if self.answers:
            return self.answers.pop()
        return b"\x01" if self.mechanism == "OAUTHBEARER" else b""  # see _error_ack


def sasl_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The client's first SASL message (not yet base64): XOAUTH2 (Google's format) or
    OAUTHBEARER (RFC 7628, with the RFC 5801 GS2 header naming ``user``)."""
    if mechanism == "XOAUTH2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def _error_ack(mechanism: str) -> bytes:
    # RFC 7628 3.2.3: a single %x01 ends a failed OAUTHBEARER exchange; XOAUTH2: empty.
    return base64.b64encode(b"\x01") if mechanism == "OAUTHBEARER" else b""


# -- wiring ---------------------------------------------------------------------------------

_SOURCES: dict[tuple[Path, Any], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def uses_oauth2(settings: Settings) -> bool:
    return "oauth2" in (settings.mailbox.auth, settings.smtp.auth)


def source_for(settings: Settings) -> TokenSource:
    """The process's token source for this configuration (IMAP and SMTP share it, so a
    rotated refresh token is never presented twice)."""
    key = (settings.oauth2_state_path.resolve(), settings.oauth2)
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = TokenSource(settings)
        return _SOURCES[key]


def sasl_user(settings: Settings, service: str) -> str:
    """IMAP: ``mailbox.username``; SMTP: ``smtp.username`` or else ``mailbox.username``
    (a shared mailbox logs in as the shared address)."""
    if service == "imap":
        return settings.mailbox.username
    return settings.smtp.username or settings.mailbox.username


def credential(settings: Settings, service: str,
               source: TokenSource | None = None) -> str | OAuthLogin:
    """What ``service`` ("imap" or "smtp") logs in with: the password, or a token login."""
    section = settings.mailbox if service == "imap" else settings.smtp
    if section.auth != "oauth2":
        return settings.imap_password if service == "imap" else settings.smtp_password
    return OAuthLogin(sasl_user(settings, service), source or source_for(settings))


# -- staff alert ----------------------------------------------------------------------------

def _staff_alert(settings: Settings) -> Callable[[str, datetime], None]:
    def alert(error: str, now: datetime) -> None:
        alert_staff(settings, error, now)
    return alert


def alert_staff(settings: Settings, error: str, now: datetime) -> None:
    """Record the failure (``oauth2_auth_failed`` event) and queue one mail to staff,
    unless one was queued within :data:`ALERT_INTERVAL` (another process, a restart)."""
    recipients = list(settings.staff.notify or settings.staff.addresses)
    store = Store(settings.database_path)
    try:
        with store.transaction() as conn:
            store.add_event(conn, None, now, FAILURE_EVENT, {
                "provider": settings.oauth2.provider, "error": error[:300]})
            if not recipients or store.events_since(
                    ALERT_EVENT, utc_iso(now - ALERT_INTERVAL)):
                return
            message = compose.internal_mail(
                settings, to=recipients, subject=_ALERT_SUBJECT, date=now,
                text=_alert_text(settings, error),
                message_id=compose.make_message_id(settings.bot_domain))
            store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                          recipients=recipients, raw=bytes(message),
                          kind=MessageKind.NOTIFICATION.value, now=now)
            store.add_event(conn, None, now, ALERT_EVENT, {"error": error[:300]})
    finally:
        store.close()
    log.warning("oauth2: staff alerted about the failing login")


_ALERT_SUBJECT = "The bot cannot log in to the mailbox (OAuth 2.0)"


def _alert_text(settings: Settings, error: str) -> str:
    conf = settings.oauth2
    return (
        f"The bot's OAuth 2.0 login is failing: {error}\n\n"
        f"Provider: {conf.provider} ({conf.grant}), token endpoint "
        f"{token_url_of(conf)}, client {conf.client_id or '(service account)'}.\n"
        "Usual causes: an expired client secret (put the new one into "
        f"${conf.client_secret_env}), a revoked refresh token (a new one into "
        f"${conf.refresh_token_env}), or a permission or mailbox access policy that was "
        "changed. See the README, 'Microsoft 365 and Google Workspace'.\n\n"
        "The bot keeps retrying with backoff; `inquiry-bot check` shows the token status. "
        "Mail waits on the server (and in the outbox) meanwhile: nothing is lost.\n")
