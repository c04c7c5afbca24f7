"""Sending outages: remember when the SMTP server stopped taking mail, tell staff once.

An alert queued while the server refuses mail would wait in the same outbox as everything
else, so the outage is written down instead: an ``smtp_outage`` event and the
``job_state`` key :data:`STATE_KEY` (``since``, ``auth``, ``error``; it survives
restarts, and :func:`digest_line` describes it). When the server takes mail again, the
outage ends with an ``smtp_outage_ended`` event and ONE alert to staff - "sending was
failing from X to Y: N mails delayed" - for a refused login always (someone must fix the
password), for a connection outage only after :data:`ALERT_AFTER` (a server restart is
not news). At most one alert per :data:`ALERT_INTERVAL`, however often the server flaps.

A mail that can never go out through this server (an internationalised address without
SMTPUTF8) flags its ticket for staff: :func:`flag_unsendable`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.mail import compose
from bot.mail.autogen import is_own_address
from bot.models import MessageKind
from bot.rules.sla import from_iso

log = logging.getLogger(__name__)

STATE_KEY = "smtp_outage"
ALERT_AFTER = timedelta(minutes=15)
ALERT_INTERVAL = timedelta(hours=1)
ALERT_EVENT = "smtp_outage_alert"
UNSENDABLE_EVENT = "mail_not_sent"


def current(store: Store) -> dict[str, Any] | None:
    """The outage in progress (``since``, ``auth``, ``error``), or None."""
    value = store.job_state(STATE_KEY)
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def begin(store: Store, error: str, auth: bool, now: datetime) -> None:
    """Record the start of an outage (once: later failures of the same outage add nothing)."""
    if current(store) is not None:
        return
    state = {"since": utc_iso(now), "auth": auth, "error": error[:300]}
    with store.transaction() as conn:
        store.set_job_state(conn, STATE_KEY, json.dumps(state), now)
        store.add_event(conn, None, now, "smtp_outage", state)
    if auth:
        log.warning("SMTP server refused the bot's login (%s): mail waits in the outbox; "
                    "check smtp.username and the SMTP password", error)
    else:
        log.warning("SMTP server not taking mail (%s): mail waits in the outbox", error)


def end(store: Store, settings: Settings, now: datetime) -> None:
    """The server took mail again: close the outage and alert staff once."""
    state = current(store)
    if state is None:
        return
    since = from_iso(state["since"])
    delayed = store.delayed_outbox_count(state["since"], utc_iso(now))
    recipients = _alert_recipients(settings)
    alert = bool(recipients) and (state.get("auth") or now - since >= ALERT_AFTER) and \
        store.events_since(ALERT_EVENT, utc_iso(now - ALERT_INTERVAL)) == 0
    detail = {"since": state["since"], "until": utc_iso(now), "delayed": delayed,
              "auth": bool(state.get("auth")), "alerted": alert}
    with store.transaction() as conn:
        store.set_job_state(conn, STATE_KEY, "", now)
        store.add_event(conn, None, now, "smtp_outage_ended", detail)
        if alert:
            message = _alert_mail(settings, recipients, state, since, now, delayed)
            store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                          recipients=recipients, raw=bytes(message),
                          kind=MessageKind.NOTIFICATION.value, now=now)
            store.add_event(conn, None, now, ALERT_EVENT, {"delayed": delayed})
    log.warning("sending works again after an outage since %s: %d mail(s) delayed%s",
                state["since"], delayed, ", staff alerted" if alert else "")


def digest_line(store: Store, settings: Settings) -> str | None:
    """One line for the daily digest while sending fails, else None."""
    state = current(store)
    if state is None:
        return None
    since = _local_text(from_iso(state["since"]), settings)
    what = "the SMTP server refuses the bot's login" if state.get("auth") else \
        "the SMTP server is not taking mail"
    return f"Sending mail has been failing since {since}: {what} ({state.get('error', '')})."


def flag_unsendable(store: Store, ticket_id: int, message_id: str, now: datetime) -> None:
    """A mail of ``ticket_id`` cannot be sent through this server: flag it for staff."""
    with store.transaction() as conn:
        store.update_ticket(conn, ticket_id, needs_review=1)
        store.add_event(conn, ticket_id, now, UNSENDABLE_EVENT, {
            "reason": "smtputf8", "message_id": message_id,
            "why": "the customer's address is internationalised and the SMTP server does "
                   "not offer SMTPUTF8; answer the customer by other means"})
    log.warning("outbox: a mail of ticket %s needs SMTPUTF8, which the server does not "
                "offer: ticket flagged for review", ticket_id)


def _alert_recipients(settings: Settings) -> list[str]:
    chosen = settings.staff.notify or settings.staff.addresses
    return [a for a in chosen if not is_own_address(a, settings.bot.address)]


def _alert_mail(settings: Settings, recipients: list[str], state: dict[str, Any],
                since: datetime, now: datetime, delayed: int):
    start, until = _local_text(since, settings), _local_text(now, settings)
    subject = (f"Sending mail was failing from {start} to {until}: {delayed} "
               f"mail{'s' if delayed != 1 else ''} delayed")
    if state.get("auth"):
        cause = ("The SMTP server refused the bot's login. If the SMTP password was changed, "
                 f"put the new one into ${settings.smtp.password_env} and restart the bot; "
                 "with OAuth2, check that the grant is still valid (see README).")
    else:
        cause = "The SMTP server could not be reached or did not take mail."
    text = (f"{subject}.\n\n{cause}\nLast error: {state.get('error', '')}\n\n"
            "Nothing was lost: the delayed mail (acknowledgements, verification codes, "
            "answers, notifications) waited in the outbox and is being sent now.\n")
    return compose.internal_mail(settings, to=recipients, subject=subject, text=text,
                                 message_id=compose.make_message_id(settings.bot_domain),
                                 date=now)


def _local_text(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")
