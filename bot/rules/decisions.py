"""PURE: which staff decisions a request allows, checked before anything of a mail runs.

A staff mail's commands run in order, and a decision (``#done``, ``#refuse``, ``#partial``,
``#nodata``, ``#extend``, ``#fee``) that does not fit the ticket stops the WHOLE mail, like
a mistyped command: nothing reaches the customer and staff get the reasons. So
:func:`problems` walks the commands over a small :class:`RequestState`, applying what each
earlier command of the same mail changes (``#category disclosure`` then ``#fee`` is fine).

Rules:
- decisions are for disclosure, correction and deletion requests; ``#fee`` for disclosure;
- never on a ``closed_unverified`` ticket (identity never confirmed): ``#reopen`` first;
- one final decision per request (again only after it was reopened);
- ``#done``, ``#partial`` and ``#nodata`` need a confirmed identity (``#verified`` in the
  same mail counts): telling a forger "we hold nothing about you" discloses too;
- ``#extend``: at most ``requests.max_extensions`` times and ``requests.max_extension_days``
  days each, and only before the completion deadline has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from bot.config.requests import REQUEST_CATEGORIES
from bot.rules.conversation import Command, extend_argument
from bot.rules.status import Status

FINAL = {Command.DONE: "done", Command.REFUSE: "refused", Command.PARTIAL: "partial",
         Command.NODATA: "nodata"}
DECISION_COMMANDS = frozenset({*FINAL, Command.EXTEND, Command.FEE})
NEEDS_IDENTITY = frozenset({Command.DONE, Command.PARTIAL, Command.NODATA})
IDENTITY_OK = frozenset({"email_confirmed", "staff_verified", "not_required"})


@dataclass(frozen=True)
class RequestState:
    """What the checks need to know about a ticket (times aware)."""

    category: str
    status: str
    verification_status: str
    decided: bool = False            # a final decision stands (completed_at, not reopened)
    extensions: int = 0
    completion_due_at: datetime | None = None


@dataclass(frozen=True)
class Limits:
    max_extensions: int
    max_extension_days: int


def state_of(ticket: dict, completion_due_at: datetime | None) -> RequestState:
    """The :class:`RequestState` of a ``tickets`` row."""
    return RequestState(
        category=ticket["category"], status=ticket["status"],
        verification_status=ticket["verification_status"] or "not_required",
        decided=bool(ticket.get("completed_at")) and ticket["status"] != Status.REOPENED,
        extensions=ticket.get("extensions") or 0, completion_due_at=completion_due_at)


def problems(state: RequestState, commands: tuple[tuple[Command, str], ...], limits: Limits,
             now: datetime) -> list[str]:
    """Why the commands of one mail cannot all run (empty: they can)."""
    found = []
    for command, argument in commands:
        problem = command_problem(state, command, argument, limits, now)
        if problem:
            found.append(f"#{command.value}: {problem}")
        state = after(state, command, argument)
    return found


def command_problem(state: RequestState, command: Command, argument: str, limits: Limits,
                    now: datetime) -> str | None:
    """Why ``command`` does not fit ``state`` (None: it does)."""
    if command not in DECISION_COMMANDS:
        return None
    if state.category not in REQUEST_CATEGORIES:
        return (f"only for disclosure, correction and deletion requests (this ticket is a "
                f"{state.category}); use #close, or #category first")
    if command == Command.FEE and state.category != "disclosure":
        return "the fee applies to disclosure requests only"
    if state.status == Status.CLOSED_UNVERIFIED:
        return "the identity was never confirmed (closed_unverified); #reopen it first"
    if state.decided:
        return "this request already has its decision; #reopen it first to decide again"
    if command in NEEDS_IDENTITY and state.verification_status not in IDENTITY_OK:
        return (f"the customer's identity is not confirmed (verification "
                f"{state.verification_status}); confirm it (#verified) or use #refuse")
    if command == Command.EXTEND:
        return extension_problem(state, argument, limits, now)
    return None


def extension_problem(state: RequestState, argument: str, limits: Limits,
                      now: datetime) -> str | None:
    """Why ``#extend argument`` is not allowed now (None: it is)."""
    days = (extend_argument(argument) or (0, ""))[0]
    if state.extensions >= limits.max_extensions:
        return (f"already extended {state.extensions} time(s); at most "
                f"{limits.max_extensions} per request (requests.max_extensions)")
    if days > limits.max_extension_days:
        return (f"at most {limits.max_extension_days} days per extension "
                "(requests.max_extension_days)")
    if state.completion_due_at is not None and now > state.completion_due_at:
        return (f"the completion deadline passed on {state.completion_due_at:%Y-%m-%d %H:%M} "
                "UTC; an extension must reach the customer before it")
    return None


def after(state: RequestState, command: Command, argument: str) -> RequestState:
    """``state`` as ``command`` leaves it (as far as the checks care)."""
    if command == Command.CATEGORY:
        # Into a request type starts identity verification, away from one ends it.
        identity = state.verification_status
        if argument not in REQUEST_CATEGORIES:
            identity = "not_required"
        elif state.category not in REQUEST_CATEGORIES and identity == "not_required":
            identity = "pending"
        return replace(state, category=argument, verification_status=identity)
    if command == Command.VERIFIED:
        return replace(state, verification_status="staff_verified")
    if command in FINAL:
        return replace(state, decided=True, status=Status.CLOSED)
    if command == Command.EXTEND:
        return replace(state, extensions=state.extensions + 1)
    if command == Command.REOPEN and state.status in (Status.CLOSED, Status.CLOSED_UNVERIFIED):
        return replace(state, status=Status.REOPENED, decided=False)
    if command == Command.CLOSE and state.status != Status.CLOSED_UNVERIFIED:
        return replace(state, status=Status.CLOSED)
    return state
