"""Loop and abuse safety for automatic mail, and queueing it through the outbox.

Every automatic mail to a customer asks :func:`blocked_reason` first. Beyond a cap the bot
records why and stays silent, so two robots answering each other stop after a few mails:
- never the bot's own address, no-reply / mailer-daemon / postmaster addresses;
- never an address that bounced permanently in the last :data:`BOUNCE_MEMORY`;
- at most ``limits.auto_replies_per_hour`` mails per recipient (rolling hour) and
  ``limits.auto_replies_per_ticket_per_day`` per ticket (rolling 24 hours).

Overall, at most ``limits.auto_mail_per_hour`` automatic customer mails go out per rolling
hour, whoever they are for (:func:`take_send_slot`): a flood from many forged senders gets
that many acknowledgements an hour, the rest wait in the outbox for their slot, and staff
get one alert per hour. What an automatic mail repeats of the sender's subject and name is
cut short and stripped of links (:mod:`bot.mail.echo`).

:func:`permanent_failures` is PURE (a bounce -> its permanently failed recipients): RFC 3464
reports first, then flufl.bounce's detectors for plain-text bounces (qmail, Exim, Domino, ...),
then the addresses a plain-text report names next to a permanent (5xx) SMTP status (Exchange,
Postfix). A delay warning is never a failure.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message

from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.mail import compose
from bot.mail.autogen import is_noreply_address, is_own_address
from bot.models import Direction, MessageKind
from bot.rules.sla import from_iso

BOUNCE_MEMORY = timedelta(days=60)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
MAX_PLAIN_BOUNCE_BYTES = 262_144  # a plain-text bounce is read this far (the report is first)
_PERMANENT = re.compile(r"\b5\d\d[ -]|\b5\.\d{1,3}\.\d{1,3}\b|permanent error|user unknown"
                        r"|couldn't be found|not listed in", re.IGNORECASE)
_DELAYED = re.compile(r"delayed|not (?:yet )?been delivered yet|hasn't been delivered yet"
                      r"|will (?:continue to )?(?:be )?(?:attempted|retr)", re.IGNORECASE)
_COPY_START = re.compile(r"^[- ]*(?:original message|returned message|.{0,40}below this line is "
                         r"a copy|.{0,40}this is a copy of the message)", re.I | re.M)
_ADDRESS = re.compile(r"[\w.+=-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_SUPPRESSED_EVENT = "auto_reply_suppressed"
CAP_ALERT_KEY = "auto_mail_cap_alerted"  # job_state: when staff last heard about the cap
CAP_WINDOW = timedelta(hours=1)


def blocked_reason(store: Store, settings: Settings, address: str, now: datetime,
                   ticket_id: int | None = None) -> str | None:
    """Why no automatic mail may go to ``address`` (on ``ticket_id``) now, or None."""
    if not address:
        return "no-sender-address"
    if not compose.is_sendable_address(address):
        return "unusable-address"  # the ticket stands, staff answer by hand
    if is_own_address(address, settings.bot.address):
        return "own-address"
    if is_noreply_address(address):
        return "noreply-address"
    if store.bounced_permanently_since(address, now - BOUNCE_MEMORY):
        return "bounced-permanently"
    recent = store.recent_auto_mail_count(address, now - timedelta(hours=1))
    if recent >= settings.limits.auto_replies_per_hour:
        return "rate-limited"
    if ticket_id is not None and store.ticket_auto_mail_count(
            ticket_id, now - timedelta(days=1)) >= settings.limits.auto_replies_per_ticket_per_day:
        return "ticket-rate-limited"
    return None


def without_own_address(settings: Settings, addresses: Iterable[str]) -> list[str]:
    """``addresses`` minus empty ones and the bot itself (mail to itself would loop)."""
    return [a for a in addresses if a and not is_own_address(a, settings.bot.address)]


def queue_customer_mail(store: Store, settings: Settings, conn: sqlite3.Connection, *,
                        ticket_id: int, message: Message, kind: str, now: datetime,
                        mask: str | None = None, final: bool = False) -> bool:
    """Queue an automatic mail to the customer unless a guard blocks it (then an event).

    Returns True when queued. ``mask`` (a verification code) marks the outbox row sensitive
    and is masked in the ``messages`` copy. A ``final`` mail reports a state change that
    happens once per ticket (confirmed, failed, closed), so it cannot feed a loop and skips
    the per-ticket cap; every other guard still applies.
    """
    recipient = compose.recipients_of(message)[0]
    blocked = blocked_reason(store, settings, recipient, now, None if final else ticket_id)
    if blocked:
        store.add_event(conn, ticket_id, now, _SUPPRESSED_EVENT, {"kind": kind, "why": blocked})
        return False
    queue_mail(store, settings, conn, ticket_id, message, [recipient], kind, now, mask,
               counted=True)
    return True


def queue_staff_mail(store: Store, settings: Settings, conn: sqlite3.Connection, *,
                     ticket_id: int, message: Message, now: datetime) -> None:
    """Queue a notice to staff (not counted against the customer caps)."""
    recipients = compose.recipients_of(message)
    queue_mail(store, settings, conn, ticket_id, message, recipients, "notification", now,
               None, counted=False)


def staff_recipients(settings: Settings) -> list[str]:
    """Who hears about tickets, never the bot itself."""
    return without_own_address(settings, settings.staff.notify)


def queue_mail(store: Store, settings: Settings, conn: sqlite3.Connection,
               ticket_id: int | None, message: Message, recipients: list[str], kind: str,
               now: datetime, mask: str | None = None, counted: bool = True) -> None:
    """Outbox row + its copy in ``messages`` (code masked), inside the caller's transaction.

    ``counted`` mail counts against the per-recipient auto-reply cap and the overall
    ``limits.auto_mail_per_hour`` (beyond it the mail waits for its send slot).
    """
    slot = take_send_slot(store, settings, conn, ticket_id, kind, now) if counted else now
    outbox_id = store.enqueue(conn, message_id=message["Message-ID"], ticket_id=ticket_id,
                              recipients=recipients, raw=bytes(message), kind=kind, now=now,
                              sensitive=mask is not None, not_before=slot)
    if counted:
        store.add_outbox_recipients(conn, outbox_id, recipients, now)
    body = compose.plain_text(message)
    store.add_message(
        conn, ticket_id=ticket_id, direction=Direction.OUT.value, kind=kind,
        message_id=message["Message-ID"], in_reply_to=message["In-Reply-To"],
        from_addr=settings.bot.address, to_addrs=", ".join(recipients),
        subject=str(message["Subject"]),
        body_text=body.replace(mask, "********") if mask else body,
        attachments="[]", created_at=utc_iso(now))


# -- the overall cap -----------------------------------------------------------------------

def send_slot(nth_latest: datetime | None, now: datetime) -> datetime:
    """When the next automatic mail may go out so that no rolling hour holds more than
    ``cap`` of them, given the send time of the ``cap``-th latest one (None: fewer were
    sent). PURE."""
    return now if nth_latest is None else max(now, nth_latest + CAP_WINDOW)


def take_send_slot(store: Store, settings: Settings, conn: sqlite3.Connection,
                   ticket_id: int | None, kind: str, now: datetime) -> datetime:
    """Reserve the send time of one automatic mail (inside its transaction); a mail held
    back is an event of its ticket, and staff hear about the cap at most once an hour."""
    nth = store.nth_latest_auto_mail(settings.limits.auto_mail_per_hour)
    slot = send_slot(from_iso(nth) if nth else None, now)
    store.add_auto_mail_slot(conn, utc_iso(slot), drop_before=utc_iso(now - CAP_WINDOW))
    if slot > now:
        store.add_event(conn, ticket_id, now, "auto_mail_deferred",
                        {"kind": kind, "until": utc_iso(slot)})
        _alert_cap(store, settings, conn, slot, now)
    return slot


def _alert_cap(store: Store, settings: Settings, conn: sqlite3.Connection, slot: datetime,
               now: datetime) -> None:
    last = store.job_state(CAP_ALERT_KEY)
    recipients = without_own_address(settings, settings.staff.notify or
                                     settings.staff.addresses)
    if (last and from_iso(last) > now - CAP_WINDOW) or not recipients:
        return
    cap = settings.limits.auto_mail_per_hour
    text = (f"The bot reached its limit of {cap} automatic mails per hour "
            "(limits.auto_mail_per_hour). Acknowledgements and other automatic replies now "
            f"wait in the outbox; the next one goes out at "
            f"{slot.astimezone(settings.tz):%Y-%m-%d %H:%M %Z}.\n\n"
            "Many new tickets at once are often mail with forged senders: look at the newest "
            "tickets (datasette, 'Open tickets by due date'). Nothing is lost; mail goes out "
            "as the limit allows. This alert is sent at most once an hour.\n")
    message = compose.internal_mail(
        settings, to=recipients, subject=f"Automatic mail held back: over {cap} per hour",
        text=text, message_id=compose.make_message_id(settings.bot_domain), date=now)
    queue_mail(store, settings, conn, None, message, recipients,
               MessageKind.NOTIFICATION.value, now, counted=False)
    store.set_job_state(conn, CAP_ALERT_KEY, utc_iso(now), now)
    store.add_event(conn, None, now, "auto_mail_cap_alert", {"cap": cap})


# -- bounces -------------------------------------------------------------------------------

def record_bounce(store: Store, conn: sqlite3.Connection, raw: bytes, original: str,
                  ticket_id: int | None, now: datetime) -> list[str]:
    """Remember which of the original mail's recipients bounced; return them.

    Only recipients of a mail the bot really sent are recorded, so a forged report cannot
    silence mail to an arbitrary address.
    """
    sent_to = {r.lower() for r in store.outbox_recipients_of(original)}
    failures = permanent_failures(raw)
    recorded = []
    for address, status, permanent in failures:
        if address in sent_to:
            store.add_bounce(conn, address=address, ticket_id=ticket_id,
                             original_message_id=original, status=status,
                             permanent=permanent, now=now)
            recorded.append(address)
    return recorded


def permanent_failures(raw: bytes) -> list[tuple[str, str, bool]]:
    """``(address, status, permanent)`` per failed recipient of a bounce report.

    Reads the RFC 3464 ``message/delivery-status`` part: Action ``failed`` with a 5.x.x
    status is permanent; ``delayed`` (4.x.x) is not a failure at all. Never raises.
    """
    try:
        report = message_from_bytes(raw, policy=policy.compat32)
        return [item for part in report.walk()
                if part.get_content_type() == "message/delivery-status"
                for item in _recipient_failures(part)] or _plain_text_failures(raw)
    except Exception:  # noqa: BLE001 - a malformed report is simply not a known bounce
        return []


def _plain_text_failures(raw: bytes) -> list[tuple[str, str, bool]]:
    """Bounces without a delivery-status part: flufl.bounce, else the report's own words."""
    from flufl.bounce import all_failures  # 10 ms to import; few runs see such a bounce

    report = message_from_bytes(raw[:MAX_PLAIN_BOUNCE_BYTES], policy=policy.compat32)
    temporary, permanent = all_failures(report)
    text = _report_text(report)
    if permanent:
        found = {bytes(a).decode("utf-8", "replace") for a in permanent}
    elif temporary or not _PERMANENT.search(text) or _DELAYED.search(text):
        return []
    else:
        found = set(_ADDRESS.findall(text))
    status = _STATUS.search(text)
    code = status.group(0) if status and status.group(1) == "5" else ""
    return [(a.lower().strip("<>"), code, True) for a in sorted(found) if "@" in a]


def _report_text(report: Message) -> str:
    """The first text part of a bounce, up to where it copies the original message."""
    for part in report.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
            start = _COPY_START.search(text)
            return text[:start.start()] if start else text
    return ""


def _recipient_failures(part: Message) -> list[tuple[str, str, bool]]:
    blocks = _status_blocks(part)
    failures = []
    for fields in blocks[1:]:  # the first block is about the reporting MTA
        action = fields.get("action", "").lower()
        address = fields.get("final-recipient", "").rpartition(";")[2].strip().strip("<>")
        status_match = _STATUS.search(fields.get("status", ""))
        if action != "failed" or "@" not in address:
            continue
        status = status_match.group(0) if status_match else ""
        failures.append((address.lower(), status, status.startswith("5") or not status))
    return failures


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The header blocks of a delivery-status part, however the parser stored them."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the stdlib parses each block as a header-only message
        return [{k.lower(): str(v) for k, v in block.items()} for block in payload]
    text = payload if isinstance(payload, str) else ""
    blocks = []
    for chunk in re.split(r"\r?\n\s*\r?\n", text.strip()):
        fields = {}
        for line in chunk.splitlines():
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        blocks.append(fields)
    return blocks

