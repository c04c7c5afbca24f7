"""Identity verification decisions. PURE: no I/O, no clock (``now`` is passed in).

- :func:`code_digest` / :func:`code_matches`: codes are stored as HMAC-SHA256 under a
  server-side key; rows written before that (unkeyed sha256) still match until they expire.
- :func:`reply_standing`: how much a customer's reply may do to the code. Only a reply
  that names one of the bot's own mails to the customer (the acknowledgement, a
  verification mail) in In-Reply-To/References is *threaded*: its wrong numbers cost the
  customer's tries. A mail that only carries the ref (from the customer's address) may
  confirm with the right code, but its wrong numbers cost nothing of the customer's tries
  (a separate, equally small budget bounds guessing); any other mail's numbers are ignored.
- :func:`check_code`: the verdict on one reply.
- :func:`stop_reason`: reminders and expiry stop once staff answered, identity was
  confirmed, the request was completed/refused/closed, or the category is not a request type.
- :func:`category_change`: what a ``#category`` change means for verification.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.rules.requests import REQUEST_CATEGORIES

PENDING = "pending"
NOT_REQUIRED = "not_required"
CONFIRMED = "email_confirmed"
STAFF_VERIFIED = "staff_verified"
FAILED = "failed"
DIGEST_PREFIX = "hmac-sha256:"
# Eight digits, or two groups of four ("4815 1623") that are not part of a longer
# grouped number such as a phone number ("090-1234-5678").
_CODE_LIKE = re.compile(r"(?<!\d)\d{8}(?!\d)"
                        r"|(?<!\d)(?<!\d[ .\-])\d{4}[ .\-]\d{4}(?!\d)(?![ .\-]\d)")
_DOCUMENT_SUFFIXES = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".heic", ".heif", ".tif",
                      ".tiff", ".webp", ".bmp")


class Verdict(StrEnum):
    """What a customer reply does to a pending verification."""

    NO_CODE = "no-code"          # nothing that looks like a code: an ordinary follow-up
    CONFIRMED = "confirmed"
    WRONG = "wrong"              # tries remain
    TOO_MANY = "too-many-attempts"
    EXPIRED = "expired"


@dataclass(frozen=True)
class CodeCheck:
    verdict: Verdict
    tries_left: int


class Due(StrEnum):
    """What the scheduled pass owes a pending verification."""

    REMIND = "remind"
    CLOSE = "close"


class Standing(StrEnum):
    """How far a customer's reply may act on the code (see the module docstring)."""

    THREADED = "threaded"    # names our mail: codes count, wrong ones cost tries
    REF_ONLY = "ref-only"    # the ref from the customer's address: wrong ones cost no try
    NONE = "none"            # neither: numbers in it are not code attempts


class CategoryChange(StrEnum):
    START = "start"          # into a request type: issue a code, tell the customer
    CANCEL = "cancel"        # away from one: the pending code is cancelled


# -- codes ---------------------------------------------------------------------------------

def code_digest(key: bytes, ref: str, code: str) -> str:
    """What is stored of a code: HMAC-SHA256 of ``ref:code`` under the server-side key."""
    mac = hmac.new(key, f"{ref}:{code}".encode(), hashlib.sha256).hexdigest()
    return DIGEST_PREFIX + mac


def legacy_digest(ref: str, code: str) -> str:
    """The unkeyed sha256 stored before codes were keyed (kept verifiable until expiry)."""
    return hashlib.sha256(f"{ref}:{code}".encode()).hexdigest()


def code_matches(stored: str | None, key: bytes, ref: str, code: str) -> bool:
    """True when ``code`` is the one whose digest is ``stored`` (constant-time compare)."""
    if not stored:
        return False
    expected = code_digest(key, ref, code) if stored.startswith(DIGEST_PREFIX) \
        else legacy_digest(ref, code)
    return hmac.compare_digest(expected, stored)


def code_candidates(text: str) -> list[str]:
    """Distinct code-length digit runs in the customer's own (unquoted) lines, in order.

    Full-width digits (Japanese input methods) count; phone numbers do not.
    """
    found: list[str] = []
    for line in unicodedata.normalize("NFKC", text or "").splitlines():
        if line.lstrip().startswith(">"):
            continue
        for match in _CODE_LIKE.findall(line):
            digits = re.sub(r"\D", "", match)
            if digits not in found:
                found.append(digits)
    return found


def check_code(text: str, *, ref: str, code_hash: str | None, key: bytes,
               expires_at: datetime, attempts_left: int, now: datetime) -> CodeCheck:
    """Judge a reply. Each distinct wrong candidate costs one try, so a mail full of
    numbers cannot guess the code faster than ``attempts_left`` allows."""
    candidates = code_candidates(text)
    if not candidates:
        return CodeCheck(Verdict.NO_CODE, attempts_left)
    if now >= expires_at:
        return CodeCheck(Verdict.EXPIRED, attempts_left)
    tried = candidates[:max(attempts_left, 0)]
    for used, candidate in enumerate(tried, start=1):
        if code_matches(code_hash, key, ref, candidate):
            return CodeCheck(Verdict.CONFIRMED, attempts_left - used)
    left = max(attempts_left - len(tried), 0)
    return CodeCheck(Verdict.WRONG if left else Verdict.TOO_MANY, left)


def reply_standing(referenced: Iterable[str | None], our_mail_ids: Iterable[str], *,
                   carries_ref: bool, from_customer: bool) -> Standing:
    """Whether a reply names one of our mails to the customer, only carries the ref from
    the customer's address, or neither (see :class:`Standing`)."""
    ours = {_bare_id(m) for m in our_mail_ids if m}
    if from_customer and any(_bare_id(r) in ours for r in referenced if r):
        return Standing.THREADED
    if from_customer and carries_ref:
        return Standing.REF_ONLY
    return Standing.NONE


def _bare_id(value: str) -> str:
    return value.strip().strip("<>").lower()


# -- the scheduled pass --------------------------------------------------------------------

def stop_reason(ticket: Mapping[str, Any]) -> str | None:
    """Why reminders and expiry no longer apply to ``ticket`` (None: they still do).

    ``completed_at`` and ``decision`` (done, refused, ...) are read with ``.get``: a
    ticket row from before the completion clock has neither.
    """
    if ticket.get("verification_status") != PENDING:
        return "not-pending"
    if ticket.get("category") not in REQUEST_CATEGORIES:
        return "not-a-request"
    for column, reason in (("first_response_at", "staff-answered"),
                           ("completed_at", "completed"), ("decision", "decided"),
                           ("closed_at", "closed")):
        if ticket.get(column):
            return reason
    return None


def may_close_unverified(ticket: Mapping[str, Any]) -> bool:
    """A failed code closes the ticket only while staff have not taken it up yet."""
    return not any(ticket.get(c) for c in ("first_response_at", "completed_at", "decision",
                                           "closed_at"))


def due_action(*, code_created_at: datetime, code_expires_at: datetime,
               reminded_at: datetime | None, reminder_after: timedelta,
               now: datetime) -> Due | None:
    """Close at expiry; before that, one reminder ``reminder_after`` the code was sent."""
    if now >= code_expires_at:
        return Due.CLOSE
    if reminded_at is None and now >= code_created_at + reminder_after:
        return Due.REMIND
    return None


def category_change(new: str, verification_status: str | None) -> CategoryChange | None:
    """Into a request type without a code yet -> START; a pending code on a category that
    is no longer a request type -> CANCEL; anything else (already confirmed, failed,
    pending on a request type) stays as it is."""
    status = verification_status or NOT_REQUIRED
    if new in REQUEST_CATEGORIES and status == NOT_REQUIRED:
        return CategoryChange.START
    if new not in REQUEST_CATEGORIES and status == PENDING:
        return CategoryChange.CANCEL
    return None


# -- attachments and times -----------------------------------------------------------------

def is_document(content_type: str, filename: str) -> bool:
    """Images and PDFs: what an identity document sent by mail usually looks like."""
    kind = (content_type or "").lower()
    name = (filename or "").lower()
    return kind.startswith("image/") or kind == "application/pdf" \
        or name.endswith(_DOCUMENT_SUFFIXES)


def parse_utc(value: str | None) -> datetime | None:
    """A database time (``2026-11-24T03:00:00Z``) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
