"""Conversations: which ticket a mail belongs to, who may act on it, what staff asked. PURE.

- Refs: ``CJD-000123`` anywhere in a subject.
- Staff routing address: notifications carry ``Reply-To: contact+cjd-000123.<token>@domain``
  where ``token`` is an HMAC-SHA256 of the ref under a secret from the environment. A staff
  reply that comes back to that address proves it answers a notification about that ticket;
  the token cannot be guessed without the secret.
- Trusted ``Authentication-Results`` (RFC 8601): the other way staff authenticate.
- Staff commands: ``#close``, ``#note`` ... on their own lines at the top of a reply.
- :func:`decide_route`: new ticket, follow-up, reopen, staff reply, staff copy, or suspicious.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.rules.status import Status

TOKEN_HEX_CHARS = 20  # 80 bits: far beyond guessing by mail
CATEGORIES = ("question", "complaint", "disclosure", "correction", "deletion")

# -- refs and routing addresses -------------------------------------------------------------


def find_ref(subject: str, prefix: str) -> str | None:
    """The first ``PREFIX-000123`` in ``subject`` (any case), upper-cased; None if absent."""
    match = re.search(rf"(?<![A-Za-z0-9]){re.escape(prefix)}-(\d{{6,}})(?![0-9])", subject or "",
                      re.IGNORECASE)
    return f"{prefix.upper()}-{match.group(1)}" if match else None


def staff_token(secret: str, ref: str) -> str:
    """The HMAC token that names ``ref`` in a staff routing address (lower-case hex)."""
    digest = hmac.new(secret.encode(), ref.upper().encode(), hashlib.sha256).hexdigest()
    return digest[:TOKEN_HEX_CHARS]


def reply_address(bot_address: str, ref: str, secret: str) -> str:
    """``contact+cjd-000123.<token>@domain`` (lower case: parsed addresses are lower-cased)."""
    local, _, domain = bot_address.partition("@")
    return f"{local}+{ref.lower()}.{staff_token(secret, ref)}@{domain}".lower()


def parse_reply_address(address: str, bot_address: str) -> tuple[str, str] | None:
    """``(REF, token)`` from a routing address of the bot, else None."""
    local, _, domain = address.lower().partition("@")
    bot_local, _, bot_domain = bot_address.lower().partition("@")
    base, plus, detail = local.partition("+")
    if domain != bot_domain or base != bot_local or not plus:
        return None
    ref, dot, token = detail.rpartition(".")
    if not dot or not re.fullmatch(r"[a-z0-9]+-\d{6,}", ref) or not token:
        return None
    return ref.upper(), token


def token_is_valid(secret: str, ref: str, token: str) -> bool:
    """True when ``token`` is the HMAC of ``ref``; always False without a secret."""
    if not secret:
        return False
    return hmac.compare_digest(staff_token(secret, ref), token.lower())


def find_routing_token(addresses: Iterable[str], bot_address: str) -> tuple[str, str] | None:
    """The first ``(REF, token)`` among the recipient addresses of a mail."""
    for address in addresses:
        parsed = parse_reply_address(address, bot_address)
        if parsed:
            return parsed
    return None


# -- Authentication-Results (RFC 8601) ------------------------------------------------------

def auth_results_pass(header_values: Sequence[str], trusted_ids: Sequence[str],
                      sender: str) -> bool:
    """True when the topmost header from a trusted ``authserv-id`` says dkim=pass for the
    sender's domain (``header.d``/``header.i``) or spf=pass for it (``smtp.mailfrom``).

    Only the topmost trusted header counts: the receiving server prepends its own, so one a
    sender forged further down can never outrank it.
    """
    trusted = {t.lower() for t in trusted_ids}
    domain = sender.rpartition("@")[2].lower()
    if not trusted or not domain:
        return False
    for value in header_values:
        server, results = _split_auth_results(value)
        if server in trusted:
            return any(_passes_for(method, props, domain) for method, props in results)
    return False


def _split_auth_results(value: str) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    text = re.sub(r"\([^()]*\)", " ", value)  # comments, e.g. "(signature was verified)"
    head, *parts = [p.strip() for p in text.split(";")]
    server = head.split()[0].lower() if head.split() else ""
    results = []
    for part in parts:
        pairs = dict(re.findall(r"([\w.-]+)\s*=\s*(\S+)", part.lower()))
        for method in ("dkim", "spf"):
            if method in pairs:
                results.append((f"{method}={pairs[method]}", pairs))
    return server, results


def _passes_for(method: str, props: dict[str, str], domain: str) -> bool:
    if method == "dkim=pass":
        signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
        return signer.strip('"') == domain
    if method == "spf=pass":
        return props.get("smtp.mailfrom", "").strip('"').rpartition("@")[2] == domain
    return False


# -- staff commands -------------------------------------------------------------------------

class Command(StrEnum):
    NOTE = "note"
    CLOSE = "close"
    REOPEN = "reopen"
    CATEGORY = "category"
    VERIFIED = "verified"
    ASSIGN = "assign"
    WAIT = "wait"


COMMAND_HELP: dict[Command, str] = {
    Command.NOTE: "#note - internal note; nothing is sent to the customer",
    Command.CLOSE: "#close - close the ticket",
    Command.REOPEN: "#reopen - reopen a closed ticket",
    Command.CATEGORY: "#category " + "|".join(CATEGORIES) + " - correct the category",
    Command.VERIFIED: "#verified - you have confirmed the customer's identity",
    Command.ASSIGN: "#assign NAME - who handles the ticket",
    Command.WAIT: "#wait - we are waiting for the customer",
}


@dataclass(frozen=True)
class StaffInstruction:
    """A staff reply taken apart: commands from the top, the answer below, and problems."""

    commands: tuple[tuple[Command, str], ...] = ()
    answer: str = ""
    problems: tuple[str, ...] = ()

    def has(self, command: Command) -> bool:
        return any(name == command for name, _ in self.commands)


def parse_staff_text(text: str) -> StaffInstruction:
    """Leading ``#command`` lines (blank lines between them allowed), then the answer."""
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[tuple[Command, str]] = []
    problems: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if line and not line.startswith("#"):
            break
        if line:
            _parse_command_line(line, commands, problems)
        index += 1
    answer = "\n".join(lines[index:]).strip()
    return StaffInstruction(tuple(commands), answer, tuple(problems))


def _parse_command_line(line: str, commands: list[tuple[Command, str]],
                        problems: list[str]) -> None:
    name, _, argument = line[1:].strip().partition(" ")
    name, argument = name.rstrip(":").lower(), argument.strip()
    try:
        command = Command(name)
    except ValueError:
        problems.append(f"unknown command: {line[:60]}")
        return
    problem = _argument_problem(command, argument)
    if problem:
        problems.append(f"{line[:60]}: {problem}")
    else:
        commands.append((command, argument.lower() if command == Command.CATEGORY else argument))


def _argument_problem(command: Command, argument: str) -> str | None:
    if command == Command.CATEGORY and argument.lower() not in CATEGORIES:
        return "the category must be one of " + ", ".join(CATEGORIES)
    if command == Command.ASSIGN and not argument:
        return "name who should handle the ticket"
    if command not in (Command.CATEGORY, Command.ASSIGN, Command.NOTE) and argument:
        return "takes no argument"
    return None


def strip_quoted(text: str) -> str:
    """The text above the quoted earlier mail (signature kept: it is part of the answer)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        if _starts_quote(line.strip(), lines[index + 1:index + 5]):
            lines = lines[:index]
            break
    return "\n".join(lines).strip()


_ATTRIBUTION = re.compile(r"^(?:on\s.{0,400}\swrote|v[àa]o\s.{0,400}\s(?:đã|da)\s+vi[ếe]t"
                          r"|\d{4}年\d{1,2}月\d{1,2}日.{0,400})\s*[:：]$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^-{2,}\s*(?:original message|forwarded message|thư gốc)\s*-{2,}$"
                        r"|^_{8,}$", re.IGNORECASE)
_HEADER_BLOCK = re.compile(r"^(?:from|từ|差出人)\s*[:：]\s*\S", re.IGNORECASE)
_SENT = re.compile(r"^(?:sent|date|đã gửi|送信日時)\s*[:：]", re.IGNORECASE)


def _starts_quote(line: str, following: list[str]) -> bool:
    if line.startswith(">") or _SEPARATOR.match(line):
        return True
    wrapped = f"{line} {following[0].strip()}" if following else line
    if re.search(r"\d", line) and (_ATTRIBUTION.match(line) or _ATTRIBUTION.match(wrapped)):
        return True
    return bool(_HEADER_BLOCK.match(line)) and any(_SENT.match(f.strip()) for f in following)


def command_help(problems: Sequence[str]) -> str:
    """Text of the reply to a staff member whose commands were not understood."""
    lines = ["Your reply was not processed: nothing was sent to the customer and no command",
             "was run. Please fix the commands and reply again.", ""]
    lines += [f"- {p}" for p in problems]
    lines += ["", "Valid commands (on their own lines at the top of your reply):"]
    lines += [f"  {text}" for text in COMMAND_HELP.values()]
    return "\n".join(lines) + "\n"


# -- routing --------------------------------------------------------------------------------

class Action(StrEnum):
    NEW_TICKET = "new_ticket"    # optionally linked to an older ticket
    FOLLOWUP = "followup"        # the customer's mail joins their open ticket
    REOPEN = "reopen"            # ... or their recently closed ticket, which reopens
    STAFF_REPLY = "staff_reply"  # authenticated staff: commands and/or answer to relay
    STAFF_COPY = "staff_copy"    # authenticated staff wrote to the customer directly (Cc/Bcc)
    SUSPICIOUS = "suspicious"    # claims to be staff, cannot be authenticated
    DUPLICATE = "duplicate"      # already processed (same Message-ID or raw bytes)
    MACHINE = "machine"          # no human wrote it: recorded, never answered


STAFF_ACTIONS = frozenset({Action.STAFF_REPLY, Action.STAFF_COPY, Action.SUSPICIOUS})


@dataclass(frozen=True)
class TicketView:
    """What routing needs to know about a ticket."""

    id: int
    ref: str
    customer_email: str
    status: str
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Evidence:
    """What a mail says about itself, and the tickets its references point at."""

    sender: str
    recipients: tuple[str, ...] = ()          # To + Cc
    sender_is_staff: bool = False
    auth_results_pass: bool = False
    token_ticket: TicketView | None = None    # from a routing address with a VALID token
    token_present: bool = False               # some routing address, valid or not
    thread_ticket: TicketView | None = None   # from In-Reply-To/References
    subject_ticket: TicketView | None = None  # from the ref in the subject


@dataclass(frozen=True)
class Route:
    action: Action
    ticket: TicketView | None = None   # the ticket the mail joins or concerns
    linked: TicketView | None = None   # for NEW_TICKET: the older ticket it refers to
    reason: str = ""


def decide(evidence: Evidence, *, known: bool, machine_reason: str | None, now: datetime,
           reopen_days: int) -> Route:
    """The one routing decision for an inbound mail: duplicate, machine mail, or where a
    human mail goes (:func:`decide_route`)."""
    if known:
        return Route(Action.DUPLICATE, reason="already-processed")
    if machine_reason:
        return Route(Action.MACHINE, reason=machine_reason)
    return decide_route(evidence, now=now, reopen_days=reopen_days)


def decide_route(evidence: Evidence, *, now: datetime, reopen_days: int) -> Route:
    """Where a (human) mail goes; see the module docstring and the README's Staff guide."""
    if evidence.sender_is_staff:
        staff_route = _staff_route(evidence)
        if staff_route:
            return staff_route
    return _customer_route(evidence, now, reopen_days)


def _staff_route(ev: Evidence) -> Route | None:
    ticket = ev.token_ticket or ev.thread_ticket or ev.subject_ticket
    if ticket is None:
        if ev.token_present:
            return Route(Action.SUSPICIOUS, None, reason="invalid-token")
        return None  # staff writing a new inquiry of their own: an ordinary new ticket
    authenticated = ev.token_ticket is not None or ev.auth_results_pass
    if not authenticated:
        reason = "invalid-token" if ev.token_present else "not-authenticated"
        return Route(Action.SUSPICIOUS, ticket, reason=reason)
    if ticket.customer_email and ticket.customer_email in ev.recipients:
        return Route(Action.STAFF_COPY, ticket, reason="customer-addressed-directly")
    return Route(Action.STAFF_REPLY, ticket,
                 reason="token" if ev.token_ticket else "authentication-results")


def _customer_route(ev: Evidence, now: datetime, reopen_days: int) -> Route:
    ticket = ev.thread_ticket or ev.subject_ticket
    if ticket is None:
        return Route(Action.NEW_TICKET)
    if ticket.customer_email != ev.sender:
        # Nobody joins (and so reads about) another customer's case by quoting its ref.
        return Route(Action.NEW_TICKET, linked=ticket, reason="reference-from-other-sender")
    how = "thread" if ev.thread_ticket else "subject-ref"
    if ticket.status == Status.CLOSED_UNVERIFIED:
        return Route(Action.NEW_TICKET, linked=ticket, reason="closed-unverified")
    if ticket.status == Status.CLOSED:
        if ticket.closed_at and now - ticket.closed_at <= timedelta(days=reopen_days):
            return Route(Action.REOPEN, ticket, reason=how)
        return Route(Action.NEW_TICKET, linked=ticket, reason="closed-too-long-ago")
    return Route(Action.FOLLOWUP, ticket, reason=how)
