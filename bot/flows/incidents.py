"""A customer reports that personal data reached the wrong person, leaked or was exposed:
``escalation.to`` (the DPO) hears of it at once, in the transaction that opens the ticket.

Why at once: Vietnam's PDP rules give the controller 72 hours to report a breach to the
authority; APPI Art. 26 requires a prompt report to the PPC (and notice to the people
affected) when a leak meets its criteria. Waiting for the ordinary escalation levels (the
hard deadline is 10 days) would miss both.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from bot.adapters.store import Store
from bot.config import Settings
from bot.flows import autoreply
from bot.mail import compose
from bot.models import MessageKind
from bot.rules.escalation import ticket_link

MAX_QUOTED = 4000


def notify_incident(store: Store, conn: sqlite3.Connection, settings: Settings,
                    ticket: dict[str, Any], text: str, answer_by: datetime,
                    now: datetime) -> bool:
    """Queue the incident notice to ``escalation.to`` (else to ``staff.notify``) inside the
    ticket's transaction; record ``incident_notified``. Returns True when a mail was queued."""
    recipients = autoreply.without_own_address(
        settings, settings.escalation.to or settings.staff.notify)
    if not recipients:
        store.add_event(conn, ticket["id"], now, "incident_not_notified",
                        {"why": "no escalation.to or staff.notify address"})
        return False
    subject, body = incident_notice_text(ticket, text, answer_by, settings)
    message = compose.internal_mail(settings, to=recipients, subject=subject, text=body,
                                    message_id=compose.make_message_id(settings.bot_domain),
                                    date=now)
    autoreply.queue_mail(store, settings, conn, ticket["id"], message, recipients,
                         MessageKind.ESCALATION.value, now, counted=False)
    store.add_event(conn, ticket["id"], now, "incident_notified", {"to": recipients})
    return True


def incident_notice_text(ticket: dict[str, Any], text: str, answer_by: datetime,
                         settings: Settings) -> tuple[str, str]:
    """Subject and plain text of the incident notice. PURE."""
    def local(moment: datetime) -> str:
        return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")

    quoted = compose.clean_text(text).strip()[:MAX_QUOTED] or "(empty)"
    lines = [
        f"A customer reports a possible personal data incident (ticket {ticket['ref']}): "
        "data sent to the wrong person, leaked or exposed.",
        "",
        f"  Customer:   {ticket['customer_email']}",
        f"  Subject:    {compose.clean_line(ticket['subject'], 200)}",
        f"  Category:   {ticket['category']} (request_kind = incident)",
        f"  Answer the customer by: {local(answer_by)} "
        f"({settings.escalation.incident_hours} hours, as the acknowledgement promised)",
        "",
        "What the law expects (see the README, 'Privacy requests'):",
        "  - Vietnam (PDP Law 91/2025, Decree 356/2025): report a breach to the authority "
        "within 72 hours of finding it;",
        "  - Japan (APPI Art. 26): report promptly to the PPC (preliminary report within "
        "about 3-5 days, final within 30) and notify the people affected, when the leak "
        "meets the reporting criteria.",
    ]
    link = ticket_link(settings.admin.base_url, ticket["ref"])
    if link:
        lines.append(f"  Open: {link}")
    lines += ["", "The customer wrote:", "",
              *(f"> {line}" for line in quoted.splitlines())]
    return f"[{ticket['ref']}] INCIDENT reported: personal data may have been exposed", \
        "\n".join(lines) + "\n"
