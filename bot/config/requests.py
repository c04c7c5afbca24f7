"""The ``[requests]`` section of config.toml and its checks (imported by :mod:`bot.config`).

The second clock of a disclosure, correction or deletion request: by when it must be
carried out (``completion_due_at``), how often and how far staff may extend that date
(``#extend``), and what the fee notice (``#fee``) tells the customer about paying. The
legal sources of the defaults are in the README ("Deadlines and escalation"). Kept apart
from :mod:`bot.config` so that module stays short; it imports nothing of the bot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

REQUEST_CATEGORIES = ("disclosure", "correction", "deletion")


@dataclass(frozen=True)
class RequestsSection:
    # Calendar days from receipt to completion (APPI: "without delay"; company figure).
    disclosure_days: int = 14
    correction_days: int = 14
    deletion_days: int = 14
    # Vietnamese customers (Decree 356/2025; see README for what could be verified).
    disclosure_days_vi: int = 10
    correction_days_vi: int = 10
    deletion_days_vi: int = 10
    remind_days_before: int = 2  # staff.notify hear this many days before completion is due
    max_extensions: int = 1  # #extend per ticket (Decree 356: once)
    max_extension_days: int = 15  # days one #extend may add (Decree 356: at most 15)
    fee_payment: str = ("Please reply to this email if you wish to proceed; we will then "
                        "send you the bank transfer details. Please quote the request "
                        "reference with your payment.")
    fee_payment_vi: str = ("Nếu Quý khách đồng ý, xin vui lòng trả lời thư này; chúng tôi sẽ "
                           "gửi thông tin chuyển khoản. Xin ghi mã yêu cầu khi thanh toán.")


def completion_days(conf: RequestsSection, category: str, language: str,
                    bilingual: bool = False) -> int | None:
    """Calendar days to complete a request of ``category`` (None: not a request).

    Vietnamese customers get the ``*_vi`` figure; a bilingual ticket (language unsure) the
    shorter of the two, so that either law is met.
    """
    if category not in REQUEST_CATEGORIES:
        return None
    days = getattr(conf, f"{category}_days")
    vi_days = getattr(conf, f"{category}_days_vi")
    if bilingual:
        return min(days, vi_days)
    return vi_days if language == "vi" else days


def requests_problems(conf: RequestsSection) -> Iterator[str]:
    """What is wrong with ``[requests]`` beyond the types."""
    for category in REQUEST_CATEGORIES:
        for key in (f"{category}_days", f"{category}_days_vi"):
            if not 1 <= getattr(conf, key) <= 365:
                yield f"requests.{key}: must be 1-365 (calendar days)"
    if conf.remind_days_before < 0:
        yield "requests.remind_days_before: must be 0 or more"
    if conf.max_extensions < 0:
        yield "requests.max_extensions: must be 0 (no extensions) or more"
    if conf.max_extension_days < 1:
        yield "requests.max_extension_days: must be at least 1"
