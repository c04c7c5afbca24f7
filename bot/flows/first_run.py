"""The one staff mail after the bot's first start on a mailbox that already held mail.

Mail from the last ``mailbox.first_run_days`` became tickets without acknowledgements
(event ``acknowledgement_skipped_first_run``) and without one notification each; older mail
was recorded as skipped (``processed.reason = 'before-first-run'``). This summary lists the
tickets so staff can answer them by hand (bot.rules.intake has the rules).

A first start is remembered (``job_state`` key ``first_run:<folder>``: when it began and the
cutoff) until its pass has gone through the whole folder. A pass that is stopped, killed or
cut off by a failure is resumed under the same rules by the next start, so mail from before
the bot is never acknowledged because the first pass did not finish; the summary, sent
once at the end, counts what every attempt did.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from bot.adapters.imap import FolderState
from bot.adapters.store import Store, utc_iso
from bot.config import Settings
from bot.flows.autoreply import staff_recipients
from bot.mail import compose
from bot.models import MessageKind
from bot.rules.intake import QUIET_EVENT, SKIP_REASON, IntakePolicy, Start, policy
from bot.rules.sla import from_iso

log = logging.getLogger(__name__)

MAX_LISTED_REFS = 1000


def summary_mail(settings: Settings, *, refs: Sequence[str], skipped: int,
                 recipients: Sequence[str], message_id: str, now: datetime) -> Message:
    """PURE: "first start: N tickets from earlier mail, not acknowledged"."""
    days = settings.mailbox.first_run_days
    listed = list(refs[:MAX_LISTED_REFS])
    more = f"... and {len(refs) - len(listed)} more.\n" if len(refs) > len(listed) else ""
    text = (f"The bot started on {settings.mailbox.folder} for the first time and found mail "
            "that arrived before it started.\n\n"
            f"{len(refs)} mail(s) from the last {days} day(s) (mailbox.first_run_days) became "
            "tickets WITHOUT an acknowledgement to the customer and without a notification "
            "each. Please answer them by hand:\n\n" + "\n".join(listed) + "\n" + more +
            f"\n{skipped} older mail(s) were recorded as skipped (before-first-run) and stay "
            "in the mailbox unanswered. To import a range deliberately (tickets and "
            "acknowledgements): inquiry-bot once --since YYYY-MM-DD\n")
    return compose.internal_mail(
        settings, to=recipients, message_id=message_id, date=now, text=text,
        subject=f"First start: {len(refs)} earlier mail(s) became tickets without "
                "acknowledgement")


def queue_summary(store: Store, settings: Settings, conn: sqlite3.Connection,
                  refs: Sequence[str], skipped: int, now: datetime) -> bool:
    """Queue the summary (if there is anything to tell and anyone to tell)."""
    recipients = staff_recipients(settings)
    if not (refs or skipped) or not recipients:
        return False
    message = summary_mail(settings, refs=refs, skipped=skipped, recipients=recipients,
                           message_id=compose.make_message_id(settings.bot_domain), now=now)
    store.enqueue(conn, message_id=message["Message-ID"], ticket_id=None,
                  recipients=recipients, raw=bytes(message),
                  kind=MessageKind.NOTIFICATION.value, now=now, sensitive=True)
    store.add_event(conn, None, now, "first_run_summary",
                    {"tickets": len(refs), "skipped": skipped})
    return True


@dataclass
class Intake:
    """The rules of one ingest pass (a first start's, while it lasts)."""

    policy: IntakePolicy = field(default_factory=IntakePolicy)

    @classmethod
    def of(cls, store: Store, settings: Settings, folder: FolderState, now: datetime,
           since: datetime | None = None) -> Intake:
        """The rules for a pass starting ``now``: a first start under way is resumed."""
        if since is None:
            resumed = _resumed(store, folder)
            if resumed is not None:
                return cls(resumed)
        checkpoint = store.checkpoint(folder.name)
        rules = policy(has_checkpoint=checkpoint is not None,
                       uidvalidity_changed=bool(checkpoint)
                       and checkpoint[0] != folder.uidvalidity,
                       now=now, first_run_days=settings.mailbox.first_run_days, since=since)
        if rules.start == Start.FIRST_RUN:
            with store.transaction() as conn:
                store.set_job_state(conn, _marker_key(folder.name), json.dumps({
                    "uidvalidity": folder.uidvalidity, "started": utc_iso(now),
                    "cutoff": utc_iso(rules.cutoff or now)}), now)
        return cls(rules)

    def finish(self, store: Store, settings: Settings, folder: FolderState,
               now: datetime) -> None:
        """After a pass that went through the whole folder: for a first start, a checkpoint
        even for an empty folder (mail from now on is new mail), the one summary to staff,
        and the end of the first-start rules."""
        if self.policy.start != Start.FIRST_RUN or self.policy.started is None:
            return
        refs, skipped = store.first_run_tally(folder.name, utc_iso(self.policy.started),
                                              QUIET_EVENT, SKIP_REASON)
        with store.transaction() as conn:
            queue_summary(store, settings, conn, refs, skipped, now)
            store.set_job_state(conn, _marker_key(folder.name), "", now)
        if store.checkpoint(folder.name) is None:
            store.reset_checkpoint(folder.name, folder.uidvalidity, now)
        log.info("first start on %s: %d ticket(s) without acknowledgement, %d skipped",
                 folder.name, len(refs), skipped)
        self.policy = IntakePolicy()


def _marker_key(folder: str) -> str:
    return f"first_run:{folder}"


def _resumed(store: Store, folder: FolderState) -> IntakePolicy | None:
    """The rules of a first start on ``folder`` that has not gone through it yet."""
    value = store.job_state(_marker_key(folder.name))
    if not value:
        return None
    state = json.loads(value)
    if state.get("uidvalidity") != folder.uidvalidity:  # another folder now: start afresh
        return None
    return IntakePolicy(Start.FIRST_RUN, from_iso(state["cutoff"]),
                        started=from_iso(state["started"]))
