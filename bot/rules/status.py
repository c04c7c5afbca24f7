"""Ticket statuses and every transition between them, in one table. PURE.

Anything that changes ``tickets.status`` asks :func:`transition` first, so the README's
status table and the code cannot drift apart: a pair missing from :data:`TRANSITIONS` is
not allowed and raises :class:`InvalidTransition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Status(StrEnum):
    """The ``tickets.status`` column."""

    OPEN = "open"                            # new; waiting for staff
    REOPENED = "reopened"                    # closed, then the customer (or staff) came back
    WAITING_CUSTOMER = "waiting_customer"    # staff asked the customer for something
    ANSWERED = "answered"                    # staff answered; nothing pending
    CLOSED = "closed"                        # done
    CLOSED_UNVERIFIED = "closed_unverified"  # identity never confirmed; customer must start again


class Event(StrEnum):
    """What can happen to a ticket."""

    CUSTOMER_WROTE = "customer_wrote"          # a customer follow-up
    STAFF_REPLIED = "staff_replied"            # an answer reached the customer
    STAFF_WAIT = "staff_wait"                  # #wait
    STAFF_CLOSE = "staff_close"                # #close
    STAFF_REOPEN = "staff_reopen"              # #reopen
    STAFF_DECIDED = "staff_decided"            # #done #refuse #partial #nodata: the end
    VERIFICATION_FAILED = "verification_failed"  # code expired or too many wrong codes


class InvalidTransition(ValueError):
    """``event`` cannot happen to a ticket in ``status``."""


_ACTIVE = (Status.OPEN, Status.REOPENED, Status.WAITING_CUSTOMER, Status.ANSWERED)

TRANSITIONS: Mapping[tuple[Status, Event], Status] = {
    # A customer writing again always needs staff attention.
    **{(s, Event.CUSTOMER_WROTE): Status.OPEN
       for s in (Status.OPEN, Status.WAITING_CUSTOMER, Status.ANSWERED)},
    (Status.REOPENED, Event.CUSTOMER_WROTE): Status.REOPENED,
    (Status.CLOSED, Event.CUSTOMER_WROTE): Status.REOPENED,  # only within tickets.reopen_days
    **{(s, Event.STAFF_REPLIED): Status.ANSWERED for s in _ACTIVE},
    # Staff may answer a closed ticket without reopening it.
    (Status.CLOSED, Event.STAFF_REPLIED): Status.CLOSED,
    (Status.CLOSED_UNVERIFIED, Event.STAFF_REPLIED): Status.CLOSED_UNVERIFIED,
    **{(s, Event.STAFF_WAIT): Status.WAITING_CUSTOMER for s in _ACTIVE},
    **{(s, Event.STAFF_CLOSE): Status.CLOSED for s in (*_ACTIVE, Status.CLOSED)},
    (Status.CLOSED_UNVERIFIED, Event.STAFF_CLOSE): Status.CLOSED_UNVERIFIED,
    # A decision closes the request (also one staff closed before sending it); never
    # one whose identity was not confirmed.
    **{(s, Event.STAFF_DECIDED): Status.CLOSED for s in (*_ACTIVE, Status.CLOSED)},
    **{(s, Event.STAFF_REOPEN): Status.REOPENED
       for s in (Status.CLOSED, Status.CLOSED_UNVERIFIED)},
    **{(s, Event.VERIFICATION_FAILED): Status.CLOSED_UNVERIFIED
       for s in (Status.OPEN, Status.REOPENED, Status.WAITING_CUSTOMER)},
}

CLOSED_STATUSES = frozenset({Status.CLOSED, Status.CLOSED_UNVERIFIED})


def transition(current: str, event: Event) -> Status:
    """The status after ``event``; :class:`InvalidTransition` if it cannot happen now."""
    try:
        return TRANSITIONS[(Status(current), event)]
    except (KeyError, ValueError):
        raise InvalidTransition(f"{event.value} is not possible for a {current} ticket") from None


def can(current: str, event: Event) -> bool:
    """True when ``event`` is allowed for a ticket in ``current``."""
    try:
        transition(current, event)
    except InvalidTransition:
        return False
    return True


def is_closed(current: str) -> bool:
    """Closed or closed_unverified: no work is pending."""
    return current in CLOSED_STATUSES
