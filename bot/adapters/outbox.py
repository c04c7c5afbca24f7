"""Send what the outbox holds; retry transient failures with backoff, give up on permanent ones.

Three rules keep mail from being lost or sent twice:
- Only a refusal of ONE mail (5xx to RCPT or DATA) fails a row. A server that takes no
  mail at all - refused login (535 after a password rotation), connection refused - is an
  outage: the rows stay pending with backoff however long it lasts, their bytes are kept,
  and staff hear about it once, when sending works again (:mod:`bot.adapters.outage`).
- A send the server accepted is recorded before the next send starts. If the store cannot
  record it (locked, read-only, full), the flush stops: nothing more is sent until the
  store is writable again, and then the accepted row is marked sent first thing, so it is
  never sent again.
- A mail to an internationalised address goes out with SMTPUTF8; where the server does not
  offer it, the row fails with a clear error and its ticket is flagged for staff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters import oauth, outage, smtp
from bot.adapters.store import OutboxRow, Store, StoreUnavailable
from bot.config import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 40           # with the 1-hour cap: about a day and a half of retries
FIRST_RETRY_SECONDS = 15
MAX_RETRY_SECONDS = 3600

# One flush at a time per process: the scheduler thread and `once` must never send the
# same pending row twice.
_flush_lock = threading.Lock()
# Rows the SMTP server accepted but the store could not mark sent, per database file:
# ``(outbox id, when accepted)``. Guarded by _flush_lock. A crash loses this memory, which
# the contract allows (at most the sends in flight are repeated after a crash).
_unrecorded: dict[str, list[tuple[int, datetime]]] = {}


@dataclass(frozen=True)
class FlushReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    held: int = 0  # accepted by the server, not yet recorded: sending is on hold

    def __add__(self, other: FlushReport) -> FlushReport:
        return FlushReport(self.sent + other.sent, self.retrying + other.retrying,
                           self.failed + other.failed, self.held + other.held)


def retry_delay(attempts: int) -> timedelta:
    """Capped exponential backoff after ``attempts`` failed tries."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** attempts, MAX_RETRY_SECONDS))


def flush(store: Store, settings: Settings, clock: Callable[[], datetime],
          batch: int = 500) -> FlushReport:
    """Send every due pending mail, in batches over one SMTP session each."""
    totals = FlushReport()
    with _flush_lock:
        held = _record_held(store)
        if held:
            return FlushReport(held=held)
        while True:
            rows = store.due_outbox(clock(), limit=batch)
            if not rows:
                return totals
            report, failure = _send_batch(store, settings, rows, clock)
            totals = totals + report
            if report.held:
                return totals
            _track_outage(store, settings, report, failure, clock())
            if report.sent == 0:
                return totals  # the server is not taking mail: wait for the next retry time


def held_count(store: Store) -> int:
    """Sends accepted by the server but not yet recorded in ``store`` (sending waits)."""
    return len(_unrecorded.get(_key(store), []))


def _record_held(store: Store) -> int:
    """Mark the rows the server accepted while the store was not writable; how many still
    wait (0: sending may go on)."""
    pending = _unrecorded.get(_key(store), [])
    while pending:
        outbox_id, accepted_at = pending[0]
        try:
            store.mark_outbox(outbox_id, "sent", accepted_at)
        except StoreUnavailable as exc:
            log.warning("outbox: database still not writable (%s): %d sent mail(s) not yet "
                        "recorded, sending nothing until they are", exc, len(pending))
            return len(pending)
        pending.pop(0)
        log.info("outbox %s: recorded as sent (accepted while the database was locked)",
                 outbox_id)
    _unrecorded.pop(_key(store), None)
    return 0


class _Batch:
    """The results of one SMTP session, recorded as they come."""

    def __init__(self, store: Store, settings: Settings, rows: list[OutboxRow],
                 clock: Callable[[], datetime]) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.rows = {r.id: r for r in rows}
        self.counts = {"sent": 0, "pending": 0, "failed": 0}
        self.errors: list[str] = []
        self.failure: smtp.SendResult | None = None  # the outage that ended the batch
        self.held = 0

    def record(self, result: smtp.SendResult) -> bool:
        """Record one result; False stops the session (the store cannot record)."""
        row = self.rows[result.key]
        status = _next_status(result, row.attempts)
        now = self.clock()
        retry_at = now + retry_delay(row.attempts) if status == "pending" else None
        try:
            self.store.mark_outbox(result.key, status, now, result.error, retry_at)
            if result.failure == smtp.SMTPUTF8 and row.ticket_id is not None:
                outage.flag_unsendable(self.store, row.ticket_id, row.message_id, now)
        except StoreUnavailable as exc:
            return self._cannot_record(result, status, now, exc)
        self.counts[status] += 1
        self.failure = result if result.outage else None
        if result.error:
            self.errors.append(result.error)
        return True

    def _cannot_record(self, result: smtp.SendResult, status: str, now: datetime,
                       exc: StoreUnavailable) -> bool:
        if status == "sent":  # accepted: must be recorded before anything else is sent
            _unrecorded.setdefault(_key(self.store), []).append((result.key, now))
            self.held += 1
        log.warning("outbox %s: database not writable (%s): holding further sends until it "
                    "is", result.key, exc)
        return False

    def report(self) -> FlushReport:
        return FlushReport(self.counts["sent"], self.counts["pending"], self.counts["failed"],
                           self.held)


def _send_batch(store: Store, settings: Settings, rows: list[OutboxRow],
                clock: Callable[[], datetime]
                ) -> tuple[FlushReport, smtp.SendResult | None]:
    envelopes = [smtp.Envelope(r.id, settings.bot.address, r.recipients, r.raw) for r in rows]
    batch = _Batch(store, settings, rows, clock)
    smtp.send_all(settings.smtp, oauth.credential(settings, "smtp"), envelopes,
                  batch.record)
    report = batch.report()
    if batch.errors:
        log.warning("outbox: %d sent, %d to retry, %d failed (%s)", report.sent,
                    report.retrying, report.failed, batch.errors[0])
    return report, batch.failure


def _track_outage(store: Store, settings: Settings, report: FlushReport,
                  failure: smtp.SendResult | None, now: datetime) -> None:
    """An outage begins when a session fails; it ends when the server takes mail again."""
    try:
        if failure is not None:
            outage.begin(store, failure.error or "", failure.failure == smtp.AUTH, now)
        elif report.sent:
            outage.end(store, settings, now)
    except StoreUnavailable as exc:  # recorded on the next flush that can write
        log.warning("outbox: could not record the state of sending: %s", exc)


def _next_status(result: smtp.SendResult, attempts: int) -> str:
    if result.status == "sent":
        return "sent"
    if result.status == "transient" and (result.outage or attempts + 1 < MAX_ATTEMPTS):
        return "pending"  # an outage never uses up a mail's attempts
    return "failed"


def _key(store: Store) -> str:
    return str(store.path.resolve())
