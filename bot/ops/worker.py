"""The run loop: take new mail from IMAP, process it, flush the outbox; scheduled jobs.

Named steps (rq-style): ``ingest`` (checkpoint -> new UIDs -> fetch in bounded batches ->
handle each), ``flush`` (outbox -> SMTP), ``escalate`` (overdue scan). ``run`` repeats
them with IDLE/poll waits and reconnects with capped exponential backoff; ``once`` does
each step one time.

Before a mail is handled, its start is written to the ``attempts`` table in a transaction
of its own. A mail that two earlier workers started and never finished (the process died:
killed, out of memory) is quarantined with a staff notice instead of being handled a third
time, so one poison mail cannot stop the mailbox.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.adapters import oauth, outbox
from bot.adapters.imap import CONNECTION_ERRORS, Mailbox
from bot.adapters.store import Store, StoreUnavailable
from bot.config import Settings
from bot.errors import BotError, TransientError
from bot.flows import audit, completion, escalation, first_run, notify_limits, verification
from bot.flows.service import Handled, Service, too_large_reason
from bot.models import MessageSource
from bot.ops.sender import Sender

if TYPE_CHECKING:  # imported by `run` only: `once` does without the scheduler (~50 ms)
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 8 * 1024 * 1024
BACKOFF_START_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
OUTBOX_RETRY_SECONDS = 15
# A digest job delayed by a busy scheduler still runs; once-per-day is enforced by the DB.
DIGEST_GRACE_SECONDS = 600
# Held staff notices (a flood from one sender) are summarized at most hourly per sender;
# checking every few minutes keeps the first summary of a flood prompt.
SUMMARY_MINUTES = 5
# A mail started by this many workers that never finished it is not started again.
MAX_STARTS = 2
# Test hook (never set in production): a mail containing this text makes handling hang
# until the worker is told to stop, so a test can kill the worker in the middle of a mail.
HANG_ENV = "INQUIRY_BOT_TEST_HANG_ON"


def utcnow() -> datetime:
    return datetime.now(UTC)


class AlreadyRunning(BotError):
    """Another worker holds the lock on this database."""


@contextmanager
def worker_lock(database: Path) -> Iterator[None]:
    """One worker per database: a second one refuses to start instead of racing."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(f"{database}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"another worker is already running on {database}") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class Backoff:
    """Capped exponential backoff: 1, 2, 4 ... 60 seconds."""

    def __init__(self, start: float = BACKOFF_START_SECONDS, cap: float = BACKOFF_MAX_SECONDS):
        self.start, self.cap, self.current = start, cap, start

    def next(self) -> float:
        delay, self.current = self.current, min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.start


class Worker:
    """Owns the store and the mailbox session of one process."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.database_path, settings.storage.max_page_count)
        self.service = Service(self.store, settings)
        self.stop = threading.Event()
        self.worker_id = secrets.token_hex(8)  # tells this process's starts from others'
        self._wake_flush: Callable[[], None] = lambda: None
        self._mail_done: Callable[[], None] = lambda: None  # once: wakes the sender
        self._thread_stores = threading.local()  # one connection per scheduler thread
        self.intake = first_run.Intake()  # this ingest pass's first-run rules

    # -- commands -------------------------------------------------------------------------
    def once(self, since: datetime | None = None) -> int:
        """Fetch and process all new mail, flush the outbox, one escalation pass.
        ``since``: also import earlier mail that arrived from then on (tickets and acks)."""
        mailbox = Mailbox(self.settings.mailbox, oauth.credential(self.settings, "imap"))
        # Forked after the login: the sender inherits the OAuth access token, if any.
        with Sender(self._new_store, self.flush) as sender:
            self._mail_done = sender.wake
            try:
                count = self.ingest(mailbox, since)
            finally:
                self._mail_done = lambda: None
                mailbox.close()
            self.summarize()
            self.verify()
        if sender.left_unrecorded:  # the server took mail the database could not record
            log.warning("outbox: not sending again this pass (see the sender's error)")
        else:
            self.flush()  # what the sender left (nothing, unless it failed)
        self.escalate()
        return count

    def run(self) -> None:
        """Until ``stop`` is set: ingest, wait for news (IDLE/poll), reconnect on failure."""
        scheduler = self._start_scheduler()
        backoff = Backoff()
        try:
            while not self.stop.is_set():
                try:
                    self._session(backoff)
                except StoreUnavailable as exc:  # nothing marked done that was not recorded
                    delay = backoff.next()
                    log.warning("database unavailable (%s): not taking mail; retrying in %.0fs",
                                exc, delay)
                    self.stop.wait(delay)
                except (TransientError, *CONNECTION_ERRORS) as exc:
                    delay = backoff.next()
                    log.warning("mailbox unavailable (%s); retrying in %.0fs", exc, delay)
                    self.stop.wait(delay)
        finally:
            scheduler.shutdown(wait=True)
            self.store.close()

    def _session(self, backoff: Backoff) -> None:
        mailbox = Mailbox(self.settings.mailbox, oauth.credential(self.settings, "imap"))
        log.info("connected to %s:%s/%s (uidvalidity %s, %s)", self.settings.mailbox.host,
                 self.settings.mailbox.port, mailbox.folder.name, mailbox.folder.uidvalidity,
                 "IDLE" if mailbox.can_idle else f"poll {self.settings.mailbox.poll_seconds}s")
        try:
            while not self.stop.is_set():
                if self.ingest(mailbox):
                    self._wake_flush()
                backoff.reset()
                self.write_heartbeat()
                mailbox.wait_for_change(self.settings.mailbox.poll_seconds, self.stop)
        finally:
            mailbox.close()

    # -- steps ----------------------------------------------------------------------------
    def ingest(self, mailbox: Mailbox, since: datetime | None = None) -> int:
        """Process every message not yet taken; return how many were handled now."""
        folder = mailbox.folder
        self.intake = first_run.Intake.of(self.store, self.settings, folder, self.clock(), since)
        last_uid = 0 if since else self._last_uid(folder.name, folder.uidvalidity)
        uids = mailbox.uids_after(last_uid)
        done = self.store.processed_uids(folder.name, folder.uidvalidity, uids)
        todo = [uid for uid in uids if uid not in done]
        handled = 0
        sizes, arrived = mailbox.sizes_and_arrivals(todo)
        for batch in plan_batches(todo, sizes, self.settings.mailbox.batch_size,
                                  self.settings.limits.max_message_bytes):
            if self.stop.is_set():
                return handled  # not through the folder: a first start resumes next time
            handled += self._handle_batch(mailbox, batch, sizes, arrived)
        if not self.stop.is_set():
            self.intake.finish(self.store, self.settings, folder, self.clock())
        return handled

    def _handle_batch(self, mailbox: Mailbox, batch: list[int], sizes: dict[int, int],
                      arrived: dict[int, datetime]) -> int:
        limit = self.settings.limits.max_message_bytes
        small = [uid for uid in batch if sizes.get(uid, 0) <= limit]
        raws = mailbox.fetch_raw(small)
        sources = [MessageSource(mailbox.folder.name, mailbox.folder.uidvalidity, uid)
                   for uid in batch]
        for source, following in zip(sources, [*sources[1:], None], strict=True):
            uid = source.uid
            if self.stop.is_set():
                with suppress(StoreUnavailable):
                    self.store.withdraw_start()
                return 0
            if self._crashed_before(mailbox, source, raws.get(uid)):
                raws.pop(uid, None)
                continue
            if following:  # its start is recorded with this mail's result: one commit
                self.store.announce_start(following, self.worker_id, self.clock())
            if uid in raws:
                self._handle_one(mailbox, source, raws.pop(uid), arrived.get(uid))
            elif sizes.get(uid, 0) > limit:
                self._too_large(mailbox, source, sizes[uid], arrived.get(uid))
            else:
                self._fail(mailbox, source, None, "not-fetched: the server returned no data")
            # Its acknowledgement is committed: a sender that waited for the end of the
            # batch left up to a batch of mail to send after the last one was taken in.
            self._mail_done()
        return len(batch)

    def _crashed_before(self, mailbox: Mailbox, source: MessageSource,
                        raw: bytes | None) -> bool:
        """Record this start; quarantine the mail instead if earlier workers died on it."""
        starts = self.store.start_attempt(source, self.worker_id, self.clock())
        if starts <= MAX_STARTS:
            return False
        started = time.perf_counter()
        log.warning("uid %s: started %d times without finishing: quarantined", source.uid,
                    starts - 1)
        result = self.service.quarantine_crashed(source, raw, starts, self.clock(),
                                                 self._copy_to_quarantine(mailbox, source))
        _log_result(source, result, started)
        return True

    def _handle_one(self, mailbox: Mailbox, source: MessageSource, raw: bytes,
                    arrived: datetime | None = None) -> None:
        started = time.perf_counter()
        try:
            self._test_hang(raw)
            result = self.service.handle(source, raw, self.clock(), arrived, self.intake.policy)
        except StoreUnavailable:
            self._undo_start(source)
            raise  # never mark as done what could not be recorded
        except Exception as exc:  # noqa: BLE001 - any bug in one mail must not stop the worker
            log.warning("uid %s: cannot process (%s: %s)", source.uid, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            result = self._fail(mailbox, source, raw, f"error: {type(exc).__name__}: {exc}",
                                type(exc).__name__, arrived)
        _log_result(source, result, started)

    def _undo_start(self, source: MessageSource) -> None:
        """The database failed, the worker did not die: this start must not count."""
        # If even that fails, the start counts: at worst one kill fewer quarantines the mail.
        with suppress(StoreUnavailable):
            self.store.undo_attempt(source, self.worker_id)

    def _test_hang(self, raw: bytes) -> None:
        marker = os.environ.get(HANG_ENV, "").encode()
        if marker and marker in raw:
            log.warning("%s is set and the mail matches: hanging until stopped", HANG_ENV)
            self.stop.wait()

    def _too_large(self, mailbox: Mailbox, source: MessageSource, size: int,
                   arrived: datetime | None) -> None:
        """Over ``limits.max_message_bytes``: never loaded; acknowledged from its header."""
        started = time.perf_counter()
        reason = too_large_reason(size, self.settings.limits.max_message_bytes)
        if self.settings.limits.too_large_action == "quarantine":
            _log_result(source, self._fail(mailbox, source, None, reason), started)
            return
        try:
            header = mailbox.fetch_header(source.uid)
            result = self.service.handle_too_large(source, header, size, self.clock(),
                                                   arrived, self.intake.policy)
        except (StoreUnavailable, *CONNECTION_ERRORS):
            raise  # not recorded: the next session tries again
        except Exception as exc:  # noqa: BLE001 - as in _handle_one
            result = self._fail(mailbox, source, None, f"{reason}; {type(exc).__name__}: {exc}")
        _log_result(source, result, started)

    def _fail(self, mailbox: Mailbox, source: MessageSource, raw: bytes | None,
              reason: str, error_class: str = "error",
              arrived: datetime | None = None) -> Handled:
        copied = self._copy_to_quarantine(mailbox, source)
        return self.service.record_failure(source, raw, reason, self.clock(), copied,
                                           error_class, arrived, self.intake.policy)

    @staticmethod
    def _copy_to_quarantine(mailbox: Mailbox, source: MessageSource) -> bool:
        try:
            return mailbox.quarantine(source.uid)
        except CONNECTION_ERRORS as exc:
            log.warning("uid %s: quarantine copy failed: %s", source.uid, exc)
            return False

    def _last_uid(self, folder: str, uidvalidity: int) -> int:
        checkpoint = self.store.checkpoint(folder)
        if checkpoint is None:
            return 0
        if checkpoint[0] != uidvalidity:
            log.warning("UIDVALIDITY of %s changed (%s -> %s): rescanning, known mail skipped",
                        folder, checkpoint[0], uidvalidity)
            self.store.reset_checkpoint(folder, uidvalidity, self.clock())
            return 0
        return checkpoint[1]

    def flush(self, store: Store | None = None) -> outbox.FlushReport:
        """Send due outbox mail (also called by the scheduler, with its own connection)."""
        return outbox.flush(store or self.store, self.settings, self.clock)

    def escalate(self, store: Store | None = None) -> None:
        """One escalation pass and one completion pass (bot.flows.escalation, .completion)."""
        escalation.run_pass(store or self.store, self.settings, self.clock(), dry_run=False)
        completion.run_pass(store or self.store, self.settings, self.clock(), dry_run=False)

    def verify(self, store: Store | None = None) -> None:
        """One verification pass: reminders and closing expired requests."""
        verification.verification_pass(store or self.store, self.settings, self.clock())

    def summarize(self, store: Store | None = None) -> None:
        """Queue the hourly per-sender summaries of held staff notices (bot.flows.notify_limits)."""
        notify_limits.send_summaries(store or self.store, self.settings, self.clock())

    def digest(self, store: Store | None = None) -> None:
        """The daily digest of open tickets, if due (see bot.flows.escalation.run_digest)."""
        escalation.run_digest(store or self.store, self.settings, self.clock(), dry_run=False)

    def write_heartbeat(self) -> None:
        """Touch the heartbeat file so a monitor can tell the loop is alive."""
        path = self.settings.heartbeat_path
        if path is not None:
            path.write_text(self.clock().isoformat() + "\n")

    # -- scheduler ------------------------------------------------------------------------
    def _start_scheduler(self) -> BackgroundScheduler:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone=self.settings.bot.timezone)
        flush_job = scheduler.add_job(self._job(self.flush), "interval",
                                      seconds=OUTBOX_RETRY_SECONDS, id="outbox",
                                      max_instances=1, coalesce=True, next_run_time=utcnow())
        scheduler.add_job(self._job(self.escalate), "interval",
                          minutes=self.settings.escalation.check_minutes, id="escalation",
                          max_instances=1, coalesce=True, next_run_time=utcnow())
        scheduler.add_job(self._job(self.verify), "interval", minutes=15, id="verification",
                          max_instances=1, coalesce=True, next_run_time=utcnow())
        scheduler.add_job(self._job(self.summarize), "interval", minutes=SUMMARY_MINUTES,
                          id="notification-summary", max_instances=1, coalesce=True)
        hour, minute = self.settings.escalation.digest_time.split(":")
        scheduler.add_job(self._job(self.digest), "cron", hour=int(hour), minute=int(minute),
                          timezone=self.settings.bot.timezone, id="digest", max_instances=1,
                          coalesce=True, misfire_grace_time=DIGEST_GRACE_SECONDS)
        scheduler.add_job(self._job(audit.scheduled_purge(self.settings, self.clock)),
                          "interval", hours=6, id="retention", max_instances=1, coalesce=True,
                          next_run_time=utcnow())
        scheduler.start()
        self._wake_flush = lambda: flush_job.modify(next_run_time=utcnow())
        return scheduler

    def _new_store(self) -> Store:
        return Store(self.settings.database_path, self.settings.storage.max_page_count)

    def _job(self, step: Callable[[Store], object]) -> Callable[[], None]:
        """Wrap a step for a scheduler thread: the thread's own SQLite connection (shared by
        every job that thread runs), errors logged."""
        local = self._thread_stores

        def job() -> None:
            try:
                if getattr(local, "store", None) is None:
                    local.store = self._new_store()
                step(local.store)
            except Exception as exc:  # noqa: BLE001 - a failing job must not kill the scheduler
                log.warning("%s failed: %s: %s", step.__name__, type(exc).__name__, exc)
        job.__name__ = step.__name__
        return job


def plan_batches(uids: list[int], sizes: dict[int, int], max_count: int,
                 max_message_bytes: int) -> Iterator[list[int]]:
    """Group UIDs so a batch never holds more than MAX_BATCH_BYTES (a big mail goes alone)."""
    batch: list[int] = []
    batch_bytes = 0
    for uid in uids:
        size = min(sizes.get(uid, 0), max_message_bytes)
        if batch and (len(batch) >= max_count or batch_bytes + size > MAX_BATCH_BYTES):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(uid)
        batch_bytes += size
    if batch:
        yield batch


def _log_result(source: MessageSource, result: Handled, started: float) -> None:
    log.info("processed uid=%s outcome=%s ref=%s category=%s language=%s reason=%s ms=%.0f",
             source.uid, result.outcome.value, result.ref or "-", result.category or "-",
             result.language or "-", result.reason or "-",
             (time.perf_counter() - started) * 1000)
