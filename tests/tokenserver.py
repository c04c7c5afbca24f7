"""A small OAuth 2.0 authorization server on 127.0.0.1 for the OAuth tests.

It speaks just enough of the real protocols for the bot's token source and the mail
servers to be tested end to end, without mocks:

* the RFC 6749 token endpoint (``/token``, and ``/<tenant>/oauth2/v2.0/token`` as Microsoft
  names it) with the ``client_credentials`` and ``refresh_token`` grants (refresh tokens
  rotate: every refresh answers a new one and the presented one stops working), and the
  RFC 7523 JWT-bearer grant that Google service accounts use (signature checked against
  the account's public key; ``sub`` is the mailbox the token is for);
* the OpenID discovery document msal reads (``/<tenant>/v2.0/.well-known/openid-configuration``);
* an RFC 7662-style introspection endpoint (``POST /introspect``, form field ``token``):
  ``{"active": true, "username": ...}`` - what Dovecot's ``passdb oauth2`` asks with
  ``introspection_mode = post``, and what the aiosmtpd ``auth_XOAUTH2`` handler asks too.

With ``tls=True`` it serves HTTPS with a self-signed certificate (:attr:`ca_file`), which
msal needs (it accepts only https authorities). :attr:`down` answers 503 to everything.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from mailservers import self_signed_certificate

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"


@dataclass
class Access:
    """One issued access token: for which mailbox, until when, still valid?"""

    user: str
    client_id: str
    expires_at: float
    active: bool = True


@dataclass
class TokenRequest:
    """What one request to the token endpoint presented (for assertions)."""

    grant_type: str
    client_id: str
    refresh_token: str = ""
    subject: str = ""
    scope: str = ""
    answered: int = 0


@dataclass
class TokenServer:
    """See the module docstring. Start with ``with TokenServer() as server:``."""

    tls: bool = False
    workdir: Path | None = None
    expires_in: int = 3600
    clients: dict[str, str] = field(default_factory=dict)           # client_id -> secret
    app_mailbox: dict[str, str] = field(default_factory=dict)       # client_id -> mailbox
    service_accounts: dict[str, Any] = field(default_factory=dict)  # email -> public key
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    access: dict[str, Access] = field(default_factory=dict)
    requests: list[TokenRequest] = field(default_factory=list)
    introspections: int = 0
    hits: int = 0  # every HTTP request, answered or not (also while down)
    down: bool = False
    # Called with the refresh token a client presents, before it is checked (tests use it
    # to look at what the client saved before it used the token).
    on_refresh: Callable[[str], None] | None = None
    ca_file: Path | None = None
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        if self.tls:
            self._httpd.socket = self._tls_context().wrap_socket(self._httpd.socket,
                                                                  server_side=True)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> TokenServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    def microsoft_token_url(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    # -- what tests arrange -----------------------------------------------------------------
    def add_client(self, client_id: str, secret: str, mailbox: str = "") -> None:
        """A registered app; with ``mailbox`` its app-only tokens may open that mailbox."""
        self.clients[client_id] = secret
        if mailbox:
            self.app_mailbox[client_id] = mailbox

    def issue_refresh_token(self, client_id: str, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(18)
        with self._lock:
            self.refresh_tokens[token] = (client_id, user)
        return token

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops working (an admin revoked the app)."""
        with self._lock:
            for access in self.access.values():
                access.active = False

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self.refresh_tokens.clear()

    def check(self, token: str) -> str | None:
        """The mailbox ``token`` may open, or None (unknown, revoked or expired)."""
        with self._lock:
            self.introspections += 1
            access = self.access.get(token)
            if access is None or not access.active or access.expires_at < time.time():
                return None
            return access.user

    def grants(self, grant_type: str) -> list[TokenRequest]:
        return [r for r in self.requests if r.grant_type == grant_type]

    # -- token endpoint ---------------------------------------------------------------------
    def answer_token(self, form: dict[str, str], basic: tuple[str, str] | None
                     ) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        request = TokenRequest(grant, client_id, form.get("refresh_token", ""),
                               scope=form.get("scope", ""))
        with self._lock:
            self.requests.append(request)
        if grant == JWT_BEARER:
            status, body = self._jwt_bearer(form.get("assertion", ""), request)
        elif grant == "refresh_token":
            status, body = self._refresh(request, secret)
        elif grant == "client_credentials":
            status, body = self._client_credentials(client_id, secret)
        else:
            status, body = 400, {"error": "unsupported_grant_type"}
        request.answered = status
        return status, body

    def _client_ok(self, client_id: str, secret: str, required: bool = True) -> bool:
        known = self.clients.get(client_id)
        if known is None:
            return False
        return secret == known if (secret or required) else True

    def _client_credentials(self, client_id: str, secret: str) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(client_id, secret):
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret provided."}
        return 200, self._issue(self.app_mailbox.get(client_id, ""), client_id)

    def _refresh(self, request: TokenRequest, secret: str) -> tuple[int, dict[str, Any]]:
        if self.on_refresh is not None:
            self.on_refresh(request.refresh_token)
        if not self._client_ok(request.client_id, secret, required=False):
            return 401, {"error": "invalid_client"}
        with self._lock:
            owner = self.refresh_tokens.pop(request.refresh_token, None)
        if owner is None or owner[0] != request.client_id:
            return 400, {"error": "invalid_grant",
                         "error_description": "The refresh token has expired or was revoked."}
        body = self._issue(owner[1], request.client_id)
        body["refresh_token"] = self.issue_refresh_token(*owner)
        return 200, body

    def _jwt_bearer(self, assertion: str, request: TokenRequest) -> tuple[int, dict[str, Any]]:
        claims = self._verified_claims(assertion)
        # google-auth always names Google's endpoint as the audience, wherever it posts.
        if claims is None or claims.get("aud") not in (self.token_url, GOOGLE_AUDIENCE):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        request.client_id, request.subject = claims["iss"], claims.get("sub", "")
        request.scope = claims.get("scope", "")
        return 200, self._issue(request.subject, request.client_id)

    def _verified_claims(self, assertion: str) -> dict[str, Any] | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            header, payload, signature = assertion.split(".")
            claims = json.loads(_unb64(payload))
            key = self.service_accounts[claims["iss"]]
            key.verify(_unb64(signature), f"{header}.{payload}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, InvalidSignature):
            return None
        return claims

    def _issue(self, user: str, client_id: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self.access[token] = Access(user, client_id, time.time() + self.expires_in)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}

    # -- discovery ------------------------------------------------------------------------------
    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.base_url}/{tenant}"
        return {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys"}

    def _tls_context(self) -> ssl.SSLContext:
        folder = self.workdir or Path(".")
        cert, key = self_signed_certificate(folder / "token-cert.pem", folder / "token-key.pem")
        self.ca_file = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


class _Handler(BaseHTTPRequestHandler):
    server_state: TokenServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        state = self.server_state
        state.hits += 1
        if state.down:
            return self._reply(503, {"error": "temporarily_unavailable"})
        if self.path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = self.path.strip("/").split("/")[0]
            return self._reply(200, state.openid_configuration(tenant))
        return self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        state = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        state.hits += 1
        if state.down:
            return self._reply(503, {"error": "temporarily_unavailable"})
        if self.path == "/introspect":
            user = state.check(form.get("token", ""))
            return self._reply(200, {"active": True, "username": user} if user
                               else {"active": False})
        if self.path == "/token" or self.path.endswith("/oauth2/v2.0/token"):
            return self._reply(*state.answer_token(form, self._basic()))
        return self._reply(404, {"error": "not_found"})

    def _basic(self) -> tuple[str, str] | None:
        value = self.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: pytest shows failures, not every request


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- an SMTP server that takes OAuth tokens -------------------------------------------------

@dataclass
class _OAuthSmtpHandler:
    """aiosmtpd handler: ``auth_XOAUTH2`` (and ``auth_OAUTHBEARER`` when offered) ask the
    token server's introspection endpoint over HTTP, like a real submission server asks its
    identity provider; a refused token gets the error challenge and then 535."""

    introspection_url: str
    received: list[tuple[str, tuple[str, ...], bytes]] = field(default_factory=list)
    mechanisms_used: list[str] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.condition:
            self.received.append((envelope.mail_from, tuple(envelope.rcpt_tos),
                                  bytes(envelope.original_content or envelope.content)))
            self.condition.notify_all()
        return "250 2.0.0 OK queued"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:  # noqa: N802
        return await self._bearer(server, args, "XOAUTH2")

    async def _bearer(self, server: Any, args: list[str], mechanism: str) -> Any:
        from aiosmtpd.smtp import MISSING, AuthResult

        data = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        if data is MISSING:
            return AuthResult(success=False, handled=True)
        user, token = _bearer_fields(data.decode(errors="replace"), mechanism)
        self.mechanisms_used.append(mechanism)
        import asyncio
        owner = await asyncio.get_running_loop().run_in_executor(None, self._introspect, token)
        if owner is not None and owner == user.lower():
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "invalid_token", "schemes": "bearer",
                            "scope": "https://mail.example/"})
        await server.challenge_auth(error)  # the client ends the exchange (empty or %x01)
        return AuthResult(success=False, handled=False)  # -> 535

    def _introspect(self, token: str) -> str | None:
        import urllib.request
        from urllib.parse import urlencode

        request = urllib.request.Request(self.introspection_url,
                                         data=urlencode({"token": token}).encode())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as answer:
            body = json.loads(answer.read())
        return body.get("username") if body.get("active") else None


class _BearerToo(_OAuthSmtpHandler):
    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> Any:  # noqa: N802
        return await self._bearer(server, args, "OAUTHBEARER")


def _bearer_fields(text: str, mechanism: str) -> tuple[str, str]:
    """(user, token) from an XOAUTH2 or OAUTHBEARER (RFC 7628) initial response."""
    parts = text.split("\x01")
    fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if mechanism == "XOAUTH2":
        fields.update(dict(p.split("=", 1) for p in parts[:1] if "=" in p))
        user = fields.get("user", "")
    else:  # gs2 header "n,a=user,"
        user = parts[0].split(",")[1].removeprefix("a=").replace("=2C", ",").replace("=3D", "=")
    return user, fields.get("auth", "").removeprefix("Bearer ")


class OAuthSmtpServer:
    """aiosmtpd on 127.0.0.1 that requires AUTH XOAUTH2 (plus OAUTHBEARER with
    ``oauthbearer=True``; PLAIN/LOGIN are not offered, like Exchange Online)."""

    def __init__(self, tokens: TokenServer, oauthbearer: bool = False) -> None:
        handler_class = _BearerToo if oauthbearer else _OAuthSmtpHandler
        self.handler = handler_class(tokens.introspection_url)
        self.host, self.port = "127.0.0.1", 0
        self._controller: Any = None

    def __enter__(self) -> OAuthSmtpServer:
        import warnings

        from aiosmtpd.controller import Controller

        from bot.ops.devmail import free_port

        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS",
                                category=UserWarning)
        self.port = free_port()
        self._controller = Controller(self.handler, hostname=self.host, port=self.port,
                                      auth_required=True, auth_require_tls=False,
                                      auth_exclude_mechanism=["LOGIN", "PLAIN"],
                                      ready_timeout=10)
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[tuple[str, tuple[str, ...], bytes]]:
        return list(self.handler.received)

    def wait_for(self, count: int, timeout: float = 20.0) -> list:
        with self.handler.condition:
            if not self.handler.condition.wait_for(
                    lambda: len(self.handler.received) >= count, timeout):
                raise TimeoutError(f"expected {count} mail(s), got {len(self.handler.received)}")
            return list(self.handler.received)
