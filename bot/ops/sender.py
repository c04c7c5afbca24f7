"""For ``once``: a forked process that sends the outbox while the worker takes in mail.

Taking in a backlog is CPU work in the worker process; sending is mostly waiting for the
SMTP server. With a sender process the acknowledgements of the first batch go out while the
next batches are handled, instead of all of them after the last one. It flushes each time
it is woken (after every mail), once more when told the pass is over, and then exits; it
has its own SQLite connection, and both take the store's write lock in turn (see
bot.adapters.store.writer_lock). Each mail is still marked sent before the next one is
sent, as in any flush. The sender stops by itself if the worker dies.

The sender is forked only from a single-threaded process (the ``once`` command is one):
a fork copies the locks of other threads as they are, possibly held. Otherwise, and where
``fork`` is not available, the worker sends everything at the end, as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

from bot.adapters import outbox
from bot.adapters.store import Store

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often an idle sender checks that the worker is still there
# After a flush that sent nothing and left mail to retry (the server is not taking mail),
# batches are not tried again for this long; the last flush of the pass always runs.
QUIET_SECONDS = 15.0
JOIN_SECONDS = 600.0  # the last flush of a pass (long queue, slow server) may take a while
# Sends the server accepted while the database could not record them (outbox.held_count):
# the sender keeps trying to record them this long, then tells the worker not to send again.
RECORD_SECONDS = 60.0
UNRECORDED_EXIT = 3


class Sender:
    """``with Sender(open_store, flush) as sender: ... sender.wake() ...``"""

    def __init__(self, open_store: Callable[[], Store],
                 flush: Callable[[Store], outbox.FlushReport]) -> None:
        self._open_store, self._flush = open_store, flush
        self._process: multiprocessing.process.BaseProcess | None = None
        self._wake = self._done = None
        self.left_unrecorded = False  # after exit: sends it could not record (do not resend)

    def __enter__(self) -> Sender:
        if "fork" not in multiprocessing.get_all_start_methods() or \
                threading.active_count() > 1:
            return self
        context = multiprocessing.get_context("fork")
        self._wake, self._done = context.Event(), context.Event()
        self._process = context.Process(target=self._main, args=(os.getpid(),),
                                        name="outbox-sender", daemon=True)
        self._process.start()
        return self

    def wake(self) -> None:
        """Mail was queued: send what is due now."""
        if self._wake is not None:
            self._wake.set()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process is None:
            return
        self._done.set()
        self._wake.set()
        self._process.join(JOIN_SECONDS)
        if self._process.is_alive():  # the worker's own flush sends what is left
            log.warning("outbox sender still busy after %.0fs: stopping it", JOIN_SECONDS)
            self._process.terminate()
            self._process.join()
        self.left_unrecorded = self._process.exitcode == UNRECORDED_EXIT

    def _main(self, worker_pid: int) -> None:
        sys.exit(self._run(worker_pid))

    def _run(self, worker_pid: int) -> int:
        """In the forked process: flush on every wake, once more at the end; the exit
        status says whether accepted sends are left unrecorded."""
        store = self._open_store()
        quiet_until = 0.0
        try:
            while os.getppid() == worker_pid:
                if not self._wake.wait(POLL_SECONDS):
                    continue
                self._wake.clear()
                last = self._done.is_set()
                if last or time.monotonic() >= quiet_until:
                    report = self._flush(store)
                    if _server_not_taking_mail(report):
                        quiet_until = time.monotonic() + QUIET_SECONDS
                if last:
                    return self._record_held(store)
        except Exception as exc:  # noqa: BLE001 - the worker's own flush sends what is left
            log.warning("outbox sender failed: %s: %s", type(exc).__name__, exc)
        finally:
            store.close()
        return 0

    def _record_held(self, store: Store) -> int:
        """Sends accepted while the database was locked are recorded before the sender
        goes, or the worker is told: sending them again would duplicate them."""
        deadline = time.monotonic() + RECORD_SECONDS
        while outbox.held_count(store) and time.monotonic() < deadline:
            time.sleep(1.0)
            self._flush(store)  # records what it holds first, sends nothing until it has
        if outbox.held_count(store):
            log.error("outbox: %d sent mail(s) could not be recorded (database locked); "
                      "they may be sent again by a later run", outbox.held_count(store))
            return UNRECORDED_EXIT
        return 0


def _server_not_taking_mail(report: outbox.FlushReport) -> bool:
    """A flush that sent nothing and left mail to retry."""
    return report.sent == 0 and report.retrying > 0
