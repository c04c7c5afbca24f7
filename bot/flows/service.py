"""One inbound message, top-down: parse, gather the facts, decide the route once (pure,
:func:`bot.rules.conversation.decide`), then hand it to the one handler for that route.

| route                          | handler                                    |
|--------------------------------|--------------------------------------------|
| duplicate, machine mail        | :func:`bot.flows.machine.ignore`           |
| new ticket                     | :func:`bot.flows.intake.open_ticket`       |
| follow-up, reopen              | :func:`bot.flows.followup.add_followup`    |
| staff reply, copy, suspicious  | :func:`bot.flows.staff.handle_staff_mail`  |
| too large (header only)        | :meth:`Service.handle_too_large`           |
| failure                        | :meth:`Service.record_failure` (a review   |
|                                | ticket for human mail: bot.flows.fallback) |
| crashed the worker twice       | :meth:`Service.quarantine_crashed`         |

Reading a mail is bounded (:data:`PARSE_SECONDS`, and the size bounds of bot.mail.bounds):
what does not fit is left unread, and a ticket from such a mail is flagged for review with
the event ``mail_cut``; the whole mail stays in the mailbox.

Everything a message causes (ticket, message rows, events, outbox mail, processed marker)
is written in ONE transaction, so a crash at any point leaves either all of it or none.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from datetime import datetime

from bot.adapters.holiday_file import business_calendar
from bot.adapters.model_file import load_triage_model
from bot.adapters.store import Store
from bot.config import Settings
from bot.flows import fallback, followup, intake, machine, staff
from bot.flows.context import Context, Handled, message_key, raw_key
from bot.flows.intake import too_large_reason
from bot.flows.lookup import gather_evidence
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import Budget, cut_reasons, parse_message
from bot.models import InboundMail, MessageSource, Outcome
from bot.rules.conversation import STAFF_ACTIONS, Action, Route, decide
from bot.rules.intake import SKIP_REASON, Intake, IntakePolicy, arrival_time
from bot.rules.sla import BusinessCalendar

MAX_REASON = 300
# Time for reading one mail (MIME tree, headers, HTML); what is left is not read. With
# triage, composing and the database, a mail up to limits.max_message_bytes takes < 2 s.
PARSE_SECONDS = 1.0

__all__ = ["Handled", "Service", "message_key", "too_large_reason"]


class Service:
    """The per-message pipeline, bound to one store and the settings."""

    def __init__(self, store: Store, settings: Settings,
                 calendar: BusinessCalendar | None = None) -> None:
        self.store = store
        self.settings = settings
        self.ctx = Context(store, settings, calendar or business_calendar(settings),
                           load_triage_model(settings))

    def handle(self, source: MessageSource, raw: bytes, now: datetime,
               received_at: datetime | None = None,
               policy: IntakePolicy | None = None) -> Handled:
        """Process one raw message exactly once (the caller has checked ``processed``).
        ``received_at`` is the IMAP INTERNALDATE; ``policy`` the first-run rules
        (bot.rules.intake)."""
        mail = parse_message(raw, Budget.start(time.monotonic, PARSE_SECONDS))
        key = message_key(mail, raw)
        route = self.route(mail, key, now)
        model = load_triage_model(self.settings)  # a stat(): a newly trained model is used
        if model is not self.ctx.model:
            self.ctx = replace(self.ctx, model=model)
        received = arrival_time(received_at, mail.date, now)
        taken = (policy or IntakePolicy()).decide(received)
        with self.store.transaction() as conn:
            if taken == Intake.SKIP and route.action not in (Action.DUPLICATE, Action.MACHINE):
                return machine.ignore(self.ctx, conn, source, key, SKIP_REASON, now)
            handled = self._dispatch(conn, source, key, mail, raw, route, received, now,
                                     quiet=taken == Intake.QUIET)
            if handled.ref and cut_reasons(mail):
                self._note_cut(conn, handled, cut_reasons(mail), now)
            return handled

    def _dispatch(self, conn: sqlite3.Connection, source: MessageSource, key: str,
                  mail: InboundMail, raw: bytes, route: Route, received: datetime,
                  now: datetime, quiet: bool = False) -> Handled:
        if route.action in (Action.DUPLICATE, Action.MACHINE):
            return machine.ignore(self.ctx, conn, source, key, route.reason, now, mail, raw)
        if route.action in (Action.FOLLOWUP, Action.REOPEN):
            return followup.add_followup(self.ctx, conn, source, key, mail, route, now)
        if route.action in STAFF_ACTIONS:
            return staff.handle_staff_mail(self.ctx, conn, source, key, mail, route, now)
        return intake.open_ticket(self.ctx, conn, source, key, mail, received, now, route,
                                  quiet=quiet)

    def _note_cut(self, conn: sqlite3.Connection, handled: Handled, reasons: list[str],
                  now: datetime) -> None:
        """Only part of the mail was read: say so on its ticket, and flag a new one."""
        ticket = self.store.ticket_by_ref(handled.ref or "")
        if ticket is None:
            return
        if handled.outcome == Outcome.TICKET:
            self.store.update_ticket(conn, ticket["id"], needs_review=1)
        self.store.add_event(conn, ticket["id"], now, "mail_cut", {"reasons": reasons})

    def route(self, mail: InboundMail, key: str, now: datetime) -> Route:
        """Gather what the database and the mail say, then decide (pure) where it goes."""
        known = self.store.is_known_message(key)
        machine_reason = None if known else machine_generated_reason(mail,
                                                                     self.settings.bot.address)
        evidence = gather_evidence(self.store, self.settings, mail)
        return decide(evidence, known=known, machine_reason=machine_reason, now=now,
                      reopen_days=self.settings.tickets.reopen_days)

    def record_failure(self, source: MessageSource, raw: bytes | None, error: str,
                       now: datetime, quarantined: bool, error_class: str = "error",
                       received_at: datetime | None = None,
                       policy: IntakePolicy | None = None) -> Handled:
        """A message we could not handle (it stays in the mailbox): a human mail still
        becomes a ticket for review (:mod:`bot.flows.fallback`); anything else is recorded
        as quarantined. The first-start rules hold here too: mail from before the bot's
        start gets no acknowledgement (in the window: a quiet ticket; older: quarantined)."""
        key = raw_key(raw) if raw else f"uid:{source.uidvalidity}:{source.uid}"
        reason = error[:MAX_REASON]
        taken = (policy or IntakePolicy()).decide(arrival_time(received_at, None, now))
        if raw and taken != Intake.SKIP:
            handled = fallback.ticket_from_failure(self.ctx, source, raw, error_class, reason,
                                                   now, may_acknowledge=taken == Intake.NORMAL)
            if handled is not None:
                return handled
        with self.store.transaction() as conn:
            self.store.add_event(conn, None, now, "message_failed",
                                 {"uid": source.uid, "error": reason, "copied": quarantined})
            self.store.record_processed(conn, source, key, Outcome.QUARANTINED, reason, None, now)
        return Handled(Outcome.QUARANTINED, reason)

    def quarantine_crashed(self, source: MessageSource, raw: bytes | None, starts: int,
                           now: datetime, copied: bool) -> Handled:
        """A mail that crashed the worker on earlier starts: quarantined, staff told."""
        return fallback.quarantine_crashed(self.ctx, source, raw, starts, now, copied)

    def handle_too_large(self, source: MessageSource, header: bytes, size: int,
                         now: datetime, received_at: datetime | None = None,
                         policy: IntakePolicy | None = None) -> Handled:
        """Mail over ``limits.max_message_bytes``, known by its header only (never loaded):
        a ticket for staff to review and the short "too large" acknowledgement (under the
        first-start rules as any mail: skipped, or a ticket without acknowledgement)."""
        mail = parse_message(header)
        received = arrival_time(received_at, mail.date, now)
        taken = (policy or IntakePolicy()).decide(received)
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
            if taken == Intake.SKIP:
                return machine.ignore(self.ctx, conn, source, key, f"{SKIP_REASON}; {note}",
                                      now)
            mail = replace(mail, body_text=f"[{note}; the body was not loaded]", size=size)
            return intake.open_ticket(self.ctx, conn, source, key, mail, received, now,
                                      too_large=note, quiet=taken == Intake.QUIET)
