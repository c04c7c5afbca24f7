"""End-to-end throughput benchmark: 2,000 mixed mails in Dovecot -> `inquiry-bot once`.

Prints, from one run: messages/second end to end (ingest -> ticket -> acknowledgement
accepted by SMTP), the raw floor on the same machine (fetch all + send all, no
processing), their ratio, and the peak RSS of the `once` process.

The installation has run before the timed run, as any does after its first day: a first
`once` answers one mail of each kind (then deleted from the mailbox), which creates the
database and the state folder's cache (compiled templates, Japan's holidays): a one-off.

    .venv/bin/python bench/pipeline.py [--count 2000] [--repeat 3]

On a shared machine one run scatters (the floor alone by up to 40 %), so each figure is
measured ``--repeat`` times, each time on a fresh mailbox and database, and the median
ratio is reported with every run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from botenv import BOT, bot_env, customer_mail, scalar, write_config  # noqa: E402
from mailservers import PASSWORD, make_imap_server  # noqa: E402

from bot.ops.devmail import SmtpSink  # noqa: E402

SAMPLES = [
    ("Please delete my account", "Hello, please delete my account and all data you hold."),
    ("Question about my data", "How long do you keep my purchase history?"),
    ("Wrong address", "My address on file is wrong, please correct it to 1-2-3 Shibuya."),
    ("Request for my data", "Please send me a copy of all personal data you hold about me."),
    ("Complaint", "I am very unhappy: you sent my data to a third party without asking."),
    ("xoa tai khoan", "Chao ban, toi muon xoa tai khoan cua toi. Cam on."),
    ("Yêu cầu cung cấp dữ liệu", "Xin chào, tôi muốn biết công ty đang lưu giữ những dữ liệu "
     "cá nhân nào của tôi."),
    ("Out of Office", "I am away until Monday."),
]


def load_mailbox(server, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with server.session(BOT) as client:
        for i in range(count):
            subject, body = rng.choice(SAMPLES)
            headers = {"Auto-Submitted": "auto-replied"} if subject == "Out of Office" else {}
            client.append("INBOX", customer_mail(subject, f"{body}\n#{i}",
                                                 sender=f"c{i}@example.org", headers=headers))


def raw_floor(server, sink: SmtpSink, outgoing: list[bytes] | None = None) -> tuple[float, int]:
    """Fetch every message, then send with no processing at all.

    ``outgoing=None`` sends each fetched message back unchanged (the "echo" floor);
    otherwise sends exactly these bytes - the pipeline's own acknowledgements, so the floor
    moves the same bytes in and out as the pipeline did.
    """
    started = time.perf_counter()
    with IMAPClient(server.host, port=server.port, ssl=False) as client:
        client.login(BOT, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        raws = []
        for start in range(0, len(uids), 50):
            data = client.fetch(uids[start:start + 50], ["BODY.PEEK[]"])
            raws.extend(bytes(item[b"BODY[]"]) for item in data.values())
    asyncio.run(_send_all(sink, raws if outgoing is None else outgoing))
    return time.perf_counter() - started, len(raws)


async def _send_all(sink: SmtpSink, raws: list[bytes]) -> None:
    async with aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False) as smtp:
        for raw in raws:
            await smtp.sendmail(BOT, ["someone@example.org"], raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ratios = []
    for run in range(1, args.repeat + 1):
        print(f"--- run {run} of {args.repeat}")
        ratios.append(one_run(args.count))
    ratios.sort()
    print(f"median pipeline / same-I/O floor over {len(ratios)} runs: "
          f"{ratios[len(ratios) // 2]:.0%} (runs: {', '.join(f'{r:.0%}' for r in ratios)}; "
          f"target >= 35%)")


def one_run(count: int) -> float:
    """One measurement on a fresh mailbox and database; returns pipeline / same-I/O floor."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        server = make_imap_server(tmp_path / "imap")
        server.add_user(BOT, PASSWORD)
        server.start()
        sink = SmtpSink()
        sink.start()
        try:
            config = prepare(tmp_path, server, sink)
            load_mailbox(server, count)
            echo = raw_floor(server, sink)
            sink.clear()
            seconds, peak_kb, tickets = run_pipeline(tmp_path, config)
            acks = [received.raw for received in sink.received]
            sink.clear()
            same_io = raw_floor(server, sink, acks)
            report(count, seconds, echo, same_io, peak_kb, server.kind, tickets, acks)
            return same_io[0] / seconds
        finally:
            sink.stop()
            server.stop()


def prepare(tmp_path: Path, server, sink: SmtpSink) -> Path:
    """The config, and an installation that has run: a first `once` answers one mail of
    each kind (the database and the cache exist); they then leave the mailbox and the sink."""
    config = write_config(tmp_path, server, sink, staff={"notify": []},
                          limits={"auto_replies_per_hour": 100000,
                                  "auto_mail_per_hour": 100000})
    with server.session(BOT) as client:
        for n, (subject, body) in enumerate(SAMPLES):
            client.append("INBOX", customer_mail(subject, body, sender=f"first{n}@example.org"))
    _once(config)
    with server.session(BOT) as client:
        client.select_folder("INBOX")
        client.delete_messages(client.search(["ALL"]))
        client.expunge()
    sink.clear()
    return config


def run_pipeline(tmp_path: Path, config: Path) -> tuple[float, int, int]:
    """`inquiry-bot once` in a fresh process: (seconds, peak RSS in kB, tickets it opened)."""
    database = tmp_path / "state" / "tickets.db"
    before = scalar(database, "SELECT count(*) FROM tickets")
    started = time.perf_counter()
    _once(config)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, peak_kb, scalar(database, "SELECT count(*) FROM tickets") - before


def _once(config: Path) -> None:
    subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "once"],
                   check=True, env=bot_env(), cwd=ROOT, stderr=subprocess.DEVNULL)


def report(count: int, seconds: float, echo: tuple[float, int], same_io: tuple[float, int],
           peak_kb: int, kind: str, tickets: int, acks: list[bytes]) -> None:
    rate = count / seconds
    size = sum(map(len, acks)) // max(len(acks), 1)
    print(f"server                   : {kind}")
    print(f"messages                 : {count} ({tickets} tickets, {len(acks)} "
          f"acknowledgements sent, {size:,} bytes each on average)")
    print(f"pipeline (once)          : {seconds:.2f} s = {rate:.0f} msg/s "
          f"(includes interpreter start-up)")
    for label, (floor_seconds, _) in (("same I/O", same_io), ("echo", echo)):
        floor_rate = count / floor_seconds
        print(f"raw floor, {label:<14}: {floor_seconds:.2f} s = {floor_rate:.0f} msg/s -> "
              f"pipeline at {rate / floor_rate:.0%} (target >= 35%)")
    print("  same I/O = fetch all + send the pipeline's own acknowledgements unprocessed;")
    print("  echo     = fetch all + send every fetched message back unchanged")
    print(f"peak RSS of `once`       : {peak_kb / 1024:.0f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
