"""How a new privacy request is handled, from its category and the signals in the mail.
PURE.

- opt-out only, category deletion: ``request_kind = opt_out``, no identity code,
  acknowledgement ``ack_opt_out`` (the sends stop by a date);
- opt-out and erasure: an ordinary deletion with a code; the sends still stop by the date;
- incident (any category): ``request_kind = incident``; the acknowledgement says who handles
  it and by when (bot.flows.incidents tells the DPO);
- agent (request categories): ``agent_relation``; the acknowledgement says what proof of
  authority is needed;
- triage unsure (``needs_review``): no code until staff pick the category.

A request the bot is unsure about gets no code: a code is sent only with mail that
explains what it is for (the category acknowledgement, or the verification mail sent when
staff set the category: bot.flows.verification.on_category_changed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from bot.rules.sla import Deadlines

REQUEST_CATEGORIES = frozenset({"disclosure", "correction", "deletion"})
OPT_OUT = "opt_out"
INCIDENT = "incident"


@dataclass(frozen=True)
class RequestPlan:
    """What a new ticket gets besides its category."""

    request_kind: str | None   # tickets.request_kind: opt_out | incident | None
    ack_kind: str | None       # acknowledgement template ack_<kind> instead of the category's
    agent: str                 # tickets.agent_relation ("" when none)
    needs_code: bool
    stop_sends: bool           # staff must stop the marketing sends to the sender's address


def plan_request(category: str, *, needs_review: bool, readable: bool = True,
                 opt_out: bool = False, erasure: bool = False, incident: bool = False,
                 agent: str = "") -> RequestPlan:
    """The :class:`RequestPlan` of a new ticket (see the module table).

    ``readable=False``: only the header was read (too large): nothing but review.
    An opt-out written for someone else is not honoured on the address alone: the sender's
    address is not the person's.
    """
    if not readable:
        return RequestPlan(None, None, "", needs_code=False, stop_sends=False)
    request = category in REQUEST_CATEGORIES
    stop_sends = opt_out and category == "deletion" and not agent
    pure_opt_out = stop_sends and not erasure
    kind = INCIDENT if incident else OPT_OUT if pure_opt_out else None
    return RequestPlan(kind, OPT_OUT if pure_opt_out else None, agent if request else "",
                       needs_code=request and not needs_review and not pure_opt_out,
                       stop_sends=stop_sends)


def tightened(due: Deadlines, *by: datetime | None) -> Deadlines:
    """``due`` with the answer moved up to the earliest of ``by`` (an opt-out's or an
    incident's promise); escalation never later than the answer."""
    earliest = min([due.respond_at, *(b for b in by if b is not None)])
    if earliest >= due.respond_at:
        return due
    return replace(due, respond_at=earliest, escalate_at=min(due.escalate_at, earliest))
