"""Pure conversation logic: refs, routing tokens, Authentication-Results, staff commands,
quote stripping and the routing decision (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.rules.conversation import (
    Action,
    Command,
    Evidence,
    TicketView,
    auth_results_pass,
    command_help,
    decide_route,
    find_ref,
    find_routing_token,
    parse_reply_address,
    parse_staff_text,
    reply_address,
    staff_token,
    strip_quoted,
    token_is_valid,
)

BOT = "contact@cijidas.jp"
SECRET = "s3cret-for-tests-0123456789"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("subject", "expected"), [
    ("[CJD-000123] Please delete my data", "CJD-000123"),
    ("Re: Re: [cjd-000123] xoa tai khoan", "CJD-000123"),
    ("About CJD-0001234 again", "CJD-0001234"),
    ("Fwd: my earlier request CJD-000042", "CJD-000042"),
    ("XCJD-000123 is not ours", None),
    ("CJD-12345 too short", None),
    ("no ref at all", None),
    ("", None),
])
def test_find_ref(subject, expected):
    assert find_ref(subject, "CJD") == expected


def test_reply_address_round_trip():
    address = reply_address(BOT, "CJD-000123", SECRET)
    assert address.startswith("contact+cjd-000123.") and address.endswith("@cijidas.jp")
    ref, token = parse_reply_address(address, BOT)
    assert ref == "CJD-000123"
    assert token_is_valid(SECRET, ref, token)
    assert token_is_valid(SECRET, ref, token.upper())  # clients may change case


@pytest.mark.parametrize(("ref", "token", "secret", "valid"), [
    ("CJD-000124", staff_token(SECRET, "CJD-000123"), SECRET, False),  # token of another ticket
    ("CJD-000123", staff_token("other-secret-0123456", "CJD-000123"), SECRET, False),
    ("CJD-000123", "0" * 20, SECRET, False),
    ("CJD-000123", staff_token(SECRET, "CJD-000123"), "", False),  # no secret: never valid
    ("CJD-000123", staff_token(SECRET, "CJD-000123"), SECRET, True),
])
def test_token_validity(ref, token, secret, valid):
    assert token_is_valid(secret, ref, token) is valid


@pytest.mark.parametrize("address", [
    "contact@cijidas.jp", "contact+hello@cijidas.jp", "other+cjd-000123.abc@cijidas.jp",
    "contact+cjd-000123.abc@evil.example", "contact+cjd-000123.@cijidas.jp",
    "contact+cjd-12.abc@cijidas.jp",
])
def test_not_a_routing_address(address):
    assert parse_reply_address(address, BOT) is None


def test_find_routing_token_among_recipients():
    address = reply_address(BOT, "CJD-000007", SECRET)
    assert find_routing_token(["customer@example.com", address], BOT)[0] == "CJD-000007"
    assert find_routing_token(["customer@example.com", BOT], BOT) is None


TRUSTED = ["mx.cijidas.jp"]
STAFF = "privacy@cijidas.jp"


@pytest.mark.parametrize(("headers", "expected"), [
    (["mx.cijidas.jp; dkim=pass header.d=cijidas.jp header.s=s1; spf=fail"], True),
    (["mx.cijidas.jp 1; spf=pass (sender ok) smtp.mailfrom=privacy@cijidas.jp"], True),
    (["mx.cijidas.jp; spf=pass smtp.mailfrom=cijidas.jp"], True),
    (["mx.cijidas.jp; dkim=pass header.i=@cijidas.jp"], True),
    (["mx.cijidas.jp; dkim=fail header.d=cijidas.jp; spf=softfail smtp.mailfrom=cijidas.jp"],
     False),
    (["mx.cijidas.jp; dkim=pass header.d=evil.example"], False),  # signed, by someone else
    (["mx.evil.example; dkim=pass header.d=cijidas.jp"], False),  # untrusted server
    (["mx.cijidas.jp; none"], False),
    ([], False),
    # Only the topmost trusted header counts: a forged one further down cannot outrank it.
    (["mx.cijidas.jp; dkim=fail header.d=cijidas.jp",
      "mx.cijidas.jp; dkim=pass header.d=cijidas.jp"], False),
    (["other.example; dkim=pass header.d=cijidas.jp",
      "mx.cijidas.jp; dkim=pass header.d=cijidas.jp"], True),
])
def test_auth_results(headers, expected):
    assert auth_results_pass(headers, TRUSTED, STAFF) is expected


def test_auth_results_without_trusted_servers_never_pass():
    assert not auth_results_pass(["mx.cijidas.jp; dkim=pass header.d=cijidas.jp"], [], STAFF)


@pytest.mark.parametrize(("text", "commands", "answer", "problems"), [
    ("Thank you, we deleted it.", (), "Thank you, we deleted it.", 0),
    ("#close\nThank you, we deleted it.", ((Command.CLOSE, ""),), "Thank you, we deleted it.", 0),
    ("\n#note\n\nCustomer called us.", ((Command.NOTE, ""),), "Customer called us.", 0),
    ("#category Deletion\n#assign Tanaka Yuki\n#verified\n",
     ((Command.CATEGORY, "deletion"), (Command.ASSIGN, "Tanaka Yuki"), (Command.VERIFIED, "")),
     "", 0),
    ("#WAIT\nPlease send us your login ID.", ((Command.WAIT, ""),),
     "Please send us your login ID.", 0),
    ("#nte\nInternal only!", (), "Internal only!", 1),
    ("#category shoes", (), "", 1),
    ("#assign", (), "", 1),
    ("#close now please", (), "", 1),
    ("Answer first\n#close", (), "Answer first\n#close", 0),  # commands only at the top
])
def test_parse_staff_text(text, commands, answer, problems):
    result = parse_staff_text(text)
    assert result.commands == commands
    assert result.answer == answer
    assert len(result.problems) == problems


def test_command_help_lists_every_command():
    text = command_help(["unknown command: #nte"])
    assert "#nte" in text
    for command in Command:
        assert f"#{command.value}" in text


@pytest.mark.parametrize(("body", "expected"), [
    ("Dear Ms Nguyen,\nDone.\n\nRegards,\nTanaka\n\nOn Tue, 24 Nov 2026 at 12:00, Cijidas "
     "<contact@cijidas.jp> wrote:\n> New ticket CJD-000001.",
     "Dear Ms Nguyen,\nDone.\n\nRegards,\nTanaka"),
    ("Done.\n\n-----Original Message-----\nFrom: Cijidas", "Done."),
    ("Done.\n\nFrom: Cijidas <contact@cijidas.jp>\nSent: Tuesday\nTo: privacy", "Done."),
    ("Done.\n> quoted", "Done."),
    ("From: here on, we will answer in writing.\nThanks", "From: here on, we will answer in "
     "writing.\nThanks"),
])
def test_strip_quoted_keeps_the_signature(body, expected):
    assert strip_quoted(body) == expected


def view(ref="CJD-000001", customer="customer@example.com", status="open",
         closed_days_ago=None, id_=1):
    closed = NOW - timedelta(days=closed_days_ago) if closed_days_ago is not None else None
    return TicketView(id_, ref, customer, status, closed)


CUSTOMER = "customer@example.com"
STRANGER = "khach@example.vn"

ROUTES = [
    # (evidence, action, ticket ref or None, linked ref or None, reason)
    (Evidence(CUSTOMER), Action.NEW_TICKET, None, None, ""),
    (Evidence(CUSTOMER, thread_ticket=view()), Action.FOLLOWUP, "CJD-000001", None, "thread"),
    (Evidence(CUSTOMER, subject_ticket=view()), Action.FOLLOWUP, "CJD-000001", None,
     "subject-ref"),
    (Evidence(STRANGER, subject_ticket=view()), Action.NEW_TICKET, None, "CJD-000001",
     "reference-from-other-sender"),
    (Evidence(STRANGER, thread_ticket=view()), Action.NEW_TICKET, None, "CJD-000001",
     "reference-from-other-sender"),
    (Evidence(CUSTOMER, thread_ticket=view(status="closed", closed_days_ago=29)),
     Action.REOPEN, "CJD-000001", None, "thread"),
    (Evidence(CUSTOMER, thread_ticket=view(status="closed", closed_days_ago=31)),
     Action.NEW_TICKET, None, "CJD-000001", "closed-too-long-ago"),
    (Evidence(CUSTOMER, subject_ticket=view(status="closed_unverified", closed_days_ago=1)),
     Action.NEW_TICKET, None, "CJD-000001", "closed-unverified"),
    # Staff
    (Evidence(STAFF, sender_is_staff=True, token_present=True, token_ticket=view()),
     Action.STAFF_REPLY, "CJD-000001", None, "token"),
    (Evidence(STAFF, sender_is_staff=True, auth_results_pass=True, thread_ticket=view()),
     Action.STAFF_REPLY, "CJD-000001", None, "authentication-results"),
    (Evidence(STAFF, sender_is_staff=True, thread_ticket=view()),
     Action.SUSPICIOUS, "CJD-000001", None, "not-authenticated"),
    (Evidence(STAFF, sender_is_staff=True, token_present=True, subject_ticket=view()),
     Action.SUSPICIOUS, "CJD-000001", None, "invalid-token"),
    (Evidence(STAFF, sender_is_staff=True, token_present=True),
     Action.SUSPICIOUS, None, None, "invalid-token"),
    (Evidence(STAFF, (CUSTOMER,), sender_is_staff=True, auth_results_pass=True,
              subject_ticket=view()),
     Action.STAFF_COPY, "CJD-000001", None, "customer-addressed-directly"),
    (Evidence(STAFF, (CUSTOMER,), sender_is_staff=True, subject_ticket=view()),
     Action.SUSPICIOUS, "CJD-000001", None, "not-authenticated"),
    # Staff writing with no ticket reference: an ordinary new inquiry.
    (Evidence(STAFF, sender_is_staff=True, auth_results_pass=True), Action.NEW_TICKET, None,
     None, ""),
    # A valid token from someone who is not staff proves nothing.
    (Evidence(STRANGER, token_present=True, token_ticket=view()), Action.NEW_TICKET, None,
     None, ""),
]


@pytest.mark.parametrize(("evidence", "action", "ticket", "linked", "reason"), ROUTES)
def test_decide_route(evidence, action, ticket, linked, reason):
    route = decide_route(evidence, now=NOW, reopen_days=30)
    assert route.action == action
    assert (route.ticket.ref if route.ticket else None) == ticket
    assert (route.linked.ref if route.linked else None) == linked
    assert route.reason == reason
