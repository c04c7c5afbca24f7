"""Embedded loopback mail system for ``inquiry-bot demo`` and as the test fallback.

* :class:`DevImapServer` -- pymap's in-memory ("dict") IMAP backend served from a
  background thread with its own asyncio loop. Several users with passwords, APPEND,
  UID SEARCH/FETCH and IDLE. Data lives in memory: it survives :meth:`DevImapServer.restart`
  (unless ``keep_data=False``) and is gone after :meth:`DevImapServer.stop`.
* :class:`SmtpSink` -- an aiosmtpd ``Controller`` that records every message and can
  deliver it into the IMAP INBOX of every recipient that has a mailbox (``local+tag@domain``
  goes to ``local@domain``, as with Postfix's ``recipient_delimiter = +``), optionally
  refusing recipients without one (550), as a real mail server does.

Everything listens on 127.0.0.1 only, on ports chosen by the OS. Requires the ``demo`` (or
``dev``) extra: pymap and aiosmtpd.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import warnings
from argparse import Namespace
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from imapclient import IMAPClient

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that the OS reports free on *host* (bind to port 0, then release)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports: all sockets stay bound until every port is chosen,
    so the OS cannot hand out the same number twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                   for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_is_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ImapServerBase:
    """Behaviour shared by every loopback IMAP server (pymap here, Dovecot in the tests).

    Subclasses provide :meth:`start`, :meth:`stop`, :meth:`restart` and
    :meth:`_register_user`; mail access goes through real IMAP sessions (imapclient) so it
    behaves exactly as the bot sees it.
    """

    kind: ClassVar[str] = "abstract"
    host: str
    port: int

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.passwords: dict[str, str] = {}

    # -- lifecycle, provided by subclasses ---------------------------------------------
    def start(self) -> None:
        """Start listening; return once the server accepts connections."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server; afterwards nothing listens on :attr:`port`."""
        raise NotImplementedError

    def restart(self) -> None:
        """Stop, then start again on the same port (an outage as clients see it)."""
        raise NotImplementedError

    def _register_user(self, address: str, password: str) -> None:
        raise NotImplementedError

    def __enter__(self) -> ImapServerBase:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- users and mail -----------------------------------------------------------------
    def add_user(self, address: str, password: str) -> None:
        """Create a mailbox owned by *address* (login name = address)."""
        address = address.lower()
        self.passwords[address] = password
        self._register_user(address, password)

    def has_user(self, address: str) -> bool:
        """True if *address* owns a mailbox on this server."""
        return address.lower() in self.passwords

    def connect(self, address: str, timeout: float = 10.0) -> IMAPClient:
        """Return an imapclient connection logged in as *address* (caller logs out)."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        client.login(address.lower(), self.passwords[address.lower()])
        return client

    @contextlib.contextmanager
    def session(self, address: str) -> Iterator[IMAPClient]:
        """Context manager around :meth:`connect` that always logs out."""
        client = self.connect(address)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, address: str, raw: bytes, folder: str = "INBOX",
               flags: tuple[str, ...] = ()) -> None:
        """APPEND *raw* into *folder* of *address*, creating the folder if needed."""
        with self.session(address) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=flags)

    def messages(self, address: str, folder: str = "INBOX") -> list[bytes]:
        """Raw bytes of every message in *folder*, in UID order, without setting \\Seen."""
        with self.session(address) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in uids]


class DevImapServer(ImapServerBase):
    """pymap (dict backend) IMAP server on 127.0.0.1, run in a background thread.

    ``port=0`` lets the OS pick a free port at the first :meth:`start`; :meth:`restart`
    reuses it. Users may be added before or while running.
    """

    kind: ClassVar[str] = "pymap"

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._backend: Any = None
        self._listener: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        """True while the listener is open."""
        return self._listener is not None

    def start(self) -> None:
        """Start the loop thread (first time) and open the listener; no-op if running."""
        if self._listener is not None:
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="devmail-pymap", daemon=True)
            self._thread.start()
        self._call(self._open_listener())

    def stop(self) -> None:
        """Close the listener and every client connection, then end the loop thread."""
        if self._loop is None:
            return
        self._call(self._close_listener())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=START_TIMEOUT)
        self._loop.close()
        self._loop = self._thread = None
        self._backend = None

    def restart(self, keep_data: bool = True) -> None:
        """Drop all connections and listen again on the same port.

        With ``keep_data=False`` every mailbox is emptied (users and passwords stay).
        """
        self._call(self._close_listener())
        if not keep_data:
            self._backend = None
        self._call(self._open_listener())

    def _register_user(self, address: str, password: str) -> None:
        if self._backend is not None:
            self._call(self._set_user(address, password))

    # -- inside the loop thread -----------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT)

    async def _open_listener(self) -> None:
        from proxyprotocol.reader import ProxyProtocolReader
        from pymap.imap import IMAPServer

        if self._backend is None:
            self._backend = await _new_dict_backend()
            for address, password in self.passwords.items():
                await self._set_user(address, password)
        backend = self._backend
        # pymap reads its concurrency primitives from context variables; connection tasks
        # inherit this task's context, so it must be applied here.
        backend.config.apply_context()
        imap_server = IMAPServer(backend.login, backend.config)

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                sock_info: Any) -> None:
            # Tracked so that stop()/restart() can cut live sessions like a real outage.
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await imap_server(reader, writer, sock_info)
            finally:
                self._connections.discard(task)
                writer.close()

        # The PROXY-protocol reader (a no-op here) supplies the socket info pymap expects.
        accept = ProxyProtocolReader(backend.config.proxy_protocol).get_callback(on_connection)
        self._listener = await asyncio.start_server(
            accept, host=LOOPBACK, port=self.port, reuse_address=True)
        self.port = int(self._listener.sockets[0].getsockname()[1])

    async def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _set_user(self, address: str, password: str) -> None:
        from pymap.backend.dict import Identity
        from pymap.user import UserMetadata

        login = self._backend.login
        config = self._backend.config
        identity = Identity(address, login, None, frozenset())
        await identity.set(UserMetadata(config, address, password=password))


async def _new_dict_backend() -> Any:
    """A fresh pymap dict backend: no TLS, cleartext passwords, no demo user data."""
    from pymap.backend.dict import DictBackend
    from pymap.concurrent import Subsystem
    from pysasl.hashing import Cleartext

    args = Namespace(host=[LOOPBACK], port=0, debug=False, cert=None, key=None, tls=False,
                     passlib_cfg=None, proxy_protocol=None, inherited_sockets=None,
                     demo_data=False, demo_user="demouser", demo_password="")
    # Cleartext hashing and the asyncio subsystem keep logins instant and avoid the
    # per-server thread pool pymap would otherwise create and never shut down.
    backend, _config = await DictBackend.init(
        args, hash_context=Cleartext(), cpu_subsystem=Subsystem.for_asyncio(),
        invalid_user_sleep=0.0, reject_dnsbl=False)
    return backend


# ---------------------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """One message accepted by :class:`SmtpSink`."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    delivered_to: tuple[str, ...] = field(default=())


class _RecordingHandler:
    """aiosmtpd handler: optional rejections, IMAP delivery, then recording."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if self.sink.reject_unknown and self.sink.mailbox_of(address) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        sink = self.sink
        rejection = sink._take_rejection()
        if rejection is not None:
            return rejection
        raw = bytes(envelope.original_content or envelope.content or b"")
        rcpts = tuple(envelope.rcpt_tos)
        try:
            # imapclient blocks, so deliver off the SMTP loop.
            delivered = await asyncio.get_running_loop().run_in_executor(
                None, sink._deliver, rcpts, raw)
        except Exception as exc:  # a broken IMAP server is a temporary failure, like a real MTA
            return f"451 4.3.0 delivery failed: {type(exc).__name__}"
        sink._record(Received(envelope.mail_from or "", rcpts, raw, delivered))
        return "250 2.0.0 OK queued"


class SmtpSink:
    """Recording SMTP server (aiosmtpd) on 127.0.0.1, on *port* or a free one.

    Every accepted message is appended to :attr:`received` *after* it has been delivered
    into :attr:`deliver_into` (when set), so :meth:`wait_for` returning means the mail is
    already in the recipients' INBOX. With *credentials* the server requires AUTH
    (PLAIN/LOGIN, allowed without TLS since this is loopback). With *reject_unknown*, RCPT
    for an address without a mailbox (see :meth:`mailbox_of`) is answered 550.
    """

    def __init__(self, deliver_into: ImapServerBase | None = None,
                 credentials: dict[str, str] | None = None, port: int = 0,
                 reject_unknown: bool = False) -> None:
        self.host = LOOPBACK
        self.port = port
        self.deliver_into = deliver_into
        self.credentials = credentials
        self.reject_unknown = reject_unknown
        self.received: list[Received] = []
        self._condition = threading.Condition()
        self._rejections: list[str] = []
        self._controller: Any = None

    def start(self) -> None:
        """Start on :attr:`port` (a free one if 0); return once it accepts connections.

        After :meth:`stop`, ``start()`` listens on the same port again (an SMTP outage).
        """
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs = {"authenticator": self._authenticate, "auth_required": True,
                      "auth_require_tls": False}
            # aiosmtpd warns on every connection about AUTH without TLS; on loopback that
            # is the point, and the warning would bury real ones.
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS",
                                    category=UserWarning)
        last_error: OSError | None = None
        # The port is picked before aiosmtpd binds it; retry the rare lost race.
        for _attempt in range(5 if not self.port else 1):
            port = self.port or free_port()
            controller = Controller(_RecordingHandler(self), hostname=LOOPBACK, port=port,
                                    ready_timeout=START_TIMEOUT, **kwargs)
            try:
                controller.start()
            except OSError as exc:
                last_error = exc
                continue
            self._controller, self.port = controller, port
            return
        raise RuntimeError(f"could not start the SMTP sink: {last_error}")

    def stop(self) -> None:
        """Stop the server; afterwards nothing listens on :attr:`port`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reject_next(self, count: int = 1,
                    reply: str = "451 4.3.0 Temporary failure, try again later") -> None:
        """Answer the next *count* DATA commands with *reply* (4xx or 5xx) instead of accepting."""
        with self._condition:
            self._rejections.extend([reply] * count)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least *count* messages were received; return a copy of them all.

        Raises TimeoutError listing what did arrive when the deadline passes first.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self.received)}")
            return list(self.received)

    def clear(self) -> None:
        """Forget every received message."""
        with self._condition:
            self.received.clear()

    # -- called by the handler ------------------------------------------------------------
    def _take_rejection(self) -> str | None:
        with self._condition:
            return self._rejections.pop(0) if self._rejections else None

    def _record(self, message: Received) -> None:
        with self._condition:
            self.received.append(message)
            self._condition.notify_all()

    def mailbox_of(self, address: str) -> str | None:
        """The mailbox ``address`` is delivered to: its own, or for ``local+tag@domain`` that
        of ``local@domain``; None when neither exists in :attr:`deliver_into`."""
        if self.deliver_into is None:
            return None
        address = address.lower()
        local, _at, domain = address.rpartition("@")
        base = f"{local.partition('+')[0]}@{domain}"
        return next((box for box in (address, base) if self.deliver_into.has_user(box)), None)

    def _deliver(self, rcpts: tuple[str, ...], raw: bytes) -> tuple[str, ...]:
        target = self.deliver_into
        if target is None:
            return ()
        delivered: list[str] = []
        for rcpt in rcpts:
            mailbox = self.mailbox_of(rcpt)
            if mailbox is not None and mailbox not in delivered:  # one copy per mailbox
                target.append(mailbox, raw)
                delivered.append(mailbox)
        return tuple(delivered)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and self.credentials is not None
              and self.credentials.get(auth_data.login.decode()) == auth_data.password.decode())
        # handled=False: aiosmtpd then answers 535 itself (True would leave the client hanging)
        return AuthResult(success=ok, handled=False)

