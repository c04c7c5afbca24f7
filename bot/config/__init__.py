"""config.toml + environment secrets -> one frozen :class:`Settings`, validated once.

Every section is a frozen dataclass; its fields (names, types, defaults) *are* the
schema, so the validator below is generic: unknown keys, missing keys and wrong types
are reported as ``ConfigError("section.key: what is wrong")``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config.oauth2 import STATE_FILE as OAUTH2_STATE_FILE
from bot.config.oauth2 import OAuth2Section, client_secret, oauth2_problems, refresh_token
from bot.config.problems import (
    ConfigProblems,
    collect,
    new_problems,
    unknown_key,
    unknown_section,
)
from bot.config.requests import RequestsSection, requests_problems
from bot.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the repository (bot/config/)
DEFAULT_TEMPLATES_DIR = PACKAGE_ROOT / "templates" / "replies"
CONFIG_ENV = "INQUIRY_BOT_CONFIG"
SECURITY_MODES = ("tls", "starttls", "none")
CATEGORIES = ("question", "complaint", "disclosure", "correction", "deletion")
_DURATION = re.compile(r"^\s*(\d+)\s+(business|calendar)\s+days?\s*$")


@dataclass(frozen=True)
class BotSection:
    address: str
    display_name: str = "Cijidas"
    ticket_prefix: str = "CJD"
    timezone: str = "Asia/Tokyo"
    default_language: str = "en"
    templates_dir: str = ""
    company_name: str = "Cijidas LLC"
    policy_url: str = "https://cijidas.jp/privacy"
    complaints_owner: str = "Personal Information Protection Manager"
    complaints_owner_vi: str = "Người quản lý bảo vệ thông tin cá nhân"
    policy_name: str = "Privacy Policy"  # what the policy calls itself, named in mails
    policy_name_vi: str = "Chính sách bảo mật"
    heartbeat_file: str = ""


@dataclass(frozen=True)
class MailboxSection:
    host: str
    username: str
    port: int = 993
    security: str = "tls"
    password_env: str = "INQUIRY_BOT_IMAP_PASSWORD"
    password: str = ""
    auth: str = "password"  # password | oauth2 (see [oauth2])
    folder: str = "INBOX"
    idle: bool = True
    poll_seconds: int = 60
    batch_size: int = 50
    first_run_days: int = 7  # first start: mail this recent becomes unacknowledged tickets
    quarantine_folder: str = ""
    verify_tls: bool = True
    ca_file: str = ""
    timeout_seconds: int = 60
    allow_insecure: bool = False  # security = "none" to a host that is not loopback


@dataclass(frozen=True)
class SmtpSection:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password_env: str = "INQUIRY_BOT_SMTP_PASSWORD"
    password: str = ""
    auth: str = "password"  # password | oauth2: SASL user smtp.username or mailbox.username
    verify_tls: bool = True
    ca_file: str = ""
    timeout_seconds: int = 30
    allow_insecure: bool = False  # security = "none" to a host that is not loopback


@dataclass(frozen=True)
class StorageSection:
    database: str = "state/tickets.db"
    max_page_count: int = 0  # 0 = unlimited; a small value simulates a full disk (tests)


@dataclass(frozen=True)
class StaffSection:
    addresses: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    token_secret_env: str = "INQUIRY_BOT_STAFF_TOKEN_SECRET"
    token_days: int = 30  # a notification's Reply-To token works for this many days
    trusted_authserv_ids: list[str] = field(default_factory=list)
    dkim_domain_signs_for_all: bool = False  # header.d alone proves a staff address


@dataclass(frozen=True)
class EscalationSection:
    to: list[str] = field(default_factory=list)
    check_minutes: int = 5
    digest_time: str = "09:00"
    level3_after_days: int = 7
    notify_on_complaint: bool = False
    business_hours_only: bool = True
    incident_hours: int = 72  # a reported data incident: answer within (Vietnam: 72 h)


@dataclass(frozen=True)
class TriageSection:
    review_threshold: float = 0.0  # 0: the threshold stored with the model
    language_threshold: float = 0.7


@dataclass(frozen=True)
class LimitsSection:
    auto_replies_per_hour: int = 5
    auto_replies_per_ticket_per_day: int = 5
    max_message_bytes: int = 25 * 1024 * 1024
    too_large_action: str = "acknowledge"  # acknowledge | quarantine
    # Beyond this many individual notices about one sender per hour, one hourly summary.
    staff_notifications_per_sender_per_hour: int = 5
    # Automatic customer mail overall (every recipient) per rolling hour; beyond it mail
    # waits in the outbox for the next free slot and staff get one alert per hour.
    auto_mail_per_hour: int = 100


@dataclass(frozen=True)
class SlaSection:
    """Per category: ``"N business days"`` or ``"N calendar days"``."""

    pause_while_waiting: bool = False
    business_hours: str = "09:00-18:00"
    closures: list[str] = field(default_factory=lambda: ["12-29..01-03"])
    question: list[str] = field(
        default_factory=lambda: ["5 business days", "3 business days", "10 calendar days"])
    complaint: list[str] = field(
        default_factory=lambda: ["2 business days", "1 business day", "10 calendar days"])
    disclosure: list[str] = field(
        default_factory=lambda: ["10 calendar days", "7 calendar days", "14 calendar days"])
    correction: list[str] = field(
        default_factory=lambda: ["10 calendar days", "7 calendar days", "14 calendar days"])
    deletion: list[str] = field(
        default_factory=lambda: ["10 calendar days", "5 calendar days", "14 calendar days"])


@dataclass(frozen=True)
class VerificationSection:
    code_ttl_days: int = 7
    max_attempts: int = 5
    reminder_after_days: int = 3


@dataclass(frozen=True)
class DisclosureSection:
    fee: str = ""  # legacy fixed text; empty: fee_yen, written per language
    fee_yen: int = 1000
    payment_instructions: str = "We will send payment instructions after verifying your identity."
    payment_instructions_vi: str = ("Chúng tôi sẽ gửi hướng dẫn thanh toán sau khi xác minh "
                                    "danh tính của Quý khách.")


@dataclass(frozen=True)
class TicketsSection:
    reopen_days: int = 30
    followup_note_hours: int = 0
    opt_out_days: int = 3  # business days by which marketing sends stop after an opt-out


@dataclass(frozen=True)
class AdminSection:
    base_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8001
    require_password: bool = False  # true: `admin` refuses to start without a password hash


@dataclass(frozen=True)
class RetentionSection:
    days_after_close: int = 365


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration plus resolved secrets and paths."""

    bot: BotSection
    mailbox: MailboxSection
    smtp: SmtpSection
    oauth2: OAuth2Section = field(default_factory=OAuth2Section)
    storage: StorageSection = field(default_factory=StorageSection)
    staff: StaffSection = field(default_factory=StaffSection)
    escalation: EscalationSection = field(default_factory=EscalationSection)
    triage: TriageSection = field(default_factory=TriageSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    sla: SlaSection = field(default_factory=SlaSection)
    verification: VerificationSection = field(default_factory=VerificationSection)
    disclosure: DisclosureSection = field(default_factory=DisclosureSection)
    tickets: TicketsSection = field(default_factory=TicketsSection)
    admin: AdminSection = field(default_factory=AdminSection)
    retention: RetentionSection = field(default_factory=RetentionSection)
    requests: RequestsSection = field(default_factory=RequestsSection)
    # Resolved at load time, not config keys:
    config_path: Path = Path("config.toml")
    database_path: Path = Path("state/tickets.db")
    templates_path: Path = DEFAULT_TEMPLATES_DIR
    heartbeat_path: Path | None = None
    cache_path: Path | None = None  # state kept between runs (owner-only); None: keep nothing
    imap_password: str = field(default="", repr=False)
    smtp_password: str = field(default="", repr=False)
    staff_token_secret: str = field(default="", repr=False)
    oauth2_client_secret: str = field(default="", repr=False)
    oauth2_refresh_token: str = field(default="", repr=False)

    @property
    def oauth2_state_path(self) -> Path:
        """Where rotated OAuth refresh tokens are kept (0600), beside the database."""
        return self.database_path.parent / OAUTH2_STATE_FILE

    @property
    def bot_domain(self) -> str:
        return self.bot.address.rpartition("@")[2]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bot.timezone)


# Settings fields filled in at load time; every other field is a config section.
_RESOLVED = frozenset({"config_path", "database_path", "templates_path", "heartbeat_path",
                       "cache_path", "imap_password", "smtp_password", "staff_token_secret",
                       "oauth2_client_secret", "oauth2_refresh_token"})
_SECTIONS = {f.name: f.type for f in dataclasses.fields(Settings) if f.name not in _RESOLVED}


def resolve_config_path(explicit: str | None) -> Path:
    """``--config``, else ``$INQUIRY_BOT_CONFIG``, else ``./config.toml``."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or "config.toml")


def load_config(explicit: str | None, require_secrets: bool = True) -> Settings:
    """The settings every command uses: ``--config`` (or its fallbacks), validated."""
    return load_settings(resolve_config_path(explicit), require_secrets=require_secrets)


def load_settings(path: Path, environ: typing.Mapping[str, str] | None = None,
                  require_secrets: bool = True) -> Settings:
    """Read, validate and resolve ``path``; raise :class:`ConfigError` naming the key."""
    environ = os.environ if environ is None else environ
    data = _read_toml(path)
    return settings_from_dict(data, path, environ, require_secrets)


def settings_from_dict(data: dict[str, Any], path: Path, environ: typing.Mapping[str, str],
                       require_secrets: bool = True) -> Settings:
    """Validate a parsed TOML document (see :func:`load_settings`); every problem found is
    reported at once (:class:`ConfigProblems`), not only the first."""
    problems = [unknown_section(name, _SECTIONS) for name in sorted(set(data) - set(_SECTIONS))]
    sections = {name: _build_section(name, _section_class(name), data.get(name, {}), problems)
                for name in _SECTIONS}
    base = path.resolve().parent
    database = _relative_to(base, sections["storage"].database)
    settings = Settings(**sections, config_path=path.resolve(), database_path=database,
                        cache_path=database.parent / "cache",
                        templates_path=(_relative_to(base, sections["bot"].templates_dir)
                                        if sections["bot"].templates_dir
                                        else DEFAULT_TEMPLATES_DIR),
                        heartbeat_path=(_relative_to(base, sections["bot"].heartbeat_file)
                                        if sections["bot"].heartbeat_file else None))
    problems += new_problems(_check_values(settings), already=problems)
    oauth2 = "oauth2" in (settings.mailbox.auth, settings.smtp.auth)
    secrets = collect(problems, {
        "imap_password": lambda: _secret("mailbox", settings.mailbox.password,
                                         settings.mailbox.password_env, environ,
                                         require_secrets and settings.mailbox.auth == "password"),
        "smtp_password": lambda: _secret("smtp", settings.smtp.password,
                                         settings.smtp.password_env, environ,
                                         require_secrets and bool(settings.smtp.username)
                                         and settings.smtp.auth == "password"),
        "staff_token_secret": lambda: _staff_token_secret(settings.staff, environ),
        "oauth2_client_secret": lambda: client_secret(settings.oauth2, oauth2, environ,
                                                      require_secrets),
        "oauth2_refresh_token": lambda: refresh_token(settings.oauth2, oauth2, environ,
                                                      require_secrets,
                                                      settings.oauth2_state_path),
    })
    if problems:
        raise ConfigProblems(problems, path)
    return dataclasses.replace(settings, **secrets)


def _staff_token_secret(staff: StaffSection, environ: typing.Mapping[str, str]) -> str:
    """The HMAC secret of staff routing addresses; "" disables them (see README)."""
    value = environ.get(staff.token_secret_env, "") if staff.token_secret_env else ""
    if value and len(value) < 16:
        raise ConfigError(f"staff.token_secret_env: {staff.token_secret_env} must hold at "
                          "least 16 characters (a random secret)")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file unreadable: {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _section_class(name: str) -> type:
    hints = typing.get_type_hints(Settings)
    return hints[name]


def _keys() -> dict[str, list[str]]:
    """Every section's keys (for "did you mean" across sections)."""
    return {name: [f.name for f in dataclasses.fields(_section_class(name))] for name in _SECTIONS}


def _build_section(name: str, cls: type, raw: Any, problems: list[str]) -> Any:
    """The section from ``raw``; what is wrong is appended to ``problems``, and a bad value
    is left at its default (a required one blank) so that checking goes on."""
    if not isinstance(raw, dict):
        problems.append(f"{name}: must be a table ([{name}])")
        raw = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems += [unknown_key(name, key, _keys()) for key in sorted(set(raw) - set(fields))]
    values = {}
    for key, fld in fields.items():
        required = (fld.default is dataclasses.MISSING
                    and fld.default_factory is dataclasses.MISSING)
        try:
            if key in raw:
                values[key] = _checked(f"{name}.{key}", raw[key], hints[key])
            elif required:
                raise ConfigError(f"{name}.{key}: missing (required)")
        except ConfigError as exc:
            problems.append(str(exc))
            if required:
                values[key] = [] if typing.get_origin(hints[key]) is list else hints[key]()
    return cls(**values)


def _checked(key: str, value: Any, expected: Any) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list) or not all(_is(v, item_type) for v in value):
            raise ConfigError(f"{key}: must be a list of {item_type.__name__}")
        return list(value)
    if origin in (typing.Union, types.UnionType):
        expected = next(t for t in typing.get_args(expected) if t is not type(None))
    if not _is(value, expected):
        raise ConfigError(f"{key}: must be {expected.__name__}, got {type(value).__name__} "
                          f"{value!r}")
    return float(value) if expected is float else value


def _is(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check_values(s: Settings) -> Iterator[str]:
    """Semantic checks that types alone cannot express: yields every problem found."""
    yield from _address_problems("bot.address", s.bot.address)
    for section in ("mailbox", "smtp"):
        sec = getattr(s, section)
        if not 1 <= sec.port <= 65535:
            yield f"{section}.port: must be 1-65535, got {sec.port}"
        if sec.security not in SECURITY_MODES:
            yield (f"{section}.security: must be one of {', '.join(SECURITY_MODES)}, "
                   f"got {sec.security!r}")
        if not sec.host:
            yield f"{section}.host: must not be empty"
        elif sec.security == "none" and not sec.allow_insecure and not is_loopback(sec.host):
            yield (f"{section}.security: \"none\" sends passwords and mail in clear "
                   f"text to {sec.host}, which is not loopback; use \"tls\" or "
                   f"\"starttls\" (or set {section}.allow_insecure = true)")
    if s.bot.default_language not in ("en", "vi"):
        yield f"bot.default_language: must be 'en' or 'vi', got {s.bot.default_language!r}"
    if not re.fullmatch(r"[A-Z][A-Z0-9]{1,9}", s.bot.ticket_prefix):
        yield ("bot.ticket_prefix: must be 2-10 upper-case letters/digits, "
               f"got {s.bot.ticket_prefix!r}")
    try:
        ZoneInfo(s.bot.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield f"bot.timezone: unknown time zone {s.bot.timezone!r}"
    yield from _check_positive(s)
    yield from _check_addresses(s)
    yield from _check_sla(s.sla)
    yield from oauth2_problems(s.mailbox.auth, s.smtp.auth, s.oauth2)
    yield from requests_problems(s.requests)
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", s.escalation.digest_time):
        yield f"escalation.digest_time: must be HH:MM, got {s.escalation.digest_time!r}"
    if not 0.0 <= s.triage.review_threshold <= 1.0:
        yield "triage.review_threshold: must be between 0 and 1"
    if s.limits.too_large_action not in ("acknowledge", "quarantine"):
        yield ("limits.too_large_action: must be 'acknowledge' or 'quarantine', "
               f"got {s.limits.too_large_action!r}")
    if s.storage.max_page_count < 0:
        yield "storage.max_page_count: must be 0 (unlimited) or positive"


def _check_positive(s: Settings) -> Iterator[str]:
    for key in ("mailbox.poll_seconds", "mailbox.batch_size", "mailbox.timeout_seconds",
                "smtp.timeout_seconds", "limits.max_message_bytes",
                "limits.auto_replies_per_hour", "limits.auto_replies_per_ticket_per_day",
                "limits.staff_notifications_per_sender_per_hour", "limits.auto_mail_per_hour",
                "escalation.check_minutes", "escalation.incident_hours",
                "verification.code_ttl_days",
                "verification.max_attempts", "retention.days_after_close",
                "staff.token_days"):
        section, name = key.split(".")
        if getattr(getattr(s, section), name) < 1:
            yield f"{key}: must be at least 1"


def _check_addresses(s: Settings) -> Iterator[str]:
    for key in ("staff.addresses", "staff.notify", "escalation.to"):
        section, name = key.split(".")
        for address in getattr(getattr(s, section), name):
            yield from _address_problems(key, address)


def _check_sla(sla: SlaSection) -> Iterator[str]:
    for category in CATEGORIES:
        values = getattr(sla, category)
        if len(values) != 3:
            yield f"sla.{category}: must list [respond, escalate, hard deadline]"
        for value in values:
            if not _DURATION.match(value):
                yield (f"sla.{category}: {value!r} is not 'N business days' or "
                       "'N calendar days'")
    if not re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", sla.business_hours):
        yield f"sla.business_hours: must be HH:MM-HH:MM, got {sla.business_hours!r}"
    for closure in sla.closures:
        if not re.fullmatch(r"\d\d-\d\d(\.\.\d\d-\d\d)?", closure):
            yield f"sla.closures: {closure!r} is not 'MM-DD' or 'MM-DD..MM-DD'"


def is_loopback(host: str) -> bool:
    """``localhost`` (RFC 6761 names included) or a loopback IP; no DNS look-up."""
    name = host.strip().strip("[]").rstrip(".").lower()
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(name).is_loopback
    return name == "localhost" or name.endswith(".localhost")


def _address_problems(key: str, value: str) -> Iterator[str]:
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
        yield f"{key}: {value!r} is not an email address"


def _secret(section: str, inline: str, env_name: str, environ: typing.Mapping[str, str],
            required: bool) -> str:
    if inline:
        return inline
    value = environ.get(env_name, "") if env_name else ""
    if required and not value:
        raise ConfigError(f"{section}.password_env: environment variable {env_name} is not set "
                          f"(or set {section}.password)")
    return value


def _relative_to(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_duration(value: str) -> tuple[int, bool]:
    """``"5 business days"`` -> ``(5, True)``; ``"10 calendar days"`` -> ``(10, False)``."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)), match.group(2) == "business"
