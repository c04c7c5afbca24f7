"""Escalation at scale: 1,000,000 tickets (99% closed) -> time of a pass and of a new ticket.

Fills a fresh database (tickets, one message and one processed row per ticket) with
``INSERT ... SELECT`` over a recursive CTE in one transaction, then prints:

* the time of one escalation pass: the first one (which escalates the open tickets that
  are already due) and a steady-state one (nothing new to send), median of several;
* the time of opening a ticket through ``Service.handle`` (parse, triage, deadlines, the
  ticket + message + processed + acknowledgement + notification in ONE transaction).

Targets (issue 6): a pass under 100 ms, ticket creation under 5 ms.

    .venv/bin/python bench/escalation_scale.py [--tickets 1000000] [--open-percent 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from botenv import customer_mail, write_config  # noqa: E402

from bot.adapters.store import Store, utc_iso  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.flows import escalation  # noqa: E402
from bot.flows.service import Service  # noqa: E402
from bot.models import MessageSource  # noqa: E402

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tue 10:00 JST, inside business hours
HISTORY_DAYS = 3 * 365
OPEN_WINDOW_DAYS = 30
NO_SERVER = SimpleNamespace(host="127.0.0.1", port=1)  # no mail is sent

# Every ticket gets deadlines relative to its creation (5/3/10 days, close enough for the
# planner's cost); closed tickets are spread over three years, open ones over the last month.
_FILL_TICKETS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),
t AS (
  SELECT i,
         (i % :every = 0) AS is_open,
         CASE WHEN i % :every = 0
              THEN (i * 7919) % (:open_window * 86400)
              ELSE (i * 104729) % (:history * 86400) END AS age_s
  FROM n)
INSERT INTO tickets (id, ref, category, language, status, subject, customer_email,
                     customer_name, created_at, due_at, escalate_at, hard_at, closed_at,
                     first_response_at, escalation_level, verification_status,
                     last_activity_at)
SELECT i, printf('CJD-%06d', i),
       CASE i % 5 WHEN 0 THEN 'question' WHEN 1 THEN 'complaint' WHEN 2 THEN 'disclosure'
                  WHEN 3 THEN 'correction' ELSE 'deletion' END,
       CASE i % 3 WHEN 0 THEN 'vi' ELSE 'en' END,
       CASE WHEN is_open THEN 'open' ELSE 'closed' END,
       'Subject ' || i, 'customer' || (i % 50000) || '@example.com', 'Customer ' || i,
       strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds'),
       strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds', '+5 days'),
       strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds', '+3 days'),
       strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds', '+10 days'),
       CASE WHEN is_open THEN NULL
            ELSE strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds', '+4 days')
       END,
       CASE WHEN is_open THEN NULL
            ELSE strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds', '+1 days')
       END,
       0, 'not_required',
       strftime('%Y-%m-%dT%H:%M:%SZ', :now, '-' || age_s || ' seconds')
FROM t
"""
_FILL_MESSAGES = """
INSERT INTO messages (ticket_id, direction, kind, message_id, from_addr, to_addrs, subject,
                      body_text, attachments, created_at)
SELECT id, 'in', 'customer', '<bench-' || id || '@example.com>', customer_email,
       'contact@cijidas.jp', subject, 'Hello, a short question about my data.', '[]',
       created_at
FROM tickets
"""
_FILL_PROCESSED = """
INSERT INTO processed (mailbox, uidvalidity, uid, message_id, outcome, reason, ticket_id,
                       processed_at)
SELECT 'INBOX', 1, id, '<bench-' || id || '@example.com>', 'ticket', NULL, id, created_at
FROM tickets
"""


def fill(store: Store, count: int, open_percent: float) -> float:
    """Insert ``count`` tickets (+ messages, processed) in one transaction; seconds taken."""
    started = time.perf_counter()
    params = {"count": count, "every": round(100 / open_percent), "now": utc_iso(NOW),
              "history": HISTORY_DAYS, "open_window": OPEN_WINDOW_DAYS}
    with store.transaction() as conn:
        conn.execute(_FILL_TICKETS, params)
        conn.execute(_FILL_MESSAGES)
        conn.execute(_FILL_PROCESSED)
    store.conn.execute("ANALYZE")
    return time.perf_counter() - started


def time_passes(store: Store, settings, repeats: int) -> tuple[float, int, list[float]]:
    """First pass (seconds, lines) and steady-state passes (seconds each)."""
    started = time.perf_counter()
    lines = escalation.run_pass(store, settings, NOW, dry_run=False)
    first = time.perf_counter() - started
    steady = []
    for i in range(repeats):
        started = time.perf_counter()
        escalation.run_pass(store, settings, NOW + timedelta(seconds=i + 1), dry_run=False)
        steady.append(time.perf_counter() - started)
    return first, len(lines), steady


def time_creations(store: Store, settings, count: int) -> list[float]:
    """Seconds per new ticket through Service.handle (one transaction each)."""
    service = Service(store, settings)
    body = "Hello, I have a question: how long do you keep my purchase history? Thank you."
    timings = []
    for i in range(count):
        raw = customer_mail("Question about my data", body, sender=f"new{i}@example.com",
                            message_id=f"<new-{i}@example.com>")
        started = time.perf_counter()
        result = service.handle(MessageSource("INBOX", 2, i + 1), raw, NOW)
        timings.append(time.perf_counter() - started)
        assert result.ref, result
    return timings


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--open-percent", type=float, default=1.0)
    parser.add_argument("--creations", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), NO_SERVER, None, storage={"database": "tickets.db"})
        settings = load_settings(config, require_secrets=False)
        store = Store(settings.database_path)
        try:
            seconds = fill(store, args.tickets, args.open_percent)
            open_count = store.count("tickets", "status = 'open'")
            size_mb = settings.database_path.stat().st_size / 1e6
            print(f"filled {args.tickets:,} tickets ({open_count:,} open) + messages + "
                  f"processed in {seconds:.1f} s ({size_mb:.0f} MB)")
            first, mails, steady = time_passes(store, settings, repeats=20)
            print(f"escalation pass, first (queues {mails} mail(s)): {ms(first)}")
            print(f"escalation pass, steady state: median {ms(statistics.median(steady))}, "
                  f"max {ms(max(steady))}  (target < 100 ms)")
            created = time_creations(store, settings, args.creations)
            print(f"open a ticket (Service.handle, one transaction): median "
                  f"{ms(statistics.median(created))}, p95 "
                  f"{ms(sorted(created)[int(len(created) * 0.95)])}  (target < 5 ms)")
        finally:
            store.close()


if __name__ == "__main__":
    main()
