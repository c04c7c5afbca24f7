"""One inbound message, top-down: parse, gather the facts, decide the route once (pure,
:func:`bot.rules.conversation.decide`), then hand it to the one handler for that route.

| route                          | handler                                    |
|--------------------------------|--------------------------------------------|
| duplicate, machine mail        | :func:`bot.flows.machine.ignore`           |
| new ticket                     | :func:`bot.flows.intake.open_ticket`       |
| follow-up, reopen              | :func:`bot.flows.followup.add_followup`    |
| staff reply, copy, suspicious  | :func:`bot.flows.staff.handle_staff_mail`  |
| too large (header only)        | :meth:`Service.handle_too_large`           |
| failure                        | :meth:`Service.record_failure`             |

Everything a message causes (ticket, message rows, events, outbox mail, processed marker)
is written in ONE transaction, so a crash at any point leaves either all of it or none.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.adapters.store import Store
from bot.config import Settings
from bot.flows import followup, intake, machine, staff
from bot.flows.context import Context, Handled, message_key, raw_key
from bot.flows.intake import too_large_reason
from bot.flows.lookup import gather_evidence
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message
from bot.models import InboundMail, MessageSource, Outcome
from bot.rules.conversation import STAFF_ACTIONS, Action, Route, decide
from bot.rules.sla import BusinessCalendar, calendar_from_settings

MAX_REASON = 300

__all__ = ["Handled", "Service", "message_key", "too_large_reason"]


class Service:
    """The per-message pipeline, bound to one store and the settings."""

    def __init__(self, store: Store, settings: Settings,
                 calendar: BusinessCalendar | None = None) -> None:
        self.store = store
        self.settings = settings
        self.ctx = Context(store, settings, calendar or calendar_from_settings(settings))

    def handle(self, source: MessageSource, raw: bytes, now: datetime,
               received_at: datetime | None = None) -> Handled:
        """Process one raw message exactly once (the caller has checked ``processed``)."""
        mail = parse_message(raw)
        key = message_key(mail, raw)
        route = self.route(mail, key, now)
        received = min(received_at, now) if received_at else now
        with self.store.transaction() as conn:
            if route.action in (Action.DUPLICATE, Action.MACHINE):
                return machine.ignore(self.ctx, conn, source, key, route.reason, now, mail, raw)
            if route.action in (Action.FOLLOWUP, Action.REOPEN):
                return followup.add_followup(self.ctx, conn, source, key, mail, route, now)
            if route.action in STAFF_ACTIONS:
                return staff.handle_staff_mail(self.ctx, conn, source, key, mail, route, now)
            return intake.open_ticket(self.ctx, conn, source, key, mail, received, now, route)

    def route(self, mail: InboundMail, key: str, now: datetime) -> Route:
        """Gather what the database and the mail say, then decide (pure) where it goes."""
        known = self.store.is_known_message(key)
        machine_reason = None if known else machine_generated_reason(mail,
                                                                     self.settings.bot.address)
        evidence = gather_evidence(self.store, self.settings, mail)
        return decide(evidence, known=known, machine_reason=machine_reason, now=now,
                      reopen_days=self.settings.tickets.reopen_days)

    def record_failure(self, source: MessageSource, raw: bytes | None, error: str,
                       now: datetime, quarantined: bool) -> Handled:
        """A message we could not handle: record it (it stays in the mailbox)."""
        key = raw_key(raw) if raw else f"uid:{source.uidvalidity}:{source.uid}"
        reason = error[:MAX_REASON]
        with self.store.transaction() as conn:
            self.store.add_event(conn, None, now, "message_failed",
                                 {"uid": source.uid, "error": reason, "copied": quarantined})
            self.store.record_processed(conn, source, key, Outcome.QUARANTINED, reason, None, now)
        return Handled(Outcome.QUARANTINED, reason)

    def handle_too_large(self, source: MessageSource, header: bytes, size: int,
                         now: datetime) -> Handled:
        """Mail over ``limits.max_message_bytes``, known by its header only (never loaded):
        a ticket for staff to review and the short "too large" acknowledgement."""
        mail = parse_message(header)
        key = message_key(mail, header)
        note = too_large_reason(size, self.settings.limits.max_message_bytes)
        known = self.store.is_known_message(key)
        machine_reason = None if known else machine_generated_reason(mail,
                                                                     self.settings.bot.address)
        with self.store.transaction() as conn:
            if known:
                return machine.ignore(self.ctx, conn, source, key, "already-processed", now)
            if machine_reason:
                return machine.ignore(self.ctx, conn, source, key, f"{machine_reason}; {note}",
                                      now)
            mail = replace(mail, body_text=f"[{note}; the body was not loaded]", size=size)
            return intake.open_ticket(self.ctx, conn, source, key, mail, now, now,
                                      too_large=note)
