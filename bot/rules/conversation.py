"""Conversations: which ticket a mail belongs to, who may act on it, what staff asked. PURE.

- Refs: ``CJD-000123`` anywhere in a subject.
- Staff routing address: each staff recipient's notification carries
  ``Reply-To: contact+cjd-000123.<yyyymmdd>.<mac>@domain``, where ``mac`` is an HMAC-SHA256
  of (ref, that staff address, the expiry day) under a secret from the environment. A reply
  to it from that staff address, on or before that day, proves it answers a notification
  about that ticket; the token cannot be guessed without the secret, does not work for
  another address, and expires. It is a credential: never stored where the customer or
  datasette can read it (:func:`without_routing_addresses`).
- Trusted ``Authentication-Results`` (RFC 8601, :mod:`bot.rules.authres`): the other way
  staff authenticate, aligned with the exact staff address.
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
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from bot.rules import authres
from bot.rules.status import Status

TOKEN_HEX_CHARS = 20  # 80 bits: far beyond guessing by mail
CATEGORIES = ("question", "complaint", "disclosure", "correction", "deletion")

# -- refs and routing addresses -------------------------------------------------------------


def find_ref(subject: str, prefix: str) -> str | None:
    """The first ``PREFIX-000123`` in ``subject`` (any case), upper-cased; None if absent."""
    match = re.search(rf"(?<![A-Za-z0-9]){re.escape(prefix)}-(\d{{6,}})(?![0-9])", subject or "",
                      re.IGNORECASE)
    return f"{prefix.upper()}-{match.group(1)}" if match else None


def token_expiry(now: datetime, days: int) -> date:
    """The last (UTC) day on which a token minted at ``now`` is accepted."""
    today = now.astimezone(UTC).date() if now.tzinfo else now.date()
    return today + timedelta(days=days)


def staff_token(secret: str, ref: str, staff_address: str, expires: date) -> str:
    """The HMAC (lower-case hex) binding ``ref`` to one staff address until ``expires``."""
    message = f"{ref.upper()}|{staff_address.lower()}|{expires:%Y%m%d}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return digest[:TOKEN_HEX_CHARS]


def reply_address(bot_address: str, ref: str, secret: str, staff_address: str,
                  expires: date) -> str:
    """``contact+cjd-000123.<yyyymmdd>.<mac>@domain`` for one staff recipient (lower case:
    parsed addresses are lower-cased)."""
    local, _, domain = bot_address.partition("@")
    mac = staff_token(secret, ref, staff_address, expires)
    return f"{local}+{ref.lower()}.{expires:%Y%m%d}.{mac}@{domain}".lower()


@dataclass(frozen=True)
class RoutingToken:
    """What a routing address says; nothing in it is trusted before :func:`check_token`."""

    ref: str
    expires: date | None  # None: the old format without an expiry day (never accepted)
    mac: str


def parse_reply_address(address: str, bot_address: str) -> RoutingToken | None:
    """The :class:`RoutingToken` of a routing address of the bot, else None."""
    local, _, domain = address.lower().partition("@")
    bot_local, _, bot_domain = bot_address.lower().partition("@")
    base, plus, detail = local.partition("+")
    if domain != bot_domain or base != bot_local or not plus:
        return None
    match = re.fullmatch(r"([a-z0-9]+-\d{6,})\.(?:(\d{8})\.)?([0-9a-z]+)", detail)
    if not match:
        return None
    ref, day, mac = match.groups()
    return RoutingToken(ref.upper(), _day(day) if day else None, mac)


def _day(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def find_routing_token(addresses: Iterable[str], bot_address: str) -> RoutingToken | None:
    """The first routing token among the recipient addresses of a mail."""
    for address in addresses:
        parsed = parse_reply_address(address, bot_address)
        if parsed:
            return parsed
    return None


def check_token(secret: str, token: RoutingToken, sender: str,
                staff_addresses: Iterable[str]) -> str:
    """``""`` when ``token`` was minted for ``sender``; else why not (a ``processed`` reason):
    ``invalid-token`` (forged, or no secret), ``token-old-format`` (no expiry day),
    ``token-of-other-address`` (minted for another staff address). Expiry is checked by
    :func:`decide_route`, which knows the time."""
    if not secret:
        return "invalid-token"
    if token.expires is None:
        return "token-old-format"
    if _mac_matches(secret, token, sender):
        return ""
    if any(_mac_matches(secret, token, other) for other in staff_addresses
           if other.lower() != sender.lower()):
        return "token-of-other-address"
    return "invalid-token"


def _mac_matches(secret: str, token: RoutingToken, address: str) -> bool:
    assert token.expires is not None
    expected = staff_token(secret, token.ref, address, token.expires)
    return hmac.compare_digest(expected, token.mac.lower())


def without_routing_addresses(text: str, bot_address: str) -> str:
    """``text`` with every plus-address of the bot replaced by the bot's plain address, for
    anything stored where the customer or datasette can read it (tokens are credentials)."""
    local, _, domain = bot_address.partition("@")
    if not local or not domain or "+" not in text:
        return text
    pattern = (rf"(?<![\w.+-]){re.escape(local)}\+[^\s@<>,;\"()]*@{re.escape(domain)}"
               r"(?![\w-]|\.[\w-])")  # not a longer domain (contact+x@cijidas.jp.evil)
    return re.sub(pattern, bot_address, text, flags=re.IGNORECASE)


# -- Authentication-Results (RFC 8601) ------------------------------------------------------

def auth_results_pass(raw_values: Sequence[str], trusted_ids: Sequence[str], sender: str,
                      *, domain_signs_for_all: bool = False) -> bool:
    """True when the topmost header of a trusted ``authserv-id`` proves the exact staff
    address ``sender`` (:func:`bot.rules.authres.proves_sender`: DMARC pass for its domain,
    or DKIM pass for ``header.i`` = the address; SPF never).

    ``raw_values`` are the RAW header values (``InboundMail.auth_results_raw``): decoding
    encoded words first would let the envelope sender spell a pass.
    """
    results = authres.topmost_trusted(raw_values, trusted_ids)
    return authres.proves_sender(results, sender,
                                 domain_signs_for_all=domain_signs_for_all) is not None


# -- staff commands -------------------------------------------------------------------------

class Command(StrEnum):
    NOTE = "note"
    CLOSE = "close"
    REOPEN = "reopen"
    CATEGORY = "category"
    VERIFIED = "verified"
    ASSIGN = "assign"
    WAIT = "wait"
    # decisions: the recorded end of a request, or a step towards it (bot.rules.decisions)
    DONE = "done"
    REFUSE = "refuse"
    PARTIAL = "partial"
    NODATA = "nodata"
    EXTEND = "extend"
    FEE = "fee"


COMMAND_HELP: dict[Command, str] = {
    Command.NOTE: "#note - internal note; nothing is sent to the customer",
    Command.CLOSE: "#close - close the ticket",
    Command.REOPEN: "#reopen - reopen a closed ticket",
    Command.CATEGORY: "#category " + "|".join(CATEGORIES) + " - correct the category",
    Command.VERIFIED: "#verified - you have confirmed the customer's identity",
    Command.ASSIGN: "#assign NAME - who handles the ticket",
    Command.WAIT: "#wait - we are waiting for the customer",
    Command.DONE: "#done [TEXT] - the request is carried out: completion notice, ticket closed",
    Command.REFUSE: "#refuse REASON - refuse the request, giving the reasons; ticket closed",
    Command.PARTIAL: "#partial REASON - carried out in part, giving the reasons; ticket closed",
    Command.NODATA: "#nodata [TEXT] - we hold no personal information about the customer",
    Command.EXTEND: "#extend DAYS REASON - move the completion deadline, tell the customer why",
    Command.FEE: "#fee [TEXT] - send the disclosure fee notice (amount, how to pay)",
}
# Commands whose argument is free text that may be empty, or must be given.
OPTIONAL_TEXT = frozenset({Command.NOTE, Command.DONE, Command.NODATA, Command.FEE})
REQUIRED_TEXT = {Command.ASSIGN: "name who should handle the ticket",
                 Command.REFUSE: "give the reasons (the customer reads them)",
                 Command.PARTIAL: "give the reasons (the customer reads them)"}
_EXTEND = re.compile(r"(\d{1,3})\s+(\S.*)")


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
    if command in REQUIRED_TEXT and not argument:
        return REQUIRED_TEXT[command]
    if command == Command.EXTEND:
        days = extend_argument(argument)
        if days is None or days[0] < 1:
            return "write #extend DAYS REASON, e.g. #extend 14 we must ask our processor"
        return None
    if command not in (Command.CATEGORY, *REQUIRED_TEXT, *OPTIONAL_TEXT) and argument:
        return "takes no argument"
    return None


def extend_argument(argument: str) -> tuple[int, str] | None:
    """``"14 we must ask our processor"`` -> ``(14, "we must ask our processor")``."""
    match = _EXTEND.fullmatch(argument.strip())
    return (int(match.group(1)), match.group(2).strip()) if match else None


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
    token_ticket: TicketView | None = None    # from a routing address minted for the sender
    token_present: bool = False               # some routing address, valid or not
    token_problem: str = ""                   # why the token is not the sender's (check_token)
    token_expires: date | None = None         # its last valid day (checked against ``now``)
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
        staff_route = _staff_route(evidence, now)
        if staff_route:
            return staff_route
    return _customer_route(evidence, now, reopen_days)


def _staff_route(ev: Evidence, now: datetime) -> Route | None:
    # A token that is not the sender's, or expired, authenticates nothing; trusted
    # Authentication-Results still can (then the thread or subject names the ticket).
    problem = _token_problem(ev, now)
    token_ticket = None if problem else ev.token_ticket
    # ev.token_ticket is set only when the token was minted for this sender (maybe expired)
    ticket = ev.token_ticket or ev.thread_ticket or ev.subject_ticket
    if ticket is None:
        if ev.token_present:
            return Route(Action.SUSPICIOUS, None, reason=problem)
        return None  # staff writing a new inquiry of their own: an ordinary new ticket
    if token_ticket is None and not ev.auth_results_pass:
        reason = problem if ev.token_present else "not-authenticated"
        return Route(Action.SUSPICIOUS, ticket, reason=reason)
    if ticket.customer_email and ticket.customer_email in ev.recipients:
        return Route(Action.STAFF_COPY, ticket, reason="customer-addressed-directly")
    return Route(Action.STAFF_REPLY, ticket,
                 reason="token" if token_ticket else "authentication-results")


def _token_problem(ev: Evidence, now: datetime) -> str:
    """Why the mail's routing token does not authenticate it ("" when it does)."""
    if not ev.token_present:
        return ""
    if ev.token_problem:
        return ev.token_problem
    if ev.token_ticket is None:
        return "invalid-token"
    if ev.token_expires is None or token_expiry(now, 0) > ev.token_expires:
        return "token-expired"
    return ""


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
