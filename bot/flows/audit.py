"""Audit and data protection: export a ticket's history, redact by retention, forget a customer.

Redaction keeps what statistics need (ref, category, language, dates, statuses, escalation
level, message directions and kinds) and replaces everything that identifies or quotes a
person with :data:`REDACTED`. Each ticket is redacted in its own short transaction so the
worker is never held up for long, and each redaction is an event of that ticket.

``forget`` also finds the person outside their tickets - by address and by the names
their tickets recorded - in staff mail about several tickets (escalations, digests,
summaries: MIME-decoded, since their bytes are base64), in events, ``processed`` rows and
Message-IDs. Afterwards the WAL is checkpointed (TRUNCATE), so with ``secure_delete`` no
old copy stays in the files; ``--vacuum`` also rebuilds the file.
"""

from __future__ import annotations

import email
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from typing import Any

from bot.adapters.redaction import Mentions
from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.errors import BotError

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Event detail values kept on redaction: codes and figures, never free text or addresses.
SAFE_DETAIL_KEYS = frozenset({
    "category", "language", "confidence", "needs_review", "level", "levels", "status",
    "reason", "kind", "outcome", "forced", "days_after_close", "copied", "bilingual"})
MIN_NAME_LENGTH = 5  # shorter names ("An") would match unrelated text: the address still does
RETENTION_STATE_KEY = "retention_ticketless_until"


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
    other_rows: int = 0  # rows outside the tickets that named the person
    wal_truncated: bool = True  # False: a reader held an old snapshot (see compact)


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
    history = store.ticket_history(ticket_id)
    history["events"] = [_with_parsed_detail(e) for e in history["events"]]
    history["outbox"] = [_with_parsed_recipients(o) for o in history["outbox"]]
    return {
        "exported_at": utc_iso(now),
        "ticket": ticket,
        **history,
    }


# -- retention ---------------------------------------------------------------------------

def purge(store: Store, settings: Settings, now: datetime,
          dry_run: bool = False) -> RedactionReport:
    """Redact tickets closed more than ``retention.days_after_close`` days before ``now``."""
    days = settings.retention.days_after_close
    cutoff = utc_iso(now - timedelta(days=days))
    due = store.closed_unredacted_before(cutoff)
    if not dry_run:
        for row in due:
            with store.transaction() as conn:
                redact_ticket(store, conn, row["id"], now,
                              {"reason": "retention", "days_after_close": days})
        _purge_ticketless(store, cutoff, now)
        if due:
            log.info("retention: redacted %d ticket(s) closed before %s", len(due), cutoff)
            store.compact()
    return RedactionReport([r["ref"] for r in due], dry_run=dry_run)


def _purge_ticketless(store: Store, cutoff: str, now: datetime) -> None:
    """Rows about no single ticket (staff mail about several, events, quarantined mail)
    older than the retention period, each row once (the last cutoff is remembered)."""
    since = store.job_state(RETENTION_STATE_KEY) or None
    if since is not None and since >= cutoff:
        return
    with store.transaction() as conn:
        store.redact_ticketless_before(conn, since, cutoff, REDACTED, redacted_detail)
        store.set_job_state(conn, RETENTION_STATE_KEY, cutoff, now)


def scheduled_purge(settings: Settings, clock: Callable[[], datetime]
                    ) -> Callable[[Store], RedactionReport]:
    """The retention step for the worker's scheduler (it passes a per-thread store)."""
    def retention(store: Store) -> RedactionReport:
        return purge(store, settings, clock())
    return retention


# -- forget ------------------------------------------------------------------------------

def forget(store: Store, email_address: str, now: datetime, force: bool = False,
           vacuum: bool = False) -> RedactionReport:
    """Redact everything about the customer ``email_address``: their tickets, and every
    other row that names them by address or by a name their tickets recorded.

    Refuses while one of their tickets is open unless ``force``; forced open tickets are
    closed, since nobody can answer a customer whose address is gone. Then the WAL is
    checkpointed, and with ``vacuum`` the file is rebuilt.
    """
    address = email_address.strip().lower()
    tickets = store.tickets_of(address)
    open_refs = store.open_refs_of(address)
    if open_refs and not force:
        raise OpenTicketsRefused(f"forget: open ticket(s) {', '.join(open_refs)}; answer and "
                                 "close them first, or use --force")
    needles = person_needles(address, [store.ticket(r["id"]) or {} for r in tickets])
    for row in tickets:
        with store.transaction() as conn:
            if row["ref"] in open_refs:
                store.update_ticket(conn, row["id"], status="closed", closed_at=utc_iso(now))
            redact_ticket(store, conn, row["id"], now, {"reason": "forget", "forced": force})
    mentions = find_mentions(store, needles)
    with store.transaction() as conn:
        store.redact_address_rows(conn, address, REDACTED)
        store.redact_mentions(conn, mentions, REDACTED, _scrubber(needles))
        store.add_event(conn, None, now, "forget_request",
                        {"tickets": len(tickets), "forced": force, "rows": len(mentions)})
    truncated = store.compact(vacuum=vacuum)
    log.info("forget: redacted %d ticket(s)%s and %d other row(s), closed %d%s", len(tickets),
             f" ({', '.join(r['ref'] for r in tickets)})" if tickets else "", len(mentions),
             len(open_refs), "" if truncated else "; WAL busy, not truncated")
    return RedactionReport([r["ref"] for r in tickets], closed_refs=open_refs,
                           other_rows=len(mentions), wal_truncated=truncated)


def person_needles(address: str, tickets: list[dict[str, Any]]) -> list[str]:
    """What names a person: the address, and each recorded display name long enough not
    to match unrelated text."""
    names = {(t.get("customer_name") or "").strip() for t in tickets}
    return [address, *sorted(n for n in names if len(n) >= MIN_NAME_LENGTH
                             and n != REDACTED)]


def find_mentions(store: Store, needles: list[str]) -> Mentions:
    """Rows outside the person's tickets that name them, staff mail included."""
    mentions = store.find_mentions(needles)
    lowered = [n.lower() for n in needles]
    mentions.outbox = [outbox_id for outbox_id, raw in store.ticketless_outbox()
                       if any(n in mail_text(raw).lower() for n in lowered)]
    return mentions


def _scrubber(needles: list[str]) -> Callable[[str | None], str | None]:
    """:func:`redacted_detail`, and nothing at all left where a kept value still names
    the person."""
    lowered = [n.lower() for n in needles]

    def scrub(detail: str | None) -> str | None:
        redacted = redacted_detail(detail)
        if redacted and any(n in redacted.lower() for n in lowered):
            return json.dumps(REDACTED)
        return redacted
    return scrub


def mail_text(raw: bytes) -> str:
    """Headers and decoded text parts of a mail, for searching (never raises)."""
    try:
        message = email.message_from_bytes(raw, policy=policy.compat32)
        headers = [str(make_header(decode_header(str(v)))) for v in message.values()]
        bodies = [part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8",
                                                       "replace")
                  for part in message.walk() if part.get_content_maintype() == "text"]
        return "\n".join(headers + bodies)
    except Exception:  # noqa: BLE001 - unreadable bytes: search them as they are
        return raw.decode("utf-8", "replace")


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
