"""Dovecot on loopback for integration tests, with the same interface as DevImapServer.

:func:`make_imap_server` picks Dovecot when it is installed and falls back to the embedded
pymap server otherwise; with ``INQUIRY_BOT_REQUIRE_DOVECOT=1`` (CI) a missing Dovecot is an
error, never a silent fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from bot.ops.devmail import (
    LOOPBACK,
    START_TIMEOUT,
    DevImapServer,
    ImapServerBase,
    free_port,
    free_ports,
    port_is_open,
)

REQUIRE_DOVECOT_ENV = "INQUIRY_BOT_REQUIRE_DOVECOT"
PASSWORD = "secret"
#: Mailboxes every ``imap_server`` fixture starts with, all with password :data:`PASSWORD`.
TEST_USERS = (
    "contact@cijidas.jp",
    "privacy@cijidas.jp",
    "dpo@cijidas.jp",
    "customer@example.com",
    "khach@example.vn",
)
_RUNNING: set[DovecotServer] = set()


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None (sbin is often missing from a user's PATH)."""
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


def dovecot_version(binary: str) -> tuple[int, int, int]:
    """``dovecot --version`` as a tuple, e.g. (2, 3, 19)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", out.stdout.strip())
    if not match:
        raise RuntimeError(f"cannot parse dovecot version from {out.stdout!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


class DovecotServer(ImapServerBase):
    """A private Dovecot 2.3 instance on 127.0.0.1 (plain IMAP; optional TLS).

    All state lives under *workdir*: config, passwd-file, log (:attr:`log_path`), base_dir,
    state_dir and maildirs. Users can be added before or while running (the passwd-file is
    re-read on change; a user added while running is usable when add_user returns, which can
    take up to a second). :meth:`restart` keeps the port and the mail. With ``tls=True`` the
    same port offers STARTTLS and :attr:`tls_port` speaks implicit TLS, both with a
    self-signed certificate for 127.0.0.1/localhost whose file is :attr:`ca_file`.
    """

    kind: ClassVar[str] = "dovecot"

    def __init__(self, workdir: Path, *, tls: bool = False, binary: str | None = None) -> None:
        super().__init__()
        self.binary = binary or find_dovecot() or "dovecot"
        self.tls = tls
        self.tls_port = 0
        self.ca_file: Path | None = None
        self._own_workdir = False
        self.workdir = self._usable_workdir(Path(workdir))
        self.log_path = self.workdir / "dovecot.log"
        self._passwd_path = self.workdir / "passwd"
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Write the config (first time), launch dovecot and wait for an IMAP greeting."""
        if self._process is not None:
            return
        if not self.port:
            if self.tls:
                self.port, self.tls_port = free_ports(2)
            else:
                self.port = free_port()
            self._write_files()
        # -F keeps the master in the foreground, so it is our child and stop() can reap it.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.workdir / "dovecot.conf")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        _RUNNING.add(self)
        self._wait_ready()

    def stop(self) -> None:
        """Terminate dovecot (master and children) and remove a workdir we created."""
        self._terminate()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False

    def restart(self) -> None:
        """Kill every session and start again on the same port with the same mail."""
        self._terminate()
        self.start()

    def _register_user(self, address: str, password: str) -> None:
        if any(ch in password for ch in ":\n\r") or any(ch in address for ch in ":\n\r"):
            raise ValueError("passwd-file entries cannot contain ':' or newlines")
        if self.port:
            self._write_passwd()
        if self._process is not None:
            self._wait_until_login_works(address, password)

    def _wait_until_login_works(self, address: str, password: str) -> None:
        """Dovecot re-stats the passwd-file at most once a second; wait for it to notice."""
        deadline = time.monotonic() + 3.0
        while True:
            try:
                client = IMAPClient(self.host, port=self.port, ssl=False, timeout=5.0)
                try:
                    client.login(address, password)
                    return
                finally:
                    with contextlib.suppress(Exception):
                        client.logout()
            except LoginError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)

    # -- internals ---------------------------------------------------------------------
    def _terminate(self) -> None:
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None:
            return
        # A graceful shutdown takes 1-6 s (the master waits on its children), so kill the whole
        # process group (ours alone, see start_new_session). Maildir is crash-safe, and a
        # crash is the outage restart() is meant to model.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=START_TIMEOUT)
        # The master closes listeners before exiting; double-check so restart() is honest.
        deadline = time.monotonic() + START_TIMEOUT
        while port_is_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _wait_ready(self) -> None:
        """Poll until the IMAP greeting arrives (the port alone may precede imap-login)."""
        deadline = time.monotonic() + START_TIMEOUT
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"dovecot exited at start-up:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self._terminate()
                raise TimeoutError(f"dovecot not ready after {START_TIMEOUT}s:\n{self._log_tail()}")
            time.sleep(0.02)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _usable_workdir(self, workdir: Path) -> Path:
        """*workdir*, or a fresh dir under the system temp dir if the mail user can't reach it.

        As root, mail is accessed as ``nobody`` (Dovecot refuses uid 0), and pytest's tmp_path
        sits under a 0700 directory that ``nobody`` cannot traverse.
        """
        if os.geteuid() != 0 or _world_traversable(workdir):
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir
        private = Path(tempfile.mkdtemp(prefix="inquiry-dovecot-"))
        private.chmod(0o711)
        self._own_workdir = True
        return private

    def _write_passwd(self) -> None:
        entries = "".join(f"{user}:{{PLAIN}}{pw}::::::\n" for user, pw in self.passwords.items())
        # Replace atomically so the auth process never reads a half-written file.
        tmp = self._passwd_path.with_suffix(".tmp")
        tmp.write_text(entries)
        tmp.replace(self._passwd_path)

    def _write_files(self) -> None:
        version = dovecot_version(self.binary)
        if version >= (2, 4, 0):
            raise RuntimeError(
                f"dovecot {'.'.join(map(str, version))} found; tests/mailservers.py writes "
                "2.3 configuration (2.4 renamed most settings)")
        uid, gid, login_user, internal_user = _process_identity()
        for sub in ("run", "state", "mail"):
            (self.workdir / sub).mkdir(exist_ok=True)
        os.chown(self.workdir / "mail", uid, gid)
        self._write_passwd()
        if self.tls:
            self._make_certificate()
        conf = _dovecot_conf(self.workdir, self.port, self.tls_port, uid, gid,
                             login_user, internal_user, self.tls)
        (self.workdir / "dovecot.conf").write_text(conf)

    def _make_certificate(self) -> None:
        cert, _key = self_signed_certificate(self.workdir / "cert.pem", self.workdir / "key.pem")
        self.ca_file = cert


def _world_traversable(path: Path) -> bool:
    """True if every existing ancestor of *path* has the others-execute bit."""
    for ancestor in [path, *path.parents]:
        if ancestor.exists() and not ancestor.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _process_identity() -> tuple[int, int, str, str]:
    """(mail uid, mail gid, login user, internal user) for the current privileges."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid, "dovenull", "dovecot"
    # Unprivileged Dovecot runs every process as the invoking user.
    me = pwd.getpwuid(os.geteuid())
    return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name


def _dovecot_conf(workdir: Path, port: int, tls_port: int, uid: int, gid: int,
                  login_user: str, internal_user: str, tls: bool) -> str:
    """Dovecot 2.3 configuration for one private loopback instance."""
    if tls:
        dh = "/usr/share/dovecot/dh.pem"
        ssl = (f"ssl = yes\nssl_cert = <{workdir}/cert.pem\nssl_key = <{workdir}/key.pem\n"
               + (f"ssl_dh = <{dh}\n" if os.path.exists(dh) else ""))
    else:
        ssl = "ssl = no\n"
    imaps = (f"  inet_listener imaps {{\n    address = {LOOPBACK}\n    port = {tls_port}\n"
             "    ssl = yes\n  }\n") if tls else "  inet_listener imaps {\n    port = 0\n  }\n"
    return f"""# Generated by tests/mailservers.py
instance_name = inquiry-test-{port}
base_dir = {workdir}/run
state_dir = {workdir}/state
log_path = {workdir}/dovecot.log
listen = {LOOPBACK}
protocols = imap
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
# Tests of wrong passwords must not wait the default 2 s.
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
mail_location = maildir:{workdir}/mail/%u
# inotify normally wakes IDLE at once; the short interval is a safety net.
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {workdir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={workdir}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {LOOPBACK}
    port = {port}
  }}
{imaps}}}
service anvil {{
  chroot =
}}
"""


def make_imap_server(tmp_path: Path, kind: str | None = None) -> ImapServerBase:
    """An unstarted IMAP server: Dovecot when installed, else the embedded pymap server.

    *kind* forces "dovecot" or "pymap". Raises RuntimeError when Dovecot is wanted (forced,
    or ``INQUIRY_BOT_REQUIRE_DOVECOT=1``) but not installed, so CI fails instead of skipping.
    """
    binary = find_dovecot()
    required = kind == "dovecot" or os.environ.get(REQUIRE_DOVECOT_ENV) == "1"
    if kind == "pymap":
        return DevImapServer()
    if binary is None:
        if required:
            raise RuntimeError(
                f"Dovecot is required ({REQUIRE_DOVECOT_ENV}=1 or kind='dovecot') but no "
                "dovecot binary was found; install the Debian package dovecot-imapd")
        return DevImapServer()
    return DovecotServer(tmp_path / "dovecot", binary=binary)


@atexit.register
def _kill_leftovers() -> None:
    # A crashed test run must not leave Dovecot masters listening.
    for server in list(_RUNNING):
        server.stop()


class OAuthDovecotServer(DovecotServer):
    """Dovecot that also takes XOAUTH2 and OAUTHBEARER logins, checking every token at
    *introspection_url* (``passdb oauth2``, ``introspection_mode = post``: a POST with
    ``token=...``, answered ``{"active": true, "username": ...}``) - the tests' loopback
    token server. Password logins (``add_user``) keep working, so tests can deliver mail."""

    def __init__(self, workdir: Path, introspection_url: str, *,
                 mechanisms: tuple[str, ...] = ("xoauth2", "oauthbearer"),
                 binary: str | None = None) -> None:
        super().__init__(workdir, binary=binary)
        self.introspection_url = introspection_url
        self.mechanisms = mechanisms

    def _write_files(self) -> None:
        super()._write_files()
        oauth_conf = self.workdir / "dovecot-oauth2.conf.ext"
        oauth_conf.write_text(
            f"introspection_mode = post\nintrospection_url = {self.introspection_url}\n"
            "force_introspection = yes\nusername_attribute = username\n"
            "active_attribute = active\nactive_value = true\ntimeout_msecs = 5000\n")
        # Tests refuse tokens on purpose: no anvil auth penalty (2, 4, 8... s) for loopback,
        # with the passdb Dovecot's wiki gives for that ("Localhost Auth Penalty").
        nodelay = self.workdir / "nodelay"
        nodelay.write_text(f"{LOOPBACK}:::::::nodelay=yes\n")
        conf = self.workdir / "dovecot.conf"
        mechanisms = " ".join(self.mechanisms)
        text = conf.read_text().replace("auth_mechanisms = plain login",
                                        f"auth_mechanisms = plain login {mechanisms}")
        text = text.replace("passdb {\n", f"passdb {{\n  driver = passwd-file\n  args = "
                            f"username_format=%{{rip}} {nodelay}\n  default_fields = "
                            "noauthenticate=y\n}\npassdb {\n", 1)
        conf.write_text(text + f"passdb {{\n  driver = oauth2\n  mechanisms = {mechanisms}\n"
                               f"  args = {oauth_conf}\n}}\n")


def self_signed_certificate(cert: Path, key: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1/localhost (its own CA file), made by openssl."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key
