"""imapclient adapter: connect, wait for new mail (IDLE or poll), fetch by UID, quarantine.

Reads are done with ``BODY.PEEK[]`` and the folder is selected read-only unless a
quarantine folder is configured, so the bot never changes ``\\Seen`` for staff who read
the same mailbox, and never deletes anything.
"""

from __future__ import annotations

import logging
import selectors
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bot.adapters.oauth import OAuthLogin
from bot.config import MailboxSection
from bot.errors import TransientError

log = logging.getLogger(__name__)

IDLE_REISSUE_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
STOP_CHECK_SECONDS = 1.0
MAX_HEADER_BYTES = 256 * 1024  # header of a too-large mail (partial FETCH)
CONNECTION_ERRORS = (IMAPClientError, OSError, EOFError, ssl.SSLError)


@dataclass(frozen=True)
class FolderState:
    name: str
    uidvalidity: int


def tls_context(verify: bool, ca_file: str = "") -> ssl.SSLContext:
    """A client TLS context; verification stays on unless explicitly turned off."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Mailbox:
    """One logged-in IMAP session on the configured folder."""

    def __init__(self, settings: MailboxSection, password: str | OAuthLogin) -> None:
        self.settings = settings
        self.client = _connect(settings, password)
        writable = bool(settings.quarantine_folder)
        response = self.client.select_folder(settings.folder, readonly=not writable)
        self.folder = FolderState(settings.folder, int(response[b"UIDVALIDITY"]))
        self.can_idle = settings.idle and self.client.has_capability("IDLE")

    def close(self) -> None:
        """Log out; a dead connection is simply dropped."""
        try:
            self.client.logout()
        except CONNECTION_ERRORS:
            self.client.shutdown() if hasattr(self.client, "shutdown") else None

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``, ascending (``N:*`` may echo the last one)."""
        uids = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in uids if u > last_uid)

    def sizes_and_arrivals(self, uids: list[int]) -> tuple[dict[int, int], dict[int, datetime]]:
        """Per UID, in one FETCH: ``RFC822.SIZE``, so oversized mail is never loaded whole,
        and ``INTERNALDATE`` (when the server took the mail), timezone-aware where the
        server gave one (imapclient gives naive local times)."""
        if not uids:
            return {}, {}
        data = self.client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE"])
        sizes = {uid: int(item[b"RFC822.SIZE"]) for uid, item in data.items()}
        found = {uid: item.get(b"INTERNALDATE") for uid, item in data.items()}
        return sizes, {uid: (v if v.tzinfo else v.astimezone()) for uid, v in found.items()
                       if isinstance(v, datetime)}

    def fetch_raw(self, uids: list[int]) -> dict[int, bytes]:
        """Whole messages without setting ``\\Seen``."""
        if not uids:
            return {}
        data = self.client.fetch(uids, ["BODY.PEEK[]"])
        return {uid: bytes(item.get(b"BODY[]") or b"") for uid, item in data.items()}

    def fetch_header(self, uid: int) -> bytes:
        """Only the header of one message (for mail too large to fetch), at most 256 KB:
        a hostile mail can carry megabytes of header, and we never load more than that."""
        data = self.client.fetch([uid], [f"BODY.PEEK[HEADER]<0.{MAX_HEADER_BYTES}>"])
        item = data.get(uid, {})
        value = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER]")), b"")
        return bytes(value or b"")[:MAX_HEADER_BYTES]

    def quarantine(self, uid: int) -> bool:
        """Copy a message we cannot handle to the quarantine folder and flag it.

        We COPY rather than MOVE: the original stays where staff expect it (never deleted).
        """
        target = self.settings.quarantine_folder
        if not target:
            return False
        if not self.client.folder_exists(target):
            self.client.create_folder(target)
        self.client.copy([uid], target)
        self.client.add_flags([uid], [b"$BotQuarantined"])
        return True

    def wait_for_change(self, timeout: float, stop: threading.Event) -> None:
        """Return when the folder may have changed, ``timeout`` passed, or ``stop`` is set."""
        if self.can_idle:
            self._idle(min(timeout, IDLE_REISSUE_SECONDS), stop)
        else:
            stop.wait(timeout)
            self.client.noop()

    def _idle(self, timeout: float, stop: threading.Event) -> None:
        self.client.idle()
        try:
            for readable in _readiness(self.client, timeout, stop):
                if not readable:
                    continue
                responses = self.client.idle_check(timeout=0)
                if not responses:
                    raise ConnectionError("IMAP connection closed during IDLE")
                if any(_is_change(r) for r in responses):
                    return
        finally:
            _safe_idle_done(self.client)


def _readiness(client: IMAPClient, timeout: float, stop: threading.Event) -> Iterator[bool]:
    """Yield whether the socket is readable, every ``STOP_CHECK_SECONDS``, until timeout."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(client.socket(), selectors.EVENT_READ)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield bool(selector.select(min(left, STOP_CHECK_SECONDS)))


def _is_change(response: tuple) -> bool:
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH")


def _safe_idle_done(client: IMAPClient) -> None:
    try:
        client.idle_done()
    except CONNECTION_ERRORS as exc:
        log.debug("idle_done failed: %s", exc)


def _no_protocol_trace(client: IMAPClient) -> None:
    """Turn off imaplib's protocol trace, which imapclient switches on (``debug = 5``) and
    which formats every line read, whole mail bodies included, for its debug logger: the
    bot never logs mail, and formatting megabytes only to drop them costs time."""
    imap = getattr(client, "_imap", None)
    if imap is not None and hasattr(imap, "debug"):
        imap.debug = 0


def _connect(settings: MailboxSection, password: str | OAuthLogin) -> IMAPClient:
    context = tls_context(settings.verify_tls, settings.ca_file)
    try:
        client = IMAPClient(settings.host, port=settings.port,
                            ssl=settings.security == "tls", ssl_context=context,
                            timeout=settings.timeout_seconds)
        _no_protocol_trace(client)
        if settings.security == "starttls":
            client.starttls(context)
        if isinstance(password, OAuthLogin):  # mailbox.auth = "oauth2"
            password.imap(client, settings.host, settings.port)
        else:
            client.login(settings.username, password)
    except CONNECTION_ERRORS as exc:
        raise TransientError(f"IMAP {settings.host}:{settings.port}: {exc}") from exc
    return client
