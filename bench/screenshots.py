"""Screenshots of the admin view for the README: a ticket dossier and the dashboard.

The database is filled by the real pipeline (tests/admin_samples.py: loopback IMAP ->
``inquiry-bot once`` -> loopback SMTP, staff replies from a mail client), then each
ticket's times are moved back by a few days to a few weeks so that the weekly charts have a
history; ``inquiry-bot admin`` serves it and headless chromium takes the pictures.

    .venv/bin/python bench/screenshots.py [--out docs/img]

Prints each file with its size; the README embeds docs/img/admin-dossier.png and
docs/img/admin-dashboard.png (keep each under 200 kB).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from admin_samples import (  # noqa: E402
    CUSTOMERS,
    TOKEN_SECRET_ENV,
    deliver,
    fill,
    notification,
    pipeline_config,
    staff_reply,
)
from botenv import STAFF_TOKEN_SECRET, admin_server  # noqa: E402
from mailservers import PASSWORD, TEST_USERS, make_imap_server  # noqa: E402

from bot.ops.devmail import SmtpSink  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 200_000
SCALE = 0.8  # more of the page per pixel; text stays readable
MORE_CUSTOMERS = [
    ("dang@example.vn", "Dang Thi Hoa", "xoa tai khoan",
     "Chao ban, toi muon xoa tai khoan cua toi va tat ca du lieu. Cam on."),
    ("erik@example.com", "Erik Larsen", "Request for my data",
     "Please send me a copy of all personal data you hold about me."),
    ("fumiko@example.jp", "Fumiko Mori", "Wrong address on file",
     "My address on file is wrong, please correct it to 1-2-3 Shibuya, Tokyo."),
    ("giang@example.vn", "Le Giang", "Yêu cầu cung cấp dữ liệu",
     "Xin chào, tôi muốn biết công ty đang lưu giữ những dữ liệu cá nhân nào của tôi."),
    ("henry@example.com", "Henry Ward", "How long do you keep my data?",
     "How long do you keep my purchase history after I close my account?"),
    ("ivy@example.com", "Ivy Chen", "Stop sending me offers",
     "You keep sending me marketing mail although I never agreed. I want to complain."),
    ("khanh@example.vn", "Tran Khanh", "Hỏi về chính sách bảo mật",
     "Công ty có chia sẻ thông tin của tôi cho bên thứ ba không?"),
    ("lena@example.com", "Lena Vogel", "Please delete everything",
     "Delete my account and every piece of personal data about me, please."),
]
# Days each ticket's times move back (CJD-000001 first): weeks of history for the charts.
AGE_DAYS = [2, 40, 33, 26, 21, 18, 12, 9, 5, 3, 1]
ANSWERED = ["CJD-000002", "CJD-000004", "CJD-000005", "CJD-000008", "CJD-000010"]


def build_database(folder: Path, imap, smtp) -> tuple[Path, Path]:
    """The pipeline's database with a few weeks of history; returns (config, database)."""
    db = fill(folder, imap, smtp, customers=CUSTOMERS + MORE_CUSTOMERS)
    config = pipeline_config(folder, imap, smtp)
    for ref in ANSWERED:
        deliver(config, imap, smtp, staff_reply(notification(smtp, ref),
                                                "Thank you, we have answered your request."))
    deliver(config, imap, smtp, staff_reply(notification(smtp, "CJD-000007"),
                                            "#category complaint"))
    backdate(db)
    return config, db


def backdate(db: Path) -> None:
    """Move every time of ticket N back by AGE_DAYS[N-1] days (tickets, mail, events,
    outbox): the pipeline ran a minute ago, the charts want weeks."""
    conn = sqlite3.connect(db)
    with conn:
        for table, key in (("tickets", "id"), ("messages", "ticket_id"), ("events", "ticket_id"),
                           ("outbox", "ticket_id"), ("verifications", "ticket_id")):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                       if r[1].endswith("_at") or r[1] == "at"]
            for ticket_id, days in enumerate(AGE_DAYS, start=1):
                moved = ", ".join(
                    f"{c} = strftime('%Y-%m-%dT%H:%M:%SZ', {c}, '-{days} days')"
                    for c in columns)
                conn.execute(f"UPDATE {table} SET {moved} WHERE {key} = ?", (ticket_id,))
        # The pipeline's staff answered within seconds; in the picture they take hours.
        for n, ref in enumerate(ANSWERED, start=1):
            conn.execute("UPDATE tickets SET first_response_at = strftime("
                         "'%Y-%m-%dT%H:%M:%SZ', created_at, ?) WHERE ref = ?",
                         (f"+{n * 9 + 3} hours", ref))
    conn.close()


def shoot(url: str, path: Path, width: int, height: int) -> int:
    """One screenshot, made shorter until the PNG is under MAX_BYTES; returns its size."""
    while True:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--hide-scrollbars",
                        "--virtual-time-budget=20000", f"--window-size={width},{height}",
                        f"--force-device-scale-factor={SCALE}",
                        f"--screenshot={path}", url],
                       check=True, capture_output=True, timeout=120)
        size = path.stat().st_size
        if size < MAX_BYTES or height <= 600:
            return size
        height -= 100


def serve_and_shoot(config: Path, db: Path, out: Path) -> None:
    with admin_server(config) as (_proc, base):
        for name, path, height in (("admin-dossier.png", "ticket?ref=CJD-000001", 1450),
                                   ("admin-dashboard.png", "dashboard", 1450)):
            size = shoot(f"{base}/{db.stem}/{path}", out / name, 1100, height)
            print(f"{out / name}\t{size / 1000:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["TEST_IMAP_PASSWORD"] = PASSWORD
    os.environ[TOKEN_SECRET_ENV] = STAFF_TOKEN_SECRET
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        imap = make_imap_server(folder / "imap")
        for address in TEST_USERS:
            imap.add_user(address, PASSWORD)
        with imap, SmtpSink(deliver_into=imap) as smtp:
            config, db = build_database(folder, imap, smtp)
        serve_and_shoot(config, db, args.out)


if __name__ == "__main__":
    main()
