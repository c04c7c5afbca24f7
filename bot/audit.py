"""Audit and data protection: export a ticket's history, redact by retention, forget a customer.

Redaction keeps what statistics need (ref, category, language, dates, statuses, escalation
level, message directions and kinds) and replaces everything that identifies or quotes a
person with :data:`REDACTED`. Each ticket is redacted in its own short transaction so the
worker is never held up for long, and each redaction is an event of that ticket.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.errors import BotError
from bot.store import Store, utc_iso

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Event detail values kept on redaction: codes and figures, never free text or addresses.
SAFE_DETAIL_KEYS = frozenset({
    "category", "language", "confidence", "needs_review", "level", "levels", "status",
    "reason", "kind", "outcome", "forced", "days_after_close", "copied", "bilingual"})
OUTBOX_EXPORT_COLUMNS = ("id", "message_id", "kind", "recipients", "sensitive", "status",
                         "attempts", "created_at", "next_attempt_at", "sent_at", "last_error")


class TicketNotFound(BotError):
    """No ticket has the given ref."""


class OpenTicketsRefused(BotError):
    """``forget`` would remove a ticket that staff still have to answer."""


@dataclass(frozen=True)
class RedactionReport:
    """Refs of the tickets redacted (or that would be, on a dry run)."""

    refs: list[str] = field(default_factory=list)
    closed_refs: list[str] = field(default_factory=list)
    dry_run: bool = False


# -- export ------------------------------------------------------------------------------

def export_ticket(store: Store, ref: str, now: datetime) -> dict[str, Any]:
    """Everything the bot holds about ticket ``ref``; outbox rows without their raw bytes.

    The export itself is recorded as an event (who saw personal data is audit-worthy).
    """
    ticket = store.ticket_by_ref(ref)
    if ticket is None:
        raise TicketNotFound(f"no ticket {ref}")
    ticket_id = ticket["id"]
    with store.transaction() as conn:
        store.add_event(conn, ticket_id, now, "exported", {"reason": "audit export"})
    return {
        "exported_at": utc_iso(now),
        "ticket": ticket,
        "messages": store.rows("SELECT * FROM messages WHERE ticket_id = ? ORDER BY id",
                               (ticket_id,)),
        "events": [_with_parsed_detail(e) for e in store.rows(
            "SELECT * FROM events WHERE ticket_id = ? ORDER BY id", (ticket_id,))],
        "outbox": [_with_parsed_recipients(o) for o in store.rows(
            f"SELECT {', '.join(OUTBOX_EXPORT_COLUMNS)} FROM outbox WHERE ticket_id = ? "
            "ORDER BY id", (ticket_id,))],
        "verification": store.rows(
            "SELECT created_at, expires_at, attempts_left, reminded_at FROM verifications "
            "WHERE ticket_id = ?", (ticket_id,)),
        "processed": store.rows(
            "SELECT mailbox, uidvalidity, uid, message_id, outcome, reason, processed_at "
            "FROM processed WHERE ticket_id = ? ORDER BY processed_at, uid", (ticket_id,)),
    }


# -- retention ---------------------------------------------------------------------------

def purge(store: Store, settings: Settings, now: datetime,
          dry_run: bool = False) -> RedactionReport:
    """Redact tickets closed more than ``retention.days_after_close`` days before ``now``."""
    days = settings.retention.days_after_close
    cutoff = utc_iso(now - timedelta(days=days))
    due = store.rows("SELECT id, ref FROM tickets WHERE closed_at IS NOT NULL "
                     "AND closed_at < ? AND redacted_at IS NULL ORDER BY id", (cutoff,))
    if not dry_run:
        for row in due:
            with store.transaction() as conn:
                redact_ticket(store, conn, row["id"], now,
                              {"reason": "retention", "days_after_close": days})
        if due:
            log.info("retention: redacted %d ticket(s) closed before %s", len(due), cutoff)
    return RedactionReport([r["ref"] for r in due], dry_run=dry_run)


def scheduled_purge(settings: Settings, clock: Callable[[], datetime]
                    ) -> Callable[[Store], RedactionReport]:
    """The retention step for the worker's scheduler (it passes a per-thread store)."""
    def retention(store: Store) -> RedactionReport:
        return purge(store, settings, clock())
    return retention


# -- forget ------------------------------------------------------------------------------

def forget(store: Store, email: str, now: datetime, force: bool = False) -> RedactionReport:
    """Redact everything about the customer ``email`` across tickets.

    Refuses while one of their tickets is open unless ``force``; forced open tickets are
    closed, since nobody can answer a customer whose address is gone.
    """
    address = email.strip().lower()
    tickets = store.rows("SELECT id, ref FROM tickets WHERE lower(customer_email) = ? "
                         "AND redacted_at IS NULL ORDER BY id", (address,))
    open_refs = [r["ref"] for r in store.rows(
        "SELECT ref FROM open_tickets WHERE lower(customer_email) = ? ORDER BY ref", (address,))]
    if open_refs and not force:
        raise OpenTicketsRefused(f"forget: open ticket(s) {', '.join(open_refs)}; answer and "
                                 "close them first, or use --force")
    for row in tickets:
        with store.transaction() as conn:
            if row["ref"] in open_refs:
                store.update_ticket(conn, row["id"], status="closed", closed_at=utc_iso(now))
            redact_ticket(store, conn, row["id"], now, {"reason": "forget", "forced": force})
    with store.transaction() as conn:
        store.redact_address_rows(conn, address, REDACTED)
        store.add_event(conn, None, now, "forget_request",
                        {"tickets": len(tickets), "forced": force})
    log.info("forget: redacted %d ticket(s)%s, closed %d", len(tickets),
             f" ({', '.join(r['ref'] for r in tickets)})" if tickets else "", len(open_refs))
    return RedactionReport([r["ref"] for r in tickets], closed_refs=open_refs)


# -- redaction ---------------------------------------------------------------------------

def redact_ticket(store: Store, conn: sqlite3.Connection, ticket_id: int, now: datetime,
                  detail: dict[str, Any]) -> None:
    """Replace the personal data of one ticket and everything attached to it (inside a
    transaction), and record that it happened."""
    store.redact_ticket_rows(conn, ticket_id, REDACTED, now, redacted_detail)
    store.add_event(conn, ticket_id, now, "personal_data_redacted", detail)


def redacted_detail(detail: str | None) -> str | None:
    """An event's JSON detail with every free-text value replaced; figures and codes kept."""
    if not detail:
        return detail
    try:
        data = json.loads(detail)
    except ValueError:
        return REDACTED
    if not isinstance(data, dict):
        return json.dumps(REDACTED)
    return json.dumps({key: value if key in SAFE_DETAIL_KEYS or not isinstance(
        value, str | list | dict) else REDACTED for key, value in data.items()},
        ensure_ascii=False)


def _with_parsed_detail(event: dict[str, Any]) -> dict[str, Any]:
    try:
        return {**event, "detail": json.loads(event["detail"])}
    except (TypeError, ValueError):
        return event


def _with_parsed_recipients(row: dict[str, Any]) -> dict[str, Any]:
    try:
        return {**row, "recipients": json.loads(row["recipients"])}
    except (TypeError, ValueError):
        return row


# -- command handlers (wired into ``inquiry-bot`` by bot.cli) -----------------------------

def cmd_export(args: Any) -> int:
    """``inquiry-bot export REF``: the ticket's history as JSON on stdout."""
    with _store_for(args) as (store, _settings):
        data = export_ticket(store, args.ref, _utcnow())
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_purge(args: Any) -> int:
    """``inquiry-bot purge [--dry-run]``: one ref per line of what is (or would be) redacted."""
    with _store_for(args) as (store, settings):
        report = purge(store, settings, _utcnow(), dry_run=args.dry_run)
    for ref in report.refs:
        print(f"{ref}\t{'would redact' if report.dry_run else 'redacted'}")
    return 0


def cmd_forget(args: Any) -> int:
    """``inquiry-bot forget EMAIL [--force]``: refs redacted, one per line (no address)."""
    with _store_for(args) as (store, _settings):
        report = forget(store, args.email, _utcnow(), force=args.force)
    for ref in report.refs:
        print(f"{ref}\tredacted{' (was open: closed)' if ref in report.closed_refs else ''}")
    return 0


@contextmanager
def _store_for(args: Any) -> Iterator[tuple[Store, Settings]]:
    from bot.cli import settings_for  # the CLI owns config resolution

    settings = settings_for(args, require_secrets=False)
    store = Store(settings.database_path)
    try:
        yield store, settings
    finally:
        store.close()


def _utcnow() -> datetime:
    return datetime.now(UTC)
