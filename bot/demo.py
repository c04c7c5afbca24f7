"""``inquiry-bot demo``: an embedded mail system on loopback, sample inquiries, live output.

pymap holds the mailboxes (the bot's, staff's, customers'); aiosmtpd delivers what the bot
sends into them; the real worker (imapclient + aiosmtplib) runs unchanged against both.
Nothing listens beyond 127.0.0.1 and Ctrl-C stops everything.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from bot.config import PACKAGE_ROOT, load_settings

DEMO_DIR = PACKAGE_ROOT / "state" / "demo"
PASSWORD = "demo"
BOT = "contact@cijidas.jp"
STAFF = "privacy@cijidas.jp"
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


def run_demo(exit_after_samples: bool = False) -> int:
    """Start the embedded system, feed the samples, show progress; return an exit code."""
    try:
        from bot.devmail import DevImapServer, SmtpSink
    except ImportError:
        print("the demo needs the demo extra: pip install -e '.[demo]'", file=sys.stderr)
        return 1
    imap = DevImapServer()
    for address in (BOT, STAFF, "dpo@cijidas.jp", *CUSTOMERS):
        imap.add_user(address, PASSWORD)
    imap.start()
    smtp = SmtpSink(deliver_into=imap)
    smtp.start()
    try:
        return _run(imap, smtp, exit_after_samples)
    finally:
        smtp.stop()
        imap.stop()


def _run(imap, smtp, exit_after_samples: bool) -> int:
    from bot.worker import Worker

    config = write_demo_config(imap.port, smtp.port)
    settings = load_settings(config, {"DEMO_IMAP_PASSWORD": PASSWORD})
    for sender, subject, body, headers in SAMPLES:
        imap.append(BOT, _sample(sender, subject, body, headers))
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    print(f"Embedded mail system on 127.0.0.1 - IMAP {imap.port}, SMTP {smtp.port}")
    print(f"Dropped {len(SAMPLES)} sample inquiries into {BOT}; the bot is answering:\n")
    thread.start()
    stop = _stop_event(worker)
    shown = _watch(settings.database_path, len(SAMPLES), stop, timeout=60)
    if shown < len(SAMPLES):
        print("the samples were not all processed in time", file=sys.stderr)
        worker.stop.set()
        thread.join(timeout=20)
        return 1
    if not exit_after_samples:
        _print_help(imap.port, smtp.port, settings.database_path)
        _watch(settings.database_path, None, stop, timeout=None, start=shown)
    worker.stop.set()
    thread.join(timeout=20)
    return 0


def write_demo_config(imap_port: int, smtp_port: int) -> Path:
    """A fresh config + database under state/demo (never touches config.toml)."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in DEMO_DIR.glob("tickets.db*"):
        old.unlink()
    path = DEMO_DIR / "config.toml"
    path.write_text(f"""# Written by `inquiry-bot demo`; safe to delete.
[bot]
address = "{BOT}"
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
to = ["dpo@cijidas.jp"]
""")
    return path


def _sample(sender: str, subject: str, body: str, headers: dict[str, str]) -> bytes:
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, BOT, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="example")
    for key, value in headers.items():
        msg[key] = value
    msg.set_content(body)
    return bytes(msg)


def _watch(database: Path, expected: int | None, stop: threading.Event,
           timeout: float | None, start: int = 0) -> int:
    """Print one line per processed mail (and its acknowledgement) as it happens."""
    import sqlite3

    deadline = None if timeout is None else time.monotonic() + timeout
    shown = start
    while not stop.is_set() and (expected is None or shown < expected or not _acked(database)):
        if deadline is not None and time.monotonic() > deadline:
            break
        rows = _processed_since(database, shown) if database.exists() else []
        for row in rows:
            shown += 1
            progress = f"[{shown}/{expected}]" if expected else f"[{shown}]"
            print(f"{progress:>7} {_describe(row)}", flush=True)
        stop.wait(0.3)
    del sqlite3
    return shown


def _processed_since(database: Path, offset: int) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(
            "SELECT p.outcome, p.reason, t.ref, t.category, t.language, t.customer_email, "
            "t.needs_review FROM processed p LEFT JOIN tickets t ON t.id = p.ticket_id "
            "ORDER BY p.rowid LIMIT -1 OFFSET ?", (offset,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _acked(database: Path) -> bool:
    import sqlite3

    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        pending = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
        return pending.fetchone()[0] == 0
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _describe(row: tuple) -> str:
    outcome, reason, ref, category, language, customer, review = row
    if outcome == "ticket":
        flag = " (needs review)" if review else ""
        return (f"{ref}  {category:<10} {language}  from {customer}: ticket opened, "
                f"acknowledgement queued{flag}")
    return f"{'-':<10} {outcome}: {reason}"


def _print_help(imap_port: int, smtp_port: int, database: Path) -> None:
    print(f"""
All samples answered. The demo keeps running - try it yourself:
  * send mail to {BOT} through SMTP 127.0.0.1:{smtp_port} (no TLS, no login), e.g.
      swaks --server 127.0.0.1:{smtp_port} --to {BOT} --from alice@example.com
  * open a mailbox in any mail client (IMAP 127.0.0.1:{imap_port}, no TLS):
      customer: alice@example.com / {PASSWORD}     staff: {STAFF} / {PASSWORD}
  * inspect the tickets: .venv/bin/datasette {database} (pip install -e '.[admin]')
Press Ctrl-C to stop.
""", flush=True)


def _stop_event(worker) -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()
        worker.stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
