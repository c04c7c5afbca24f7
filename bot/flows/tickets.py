"""Ticket state changes shared by the handlers: status transitions, first response, links.

Every function takes the open transaction (``conn``) of the message being handled.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from bot.adapters.store import Store, utc_iso
from bot.rules.conversation import Route
from bot.rules.status import Event, can, is_closed, transition


def apply_event(store: Store, conn: sqlite3.Connection, ticket_id: int, current: str,
                event: Event, now: datetime, strict: bool = True) -> str:
    """Move a ticket through :func:`bot.rules.status.transition`; record it; new status.

    ``strict=False`` leaves a ticket whose status does not allow ``event`` as it is (a
    customer's mail must never fail because of the ticket's state).
    """
    if not strict and not can(current, event):
        return current
    new = transition(current, event).value
    fields: dict[str, Any] = {"status": new, "last_activity_at": utc_iso(now)}
    if is_closed(new) and not is_closed(current):
        fields["closed_at"] = utc_iso(now)
    elif is_closed(current) and not is_closed(new):
        fields["closed_at"] = None
    store.update_ticket(conn, ticket_id, **fields)
    if new != current:
        store.add_event(conn, ticket_id, now, "status_changed",
                        {"from": current, "to": new, "by": event.value})
    return new


def mark_answered(store: Store, conn: sqlite3.Connection, ticket: dict[str, Any],
                  now: datetime) -> str:
    """First response (stops the escalation clock) and the staff_replied transition."""
    if not ticket["first_response_at"]:
        store.update_ticket(conn, ticket["id"], first_response_at=utc_iso(now))
    return apply_event(store, conn, ticket["id"], ticket["status"], Event.STAFF_REPLIED, now)


def link_tickets(store: Store, conn: sqlite3.Connection, new_id: int, route: Route,
                 now: datetime) -> None:
    """A new ticket that refers to an older one (someone else's ref, or closed too long)."""
    old = route.linked
    assert old is not None
    store.update_ticket(conn, new_id, linked_ticket_id=old.id)
    store.add_event(conn, new_id, now, "linked_ticket", {"ref": old.ref, "why": route.reason})
    store.add_event(conn, old.id, now, "linked_from", {"ticket_id": new_id, "why": route.reason})
