"""``inquiry-bot demo``: an embedded mail system on loopback, sample inquiries, a live table.

pymap holds the mailboxes (the bot's, staff's, customers'); aiosmtpd delivers what anyone
sends into them, the way a real mail server does (plus-addresses reach the base mailbox, mail
to an unknown mailbox is refused), so a staff member can answer a customer from any mail
client. The real worker (imapclient + aiosmtplib) runs unchanged against both, with a staff
token secret of its own. Nothing listens beyond 127.0.0.1, and Ctrl-C stops everything. The
worker's log goes to ``<dir>/bot.log`` so that the terminal shows only the live table.
"""

from __future__ import annotations

import importlib
import json
import logging
import secrets
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
from bot.ops import demo_guide
from bot.ops.demo_guide import write_private

DEFAULT_DIR = PACKAGE_ROOT / "state" / "demo"
DEMO_EXTRA_MESSAGE = "the demo needs the demo extra: pip install '.[demo]'"
SAMPLE_TIMEOUT_SECONDS = 90
REFRESH_SECONDS = 0.3
PASSWORD = "demo"
IMAP_PASSWORD_ENV = "DEMO_IMAP_PASSWORD"
TOKEN_SECRET_ENV = "DEMO_STAFF_TOKEN_SECRET"
BOT = "contact@cijidas.jp"
STAFF = "privacy@cijidas.jp"
DPO = "dpo@cijidas.jp"
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
CUSTOMERS = tuple(sender.split("<")[1].rstrip(">") for sender, *_rest in SAMPLES)
# Every mailbox of the demo: (role, address, name, what it is for); all use PASSWORD.
ACCOUNTS = (
    ("staff", STAFF, "Privacy team", "a notification per ticket: reply to it to answer"),
    ("dpo", DPO, "Data protection officer", "escalations of overdue tickets"),
    ("bot", BOT, "Cijidas", "the mailbox the bot reads (look, but leave it to the bot)"),
    *(("customer", sender.split("<")[1].rstrip(">"), sender.split(" <")[0], subject)
      for sender, subject, *_rest in SAMPLES),
)
TABLE_FORMAT = "{time:<8}  {progress:>5}  {event:<17}  {ref:<11} {category:<17} {lang:<4} {who}"


def missing_demo_extra() -> str | None:
    """The first module of the ``demo`` extra that cannot be imported, or None."""
    for module in ("pymap", "aiosmtpd"):
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def run_demo(exit_after_samples: bool = False, directory: Path | None = None) -> int:
    """Start the embedded system, feed the samples, show the live table; return an exit code."""
    if missing_demo_extra():
        print(f"inquiry-bot: {DEMO_EXTRA_MESSAGE}", file=sys.stderr)
        return 2
    from bot.ops.devmail import DevImapServer, SmtpSink

    folder = prepare_folder(Path(directory) if directory else DEFAULT_DIR)
    environ = write_demo_env(folder)
    with ExitStack() as stack:
        stack.enter_context(_log_to_file(folder / "bot.log"))
        imap = DevImapServer()
        for _role, address, _name, _use in ACCOUNTS:
            imap.add_user(address, PASSWORD)
        imap.start()
        stack.callback(imap.stop)
        smtp = SmtpSink(deliver_into=imap, reject_unknown=True)
        smtp.start()
        stack.callback(smtp.stop)
        code = _run(folder, imap, smtp, environ, exit_after_samples)
        ports = (imap.port, smtp.port)
    _report_closed(ports)
    return code


def prepare_folder(folder: Path) -> Path:
    """Create the demo folder (owner-only) and drop the previous run's database and log."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in [*folder.glob("tickets.db*"), *folder.glob("muttrc-*"), folder / "bot.log"]:
        old.unlink(missing_ok=True)
    return folder


def write_demo_env(folder: Path) -> dict[str, str]:
    """A fresh staff token secret (and the IMAP password) in ``<folder>/env``, owner-only;
    returns the variables. Without the secret, staff replies could not be authenticated."""
    environ = {IMAP_PASSWORD_ENV: PASSWORD, TOKEN_SECRET_ENV: secrets.token_hex(32)}
    write_private(folder / "env", "# Written by `inquiry-bot demo` for this run (a new secret "
                  "each run); safe to delete.\n"
                  + "".join(f"{name}={value}\n" for name, value in environ.items()))
    return environ


def write_demo_config(folder: Path, imap_port: int, smtp_port: int) -> Path:
    """A config for the embedded servers in ``folder`` (never touches config.toml)."""
    path = folder / "config.toml"
    write_private(path, f"""# Written by `inquiry-bot demo`; safe to delete. Its secrets are in env.
[bot]
address = "{BOT}"
heartbeat_file = "{folder / 'heartbeat'}"
[mailbox]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{BOT}"
password_env = "{IMAP_PASSWORD_ENV}"
poll_seconds = 5
first_run_days = 0  # the samples are put in before the start and must be answered
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
[storage]
database = "tickets.db"
[staff]
addresses = ["{STAFF}"]
notify = ["{STAFF}"]
token_secret_env = "{TOKEN_SECRET_ENV}"
[escalation]
to = ["{DPO}"]
""")
    return path


def _run(folder: Path, imap: Any, smtp: Any, environ: dict[str, str],
         exit_after_samples: bool) -> int:
    from bot.adapters.store import Store
    from bot.ops.worker import Worker

    config = write_demo_config(folder, imap.port, smtp.port)
    demo_guide.write_muttrcs(folder, ACCOUNTS, PASSWORD, imap.port, smtp.port)
    settings = load_settings(config, environ)
    worker = Worker(settings)  # creates and migrates the database before the view reads it
    view = LiveView(Store(settings.database_path), expected=len(SAMPLES))
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    with _stop_on_signals(worker.stop) as stop:
        for sender, subject, body, headers in SAMPLES:
            imap.append(BOT, sample_mail(sender, subject, body, headers))
        _print_intro(imap.port, smtp.port, folder)
        thread.start()
        try:
            code = _follow(view, stop, exit_after_samples, folder, (imap.port, smtp.port), config)
        finally:
            worker.stop.set()
            thread.join(timeout=30)
            view.store.close()
    return code


def _follow(view: LiveView, stop: threading.Event, exit_after_samples: bool, folder: Path,
            ports: tuple[int, int], config: Path) -> int:
    answered = view.follow(stop, until=view.samples_answered, timeout=SAMPLE_TIMEOUT_SECONDS)
    if stop.is_set():
        return 0
    if not answered:
        print(f"the samples were not all answered within {SAMPLE_TIMEOUT_SECONDS}s; "
              f"see {folder / 'bot.log'}", file=sys.stderr)
        return 1
    print(f"\nAll {len(SAMPLES)} samples handled, every acknowledgement sent.", flush=True)
    if not exit_after_samples:
        print(demo_guide.try_it_text(ACCOUNTS, PASSWORD, ports, folder, config), flush=True)
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
        for row in self.store.processed_after(self.last_processed_rowid):
            self.taken += 1
            self.last_processed_rowid = row["rowid"]
            print(self._taken_line(row), flush=True)
        for row in self.store.settled_outbox():
            if row["id"] not in self.reported_sends:
                self.reported_sends.add(row["id"])
                print(self._sent_line(row), flush=True)

    def _taken_line(self, row: dict[str, Any]) -> str:
        progress = f"{self.taken}/{self.expected}" if self.taken <= self.expected else ""
        category = (row["category"] or "-") + (" (review)" if row["needs_review"] else "")
        event, who = taken_event(row["outcome"], row["reason"], row["customer_email"])
        return TABLE_FORMAT.format(
            time=_local_time(row["processed_at"]), progress=progress, event=event,
            ref=row["ref"] or "-", category=category, lang=row["language"] or "-", who=who)

    def _sent_line(self, row: dict[str, Any]) -> str:
        kind = _SENT_EVENTS.get(row["kind"], row["kind"] or "mail")
        event = f"{kind} sent" if row["status"] == "sent" else f"{kind} FAILED"
        recipients = ", ".join(_json_list(row["recipients"]))
        who = f"-> {recipients}" + ("" if row["status"] == "sent" else f" ({row['last_error']})")
        return TABLE_FORMAT.format(
            time=_local_time(row["sent_at"] or row["next_attempt_at"]), progress="",
            event=event, ref=row["ref"] or "-", category="", lang="", who=who)


_TAKEN_EVENTS = {"ticket": "NEW TICKET", "followup": "follow-up", "ignored": "ignored",
                 "quarantined": "QUARANTINED"}
# processed.reason of staff mail: what it did, or why nothing happened.
_STAFF_EVENTS = {"relayed": "staff answer", "note": "staff note", "commands": "staff command",
                 "staff-copy": "staff copy"}
_STAFF_REJECTIONS = {
    "suspicious-sender": "not authenticated: nothing sent, staff alerted",
    "commands-rejected": "command not understood: nothing done, the sender was told"}
_SENT_EVENTS = {"acknowledgement": "ack", "notification": "notice",
                "escalation": "escalation", "staff_reply": "answer"}


def taken_event(outcome: str, reason: str | None, customer: str | None) -> tuple[str, str]:
    """The table's event and last column for a ``processed`` row. Staff mail that did
    nothing reads REJECTED, never like an answer."""
    reason = reason or ""
    if outcome != "staff":
        return _TAKEN_EVENTS.get(outcome, outcome), customer or f"({reason or 'no reason'})"
    if reason in _STAFF_EVENTS:
        return _STAFF_EVENTS[reason], f"({reason})"
    if reason in _STAFF_REJECTIONS:
        return "REJECTED", f"({reason}: {_STAFF_REJECTIONS[reason]})"
    # A reason this table does not know: say what it is, and do not claim success.
    return "staff mail", f"({reason or 'no reason recorded'})"


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
    write_private(path, "")  # owner-only, as every file the bot writes
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
