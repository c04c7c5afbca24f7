"""Send what the outbox holds; retry transient failures with backoff, give up on permanent ones."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters import smtp
from bot.adapters.store import Store
from bot.config import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 40           # with the 1-hour cap: about a day and a half of retries
FIRST_RETRY_SECONDS = 15
MAX_RETRY_SECONDS = 3600

# One flush at a time per process: the scheduler thread and `once` must never send the
# same pending row twice.
_flush_lock = threading.Lock()


@dataclass(frozen=True)
class FlushReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def retry_delay(attempts: int) -> timedelta:
    """Capped exponential backoff after ``attempts`` failed tries."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** attempts, MAX_RETRY_SECONDS))


def flush(store: Store, settings: Settings, clock: Callable[[], datetime],
          batch: int = 500) -> FlushReport:
    """Send every due pending mail, in batches over one SMTP session each."""
    totals = FlushReport()
    with _flush_lock:
        while True:
            rows = store.due_outbox(clock(), limit=batch)
            if not rows:
                return totals
            report = _send_batch(store, settings, rows, clock)
            totals = FlushReport(totals.sent + report.sent, totals.retrying + report.retrying,
                                 totals.failed + report.failed)
            if report.sent == 0:
                return totals  # the server is not taking mail: wait for the next retry time


def _send_batch(store: Store, settings: Settings, rows: list, clock: Callable[[], datetime]
                ) -> FlushReport:
    envelopes = [smtp.Envelope(r.id, settings.bot.address, r.recipients, r.raw) for r in rows]
    attempts = {r.id: r.attempts for r in rows}
    counts = {"sent": 0, "pending": 0, "failed": 0}
    errors: list[str] = []

    def record(result: smtp.SendResult) -> None:
        status = _next_status(result, attempts[result.key])
        now = clock()
        retry_at = now + retry_delay(attempts[result.key]) if status == "pending" else None
        store.mark_outbox(result.key, status, now, result.error, retry_at)
        counts[status] += 1
        if result.error:
            errors.append(result.error)

    smtp.send_all(settings.smtp, settings.smtp_password, envelopes, record)
    if errors:
        log.warning("outbox: %d sent, %d to retry, %d failed (%s)", counts["sent"],
                    counts["pending"], counts["failed"], errors[0])
    return FlushReport(counts["sent"], counts["pending"], counts["failed"])


def _next_status(result: smtp.SendResult, attempts: int) -> str:
    if result.status == "sent":
        return "sent"
    if result.status == "transient" and attempts + 1 < MAX_ATTEMPTS:
        return "pending"
    return "failed"
