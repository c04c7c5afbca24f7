"""The second clock: by when a disclosure, correction or deletion request must be carried
out (``completion_due_at``), and who hears when it comes close or passes.

The first clock (``due_at`` ... ``hard_at``, :mod:`bot.flows.escalation`) stops at the first
answer; this one runs until staff record the request's end (``#done``, ``#refuse``,
``#partial``, ``#nodata``: ``completed_at``), whatever was answered before:
- :func:`fill_deadlines` sets ``completion_due_at`` of requests that have none yet (new
  tickets, tickets from before the clock existed, a ``#category`` change);
- :func:`run_pass`: ``requests.remind_days_before`` days before the deadline a reminder to
  ``staff.notify`` (level 1), past it a notice to ``escalation.to`` (level 2); each level
  once per ticket, recorded in ``completion_level`` in the transaction that queues the mail;
- :func:`digest_section`: the requests answered but not completed, for the daily digest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.holiday_file import business_calendar
from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.config.requests import completion_days
from bot.flows import autoreply
from bot.mail import compose
from bot.models import MessageKind
from bot.rules.escalation import format_age, ticket_link
from bot.rules.sla import (
    COMPLETION_OVERDUE,
    COMPLETION_SOON,
    BusinessCalendar,
    completion_due,
    completion_level,
    from_iso,
)

LEVEL_TEXT = {COMPLETION_SOON: "due soon", COMPLETION_OVERDUE: "OVERDUE"}
HOW_TO_ACT = ("Record how each request ended with #done, #refuse REASON, #partial REASON or "
              "#nodata (or move the date once with #extend DAYS REASON) at the top of a reply "
              "to the ticket's notification. See the README, \"Staff guide\".")


# -- deadlines ------------------------------------------------------------------------------

def completion_deadline(settings: Settings, calendar: BusinessCalendar,
                        ticket: dict[str, Any]) -> datetime | None:
    """``completion_due_at`` of a ticket from its category, language and receipt (None for
    a question or complaint)."""
    days = completion_days(settings.requests, ticket["category"], ticket["language"] or "",
                           bool(ticket.get("bilingual")))
    if days is None:
        return None
    return completion_due(from_iso(ticket["created_at"]), days, calendar)


def fill_deadlines(store: Store, settings: Settings, calendar: BusinessCalendar) -> int:
    """Set ``completion_due_at`` wherever a request has none; how many were set."""
    rows = store.completion_unset()
    if not rows:
        return 0
    with store.transaction() as conn:
        for row in rows:
            due = completion_deadline(settings, calendar, row)
            store.update_ticket(conn, row["id"], completion_due_at=utc_iso(due) if due else None)
    return len(rows)


# -- reminders and overdue notices ----------------------------------------------------------

def run_pass(store: Store, settings: Settings, now: datetime, dry_run: bool) -> list[str]:
    """Queue (unless ``dry_run``) the completion reminders due at ``now``; one line per mail."""
    if not dry_run:
        fill_deadlines(store, settings, business_calendar(settings))
    remind = timedelta(days=settings.requests.remind_days_before)
    rows = store.completion_candidates(utc_iso(now + remind))
    lines = []
    for recipients, items in plan(rows, now, remind, settings).items():
        subject, text = completion_text(items, now, settings)
        refs = ", ".join(f"{row['ref']} (completion {level})" for row, level in items)
        verb = "would send" if dry_run else "queued"
        lines.append(f"{verb}: to {', '.join(recipients)}: {subject} [{refs}]")
        if not dry_run:
            _queue(store, settings, list(recipients), items, subject, text, now)
    return lines


def plan(rows: Sequence[dict[str, Any]], now: datetime, remind: timedelta,
         settings: Settings) -> dict[tuple[str, ...], list[tuple[dict[str, Any], int]]]:
    """Recipients -> (ticket, level) for every level due and not sent yet. PURE."""
    groups: dict[tuple[str, ...], list[tuple[dict[str, Any], int]]] = {}
    for row in rows:
        level = completion_level(from_iso(row["completion_due_at"]), now, remind)
        if level <= (row["completion_level"] or 0):
            continue
        first, fallback = ((settings.staff.notify, settings.escalation.to)
                           if level == COMPLETION_SOON
                           else (settings.escalation.to, settings.staff.notify))
        recipients = tuple(autoreply.without_own_address(settings, first or fallback))
        if recipients:
            groups.setdefault(recipients, []).append((row, level))
    return groups


def completion_text(items: Sequence[tuple[dict[str, Any], int]], now: datetime,
                    settings: Settings) -> tuple[str, str]:
    """Subject and plain text of one completion mail. PURE."""
    overdue = any(level == COMPLETION_OVERDUE for _row, level in items)
    count = len(items)
    noun = "privacy request" if count == 1 else "privacy requests"
    prefix = f"[{items[0][0]['ref']}] " if count == 1 else ""
    subject = (f"{prefix}OVERDUE: {count} {noun} not completed by the deadline" if overdue
               else f"{prefix}Reminder: {count} {noun} to complete soon")
    lines = ["These disclosure, correction and deletion requests must be carried out by "
             "their completion deadline (the second clock: an answer to the customer does "
             "not stop it).", ""]
    for row, level in sorted(items, key=lambda item: (-item[1], item[0]["completion_due_at"])):
        lines += ticket_lines(row, now, settings, LEVEL_TEXT[level])
    lines += ["", HOW_TO_ACT]
    return subject, "\n".join(lines) + "\n"


def ticket_lines(row: dict[str, Any], now: datetime, settings: Settings,
                 label: str) -> list[str]:
    """Two lines about one request: ref, category, status, deadline; customer, link."""
    due = from_iso(row["completion_due_at"])
    when = (f"overdue by {format_age(now - due)}" if now > due
            else f"in {format_age(due - now)}")
    extended = f", extended {row['extensions']}x" if row.get("extensions") else ""
    link = ticket_link(settings.admin.base_url, row["ref"])
    return [f"  {row['ref']}  {row['category']}  {row['status']}  {label}: complete by "
            f"{due.astimezone(settings.tz):%Y-%m-%d %H:%M %Z} ({when}{extended})",
            f"      {row['customer_email']}  verification {row['verification_status']}"
            + (f"  {link}" if link else "")]


def _queue(store: Store, settings: Settings, recipients: list[str],
           items: Sequence[tuple[dict[str, Any], int]], subject: str, text: str,
           now: datetime) -> None:
    message = compose.internal_mail(settings, to=recipients, subject=subject, text=text,
                                    message_id=compose.make_message_id(settings.bot_domain),
                                    date=now)
    with store.transaction() as conn:
        autoreply.queue_mail(store, settings, conn, None, message, recipients,
                             MessageKind.ESCALATION.value, now, counted=False)
        for row, level in items:
            _record_level(store, conn, row["id"], level, recipients, now)


def _record_level(store: Store, conn: sqlite3.Connection, ticket_id: int, level: int,
                  recipients: list[str], now: datetime) -> None:
    ticket = store.ticket(ticket_id)
    # Re-checked inside the transaction: a concurrent pass may have recorded it.
    if ticket is None or (ticket["completion_level"] or 0) >= level:
        return
    store.update_ticket(conn, ticket_id, completion_level=level)
    store.add_event(conn, ticket_id, now, "completion_escalated",
                    {"level": level, "to": recipients})


# -- the daily digest -----------------------------------------------------------------------

def digest_section(store: Store, settings: Settings, now: datetime) -> tuple[str, int]:
    """The digest's list of requests answered but not completed, and how many (pure text;
    empty when there are none)."""
    rows = store.answered_uncompleted()
    if not rows:
        return "", 0
    lines = ["", f"Answered but not completed: {len(rows)}. The customer has an answer; the "
             "request itself is not carried out yet.", ""]
    for row in rows:
        due = from_iso(row["completion_due_at"])
        lines += ticket_lines(row, now, settings, "OVERDUE" if now > due else "open")
    return "\n".join(lines) + "\n", len(rows)
