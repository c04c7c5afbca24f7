"""Staff commands carried out on a ticket, and the one-line confirmation staff get back.

:mod:`bot.flows.staff` decides that a mail is an authenticated staff reply and relays its
answer; this module runs its commands in order, inside the same transaction:
- status and bookkeeping commands (``#close #reopen #wait #category #verified #assign``);
- decisions on a request (``#done #refuse #partial #nodata #extend #fee``): the customer's
  notice (:mod:`bot.mail.decisions`), the completion clock (``completed_at``,
  ``completion_due_at``) and the status. They are checked first, all of them
  (:func:`decision_problems`): one that does not fit stops the whole mail.
Every command mail gets one confirmation to the staff member who sent it, e.g.
``CJD-000123: answer sent to the customer; closed``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from bot.adapters.store import utc_iso
from bot.flows import autoreply, completion, verification
from bot.flows.context import Context
from bot.flows.notices import notification_reply_to
from bot.flows.tickets import apply_event, mark_answered
from bot.mail import compose
from bot.mail.decisions import Decision, decision_notice, is_stop_use
from bot.models import Category, InboundMail, Language, MessageKind
from bot.rules import decisions
from bot.rules.conversation import Command, StaffInstruction, extend_argument
from bot.rules.sla import deadlines, extended_completion, from_iso
from bot.rules.status import Event, InvalidTransition

STATUS_COMMANDS = {Command.CLOSE: Event.STAFF_CLOSE, Command.REOPEN: Event.STAFF_REOPEN,
                   Command.WAIT: Event.STAFF_WAIT}
STATUS_PHRASES = {Command.CLOSE: "closed", Command.REOPEN: "reopened",
                  Command.WAIT: "waiting for the customer"}
DECISION_KIND = "decision"  # messages.kind / outbox.kind of a decision notice
MAX_SUBJECT = 160


# -- checks before anything runs ------------------------------------------------------------

def decision_problems(ctx: Context, ticket: dict[str, Any], instruction: StaffInstruction,
                      now: datetime) -> list[str]:
    """Why the decisions among the commands cannot run (empty: they can)."""
    if not any(c in decisions.DECISION_COMMANDS for c, _ in instruction.commands):
        return []
    limits = decisions.Limits(ctx.settings.requests.max_extensions,
                              ctx.settings.requests.max_extension_days)
    state = decisions.state_of(ticket, completion_due_at(ctx, ticket))
    return decisions.problems(state, instruction.commands, limits, now)


def completion_due_at(ctx: Context, ticket: dict[str, Any]) -> datetime | None:
    """The ticket's completion deadline: stored, else what its category gives."""
    if ticket.get("completion_due_at"):
        return from_iso(ticket["completion_due_at"])
    return completion.completion_deadline(ctx.settings, ctx.calendar, ticket)


# -- running one command --------------------------------------------------------------------

def run_command(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                command: Command, argument: str, now: datetime) -> tuple[dict[str, Any], str]:
    """Carry out one command; the ticket as it is afterwards and the confirmation phrase."""
    if command in STATUS_COMMANDS:
        phrase = _status_command(ctx, conn, ticket, command, now)
    elif command == Command.CATEGORY:
        phrase = _change_category(ctx, conn, ticket, Category(argument), now)
    elif command == Command.VERIFIED:
        ctx.store.update_ticket(conn, ticket["id"], verification_status="staff_verified")
        ctx.store.add_event(conn, ticket["id"], now, "verification_confirmed", {"by": "staff"})
        phrase = "identity confirmed by staff"
    elif command == Command.ASSIGN:
        ctx.store.update_ticket(conn, ticket["id"], assigned_to=argument[:100])
        ctx.store.add_event(conn, ticket["id"], now, "assigned", {"to": argument[:100]})
        phrase = f"assigned to {compose.clean_line(argument, 100)}"
    elif command in decisions.DECISION_COMMANDS:
        phrase = _decide(ctx, conn, ticket, command, argument, now)
    else:  # #note: the mail is recorded as a staff_note by the caller
        phrase = "note recorded"
    return ctx.store.ticket(ticket["id"]) or ticket, phrase


def _status_command(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                    command: Command, now: datetime) -> str:
    try:
        apply_event(ctx.store, conn, ticket["id"], ticket["status"], STATUS_COMMANDS[command],
                    now)
    except InvalidTransition as exc:
        ctx.store.add_event(conn, ticket["id"], now, "command_not_applicable",
                            {"command": command.value, "why": str(exc)})
        return f"#{command.value} not applicable ({exc})"
    return STATUS_PHRASES[command]


def _change_category(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                     category: Category, now: datetime) -> str:
    # The SLA depends on the category, so both clocks follow it (from the original date).
    old = ticket["category"]
    due = deadlines(from_iso(ticket["created_at"]), category, ctx.settings.sla, ctx.calendar)
    changed = {**ticket, "category": category.value}
    complete_by = completion.completion_deadline(ctx.settings, ctx.calendar, changed)
    fields: dict[str, Any] = {}
    if complete_by is None or not ticket.get("extensions"):
        fields = {"completion_due_at": utc_iso(complete_by) if complete_by else None,
                  "completion_level": 0}
    ctx.store.update_ticket(conn, ticket["id"], category=category.value, needs_review=0,
                            due_at=utc_iso(due.respond_at), escalate_at=utc_iso(due.escalate_at),
                            hard_at=utc_iso(due.hard_at), **fields)
    ctx.store.add_event(conn, ticket["id"], now, "category_changed",
                        {"from": old, "to": category.value, "by": "staff"})
    verification.on_category_changed(ctx.store, ctx.settings, conn,
                                     ctx.store.ticket(ticket["id"]) or changed, old,
                                     category.value, now)
    return f"category {old} -> {category.value}"


# -- decisions ------------------------------------------------------------------------------

def _decide(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any], command: Command,
            argument: str, now: datetime) -> str:
    """A decision already checked by :func:`decision_problems`: notice, clock, status."""
    due = completion_due_at(ctx, ticket)
    if command == Command.EXTEND:
        return _extend(ctx, conn, ticket, argument, due, now)
    if command == Command.FEE:
        _send_notice(ctx, conn, ticket, Decision("fee", ticket["category"], argument), now)
        status = mark_answered(ctx.store, conn, ticket, now)
        apply_event(ctx.store, conn, ticket["id"], status, Event.STAFF_WAIT, now,
                    strict=False)  # a closed ticket stays closed
        ctx.store.add_event(conn, ticket["id"], now, "fee_requested",
                            {"fee": ctx.settings.disclosure.fee})
        return "fee notice sent; waiting for the customer"
    outcome = decisions.FINAL[command]
    stop_use = is_stop_use(ticket.get("request_kind"))
    _send_notice(ctx, conn, ticket, Decision(outcome, ticket["category"], argument,
                                             from_iso(ticket["created_at"]),
                                             stop_use=stop_use), now)
    status = mark_answered(ctx.store, conn, ticket, now)
    apply_event(ctx.store, conn, ticket["id"], status, Event.STAFF_DECIDED, now)
    ctx.store.update_ticket(conn, ticket["id"], completed_at=utc_iso(now), decision=outcome,
                            completion_due_at=utc_iso(due) if due else None)
    on_time = due is None or now <= due
    ctx.store.add_event(conn, ticket["id"], now, "request_decided",
                        {"decision": outcome, "on_time": on_time})
    return f"{_notice_name(outcome, ticket['category'], stop_use)} sent; closed"


def _extend(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any], argument: str,
            due: datetime | None, now: datetime) -> str:
    days, reason = extend_argument(argument) or (0, "")
    assert due is not None and days > 0  # a request (decision_problems), a valid argument
    new_due = extended_completion(due, days, ctx.calendar)
    count = (ticket.get("extensions") or 0) + 1
    _send_notice(ctx, conn, ticket, Decision("extended", ticket["category"], reason,
                                             new_due_at=new_due), now)
    ctx.store.update_ticket(conn, ticket["id"], completion_due_at=utc_iso(new_due),
                            completion_level=0, extensions=count)
    ctx.store.add_event(conn, ticket["id"], now, "completion_extended",
                        {"days": days, "from": utc_iso(due), "to": utc_iso(new_due)})
    mark_answered(ctx.store, conn, ticket, now)
    local = new_due.astimezone(ctx.settings.tz)
    return (f"completion deadline extended by {days} days to {local:%Y-%m-%d %H:%M %Z} "
            f"(extension {count} of {ctx.settings.requests.max_extensions}); notice sent")


def _notice_name(outcome: str, category: str, stop_use: bool) -> str:
    if outcome != "done":
        return {"refused": "refusal", "partial": "partial-completion notice",
                "nodata": "no-data notice"}[outcome]
    done = {"disclosure": "information provided", "correction": "corrected",
            "deletion": "use stopped" if stop_use else "deleted"}[category]
    return f"completion notice ({done})"


def _send_notice(ctx: Context, conn: sqlite3.Connection, ticket: dict[str, Any],
                 decision: Decision, now: datetime) -> None:
    # Staff decided it: never held back by the automatic-mail caps (like a relayed answer).
    message = decision_notice(ctx.settings, customer_thread(ctx, ticket, ticket["bilingual"]),
                              decision, message_id=compose.make_message_id(
                                  ctx.settings.bot_domain), date=now)
    autoreply.queue_mail(ctx.store, ctx.settings, conn, ticket["id"], message,
                         [ticket["customer_email"]], DECISION_KIND, now, counted=False)


def customer_thread(ctx: Context, ticket: dict[str, Any],
                    bilingual: bool = False) -> compose.CustomerThread:
    """A mail to the ticket's customer, in their language, under their latest mail."""
    ids = ctx.store.customer_message_ids(ticket["id"])
    first_id, last_id = (ids[0], ids[-1]) if ids else (None, None)
    return compose.CustomerThread(
        ticket["ref"], Language(ticket["language"] or "en"), ticket["customer_email"],
        ticket["customer_name"] or "", ticket["subject"] or "", last_id,
        tuple(i for i in (first_id,) if i), bool(bilingual))


# -- the confirmation -----------------------------------------------------------------------

def confirm(ctx: Context, conn: sqlite3.Connection, mail: InboundMail, ticket: dict[str, Any],
            phrases: list[str], now: datetime) -> None:
    """One line to the staff member who sent the commands: what was done."""
    to = autoreply.without_own_address(ctx.settings, [mail.from_addr])
    if not to or not phrases:
        return
    summary = compose.clean_line("; ".join(phrases))
    reply_to = notification_reply_to(ctx.settings, ticket["ref"], to[0], now)
    text = f"{ticket['ref']}: {summary}\n"
    if reply_to:
        text += "\nReply to this mail to give further commands about the ticket.\n"
    message = compose.internal_mail(
        ctx.settings, to=to, subject=f"[{ticket['ref']}] {summary}"[:MAX_SUBJECT], text=text,
        message_id=compose.make_message_id(ctx.settings.bot_domain), date=now,
        in_reply_to=mail.message_id, reply_to=reply_to)
    # mask=reply_to: the routing token is a credential (raw dropped once sent).
    ctx.enqueue(conn, ticket["id"], message, to, MessageKind.NOTIFICATION, now,
                mask=reply_to, counted=False)
