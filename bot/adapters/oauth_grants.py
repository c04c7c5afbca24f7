"""Where access tokens come from: one :class:`Grant` per provider (the network side of
:mod:`bot.adapters.oauth`).

* ``generic`` (and Google's ``refresh_token`` grant): plain RFC 6749 POSTs to
  ``oauth2.token_url`` with urllib from the standard library; TLS is verified
  (``oauth2.ca_file`` adds a private CA); ``http://`` is accepted only for a loopback host
  (the tests' token server), which the config check enforces.
* ``microsoft``: msal's ``ConfidentialClientApplication`` (extra ``oauth-microsoft``):
  ``acquire_token_for_client`` (client credentials; Exchange's app-only
  ``IMAP.AccessAsApp`` / ``SMTP.SendAsApp``) or ``acquire_token_by_refresh_token``.
* ``google`` with ``client_credentials``: a google-auth service account with domain-wide
  delegation (extra ``oauth-google``); the token is for one mailbox (``subject``).

A grant never caches and never logs a token or a secret; :class:`OAuthError` says what
went wrong and whether the provider refused (a human must act) or could not be reached.
"""

from __future__ import annotations

import importlib
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from bot.config import OAuth2Section, is_loopback
from bot.errors import TransientError

TIMEOUT_SECONDS = 30
MICROSOFT_LOGIN = "https://login.microsoftonline.com"
MICROSOFT_TOKEN_PATH = "/oauth2/v2.0/token"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
DEFAULT_SCOPES = {
    # App-only: one ".default" scope carries every permission granted to the app
    # (IMAP.AccessAsApp, SMTP.SendAsApp).
    ("microsoft", "client_credentials"): "https://outlook.office365.com/.default",
    # Delegated: msal adds offline_access itself (and refuses it in the list).
    ("microsoft", "refresh_token"): ("https://outlook.office.com/IMAP.AccessAsUser.All "
                                     "https://outlook.office.com/SMTP.Send"),
    ("google", "client_credentials"): "https://mail.google.com/",
    ("google", "refresh_token"): "https://mail.google.com/",
}
# RFC 6749 5.2 errors that mean "these credentials do not work" (a human must act), as
# opposed to an endpoint that is down or overloaded (which may pass by itself).
REFUSALS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client",
                      "invalid_scope", "access_denied", "invalid_request",
                      "unsupported_grant_type"})
EXTRA_HINT = {"microsoft": "pip install 'cijidas-inquiry-bot[oauth-microsoft]' (msal)",
              "google": "pip install 'cijidas-inquiry-bot[oauth-google]' (google-auth)"}


class OAuthError(TransientError):
    """No access token (or the mail server refused it). ``refused``: the provider or the
    server said no - wrong secret, revoked grant, missing permission - so a human must
    act; otherwise the token endpoint could not be reached and trying later may work."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Issued:
    """One answer of a token endpoint (``refresh_token`` only when it rotated one)."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(default="", repr=False)


class Grant(Protocol):
    def fetch(self, subject: str, refresh_token: str) -> Issued:
        """A new access token (for ``subject`` where tokens are per mailbox)."""


def scope_of(conf: OAuth2Section) -> str:
    """``oauth2.scope``, or the provider's default for the grant."""
    return conf.scope or DEFAULT_SCOPES.get((conf.provider, conf.grant), "")


def token_url_of(conf: OAuth2Section) -> str:
    """Where tokens are requested: ``oauth2.token_url`` or the provider's endpoint."""
    if conf.token_url:
        return conf.token_url
    if conf.provider == "microsoft":
        return f"{MICROSOFT_LOGIN}/{conf.tenant}{MICROSOFT_TOKEN_PATH}"
    return GOOGLE_TOKEN_URL if conf.provider == "google" else ""


def make_grant(conf: OAuth2Section, secret: str) -> Grant:
    """The grant for ``conf.provider`` and ``conf.grant``."""
    if conf.provider == "microsoft":
        return MsalGrant(conf, secret)
    if conf.provider == "google" and conf.grant == "client_credentials":
        return GoogleServiceAccountGrant(conf, secret)
    return HttpGrant(conf, secret)


# -- RFC 6749 over urllib -------------------------------------------------------------------

class HttpGrant:
    """``client_credentials`` or ``refresh_token`` as one form POST (RFC 6749 4.4, 6)."""

    def __init__(self, conf: OAuth2Section, secret: str) -> None:
        self.conf, self.secret = conf, secret

    def fetch(self, subject: str, refresh_token: str) -> Issued:
        form = {"grant_type": self.conf.grant, "client_id": self.conf.client_id}
        if self.secret:
            form["client_secret"] = self.secret
        if scope_of(self.conf):
            form["scope"] = scope_of(self.conf)
        if self.conf.grant == "refresh_token":
            form["refresh_token"] = refresh_token
        return issued(post_form(token_url_of(self.conf), form, self.conf.ca_file))


def post_form(url: str, form: dict[str, str], ca_file: str = "") -> dict[str, Any]:
    """POST ``form`` to ``url``; the JSON answer, or :class:`OAuthError`."""
    parts = urlsplit(url)
    request = urllib.request.Request(url, data=urlencode(form).encode(), method="POST",
                                     headers={"Accept": "application/json"})
    handlers: list[Any] = [urllib.request.HTTPSHandler(
        context=ssl.create_default_context(cafile=ca_file or None))]
    if is_loopback(parts.hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))  # never send loopback to a proxy
    try:
        with urllib.request.build_opener(*handlers).open(request,
                                                         timeout=TIMEOUT_SECONDS) as answer:
            return _json(answer.read())
    except urllib.error.HTTPError as exc:
        body = _json(exc.read(), strict=False)
        raise endpoint_error(parts.netloc, exc.code, body) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthError(f"token endpoint {parts.netloc} unreachable: {reason}") from None


def endpoint_error(where: str, status: int, body: dict[str, Any]) -> OAuthError:
    """An error answer (RFC 6749 5.2) as :class:`OAuthError`; the description is kept
    short (it names the problem, e.g. an expired client secret, never a secret)."""
    code = str(body.get("error") or f"HTTP {status}")
    description = str(body.get("error_description") or "").splitlines()[0:1]
    text = f"token endpoint {where} answered {code}" + (f": {description[0][:200]}"
                                                        if description else "")
    return OAuthError(text, refused=code in REFUSALS or status in (400, 401, 403))


def issued(body: dict[str, Any]) -> Issued:
    """Read a successful token response (RFC 6749 5.1)."""
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError("token endpoint answered without an access_token")
    try:
        expires_in = int(body.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    return Issued(token, expires_in, str(body.get("refresh_token") or ""))


def _json(data: bytes, strict: bool = True) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        if strict:
            raise OAuthError("token endpoint answered something that is not JSON") from None
        return {}
    return value if isinstance(value, dict) else {}


# -- Microsoft (msal) -----------------------------------------------------------------------

class MsalGrant:
    """Microsoft identity platform through msal (client credentials or refresh token)."""

    def __init__(self, conf: OAuth2Section, secret: str) -> None:
        self.conf, self.secret = conf, secret
        url = token_url_of(conf)
        self.authority = url[:-len(MICROSOFT_TOKEN_PATH)]
        self.where = urlsplit(url).netloc

    def fetch(self, subject: str, refresh_token: str) -> Issued:
        app = self._app()
        scopes = scope_of(self.conf).split()
        try:
            if self.conf.grant == "refresh_token":
                result = app.acquire_token_by_refresh_token(refresh_token, scopes=scopes)
            else:
                result = app.acquire_token_for_client(scopes=scopes)
        except Exception as exc:  # noqa: BLE001 - requests/msal errors: unreachable
            raise OAuthError(f"token endpoint {self.where} unreachable: "
                             f"{type(exc).__name__}") from None
        if "access_token" not in result:
            raise endpoint_error(self.where, 0, result)
        return issued(result)

    def _app(self) -> Any:
        """A fresh application (and token cache) per fetch: we cache tokens ourselves, and
        after a refusal the next token must really be new. Its discovery request costs one
        round trip about once an hour."""
        msal = _optional("msal", "microsoft")
        custom = bool(self.conf.token_url)
        try:
            return msal.ConfidentialClientApplication(
                self.conf.client_id, client_credential=self.secret, authority=self.authority,
                token_cache=msal.TokenCache(), http_client=http_session(self.conf.ca_file),
                validate_authority=not custom, instance_discovery=not custom)
        except Exception as exc:  # noqa: BLE001 - discovery failed (down, or no such tenant)
            raise OAuthError(f"Microsoft authority {self.authority} not usable: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else exc!r}") \
                from None


# -- Google service account ---------------------------------------------------------------

class GoogleServiceAccountGrant:
    """A Google Workspace service account with domain-wide delegation: the token acts as
    ``subject`` (the mailbox). The secret is the account's JSON key (or a path to it)."""

    def __init__(self, conf: OAuth2Section, secret: str) -> None:
        self.conf, self.secret = conf, secret

    def fetch(self, subject: str, refresh_token: str) -> Issued:
        service_account = _optional("google.oauth2.service_account", "google")
        transport = _optional("google.auth.transport.requests", "google")
        errors = _optional("google.auth.exceptions", "google")
        info = self._key()
        if self.conf.token_url:
            info = {**info, "token_uri": self.conf.token_url}
        try:
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=scope_of(self.conf).split(), subject=subject or None)
        except (ValueError, KeyError) as exc:
            raise OAuthError(f"the service-account key is not usable: {exc}", True) from None
        try:
            credentials.refresh(transport.Request(http_session(self.conf.ca_file)))
        except errors.RefreshError as exc:
            raise OAuthError(f"Google refused the token: {str(exc)[:200]}",
                             refused=not getattr(exc, "retryable", False)) from None
        except errors.TransportError as exc:
            raise OAuthError(f"Google token endpoint unreachable: {str(exc)[:200]}") from None
        left = credentials.expiry.replace(tzinfo=UTC) - datetime.now(UTC)
        return Issued(credentials.token, int(left.total_seconds()))

    def _key(self) -> dict[str, Any]:
        text = self.secret.strip()
        try:
            if not text.startswith("{"):
                text = Path(text).expanduser().read_text(encoding="utf-8")
            key = json.loads(text)
        except (OSError, ValueError) as exc:
            raise OAuthError("the service-account key (oauth2.client_secret_env) is neither "
                             f"JSON nor a readable JSON file: {type(exc).__name__}",
                             refused=True) from None
        if not isinstance(key, dict):
            raise OAuthError("the service-account key is not a JSON object", refused=True)
        return key


def http_session(ca_file: str) -> Any:
    """A requests session (for msal and google-auth) that verifies TLS with ``ca_file``
    when set. Passed per request: requests lets $REQUESTS_CA_BUNDLE override a session's
    own ``verify``, which would silently drop the configured CA."""
    requests = importlib.import_module("requests")

    class Session(requests.Session):  # type: ignore[misc, valid-type]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("verify", ca_file or True)
            kwargs.setdefault("timeout", TIMEOUT_SECONDS)
            return super().request(method, url, *args, **kwargs)

    return Session()


def _optional(module: str, provider: str) -> Any:
    """Import a provider library from an optional extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OAuthError(f"oauth2.provider = \"{provider}\" needs {module.split('.')[0]}: "
                         f"{EXTRA_HINT[provider]}", refused=True) from None
