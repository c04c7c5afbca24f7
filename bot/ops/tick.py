"""``inquiry-bot tick [--now ISO8601] [--dry-run]``: every time-driven pass once, at a
pretend time, then the outbox.

The passes (:data:`PASSES`: held-notice summaries, verification reminders and expiry,
escalation levels, the completion clock, the daily digest, retention) decide at ``now``:
the time given with ``--now``, else the real time. The mail they queue is dated with the
REAL clock (:class:`RealTimeStore`: the outbox row's times, the Date header and the
``messages`` copy), so a pretend time in the future does not hold it back: the flush that
follows sends it at once. ``inquiry-bot escalate --now`` queues through the same store.

``--dry-run`` runs the same passes on a private in-memory copy of the database
(:meth:`bot.adapters.store.Store.snapshot`): nothing is written, no file is created, and
the mail the passes would queue is printed instead of sent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bot.adapters import outbox
from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.flows import audit, completion, escalation, notify_limits, verification


def utcnow() -> datetime:
    return datetime.now(UTC)


class RealTimeStore(Store):
    """A store whose outbox dates mail with ``mail_clock`` (the real time), whatever time
    the pass that queues it decided at; everything else keeps the pass's time."""

    mail_clock: Callable[[], datetime] = staticmethod(utcnow)

    def enqueue(self, conn: sqlite3.Connection, **fields: Any) -> int:
        real, now = self.mail_clock(), fields["now"]
        not_before = fields.get("not_before")
        # A mail the global cap holds back stays held for as long, counted from now.
        held = not_before - now if not_before is not None and not_before > now else timedelta()
        fields.update(now=real, raw=redated(fields["raw"], real), not_before=real + held)
        return super().enqueue(conn, **fields)

    def add_outbox_recipients(self, conn: sqlite3.Connection, outbox_id: int,
                              recipients: Any, now: datetime) -> None:
        # The per-recipient caps count real sends: a pretend future must not block them.
        super().add_outbox_recipients(conn, outbox_id, recipients, self.mail_clock())

    def add_message(self, conn: sqlite3.Connection, **fields: Any) -> int:
        if fields.get("direction") == "out":
            fields["created_at"] = utc_iso(self.mail_clock())
        return super().add_message(conn, **fields)


def redated(raw: bytes, when: datetime) -> bytes:
    """``raw`` with its (top-level) Date header set to ``when``."""
    newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    head, blank, body = raw.partition(newline * 2)
    lines = head.split(newline)
    for index, line in enumerate(lines):
        if line[:5].lower() == b"date:":
            lines[index] = b"Date: " + format_datetime(when).encode("ascii")
            break
    return newline.join(lines) + blank + body


# -- the passes -----------------------------------------------------------------------------

def _summaries(store: Store, settings: Settings, now: datetime) -> str:
    return f"{notify_limits.send_summaries(store, settings, now)} queued"


def _verification(store: Store, settings: Settings, now: datetime) -> str:
    report = verification.verification_pass(store, settings, now)
    return f"{report.reminded} reminded, {report.closed} closed unverified"


def _escalation(store: Store, settings: Settings, now: datetime) -> str:
    return f"{len(escalation.run_pass(store, settings, now, dry_run=False))} mail(s)"


def _completion(store: Store, settings: Settings, now: datetime) -> str:
    return f"{len(completion.run_pass(store, settings, now, dry_run=False))} mail(s)"


def _digest(store: Store, settings: Settings, now: datetime) -> str:
    return "queued" if escalation.run_digest(store, settings, now, dry_run=False) else "not due"


def _retention(store: Store, settings: Settings, now: datetime) -> str:
    return f"{len(audit.purge(store, settings, now).refs)} ticket(s) redacted"


PASSES: tuple[tuple[str, Callable[[Store, Settings, datetime], str]], ...] = (
    ("summaries", _summaries), ("verification", _verification), ("escalation", _escalation),
    ("completion", _completion), ("digest", _digest), ("retention", _retention))


def run_passes(store: Store, settings: Settings, now: datetime) -> list[str]:
    """Every pass once at ``now``; one line per pass and one per mail it queued."""
    first = store.last_outbox_id()
    lines = [f"{name}: {run(store, settings, now)}" for name, run in PASSES]
    return lines + [mail_line(row) for row in store.outbox_after(first)]


def mail_line(row: dict[str, Any]) -> str:
    """``queued: to a@b: Subject`` for one outbox row."""
    headers = BytesParser(policy=policy.default).parsebytes(row["raw"] or b"", headersonly=True)
    recipients = ", ".join(json.loads(row["recipients"] or "[]"))
    return f"queued: {row['kind']} to {recipients}: {headers['subject'] or '(no subject)'}"


def tick(settings: Settings, now: datetime | None, *, dry_run: bool,
         clock: Callable[[], datetime] = utcnow,
         can_send: Callable[[], bool] = lambda: True) -> list[str]:
    """Run every pass at ``now`` (default: the real time), then flush the outbox (unless
    ``dry_run``, or ``can_send()`` says a running worker owns the outbox)."""
    moment = now or clock()
    if dry_run:
        store: Store = Store.snapshot(settings.database_path)
        try:
            lines = run_passes(store, settings, moment)
        finally:
            store.close()
        return [line.replace("queued: ", "would send: ", 1) if line.startswith("queued: ")
                else line for line in lines]
    store = real_time_store(settings.database_path, settings.storage.max_page_count, clock)
    try:
        lines = run_passes(store, settings, moment)
        if not can_send():
            return [*lines, "flush: a running worker sends the queued mail"]
        report = outbox.flush(store, settings, clock)
    finally:
        store.close()
    return [*lines, f"flush: {report.sent} sent, {report.retrying} retrying, "
                    f"{report.failed} failed"]


def real_time_store(path: Path, max_page_count: int = 0,
                    clock: Callable[[], datetime] = utcnow) -> RealTimeStore:
    """A :class:`RealTimeStore` on ``path`` whose mail is dated by ``clock``."""
    store = RealTimeStore(path, max_page_count)
    store.mail_clock = clock  # type: ignore[method-assign]
    return store
