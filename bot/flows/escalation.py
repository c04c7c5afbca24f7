"""Overdue scan, daily digest, complaint notice and SLA pauses (planning is pure:
``escalation_plan``; calendar and deadlines: ``sla``).

Only open tickets are read (the ``status, due_at`` index), so a pass costs in proportion to
the open tickets, not to every ticket ever opened. Every mail is queued in the outbox in the
same transaction that records it (new ``escalation_level``, digest date in ``job_state``),
so nothing is sent twice, even across restarts.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date, datetime, timedelta
from email.message import Message

from bot.adapters.holiday_file import business_calendar
from bot.adapters.store import IGNORED_BY_CONTENT, QUARANTINED, Store, utc_iso
from bot.config import Settings
from bot.flows import autoreply, completion
from bot.mail import compose
from bot.models import Category, MessageKind
from bot.rules.escalation import (
    EscalationGroup,
    TicketRow,
    format_age,
    is_digest_due,
    plan_from_settings,
    render_digest_text,
    render_escalation_text,
    ticket_link,
)
from bot.rules.sla import (
    BusinessCalendar,
    extend_for_waiting,
    from_iso,
    to_iso,
)

log = logging.getLogger(__name__)

DIGEST_STATE_KEY = "digest_last_date"
DIGEST_AT_KEY = "digest_last_at"  # when the last digest was queued (UTC): quarantine since
DIGEST_FOOTER = "This digest is sent automatically on business days.\n"
MAX_QUARANTINE_LINES = 50
DEADLINE_COLUMNS = ("due_at", "escalate_at", "hard_at")


# -- reading ------------------------------------------------------------------------------

def open_ticket_rows(store: Store, now: datetime, level3_after_days: int) -> list[TicketRow]:
    """Open, unanswered tickets whose next level may be due at ``now``.

    The SQL filter is a superset of what :func:`escalation_plan.due_level` accepts (``<=``
    where the plan uses ``<``; stored times have whole seconds), so the pure plan still
    decides; it only keeps the many open tickets that are not due yet out of Python.
    """
    rows = store.escalation_candidates(utc_iso(now),
                                       utc_iso(now - timedelta(days=level3_after_days)))
    return [_ticket_row(r) for r in rows]


def digest_rows(store: Store) -> list[TicketRow]:
    """Every open ticket (answered or not, any level) for the daily digest."""
    rows = store.open_ticket_rows()
    return [_ticket_row(r) for r in rows]


# -- escalation pass ----------------------------------------------------------------------

def run_pass(store: Store, settings: Settings, now: datetime, dry_run: bool) -> list[str]:
    """Plan and (unless ``dry_run``) queue escalation mail; return one line per mail."""
    calendar = business_calendar(settings)
    rows = open_ticket_rows(store, now, settings.escalation.level3_after_days)
    plan = plan_from_settings(rows, now, settings, calendar)
    lines = []
    for group in plan.groups:
        subject, text = render_escalation_text(settings.templates_path, group, now,
                                               settings.admin.base_url, settings.tz)
        refs = ", ".join(f"{i.ticket.ref} (level {i.level})" for i in group.items)
        lines.append(f"{_verb(dry_run)}: to {', '.join(group.recipients)}: {subject} [{refs}]")
        if not dry_run:
            _queue_group(store, settings, group, subject, text, now)
    for deferred in plan.deferred:
        lines.append(f"deferred: {deferred.ticket.ref} level {deferred.level} until "
                     f"{deferred.until.astimezone(settings.tz).isoformat()} (outside "
                     f"business hours)")
    for item in plan.unroutable:
        log.warning("escalation of %s has no recipients (set staff.notify/escalation.to)",
                    item.ticket.ref)
    return lines


def run_all(store: Store, settings: Settings, now: datetime, dry_run: bool) -> list[str]:
    """The escalation and completion passes, then the digest if one is due
    (``inquiry-bot escalate``)."""
    return (run_pass(store, settings, now, dry_run)
            + completion.run_pass(store, settings, now, dry_run)
            + run_digest(store, settings, now, dry_run))


def _queue_group(store: Store, settings: Settings, group: EscalationGroup, subject: str,
                 text: str, now: datetime) -> None:
    message = _internal_mail(settings, list(group.recipients), subject, text, now)
    with store.transaction() as conn:
        store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                      recipients=list(group.recipients), raw=bytes(message),
                      kind=MessageKind.ESCALATION.value, now=now)
        for item in group.items:
            ticket = store.ticket_by_ref(item.ticket.ref)
            # Re-checked inside the transaction: a concurrent pass may have recorded it.
            if ticket is None or ticket["escalation_level"] >= item.level:
                continue
            store.update_ticket(conn, ticket["id"], escalation_level=item.level,
                                escalated_at=utc_iso(now))
            store.add_event(conn, ticket["id"], now, "escalated",
                            {"level": item.level, "to": list(group.recipients)})


# -- daily digest -------------------------------------------------------------------------

def run_digest(store: Store, settings: Settings, now: datetime, dry_run: bool) -> list[str]:
    """Queue the digest of open tickets if one is due now; return the line describing it.

    Due once per business day at or after ``escalation.digest_time`` (and, with
    ``escalation.business_hours_only``, inside business hours). The date sent is stored in
    ``job_state`` in the same transaction as the mail, so a restart never repeats it.
    """
    calendar = business_calendar(settings)
    if not digest_due(store, settings, calendar, now):
        return []
    recipients = digest_recipients(settings)
    if not recipients:
        log.warning("digest due but nobody to send it to (set staff.notify/escalation.to)")
        return []
    subject, text = render_digest_text(settings.templates_path, digest_rows(store), now,
                                       settings.admin.base_url, settings.tz)
    to_complete, uncompleted = completion.digest_section(store, settings, now)
    subject += f", {uncompleted} answered not completed" if uncompleted else ""
    text += to_complete
    quarantined, total = quarantined_since_last_digest(store)
    if total:
        subject += f", {total} quarantined"
    text += quarantine_section(quarantined, total, settings)
    ignored, ignored_total = ignored_by_content_since_last_digest(store)
    subject += f", {ignored_total} ignored by content" if ignored_total else ""
    text += ignored_by_content_section(ignored, ignored_total, settings) + "\n" + DIGEST_FOOTER
    if not dry_run and not _queue_digest(store, settings, calendar, recipients, subject,
                                         text, now):
        return []
    return [f"{_verb(dry_run)}: to {', '.join(recipients)}: {subject}"]


def digest_due(store: Store, settings: Settings, calendar: BusinessCalendar,
               now: datetime) -> bool:
    """True when the digest of today (company time) is due and not yet sent."""
    if settings.escalation.business_hours_only and not calendar.in_business_hours(now):
        return False
    return is_digest_due(now, last_digest_date(store), settings.escalation.digest_time,
                         calendar)


def last_digest_date(store: Store) -> date | None:
    """Company-local date of the last digest queued (None = never)."""
    value = store.job_state(DIGEST_STATE_KEY)
    return date.fromisoformat(value) if value else None


def quarantined_since_last_digest(store: Store) -> tuple[list[dict], int]:
    """Mail quarantined since the last digest (all of it before the first): the newest
    :data:`MAX_QUARANTINE_LINES` rows, and how many there are."""
    return _since_last_digest(store, QUARANTINED)


def ignored_by_content_since_last_digest(store: Store) -> tuple[list[dict], int]:
    """Mail ignored as automatic on its words alone since the last digest: no header said
    so, and a customer's mail misread that way would never be answered."""
    return _since_last_digest(store, IGNORED_BY_CONTENT)


def _since_last_digest(store: Store, where: str) -> tuple[list[dict], int]:
    since = store.job_state(DIGEST_AT_KEY) or ""
    total = store.count("processed", f"{where} AND processed_at >= ?", (since,))
    return (store.processed_since(where, since, MAX_QUARANTINE_LINES) if total else []), total


def quarantine_section(rows: list[dict], total: int, settings: Settings) -> str:
    """The digest's list of quarantined mail (pure; empty when there is none)."""
    return _processed_section(
        f"Quarantined mail since the last digest: {total}. The bot did not answer it; each "
        "one is still in the mailbox (datasette query \"quarantined\").", rows, total, settings)


def ignored_by_content_section(rows: list[dict], total: int, settings: Settings) -> str:
    """The digest's list of mail ignored on its words alone (pure; empty when none)."""
    return _processed_section(
        f"Ignored as automatic by its words alone since the last digest: {total}. No header "
        "said so; if one is a customer's mail, it is still in the mailbox: answer it there "
        "(datasette query \"ignored_by_content\").", rows, total, settings)


def _processed_section(heading: str, rows: list[dict], total: int, settings: Settings) -> str:
    if not total:
        return ""
    lines = ["", heading, ""]
    for row in rows:
        when = from_iso(row["processed_at"]).astimezone(settings.tz)
        lines.append(f"  {when:%Y-%m-%d %H:%M %Z}  {row['mailbox']} UID {row['uid']}"
                     f"  {row['message_id'] or ''}")
        lines.append(f"      {(row['reason'] or '')[:200]}")
    if total > len(rows):
        lines.append(f"  ... and {total - len(rows)} more.")
    return "\n".join(lines) + "\n"


def digest_recipients(settings: Settings) -> list[str]:
    """``staff.notify``, else ``escalation.to`` (never the bot itself)."""
    chosen = settings.staff.notify or settings.escalation.to
    return autoreply.without_own_address(settings, chosen)


def _queue_digest(store: Store, settings: Settings, calendar: BusinessCalendar,
                  recipients: list[str], subject: str, text: str, now: datetime) -> bool:
    message = _internal_mail(settings, recipients, subject, text, now)
    with store.transaction() as conn:
        # The cron job and `escalate` may race: only the first transaction sends it.
        if not digest_due(store, settings, calendar, now):
            return False
        store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                      recipients=recipients, raw=bytes(message),
                      kind=MessageKind.NOTIFICATION.value, now=now)
        store.set_job_state(conn, DIGEST_STATE_KEY, calendar.company_day(now).isoformat(), now)
        store.set_job_state(conn, DIGEST_AT_KEY, utc_iso(now), now)
        store.add_event(conn, None, now, "digest_sent", {"to": recipients})
    return True


# -- complaint notice at creation -----------------------------------------------------------

def notify_new_complaint(store: Store, conn: sqlite3.Connection, settings: Settings,
                         ticket_id: int, now: datetime) -> bool:
    """Tell ``escalation.to`` that a complaint opened (if ``notify_on_complaint``).

    Called by the service inside the transaction that creates the ticket, so the notice
    and the ticket commit together. Returns True when a mail was queued.
    """
    if not settings.escalation.notify_on_complaint:
        return False
    ticket = store.ticket(ticket_id)  # same connection: sees the uncommitted ticket
    if ticket is None or ticket["category"] != Category.COMPLAINT.value:
        return False
    recipients = autoreply.without_own_address(settings, settings.escalation.to)
    if not recipients:
        return False
    subject, text = complaint_notice_text(ticket, now, settings)
    message = _internal_mail(settings, recipients, subject, text, now)
    autoreply.queue_mail(store, settings, conn, ticket_id, message, recipients,
                         MessageKind.ESCALATION.value, now, counted=False)
    store.add_event(conn, ticket_id, now, "complaint_notified", {"to": recipients})
    return True


def complaint_notice_text(ticket: dict, now: datetime, settings: Settings) -> tuple[str, str]:
    """Subject and plain text of the complaint notice (pure)."""
    tz = settings.tz
    due = from_iso(ticket["due_at"]).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    received = from_iso(ticket["created_at"])
    lines = [
        f"A complaint was received and opened as {ticket['ref']}.",
        "",
        f"  Customer:      {ticket['customer_email']}",
        f"  Subject:       {ticket['subject']}",
        f"  Received:      {received.astimezone(tz).strftime('%Y-%m-%d %H:%M %Z')} "
        f"({format_age(now - received)} ago)",
        f"  Response due:  {due}",
    ]
    link = ticket_link(settings.admin.base_url, ticket["ref"])
    if link:
        lines.append(f"  Open:          {link}")
    lines += ["", "You receive this because escalation.notify_on_complaint is on."]
    return f"[{ticket['ref']}] Complaint received", "\n".join(lines) + "\n"


# -- waiting for the customer ---------------------------------------------------------------

def start_wait(store: Store, conn: sqlite3.Connection, ticket_id: int, now: datetime,
               reason: str) -> None:
    """Record that the ticket now waits for the customer (#wait, verification)."""
    store.add_event(conn, ticket_id, now, "waiting_started", {"reason": reason})


def end_wait(store: Store, conn: sqlite3.Connection, settings: Settings, ticket_id: int,
             now: datetime) -> timedelta:
    """Record the end of a wait; extend the deadlines if ``sla.pause_while_waiting``.

    Returns the time waited since the last ``waiting_started`` (zero if none is open).
    """
    waited = time_waited(store, ticket_id, now)
    extended = extend_deadlines_for_wait(store, conn, settings, ticket_id, waited, now)
    store.add_event(conn, ticket_id, now, "waiting_ended",
                    {"waited_seconds": int(waited.total_seconds()), "extended": extended})
    return waited


def time_waited(store: Store, ticket_id: int, now: datetime) -> timedelta:
    """Time since the open ``waiting_started`` event of the ticket (zero if none is open)."""
    last = store.last_wait_event(ticket_id)
    if not last or last["type"] != "waiting_started":
        return timedelta(0)
    return max(now - from_iso(last["at"]), timedelta(0))


def extend_deadlines_for_wait(store: Store, conn: sqlite3.Connection, settings: Settings,
                              ticket_id: int, waited: timedelta, now: datetime) -> bool:
    """Push ``due_at``/``escalate_at``/``hard_at`` back by ``waited`` when
    ``sla.pause_while_waiting`` is true (inside the caller's transaction).

    Returns True when the deadlines moved. With the flag off (the default) the clock runs
    from receipt and nothing changes.
    """
    if not settings.sla.pause_while_waiting or waited <= timedelta(0):
        return False
    ticket = store.ticket(ticket_id)
    if ticket is None:
        return False
    moved = {column: to_iso(extend_for_waiting(from_iso(ticket[column]), waited))
             for column in DEADLINE_COLUMNS if ticket.get(column)}
    store.update_ticket(conn, ticket_id, **moved)
    store.add_event(conn, ticket_id, now, "deadlines_extended",
                    {"waited_seconds": int(waited.total_seconds()), **moved})
    return True


# -- helpers --------------------------------------------------------------------------------

def _internal_mail(settings: Settings, recipients: list[str], subject: str, text: str,
                   now: datetime) -> Message:
    return compose.internal_mail(settings, to=recipients, subject=subject, text=text, date=now,
                                 message_id=compose.make_message_id(settings.bot_domain))


def _verb(dry_run: bool) -> str:
    return "would send" if dry_run else "queued"


def _ticket_row(row: dict) -> TicketRow:
    def when(key: str) -> datetime | None:
        return from_iso(row[key]) if row.get(key) else None

    return TicketRow(
        ref=row["ref"], category=row["category"], customer_email=row["customer_email"] or "",
        status=row["status"], created_at=from_iso(row["created_at"]),
        due_at=from_iso(row["due_at"]), escalate_at=when("escalate_at"),
        hard_at=when("hard_at"), first_response_at=when("first_response_at"),
        escalation_level=row["escalation_level"] or 0,
        last_activity_at=when("last_activity_at"))
