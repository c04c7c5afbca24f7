"""Pure conversation logic: refs, routing tokens, Authentication-Results, staff commands,
quote stripping and the routing decision (table-driven)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.rules import authres
from bot.rules.conversation import (
    Action,
    Command,
    Evidence,
    RoutingToken,
    TicketView,
    auth_results_pass,
    check_token,
    command_help,
    decide_route,
    find_ref,
    find_routing_token,
    parse_reply_address,
    parse_staff_text,
    reply_address,
    strip_quoted,
    token_expiry,
    without_routing_addresses,
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


EXPIRES = date(2026, 12, 24)
OTHER_STAFF = "dpo@cijidas.jp"
STAFF_ADDRESSES = ["privacy@cijidas.jp", OTHER_STAFF]


def test_reply_address_round_trip():
    address = reply_address(BOT, "CJD-000123", SECRET, "Privacy@cijidas.jp", EXPIRES)
    assert address.startswith("contact+cjd-000123.20261224.") and address.endswith("@cijidas.jp")
    token = parse_reply_address(address, BOT)
    assert (token.ref, token.expires) == ("CJD-000123", EXPIRES)
    assert check_token(SECRET, token, "privacy@cijidas.jp", STAFF_ADDRESSES) == ""
    upper = RoutingToken(token.ref, token.expires, token.mac.upper())  # clients may change case
    assert check_token(SECRET, upper, "privacy@cijidas.jp", STAFF_ADDRESSES) == ""


def _token(ref="CJD-000123", staff="privacy@cijidas.jp", expires=EXPIRES, secret=SECRET):
    return parse_reply_address(reply_address(BOT, ref, secret, staff, expires), BOT)


@pytest.mark.parametrize(("token", "sender", "secret", "problem"), [
    (_token(), "privacy@cijidas.jp", SECRET, ""),
    # the MAC binds the ref, the staff address and the expiry day: change any and it fails
    (RoutingToken("CJD-000124", EXPIRES, _token().mac), "privacy@cijidas.jp", SECRET,
     "invalid-token"),
    (RoutingToken("CJD-000123", date(2027, 1, 24), _token().mac), "privacy@cijidas.jp", SECRET,
     "invalid-token"),
    (_token(secret="other-secret-0123456"), "privacy@cijidas.jp", SECRET, "invalid-token"),
    (RoutingToken("CJD-000123", EXPIRES, "0" * 20), "privacy@cijidas.jp", SECRET,
     "invalid-token"),
    (_token(), "privacy@cijidas.jp", "", "invalid-token"),  # no secret: never valid
    # minted for another staff member: a forwarded notification is no credential
    (_token(staff=OTHER_STAFF), "privacy@cijidas.jp", SECRET, "token-of-other-address"),
    (_token(), OTHER_STAFF, SECRET, "token-of-other-address"),
    # the old format (ref.mac, no expiry day) is no longer accepted
    (parse_reply_address("contact+cjd-000123.0123456789abcdef0123@cijidas.jp", BOT),
     "privacy@cijidas.jp", SECRET, "token-old-format"),
])
def test_check_token(token, sender, secret, problem):
    assert check_token(secret, token, sender, STAFF_ADDRESSES) == problem


def test_token_expiry_day():
    assert token_expiry(NOW, 30) == date(2026, 12, 24)
    # the UTC day: 08:30 on the 25th in Tokyo is 23:30 on the 24th in UTC
    assert token_expiry(datetime(2026, 11, 25, 8, 30, tzinfo=ZoneInfo("Asia/Tokyo")), 0) \
        == date(2026, 11, 24)


@pytest.mark.parametrize("address", [
    "contact@cijidas.jp", "contact+hello@cijidas.jp", "other+cjd-000123.abc@cijidas.jp",
    "contact+cjd-000123.abc@evil.example", "contact+cjd-000123.@cijidas.jp",
    "contact+cjd-12.abc@cijidas.jp", "contact+cjd-000123.2026122.abc@cijidas.jp.evil",
])
def test_not_a_routing_address(address):
    assert parse_reply_address(address, BOT) is None


def test_find_routing_token_among_recipients():
    address = reply_address(BOT, "CJD-000007", SECRET, "privacy@cijidas.jp", EXPIRES)
    assert find_routing_token(["customer@example.com", address], BOT).ref == "CJD-000007"
    assert find_routing_token(["customer@example.com", BOT], BOT) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("contact+cjd-000001.20261224.0123456789abcdef0123@cijidas.jp", BOT),
    ("To: Cijidas <Contact+CJD-000001.20261224.0123@Cijidas.JP>, privacy@cijidas.jp",
     f"To: Cijidas <{BOT}>, privacy@cijidas.jp"),
    ("write to contact@cijidas.jp", "write to contact@cijidas.jp"),
    ("mycontact+x@cijidas.jp and contact+x@cijidas.jp.example", "mycontact+x@cijidas.jp and "
     "contact+x@cijidas.jp.example"),  # other mailboxes are left alone
])
def test_without_routing_addresses(text, expected):
    assert without_routing_addresses(text, BOT) == expected


TRUSTED = ["mx.cijidas.jp"]
STAFF = "privacy@cijidas.jp"
INJECTED = "dkim=pass header.i=privacy@cijidas.jp"  # what a forger wants the bot to read


@pytest.mark.parametrize(("headers", "expected"), [
    # what proves the exact staff address
    (["mx.cijidas.jp; dmarc=pass (p=reject) header.from=cijidas.jp"], True),
    (["mx.cijidas.jp; dkim=pass header.i=privacy@cijidas.jp header.s=s1; spf=fail"], True),
    (["mx.cijidas.jp 1; dkim=pass header.d=cijidas.jp header.i=Privacy@Cijidas.JP"], True),
    (["mx.cijidas.jp;\tdkim/1=pass (good (nested) comment) header.i=privacy@cijidas.jp"], True),
    (['"mx.cijidas.jp"; dmarc=pass action=none header.from=cijidas.jp;'], True),
    (["other.example; dkim=fail header.i=privacy@cijidas.jp",
      "mx.cijidas.jp; dmarc=pass header.from=cijidas.jp"], True),  # untrusted ones above
    # another signer of the domain, or another address, proves nothing about this one
    (["mx.cijidas.jp; dkim=pass header.d=cijidas.jp header.s=s1"], False),
    (["mx.cijidas.jp; dkim=pass header.i=@cijidas.jp"], False),
    (["mx.cijidas.jp; dkim=pass header.i=newsletter@cijidas.jp header.d=cijidas.jp"], False),
    (["mx.cijidas.jp; dkim=pass header.i=\"privacy\"@cijidas.jp"], False),
    (["mx.cijidas.jp; dmarc=pass header.from=evil.example"], False),
    (["mx.cijidas.jp; dmarc=pass header.from=sub.cijidas.jp"], False),
    # SPF alone never authenticates staff
    (["mx.cijidas.jp; spf=pass smtp.mailfrom=privacy@cijidas.jp"], False),
    (["mx.cijidas.jp; spf=pass smtp.mailfrom=cijidas.jp"], False),
    # failures, untrusted servers, nothing
    (["mx.cijidas.jp; dkim=fail header.i=privacy@cijidas.jp; dmarc=fail header.from=cijidas.jp"],
     False),
    (["mx.evil.example; dmarc=pass header.from=cijidas.jp"], False),
    (["mx.cijidas.jp; none"], False),
    ([], False),
    # only the topmost trusted header counts: a forged one further down never outranks it
    (["mx.cijidas.jp; dkim=fail header.i=privacy@cijidas.jp",
      "mx.cijidas.jp; dkim=pass header.i=privacy@cijidas.jp"], False),
    (["mx.cijidas.jp; dkim=pass header.i=privacy@cijidas.jp (", f"mx.cijidas.jp; {INJECTED}"],
     False),  # an unreadable topmost one is "no pass", not "ask the next one"
    # sender-controlled text that a receiving server copies in: always one opaque value
    ([f"mx.cijidas.jp; spf=pass smtp.mailfrom=\"x; {INJECTED} \"@evil.example"], False),
    ([f"mx.cijidas.jp; spf=pass smtp.mailfrom=\"x\\\"; {INJECTED}\"@evil.example"], False),
    (["mx.cijidas.jp; spf=pass smtp.mailfrom="
      "=?us-ascii?q?x=3B_dkim=3Dpass_header.i=3Dprivacy=40cijidas.jp_?=@evil.example"], False),
    (["mx.cijidas.jp; dkim=pass header.i==?utf-8?b?cHJpdmFjeUBjaWppZGFzLmpw?="], False),
    # comments: nested, escaped, or with a quote (a copied local part) never open the structure
    ([f"mx.cijidas.jp; dkim=fail (a (b) ; {INJECTED} ; c) header.d=cijidas.jp"], False),
    ([f"mx.cijidas.jp; dkim=fail (a \\) ; {INJECTED} ; c) header.d=cijidas.jp"], False),
    ([f'mx.cijidas.jp; spf=pass (domain of "a) ; {INJECTED} (b"@evil.example) '
      "smtp.mailfrom=x"], False),
    # malformed: control characters (a cut value ends in NUL), unterminated parts, stray text
    ([f"mx.cijidas.jp; {INJECTED}\x00"], False),
    ([f"mx.cijidas.jp; {INJECTED} \"unterminated"], False),
    ([f"mx.cijidas.jp; {INJECTED} stray"], False),
    ([f"mx.cijidas.jp; {INJECTED}x\"y\""], False),
])
def test_auth_results(headers, expected):
    assert auth_results_pass(headers, TRUSTED, STAFF) is expected


@pytest.mark.parametrize(("header", "expected"), [
    ("mx.cijidas.jp; dkim=pass header.d=cijidas.jp", True),
    ("mx.cijidas.jp; dkim=pass header.i=@cijidas.jp", True),
    ("mx.cijidas.jp; dkim=pass header.d=evil.example", False),
    ("mx.cijidas.jp; spf=pass smtp.mailfrom=privacy@cijidas.jp", False),
])
def test_auth_results_domain_signer_only_when_configured(header, expected):
    assert auth_results_pass([header], TRUSTED, STAFF, domain_signs_for_all=True) is expected


def test_auth_results_without_trusted_servers_never_pass():
    assert not auth_results_pass(["mx.cijidas.jp; dmarc=pass header.from=cijidas.jp"], [], STAFF)


def test_authres_parse_keeps_values_opaque():
    parsed = authres.parse('mx.google.com; dkim=pass header.i=@example.com header.b=Ab/c+D; '
                           'spf=pass (google.com: domain of x@example.com designates 1.2.3.4 '
                           'as permitted sender) smtp.mailfrom="a; b"@example.com; '
                           'dmarc=pass (p=NONE) header.from=example.com')
    assert parsed.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.results[0].get("header.b") == "Ab/c+D"
    assert parsed.results[1].get("smtp.mailfrom") == '"a; b"@example.com'


def test_authres_long_input():
    header = "mx.cijidas.jp; dkim=pass " + " ".join(f"header.x{i}=v" for i in range(1000))
    assert len(header) <= authres.MAX_CHARS
    assert len(authres.parse(header).results[0].properties) == 1000
    assert authres.parse(header + " header.i=" + "x" * authres.MAX_CHARS) is None  # too long
    assert authres.parse("mx.cijidas.jp; dkim=pass " + "(" * 5000) is None  # nesting bound


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
    (Evidence(STAFF, sender_is_staff=True, token_present=True, token_ticket=view(),
              token_expires=NOW.date()),
     Action.STAFF_REPLY, "CJD-000001", None, "token"),
    # the token's last day was yesterday (UTC): expired, however valid its MAC
    (Evidence(STAFF, sender_is_staff=True, token_present=True, token_ticket=view(),
              token_expires=NOW.date() - timedelta(days=1)),
     Action.SUSPICIOUS, "CJD-000001", None, "token-expired"),
    (Evidence(STAFF, sender_is_staff=True, token_present=True, thread_ticket=view(),
              token_problem="token-of-other-address", token_expires=NOW.date()),
     Action.SUSPICIOUS, "CJD-000001", None, "token-of-other-address"),
    (Evidence(STAFF, sender_is_staff=True, token_present=True,
              token_problem="token-of-other-address"),
     Action.SUSPICIOUS, None, None, "token-of-other-address"),
    # a bad token does not undo trusted Authentication-Results for the exact address
    (Evidence(STAFF, sender_is_staff=True, auth_results_pass=True, token_present=True,
              token_ticket=view(), token_expires=NOW.date() - timedelta(days=1),
              thread_ticket=view()),
     Action.STAFF_REPLY, "CJD-000001", None, "authentication-results"),
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
    (Evidence(STRANGER, token_present=True, token_ticket=view(), token_expires=NOW.date()),
     Action.NEW_TICKET, None, None, ""),
]


@pytest.mark.parametrize(("evidence", "action", "ticket", "linked", "reason"), ROUTES)
def test_decide_route(evidence, action, ticket, linked, reason):
    route = decide_route(evidence, now=NOW, reopen_days=30)
    assert route.action == action
    assert (route.ticket.ref if route.ticket else None) == ticket
    assert (route.linked.ref if route.linked else None) == linked
    assert route.reason == reason
