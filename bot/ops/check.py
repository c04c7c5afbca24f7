"""``inquiry-bot check``: is this config and this machine ready to run the bot?

Each check returns :class:`Finding` values; a failed finding says what to fix. Nothing is
sent, no mail is touched (the folder is only looked up) and the database is neither created
nor migrated. The CLI prints :func:`format_report` and exits 0 only when all findings pass.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import jinja2
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from bot.adapters import oauth
from bot.adapters.imap import tls_context
from bot.adapters.probe import probe_database
from bot.config import (
    CATEGORIES,
    MailboxSection,
    Settings,
    SmtpSection,
    is_loopback,
    load_settings,
)
from bot.errors import ConfigError

CHECK_TIMEOUT_SECONDS = 15  # a check should answer quickly even with long worker timeouts
LANGUAGES = ("en", "vi")


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, whether it passed, and the detail."""

    name: str
    ok: bool
    detail: str
    warning: bool = False  # passes, but the operator should read it (WARN in the report)


def run_checks(config_path: Path, environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Every check, in the order an operator would fix them; stops early on a bad config."""
    try:
        settings = load_settings(config_path, environ, require_secrets=False)
    except ConfigError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]  # every problem, one line each
        return [Finding("config", False, f"{problem} (fix {config_path})") for problem in problems]
    findings = [Finding("config", True, f"{settings.config_path}: every key valid")]
    findings += check_secrets(settings)
    findings.append(check_staff_auth(settings))
    findings += check_transport(settings)
    tokens = None
    if oauth.uses_oauth2(settings):  # no staff alert from a check: the report says it
        tokens = oauth.TokenSource(settings, alert=lambda error, now: None)
        findings.append(check_oauth2(settings, tokens))
    findings += check_imap(settings.mailbox, oauth.credential(settings, "imap", tokens))
    findings += check_smtp(settings.smtp, oauth.credential(settings, "smtp", tokens))
    findings.append(check_database(settings.database_path))
    findings.append(check_state_folder(settings.database_path.parent))
    findings.append(check_admin_exposure(settings, os.environ if environ is None else environ))
    findings.append(check_templates(settings.templates_path))
    return findings


def exit_code(findings: list[Finding]) -> int:
    """0 when every check passed, 2 when the config itself is bad, else 1."""
    if any(f.name == "config" and not f.ok for f in findings):
        return 2
    return 0 if all(f.ok for f in findings) else 1


def format_report(findings: list[Finding]) -> str:
    """A short aligned report, one line per finding, and a verdict."""
    width = max(len(f.name) for f in findings)
    lines = [f"{_label(f):<4}  {f.name:<{width}}  {f.detail}" for f in findings]
    failed = sum(not f.ok for f in findings)
    warned = sum(f.ok and f.warning for f in findings)
    lines.append(("all checks passed" if not failed else f"{failed} check(s) failed")
                 + (f", {warned} warning(s)" if warned else ""))
    return "\n".join(lines)


def _label(finding: Finding) -> str:
    if not finding.ok:
        return "FAIL"
    return "WARN" if finding.warning else "ok"


# -- what would bite later: staff authentication, clear text, exposure -----------------------

def check_staff_auth(settings: Settings) -> Finding:
    """Staff replies need a routing-token secret or trusted Authentication-Results: with
    neither, every staff answer is rejected as not authenticated."""
    staff = settings.staff
    trusted = ", ".join(staff.trusted_authserv_ids)
    if settings.staff_token_secret:
        return Finding("staff auth", True, f"Reply-To tokens (secret in "
                       f"${staff.token_secret_env})" + (f"; also trusting {trusted}"
                                                         if trusted else ""))
    if trusted:
        return Finding("staff auth", True, f"Authentication-Results of {trusted} only (no "
                       "token secret): staff must send through a server that signs with DKIM")
    variable = staff.token_secret_env or "INQUIRY_BOT_STAFF_TOKEN_SECRET"
    return Finding("staff auth", False, "staff replies cannot be authenticated, so every "
                   f"answer and command would be rejected: set ${variable} (see "
                   "staff.token_secret_env) to a random secret, e.g. `openssl rand -hex 32`, "
                   "in the EnvironmentFile (/etc/inquiry-bot/env); or list your receiving "
                   "server's authserv-id in staff.trusted_authserv_ids")


def check_transport(settings: Settings) -> list[Finding]:
    """Clear text or unverified TLS to a host beyond loopback is allowed, but worth a WARN."""
    warnings = []
    for section, conf in (("mailbox", settings.mailbox), ("smtp", settings.smtp)):
        if conf.security == "none" and not is_loopback(conf.host):
            warnings.append(Finding("tls", True, f"{section}.security = \"none\" to "
                                    f"{conf.host}: password and mail cross the network in "
                                    f"clear text; use \"tls\" or \"starttls\"", warning=True))
        elif conf.security != "none" and not conf.verify_tls:
            warnings.append(Finding("tls", True, f"{section}.verify_tls = false: anyone in "
                                    f"between can pose as {conf.host}; set {section}.ca_file "
                                    "to its CA instead", warning=True))
    return warnings or [Finding("tls", True, "mailbox and smtp: TLS verified, or loopback")]


def check_state_folder(folder: Path) -> Finding:
    """The database folder also holds -wal/-shm, the lock and the heartbeat: owner-only."""
    if not folder.exists():
        return Finding("state folder", True, f"{folder} will be created owner-only (0700)")
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding("state folder", True, f"{folder} is open to others (mode {mode:o}): "
                       f"chmod 700 {folder} (run/once do it at start when they own it)",
                       warning=True)
    return Finding("state folder", True, f"{folder} is owner-only ({mode:o})")


def check_admin_exposure(settings: Settings, environ: Mapping[str, str]) -> Finding:
    """Datasette beyond loopback must ask for a password (``admin`` refuses otherwise)."""
    from bot.ops.admin import PASSWORD_HASH_ENV

    host, port = settings.admin.host, settings.admin.port
    if is_loopback(host):
        return Finding("admin", True, f"datasette on {host}:{port}, loopback only")
    if not environ.get(PASSWORD_HASH_ENV):
        return Finding("admin", False, f"admin.host = {host!r} is not loopback and "
                       f"${PASSWORD_HASH_ENV} is not set: anyone reaching port {port} would "
                       "read every ticket (admin refuses to start): set it (README, 'Admin "
                       "guide') or admin.host = \"127.0.0.1\"")
    if importlib.util.find_spec("datasette_auth_passwords") is None:
        return Finding("admin", False, f"admin.host = {host!r} needs datasette-auth-passwords "
                       "for the password: pip install datasette-auth-passwords")
    return Finding("admin", True, f"datasette on {host}:{port} asks for a password")


# -- OAuth 2.0 ----------------------------------------------------------------------------

def check_oauth2(settings: Settings, tokens: oauth.TokenSource) -> Finding:
    """Get an access token the way the worker does; show the token's expiry and where the
    refresh token comes from (the mail logins below then use that token)."""
    conf = settings.oauth2
    what = f"{conf.provider}, {conf.grant}"
    user = oauth.sasl_user(settings, "imap" if settings.mailbox.auth == "oauth2" else "smtp")
    try:
        tokens.token(user)
    except oauth.OAuthError as exc:
        hint = (f"check oauth2.client_id, oauth2.tenant, the grant's permissions and the "
                f"secret in ${conf.client_secret_env} (an expired client secret looks like "
                "this)" if exc.refused else "check oauth2.token_url and the network")
        return Finding("oauth2 token", False, f"{what}: {exc}; {hint}")
    status = tokens.status()
    expires = status["expires_at"].astimezone(settings.tz)
    minutes = int((status["expires_at"] - tokens.clock()).total_seconds() // 60)
    detail = (f"{what}: token obtained from {oauth.token_url_of(conf)}, valid until "
              f"{expires:%Y-%m-%d %H:%M %Z} ({minutes} min; renewed 5 min before)")
    if status["refresh_token"]:
        detail += f"; refresh token {status['refresh_token']}"
    return Finding("oauth2 token", True, detail)


# -- secrets ------------------------------------------------------------------------------

def check_secrets(settings: Settings) -> list[Finding]:
    """Passwords come from the environment; say which variable is missing."""
    wanted = [("mailbox", settings.mailbox.password_env, settings.imap_password)
              ] if settings.mailbox.auth != "oauth2" else []  # oauth2: see check_oauth2
    if settings.smtp.username and settings.smtp.auth != "oauth2":
        wanted.append(("smtp", settings.smtp.password_env, settings.smtp_password))
    missing = [f"${env} ({section}.password_env)" for section, env, value in wanted
               if not value]
    if missing:
        return [Finding("secrets", False, f"not set: {', '.join(missing)}; export it or put it "
                        "in the EnvironmentFile (/etc/inquiry-bot/env)")]
    return [Finding("secrets", True, "passwords present in the environment")]


# -- IMAP ---------------------------------------------------------------------------------

def check_imap(box: MailboxSection, password: str) -> list[Finding]:
    """Connect (TLS/STARTTLS as configured), log in, find the folder, look for IDLE."""
    where = f"{box.host}:{box.port}"
    try:
        client = _imap_connect(box)
    except (OSError, IMAPClientError) as exc:
        return [Finding("imap connect", False, explain_connect_error("mailbox", box, exc))]
    findings = [Finding("imap connect", True, f"{where} ({_security_label(box.security)})")]
    try:
        findings += _imap_session(client, box, password)
    except (OSError, IMAPClientError) as exc:
        findings.append(Finding("imap session", False, f"{where} dropped the session: {exc}"))
    finally:
        _imap_logout(client)
    return findings


def _imap_connect(box: MailboxSection) -> IMAPClient:
    context = tls_context(box.verify_tls, box.ca_file)
    client = IMAPClient(box.host, port=box.port, ssl=box.security == "tls",
                        ssl_context=context, timeout=min(box.timeout_seconds,
                                                         CHECK_TIMEOUT_SECONDS))
    if box.security == "starttls":
        if not client.has_capability("STARTTLS"):
            _imap_logout(client)
            raise IMAPClientError("server does not offer STARTTLS")
        client.starttls(context)
    return client


def _imap_session(client: IMAPClient, box: MailboxSection,
                  password: str | oauth.OAuthLogin) -> list[Finding]:
    if isinstance(password, oauth.OAuthLogin):
        try:
            password.imap(client, box.host, box.port)
        except oauth.OAuthError as exc:
            return [Finding("imap login", False, f"token login as {password.user}: {exc}")]
    elif not password:
        return [Finding("imap login", False, "skipped: no password (see secrets)")]
    else:
        try:
            client.login(box.username, password)
        except LoginError:
            return [Finding("imap login", False, f"login as {box.username} refused: check "
                            f"mailbox.username and the password in ${box.password_env}")]
    findings = [Finding("imap login", True, f"logged in as {box.username}"
                        + (" (OAuth 2.0)" if box.auth == "oauth2" else ""))]
    if client.folder_exists(box.folder):
        findings.append(Finding("imap folder", True, f"{box.folder} exists"))
    else:
        names = sorted(str(f[2]) for f in client.list_folders())
        findings.append(Finding("imap folder", False, f"folder {box.folder!r} does not exist: "
                                f"set mailbox.folder to one of {', '.join(names)}"))
    findings.append(_idle_finding(client, box))
    return findings


def _idle_finding(client: IMAPClient, box: MailboxSection) -> Finding:
    # Without IDLE the worker polls: slower to answer, but it works, so this never fails.
    if client.has_capability("IDLE"):
        mode = "supported" if box.idle else "supported, but mailbox.idle = false (polling)"
    else:
        mode = f"not offered: the bot polls every {box.poll_seconds}s"
    return Finding("imap idle", True, mode)


def _imap_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        client.shutdown()


# -- SMTP ---------------------------------------------------------------------------------

def check_smtp(smtp: SmtpSection, password: str) -> list[Finding]:
    """Connect, EHLO, STARTTLS and AUTH as configured; nothing is sent."""
    return asyncio.run(_smtp_probe(smtp, password))


async def _smtp_probe(smtp: SmtpSection, password: str) -> list[Finding]:
    context = tls_context(smtp.verify_tls, smtp.ca_file)
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=smtp.security == "tls",
                             start_tls=False, tls_context=context,
                             timeout=min(smtp.timeout_seconds, CHECK_TIMEOUT_SECONDS))
    try:
        await client.connect()
        await client.ehlo()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return [Finding("smtp connect", False, explain_connect_error("smtp", smtp, exc))]
    where = f"{smtp.host}:{smtp.port}"
    findings = [Finding("smtp connect", True, f"{where} ({_security_label(smtp.security)}), "
                        "EHLO accepted")]
    try:
        findings += await _smtp_session(client, smtp, password)
    finally:
        await _smtp_quit(client)
    return findings


async def _smtp_session(client: aiosmtplib.SMTP, smtp: SmtpSection,
                        password: str) -> list[Finding]:
    findings: list[Finding] = []
    if smtp.security == "starttls":
        finding = await _smtp_starttls(client, smtp)
        findings.append(finding)
        if not finding.ok:
            return findings
    findings.append(await _smtp_login(client, smtp, password))
    return findings


async def _smtp_starttls(client: aiosmtplib.SMTP, smtp: SmtpSection) -> Finding:
    if not client.supports_extension("starttls"):
        return Finding("smtp starttls", False, "the server does not offer STARTTLS: set "
                       "smtp.security = \"tls\" (usually port 465), or \"none\" for a "
                       "local relay")
    try:
        await client.starttls(tls_context=tls_context(smtp.verify_tls, smtp.ca_file))
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Finding("smtp starttls", False, explain_connect_error("smtp", smtp, exc))
    return Finding("smtp starttls", True, "TLS established, certificate verified"
                   if smtp.verify_tls else "TLS established (verification OFF)")


async def _smtp_login(client: aiosmtplib.SMTP, smtp: SmtpSection,
                      password: str | oauth.OAuthLogin) -> Finding:
    if isinstance(password, oauth.OAuthLogin):
        try:
            await password.smtp(client, smtp.host, smtp.port)
        except (oauth.OAuthError, aiosmtplib.SMTPException, OSError) as exc:
            return Finding("smtp login", False, f"token login as {password.user}: {exc}")
        return Finding("smtp login", True, f"logged in as {password.user} (OAuth 2.0)")
    if not smtp.username:
        return Finding("smtp login", True, "no smtp.username: sending without AUTH")
    if not password:
        return Finding("smtp login", False, "skipped: no password (see secrets)")
    if not client.supports_extension("auth"):
        return Finding("smtp login", False, "the server offers no AUTH here: check "
                       "smtp.security (many servers offer AUTH only after STARTTLS), or "
                       "remove smtp.username for a relay that needs no login")
    try:
        await client.login(smtp.username, password)
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Finding("smtp login", False, f"login as {smtp.username} refused ({exc.code}): "
                       f"check smtp.username and the password in ${smtp.password_env}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Finding("smtp login", False, f"login failed: {exc}")
    return Finding("smtp login", True, f"logged in as {smtp.username}")


async def _smtp_quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


# -- errors -------------------------------------------------------------------------------

def explain_connect_error(section: str, conf: MailboxSection | SmtpSection,
                          exc: BaseException) -> str:
    """Turn a connection failure into what went wrong and which key to look at."""
    where = f"{conf.host}:{conf.port}"
    root = _root_cause(exc)
    if isinstance(root, ssl.SSLCertVerificationError):
        return (f"TLS certificate of {where} not trusted ({root.verify_message}): set "
                f"{section}.ca_file to the CA certificate that signed it (PEM)")
    if isinstance(root, ssl.SSLError):
        return (f"TLS handshake with {where} failed ({root.reason}): check {section}.security "
                "(tls = TLS from the first byte, usually 993/465; starttls = 143/587)")
    if isinstance(root, ConnectionRefusedError):
        return (f"connection refused by {where}: check {section}.host and {section}.port "
                "and that the server is running")
    if isinstance(root, socket.gaierror):
        return f"cannot resolve host {conf.host!r}: check {section}.host"
    if isinstance(root, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return (f"no answer from {where}: check {section}.host, {section}.port and any "
                "firewall in between")
    return f"cannot talk to {where}: {root} (check {section}.host, .port and .security)"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: aiosmtplib wraps socket and TLS errors in its own."""
    seen = exc
    while seen.__cause__ is not None or (seen.__context__ is not None
                                         and not seen.__suppress_context__):
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


def _security_label(security: str) -> str:
    return {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[security]


# -- database -----------------------------------------------------------------------------

def check_database(path: Path) -> Finding:
    """Writable, owner-only, and migrated as far as this code knows (never migrates)."""
    if not path.exists():
        return _future_database(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding("database", False, f"{path} is readable by others (mode {mode:o}): "
                       f"chmod 600 {path}")
    probe = probe_database(path)
    if not probe.writable:
        return Finding("database", False, f"{path} is not writable ({probe.error}): fix its "
                       "owner/permissions (the bot's user needs read-write) or free disk space")
    if probe.schema_version > probe.latest_version:
        return Finding("database", False, f"{path} has schema {probe.schema_version}, newer "
                       f"than this code ({probe.latest_version}): upgrade the bot")
    pending = probe.latest_version - probe.schema_version
    state = (f"schema {probe.schema_version} is current" if not pending else
             f"{pending} migration(s) pending; they run automatically at the next start")
    return Finding("database", True, f"{path} writable, {state}")


def _future_database(path: Path) -> Finding:
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if os.access(ancestor, os.W_OK | os.X_OK):
        return Finding("database", True, f"{path} will be created (and migrated) at first start")
    return Finding("database", False, f"{path} does not exist and {ancestor} is not writable: "
                   "create the folder for the bot's user (mode 0700), or change "
                   "storage.database")


# -- templates ----------------------------------------------------------------------------

def required_templates() -> list[str]:
    """Template files every deployment needs, relative to the templates folder."""
    names = [f"ack_{category}" for category in CATEGORIES] + ["ack_generic", "layout"]
    per_language = [f"{lang}/{name}.j2" for lang in LANGUAGES for name in names]
    return ["layout.txt.j2", "layout.html.j2", *per_language]


def check_templates(folder: Path) -> Finding:
    """Every acknowledgement and layout template exists and is valid Jinja."""
    if not folder.is_dir():
        return Finding("templates", False, f"{folder} is not a folder: fix bot.templates_dir "
                       "(or remove it to use the templates shipped with the bot)")
    missing = [name for name in required_templates() if not (folder / name).is_file()]
    if missing:
        return Finding("templates", False, f"missing in {folder}: {', '.join(missing)}")
    broken = _template_syntax_errors(folder)
    if broken:
        return Finding("templates", False, f"syntax errors: {'; '.join(broken)}")
    return Finding("templates", True, f"{len(required_templates())} templates in {folder} "
                   f"({', '.join(LANGUAGES)}; {len(CATEGORIES)} categories + generic)")


def _template_syntax_errors(folder: Path) -> list[str]:
    env = jinja2.Environment()
    errors = []
    for name in required_templates():
        try:
            env.parse((folder / name).read_text(encoding="utf-8"))
        except jinja2.TemplateSyntaxError as exc:
            errors.append(f"{name} line {exc.lineno}: {exc.message}")
    return errors
