"""The ticket status table: every allowed move, and moves that must be refused."""

from __future__ import annotations

import pytest

from bot.rules.status import (
    TRANSITIONS,
    Event,
    InvalidTransition,
    Status,
    can,
    is_closed,
    transition,
)

ALLOWED = [
    ("open", Event.CUSTOMER_WROTE, "open"),
    ("answered", Event.CUSTOMER_WROTE, "open"),
    ("waiting_customer", Event.CUSTOMER_WROTE, "open"),
    ("reopened", Event.CUSTOMER_WROTE, "reopened"),
    ("closed", Event.CUSTOMER_WROTE, "reopened"),
    ("open", Event.STAFF_REPLIED, "answered"),
    ("reopened", Event.STAFF_REPLIED, "answered"),
    ("waiting_customer", Event.STAFF_REPLIED, "answered"),
    ("closed", Event.STAFF_REPLIED, "closed"),
    ("answered", Event.STAFF_WAIT, "waiting_customer"),
    ("open", Event.STAFF_CLOSE, "closed"),
    ("closed", Event.STAFF_CLOSE, "closed"),
    ("closed_unverified", Event.STAFF_CLOSE, "closed_unverified"),
    ("closed", Event.STAFF_REOPEN, "reopened"),
    ("closed_unverified", Event.STAFF_REOPEN, "reopened"),
    ("waiting_customer", Event.VERIFICATION_FAILED, "closed_unverified"),
    # a decision (#done #refuse #partial #nodata) closes the request
    ("open", Event.STAFF_DECIDED, "closed"),
    ("answered", Event.STAFF_DECIDED, "closed"),
    ("waiting_customer", Event.STAFF_DECIDED, "closed"),
    ("reopened", Event.STAFF_DECIDED, "closed"),
    ("closed", Event.STAFF_DECIDED, "closed"),
]

REFUSED = [
    ("open", Event.STAFF_REOPEN),
    ("answered", Event.STAFF_REOPEN),
    ("closed", Event.STAFF_WAIT),
    ("closed_unverified", Event.CUSTOMER_WROTE),  # the customer must write a new request
    ("closed_unverified", Event.STAFF_DECIDED),  # identity never confirmed: #reopen first
    ("answered", Event.VERIFICATION_FAILED),
    ("no-such-status", Event.STAFF_CLOSE),
]


@pytest.mark.parametrize(("current", "event", "expected"), ALLOWED)
def test_allowed_transitions(current, event, expected):
    assert transition(current, event) == expected
    assert can(current, event)


@pytest.mark.parametrize(("current", "event"), REFUSED)
def test_refused_transitions(current, event):
    with pytest.raises(InvalidTransition, match=event.value):
        transition(current, event)
    assert not can(current, event)


def test_every_status_can_be_closed_or_is_closed():
    for status in Status:
        assert is_closed(status) or (status, Event.STAFF_CLOSE) in TRANSITIONS


def test_closed_statuses():
    assert [s.value for s in Status if is_closed(s)] == ["closed", "closed_unverified"]
