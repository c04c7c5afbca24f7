"""The customer's notices of staff decisions on a request (``#done``, ``#refuse``,
``#partial``, ``#nodata``, ``#extend``, ``#fee``). PURE.

Each notice is a template ``<lang>/decision_<notice>.j2`` rendered in the ticket's language
(Vietnamese, then English, when the ticket is bilingual) through
:func:`bot.mail.compose.customer_mail`, threaded under the customer's mail. Staff text (the
reasons, the details) is data, cleaned like a relayed answer; staff write it in the
customer's language.

The notices are what APPI asks for when a request ends: Arts. 33(3) (disclosure: not
disclosed in full or in part, or no such data), 34(3) (correction), 35(7) (stop using or
delete), 36 (the reasons) and 38 (fees); see the README's Staff guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from bot.config import Settings
from bot.mail import compose

NOTICES = ("done", "refused", "partial", "nodata", "extended", "fee")
# A deletion ticket's request_kind (set at intake) that asks to stop a use rather than to
# erase: its completion notice says "we stopped using" instead of "we deleted".
STOP_USE_KINDS = ("opt_out", "withdraw_consent", "stop_use")
MAX_TEXT = 4000  # characters of staff text in one notice


@dataclass(frozen=True)
class Decision:
    """What one notice says: ``notice`` (one of :data:`NOTICES`), the request's category,
    the staff text (reasons or details), and for ``extended`` the new completion date."""

    notice: str
    category: str
    text: str = ""
    received_at: datetime | None = None
    new_due_at: datetime | None = None
    stop_use: bool = False


def is_stop_use(request_kind: str | None) -> bool:
    """True for a deletion that asked us to stop a use (opt-out, withdrawn consent)."""
    return (request_kind or "") in STOP_USE_KINDS


def decision_notice(settings: Settings, thread: compose.CustomerThread, decision: Decision,
                    *, message_id: str, date: datetime) -> Message:
    """The notice of ``decision`` to the customer of ``thread``."""
    if decision.notice not in NOTICES:
        raise ValueError(f"unknown decision notice {decision.notice!r}")
    context = {
        "category": decision.category, "stop_use": decision.stop_use,
        "text": compose.clean_text(decision.text).strip()[:MAX_TEXT],
        "received_at": decision.received_at, "new_due_at": decision.new_due_at,
        # the fee, the complaints owner and the policy's name come with every customer mail
        "fee_payment": settings.requests.fee_payment,
        "fee_payment_vi": settings.requests.fee_payment_vi,
    }
    return compose.customer_mail(settings, thread, f"decision_{decision.notice}", context,
                                 message_id=message_id, date=date)
