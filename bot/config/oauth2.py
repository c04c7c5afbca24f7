"""The ``[oauth2]`` section of config.toml and its checks (imported by :mod:`bot.config`).

Used when ``mailbox.auth`` or ``smtp.auth`` is ``"oauth2"``: which keys each provider and
grant needs, where tokens may be requested (https, or http to a loopback host only), and
the secrets from the environment. Kept apart from :mod:`bot.config` so that module stays
short; it imports nothing of the bot.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bot.errors import ConfigError

AUTH_MODES = ("password", "oauth2")
PROVIDERS = ("microsoft", "google", "generic")
GRANTS = ("client_credentials", "refresh_token")
STATE_FILE = "oauth2_refresh_token.json"  # rotated refresh tokens, beside the database


@dataclass(frozen=True)
class OAuth2Section:
    provider: str = ""  # microsoft | google | generic
    tenant: str = ""  # microsoft: the directory (tenant) id or domain
    token_url: str = ""  # generic: required; others: overrides the provider's endpoint
    client_id: str = ""
    client_secret_env: str = "INQUIRY_BOT_OAUTH2_CLIENT_SECRET"  # google: service-account key
    grant: str = "client_credentials"  # client_credentials | refresh_token
    refresh_token_env: str = "INQUIRY_BOT_OAUTH2_REFRESH_TOKEN"  # the first refresh token
    scope: str = ""  # empty: the provider's default
    ca_file: str = ""  # extra CA bundle (PEM) for the token endpoint


def required_keys(conf: OAuth2Section) -> list[str]:
    """The ``[oauth2]`` keys that ``conf.provider`` with ``conf.grant`` cannot do without."""
    refresh = conf.grant == "refresh_token"
    keys = {"generic": ["token_url", "client_id"] + ([] if refresh else ["client_secret_env"]),
            "microsoft": ["tenant", "client_id", "client_secret_env"],
            "google": ["client_id", "client_secret_env"] if refresh else ["client_secret_env"]}
    return keys[conf.provider] + (["refresh_token_env"] if refresh else [])


def needs_secret(conf: OAuth2Section) -> bool:
    """A public client (generic, refresh_token) may have no client secret."""
    return not (conf.provider == "generic" and conf.grant == "refresh_token")


def oauth2_problems(mailbox_auth: str, smtp_auth: str, conf: OAuth2Section) -> Iterator[str]:
    """What is wrong with the ``auth`` keys and, when one of them is "oauth2", ``[oauth2]``."""
    for section, auth in (("mailbox", mailbox_auth), ("smtp", smtp_auth)):
        if auth not in AUTH_MODES:
            yield f"{section}.auth: must be 'password' or 'oauth2', got {auth!r}"
    users = [section for section, auth in (("mailbox", mailbox_auth), ("smtp", smtp_auth))
             if auth == "oauth2"]
    if not users:
        return
    why = f"required when {users[0]}.auth = \"oauth2\""
    if conf.provider not in PROVIDERS:
        yield (f"oauth2.provider: {why}: one of {', '.join(PROVIDERS)}" if not conf.provider
               else f"oauth2.provider: must be one of {', '.join(PROVIDERS)}, "
                    f"got {conf.provider!r}")
        return
    if conf.grant not in GRANTS:
        yield f"oauth2.grant: must be one of {', '.join(GRANTS)}, got {conf.grant!r}"
        return
    for key in required_keys(conf):
        if not getattr(conf, key):
            yield (f"oauth2.{key}: missing ({why} with provider \"{conf.provider}\" and grant "
                   f"\"{conf.grant}\")")
    if conf.token_url:
        yield from _token_url_problems(conf)


def _token_url_problems(conf: OAuth2Section) -> Iterator[str]:
    parts = urlsplit(conf.token_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        yield f"oauth2.token_url: {conf.token_url!r} is not an https:// URL"
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        yield (f"oauth2.token_url: http:// would send the client secret in clear text to "
               f"{parts.hostname}; use https:// (http is accepted for loopback hosts only)")
    elif conf.provider == "microsoft" and (parts.scheme != "https" or not parts.path.endswith(
            "/oauth2/v2.0/token")):
        yield ("oauth2.token_url: for provider \"microsoft\" it must be an https URL ending in "
               "/<tenant>/oauth2/v2.0/token (msal derives the authority from it)")


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_secret(conf: OAuth2Section, used: bool, environ: typing.Mapping[str, str],
                  required: bool) -> str:
    """``$client_secret_env`` (for google: the service-account JSON key or its path)."""
    value = environ.get(conf.client_secret_env, "") if used and conf.client_secret_env else ""
    # An empty client_secret_env is reported by oauth2_problems as a missing key.
    if required and used and needs_secret(conf) and conf.client_secret_env and not value:
        raise ConfigError(f"oauth2.client_secret_env: environment variable "
                          f"{conf.client_secret_env} is not set")
    return value


def refresh_token(conf: OAuth2Section, used: bool, environ: typing.Mapping[str, str],
                  required: bool, state_file: Path) -> str:
    """``$refresh_token_env``; it may be unset once a rotated token is saved."""
    if not used or conf.grant != "refresh_token":
        return ""
    value = environ.get(conf.refresh_token_env, "") if conf.refresh_token_env else ""
    if required and conf.refresh_token_env and not value and not state_file.exists():
        raise ConfigError(f"oauth2.refresh_token_env: environment variable "
                          f"{conf.refresh_token_env} is not set (and no rotated refresh token "
                          f"is saved in {state_file})")
    return value
