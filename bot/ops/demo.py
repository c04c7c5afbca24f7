"""``inquiry-bot demo``: an embedded mail system on loopback, sample inquiries, a live table.

pymap holds the mailboxes (the bot's, staff's, customers'); aiosmtpd delivers what the bot
sends into them; the real worker (imapclient + aiosmtplib) runs unchanged against both.
Nothing listens beyond 127.0.0.1, and Ctrl-C stops everything. The worker's log goes to
``<dir>/bot.log`` so that the terminal shows only the live table.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from bot.config import PACKAGE_ROOT, load_settings

DEFAULT_DIR = PACKAGE_ROOT / "state" / "demo"
SAMPLE_TIMEOUT_SECONDS = 90
REFRESH_SECONDS = 0.3
PASSWORD = "demo"
BOT = "contact@cijidas.jp"
STAFF = "privacy@cijidas.jp"
DPO = "dpo@cijidas.jp"
CUSTOMERS = ("alice@example.com", "lan@example.vn", "minh@example.vn", "bob@example.com",
             "hoa@example.vn", "ken@example.jp")
SAMPLES = [
    ("Alice Smith <alice@example.com>", "Please delete my account",
     "Hello,\n\nI no longer use your service. Please delete my account and all personal data "
     "you hold about me.\n\nRegards,\nAlice", {}),
    ("Nguyễn Thị Lan <lan@example.vn>", "Yêu cầu cung cấp dữ liệu cá nhân",
     "Kính gửi Cijidas,\n\nTôi muốn biết công ty đang lưu giữ những thông tin cá nhân nào của "
     "tôi. Xin vui lòng gửi cho tôi bản sao dữ liệu đó.\n\nTrân trọng,\nLan", {}),
    ("Tran Minh <minh@example.vn>", "sai so dien thoai",
     "chao ban, so dien thoai cua minh trong tai khoan bi sai, sua lai giup minh thanh "
     "0901234567 nhe. cam on", {}),
    ("Bob Jones <bob@example.com>", "Complaint about marketing emails",
     "I have asked twice to stop receiving your newsletters and I still get them. This is "
     "unacceptable.", {}),
    ("Hoa Pham <hoa@example.vn>", "hoi ve chinh sach",
     "Cho minh hoi cong ty luu du lieu cua khach hang trong bao lau vay?", {}),
    ("Ken Sato <ken@example.jp>", "Out of Office: Re: your order",
     "I am out of the office until Monday.", {"Auto-Submitted": "auto-replied"}),
]
TABLE_FORMAT = "{time:<8}  {progress:>5}  {event:<15}  {ref:<11} {category:<17} {lang:<4} {who}"


def run_demo(exit_after_samples: bool = False, directory: Path | None = None) -> int:
    """Start the embedded system, feed the samples, show the live table; return an exit code."""
    try:
        from bot.ops.devmail import DevImapServer, SmtpSink
    except ImportError:
        print("the demo needs the demo extra: pip install -e '.[demo]'", file=sys.stderr)
        return 1
    folder = prepare_folder(Path(directory) if directory else DEFAULT_DIR)
    with ExitStack() as stack:
        stack.enter_context(_log_to_file(folder / "bot.log"))
        imap = DevImapServer()
        for address in (BOT, STAFF, DPO, *CUSTOMERS):
            imap.add_user(address, PASSWORD)
        imap.start()
        stack.callback(imap.stop)
        smtp = SmtpSink(deliver_into=imap)
        smtp.start()
        stack.callback(smtp.stop)
        code = _run(folder, imap, smtp, exit_after_samples)
        ports = (imap.port, smtp.port)
    _report_closed(ports)
    return code


def prepare_folder(folder: Path) -> Path:
    """Create the demo folder (owner-only) and drop the previous run's database and log."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in [*folder.glob("tickets.db*"), folder / "bot.log"]:
        old.unlink(missing_ok=True)
    return folder


def write_demo_config(folder: Path, imap_port: int, smtp_port: int) -> Path:
    """A config for the embedded servers in ``folder`` (never touches config.toml)."""
    path = folder / "config.toml"
    path.write_text(f"""# Written by `inquiry-bot demo`; safe to delete.
[bot]
address = "{BOT}"
heartbeat_file = "{folder / 'heartbeat'}"
[mailbox]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{BOT}"
password_env = "DEMO_IMAP_PASSWORD"
poll_seconds = 5
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[storage]
database = "tickets.db"
[staff]
addresses = ["{STAFF}"]
notify = ["{STAFF}"]
[escalation]
to = ["{DPO}"]
""")
    return path


def _run(folder: Path, imap: Any, smtp: Any, exit_after_samples: bool) -> int:
    from bot.adapters.store import Store
    from bot.ops.worker import Worker

    config = write_demo_config(folder, imap.port, smtp.port)
    settings = load_settings(config, {"DEMO_IMAP_PASSWORD": PASSWORD})
    worker = Worker(settings)  # creates and migrates the database before the view reads it
    view = LiveView(Store(settings.database_path), expected=len(SAMPLES))
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    with _stop_on_signals(worker.stop) as stop:
        for sender, subject, body, headers in SAMPLES:
            imap.append(BOT, sample_mail(sender, subject, body, headers))
        _print_intro(imap.port, smtp.port, folder)
        thread.start()
        try:
            code = _follow(view, stop, exit_after_samples, folder, imap.port, smtp.port,
                           settings.database_path)
        finally:
            worker.stop.set()
            thread.join(timeout=30)
            view.store.close()
    return code


def _follow(view: LiveView, stop: threading.Event, exit_after_samples: bool, folder: Path,
            imap_port: int, smtp_port: int, database: Path) -> int:
    answered = view.follow(stop, until=view.samples_answered, timeout=SAMPLE_TIMEOUT_SECONDS)
    if stop.is_set():
        return 0
    if not answered:
        print(f"the samples were not all answered within {SAMPLE_TIMEOUT_SECONDS}s; "
              f"see {folder / 'bot.log'}", file=sys.stderr)
        return 1
    print(f"\nAll {len(SAMPLES)} samples handled, every acknowledgement sent.", flush=True)
    if not exit_after_samples:
        _print_try_it(imap_port, smtp_port, database, folder)
        view.follow(stop, until=lambda: False, timeout=None)
    return 0


class LiveView:
    """Prints one table row per event: a mail taken from the mailbox, a mail sent."""

    def __init__(self, store: Any, expected: int) -> None:
        self.store = store
        self.expected = expected
        self.taken = 0
        self.last_processed_rowid = 0
        self.reported_sends: set[int] = set()

    def follow(self, stop: threading.Event, until: Callable[[], bool],
               timeout: float | None) -> bool:
        """Print new events until ``until()`` is true (True), ``stop`` or the timeout (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stop.is_set():
            self.print_new_events()
            if until():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            stop.wait(REFRESH_SECONDS)
        return False

    def samples_answered(self) -> bool:
        """Every sample taken and nothing left in the outbox."""
        pending = self.store.pending_outbox_count()
        return self.taken >= self.expected and pending == 0

    def print_new_events(self) -> None:
        for row in self._new_processed():
            self.taken += 1
            self.last_processed_rowid = row["rowid"]
            print(self._taken_line(row), flush=True)
        for row in self._new_sends():
            self.reported_sends.add(row["id"])
            print(self._sent_line(row), flush=True)

    def _new_processed(self) -> list[dict[str, Any]]:
        return self.store.processed_after(self.last_processed_rowid)

    def _new_sends(self) -> list[dict[str, Any]]:
        rows = self.store.settled_outbox()
        return [row for row in rows if row["id"] not in self.reported_sends]

    def _taken_line(self, row: dict[str, Any]) -> str:
        progress = f"{self.taken}/{self.expected}" if self.taken <= self.expected else ""
        category = (row["category"] or "-") + (" (review)" if row["needs_review"] else "")
        who = row["customer_email"] or f"({row['reason'] or 'no reason recorded'})"
        return TABLE_FORMAT.format(
            time=_local_time(row["processed_at"]), progress=progress,
            event=_TAKEN_EVENTS.get(row["outcome"], row["outcome"]), ref=row["ref"] or "-",
            category=category, lang=row["language"] or "-", who=who)

    def _sent_line(self, row: dict[str, Any]) -> str:
        kind = _SENT_EVENTS.get(row["kind"], row["kind"] or "mail")
        event = f"{kind} sent" if row["status"] == "sent" else f"{kind} FAILED"
        recipients = ", ".join(_json_list(row["recipients"]))
        who = f"-> {recipients}" + ("" if row["status"] == "sent" else f" ({row['last_error']})")
        return TABLE_FORMAT.format(
            time=_local_time(row["sent_at"] or row["next_attempt_at"]), progress="",
            event=event, ref=row["ref"] or "-", category="", lang="", who=who)


_TAKEN_EVENTS = {"ticket": "NEW TICKET", "followup": "follow-up", "staff": "staff reply",
                 "ignored": "ignored", "quarantined": "QUARANTINED"}
_SENT_EVENTS = {"acknowledgement": "ack", "notification": "staff note",
                "escalation": "escalation"}


def sample_mail(sender: str, subject: str, body: str, headers: dict[str, str]) -> bytes:
    """One sample inquiry to the bot, as a customer's mail client would write it."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, BOT, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="example")
    for key, value in headers.items():
        msg[key] = value
    msg.set_content(body)
    return bytes(msg)


def _local_time(iso_utc: str | None) -> str:
    if not iso_utc:
        return ""
    moment = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%H:%M:%S")


def _json_list(value: str | None) -> list[str]:
    return list(json.loads(value)) if value else []


def _print_intro(imap_port: int, smtp_port: int, folder: Path) -> None:
    print(f"Embedded mail system on 127.0.0.1: IMAP {imap_port}, SMTP {smtp_port} "
          f"(worker log: {folder / 'bot.log'})")
    print(f"Dropped {len(SAMPLES)} sample inquiries into {BOT}; the bot is answering:\n")
    print(TABLE_FORMAT.format(time="time", progress="mail", event="event", ref="ref",
                              category="category", lang="lang", who="from / to"), flush=True)


def _print_try_it(imap_port: int, smtp_port: int, database: Path, folder: Path) -> None:
    print(f"""
The demo keeps running - try it yourself:
  * send mail to {BOT} through SMTP 127.0.0.1:{smtp_port} (no TLS, no login), e.g.
      swaks --server 127.0.0.1:{smtp_port} --to {BOT} --from alice@example.com
  * open a mailbox in any mail client (IMAP 127.0.0.1:{imap_port}, no TLS; outgoing SMTP
    127.0.0.1:{smtp_port}, no login) and reply as the customer or as staff:
      customer: alice@example.com / {PASSWORD}     staff: {STAFF} / {PASSWORD}
  * inspect the tickets: datasette {database}
  * the worker's log: tail -f {folder / 'bot.log'}
Press Ctrl-C to stop.
""", flush=True)


def _report_closed(ports: tuple[int, ...]) -> None:
    from bot.ops.devmail import LOOPBACK, port_is_open

    still_open = [port for port in ports if port_is_open(LOOPBACK, port)]
    if still_open:
        print(f"warning: still listening on {still_open}", file=sys.stderr)
    else:
        print("Demo stopped; nothing is listening any more.", flush=True)


@contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Send every log record to ``path`` while the demo runs (the terminal shows the table)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()


@contextmanager
def _stop_on_signals(worker_stop: threading.Event) -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set the returned event and the worker's, instead of raising."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()
        worker_stop.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
