"""PURE: when a mail arrived, and whether the bot may answer it at all (first run).

The arrival time is the IMAP INTERNALDATE (when the server took the mail), else the Date
header, never later than now: ``created_at`` and every deadline count from it, so an outage
of the bot does not eat into the customer's deadline.

Mail that was in the folder before the bot's first start is never acknowledged:

| situation                        | arrived in the window      | arrived before it       |
|----------------------------------|----------------------------|-------------------------|
| first start (no checkpoint)      | ticket, no acknowledgement | skipped (recorded)      |
| UIDVALIDITY changed (rescan)     | handled as usual           | skipped unless known    |
| ``once --since DATE``            | handled as usual (>= DATE) | skipped (recorded)      |
| otherwise                        | handled as usual           | handled as usual        |

The window is the last ``mailbox.first_run_days`` days; 0 turns the rules off (every mail
is new mail: for test setups, or a mailbox nobody read before the bot). Known mail (same
Message-ID) is always matched as a duplicate first, whatever this module says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

SKIP_REASON = "before-first-run"  # processed.reason of mail from before the first start
QUIET_EVENT = "acknowledgement_skipped_first_run"  # event of a ticket opened quietly
DATE_HEADER_TRUST = timedelta(days=2)


class Intake(StrEnum):
    NORMAL = "normal"  # ticket and acknowledgement as usual
    QUIET = "quiet"  # ticket without acknowledgement (staff get one summary)
    SKIP = "skip"  # recorded as ignored with SKIP_REASON, never answered


class Start(StrEnum):
    STEADY = "steady"  # a checkpoint exists: every new mail is new
    FIRST_RUN = "first-run"  # no checkpoint: the folder holds mail from before the bot
    RESCAN = "rescan"  # UIDVALIDITY changed: the folder is read again from UID 0
    SINCE = "since"  # `once --since DATE`: a range imported deliberately


@dataclass(frozen=True)
class IntakePolicy:
    """How the mail of one ingest pass is taken in (see the table above)."""

    start: Start = Start.STEADY
    cutoff: datetime | None = None  # mail that arrived before it is old
    started: datetime | None = None  # first run: mail that arrived after it is new

    def decide(self, arrived: datetime) -> Intake:
        """What to do with a mail that arrived at ``arrived`` (not yet known)."""
        if self.start == Start.STEADY or self.cutoff is None:
            return Intake.NORMAL
        if _aware(arrived) < _aware(self.cutoff):
            return Intake.SKIP
        if self.start != Start.FIRST_RUN or (self.started and _aware(arrived) >= self.started):
            return Intake.NORMAL
        return Intake.QUIET


def policy(*, has_checkpoint: bool, uidvalidity_changed: bool, now: datetime,
           first_run_days: int, since: datetime | None = None) -> IntakePolicy:
    """The policy of one ingest pass, from the checkpoint state and ``--since``."""
    if since is not None:
        return IntakePolicy(Start.SINCE, _aware(since))
    if first_run_days <= 0:  # turned off: every mail is new mail
        return IntakePolicy()
    cutoff = now - timedelta(days=first_run_days)
    if not has_checkpoint:
        return IntakePolicy(Start.FIRST_RUN, cutoff, started=now)
    if uidvalidity_changed:
        return IntakePolicy(Start.RESCAN, cutoff)
    return IntakePolicy()


def arrival_time(internal_date: datetime | None, date_header: datetime | None,
                 now: datetime) -> datetime:
    """When the mail arrived: INTERNALDATE, else the Date header, never after ``now``.
    The Date header is the sender's clock (wrong or forged): believed only within
    DATE_HEADER_TRUST of now, so a mail dated last year cannot start past its deadline."""
    if internal_date is not None:
        return min(_aware(internal_date), now)
    if date_header is not None and now - _aware(date_header) <= DATE_HEADER_TRUST:
        return min(_aware(date_header), now)
    return now


def _aware(moment: datetime) -> datetime:
    """A naive time (an IMAP server's local INTERNALDATE without zone) is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
