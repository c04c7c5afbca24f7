"""Read what routing needs: the tickets a mail's routing address, threading headers and
subject point at, and the stored triage of a ticket."""

from __future__ import annotations

from typing import Any

from bot.adapters.store import Store
from bot.config import Settings
from bot.models import Category, InboundMail, Language, Triage
from bot.rules import conversation
from bot.rules.conversation import Evidence, TicketView
from bot.rules.sla import from_iso


def gather_evidence(store: Store, settings: Settings, mail: InboundMail) -> Evidence:
    """The tickets a mail's routing address, threading headers and subject point at, and
    what authenticates a sender who claims to be staff."""
    recipients = (*mail.to_addrs, *mail.cc_addrs)
    is_staff = mail.from_addr in {a.lower() for a in settings.staff.addresses}
    token_ticket, problem, routing = _token_evidence(store, settings, mail, recipients)
    ref = conversation.find_ref(mail.subject, settings.bot.ticket_prefix)
    return Evidence(
        sender=mail.from_addr, recipients=recipients, sender_is_staff=is_staff,
        auth_results_pass=is_staff and conversation.auth_results_pass(
            mail.auth_results_raw, settings.staff.trusted_authserv_ids, mail.from_addr,
            domain_signs_for_all=settings.staff.dkim_domain_signs_for_all),
        token_ticket=token_ticket, token_present=routing is not None, token_problem=problem,
        token_expires=routing.expires if routing else None,
        thread_ticket=ticket_view(store.ticket_for_message_ids(
            [mail.in_reply_to or "", *mail.references])),
        subject_ticket=ticket_view(store.ticket_by_ref(ref)) if ref else None)


def _token_evidence(store: Store, settings: Settings, mail: InboundMail,
                    recipients: tuple[str, ...]
                    ) -> tuple[TicketView | None, str, conversation.RoutingToken | None]:
    """``(ticket, problem, token)`` of the mail's routing address: the ticket only when the
    token was minted for the sender (expiry is decided with the route)."""
    routing = conversation.find_routing_token(recipients, settings.bot.address)
    if routing is None:
        return None, "", None
    problem = conversation.check_token(settings.staff_token_secret, routing, mail.from_addr,
                                       token_addresses(settings))
    if problem:
        return None, problem, routing
    ticket = ticket_view(store.ticket_by_ref(routing.ref))
    return ticket, "" if ticket else "token-unknown-ticket", routing


def token_addresses(settings: Settings) -> list[str]:
    """Every address a notification (and so a token) may have gone to."""
    return list(dict.fromkeys(a.lower() for a in (*settings.staff.addresses,
                                                  *settings.staff.notify)))


def ticket_view(row: dict[str, Any] | None) -> TicketView | None:
    """The routing view of a ``tickets`` row."""
    if row is None:
        return None
    closed_at = from_iso(row["closed_at"]) if row.get("closed_at") else None
    return TicketView(row["id"], row["ref"], row["customer_email"] or "", row["status"],
                      closed_at)


def ticket_triage(ticket: dict[str, Any]) -> Triage:
    """The triage stored on a ticket, for notifications about it."""
    cues = tuple(c for c in (ticket.get("triage_cues") or "").split("; ") if c)
    return Triage(Category(ticket["category"]), Language(ticket["language"]),
                  ticket.get("triage_confidence") or 0.0,
                  ticket.get("language_confidence") or 0.0, cues,
                  bool(ticket.get("needs_review")), bool(ticket.get("bilingual")),
                  model_version=ticket.get("triage_model") or "")
