"""Property-based fuzzing of parse -> autogen -> triage -> compose and of the whole service step.

Hostile input comes from :mod:`hostile` (random bytes, random MIME trees with lying
boundaries and charsets, control characters, giant headers ...). The service step runs
against a real SQLite file, exactly as the worker calls it: ``Service.handle`` and, only if
that raises, ``record_failure``. Properties:

- nothing raises out of the pure pipeline; every mail the bot would send is well-formed and
  inert (no injected header, no bare CR/LF, no line over 998 octets, no NUL);
- every message ends with exactly one ``processed`` row, and ``handle`` itself never raises;
- after all the garbage, a good mail is answered normally (ticket + acknowledgement).

``make test`` runs a short deterministic profile; ``make chaos`` sets
``HYPOTHESIS_PROFILE=chaos`` for the long one. Nasty cases are kept in
``tests/fixtures/hostile`` (plus the giant builders in :mod:`hostile`) and replayed below.
"""

from __future__ import annotations

import email
import itertools
import os
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from types import SimpleNamespace

import pytest
from botenv import BOT, customer_mail, write_config
from hostile import ALLOWED_HEADERS, GIANT_CASES, hostile_mail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.store import Store
from bot.config import load_settings
from bot.flows.service import Service
from bot.mail import compose
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message
from bot.models import Language, MessageSource, Outcome
from bot.triage import triage

HOSTILE_DIR = Path(__file__).parent / "fixtures" / "hostile"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
settings.register_profile("default", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
                          derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("chaos", parent=settings.get_profile("default"),
                          max_examples=int(os.environ.get("FUZZ_EXAMPLES", 5000)))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def bot_settings(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fuzz")
    fake = SimpleNamespace(host="127.0.0.1", port=1)
    config = write_config(folder, fake, None, limits={"auto_replies_per_hour": 1_000_000})
    return load_settings(config, environ={"TEST_IMAP_PASSWORD": "x"})


@pytest.fixture
def service(bot_settings, tmp_path: Path):
    bot_settings.database_path.parent.mkdir(parents=True, exist_ok=True)  # its key files
    store = Store(tmp_path / "fuzz.db")
    yield Service(store, bot_settings)
    store.close()


def take(service: Service, uid: int, raw: bytes) -> tuple[object, Exception | None]:
    """What the worker does with one fetched message (bot.ops.worker.Worker._handle_one)."""
    source = MessageSource("INBOX", 1, uid)
    try:
        return service.handle(source, raw, NOW), None
    except Exception as exc:  # noqa: BLE001 - recorded as the worker would, then asserted
        return service.record_failure(source, raw, f"error: {exc!r}", NOW, False,
                                      type(exc).__name__), exc


def assert_inert(raw: bytes) -> None:
    """A sent mail: 7-bit-safe lines, no NUL, no bare CR/LF, no header beyond the bot's own."""
    assert b"\x00" not in raw
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    assert all(len(line) <= 998 for line in lines), "line over 998 octets"
    msg = email.message_from_bytes(raw, policy=policy.default)
    names = {name.lower() for name in msg}
    assert names <= ALLOWED_HEADERS, names - ALLOWED_HEADERS
    assert len(msg.get_all("To") or []) == 1 and msg.get_all("Bcc") is None
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
            assert "<script" not in html.lower() and "\u202e" not in html
        if part.get_content_maintype() == "text":
            assert "\u202e" not in part.get_content()


def assert_good_mail_answered(service: Service, uid: int) -> None:
    raw = customer_mail("Question about my data", "What personal data do you keep about me?",
                        sender="after-the-garbage@example.com")
    result, error = take(service, uid, raw)
    assert error is None and result.outcome == Outcome.TICKET, result
    rows = service.store.rows("SELECT recipients FROM outbox WHERE kind = 'acknowledgement' "
                              "AND recipients LIKE '%after-the-garbage%'")
    assert len(rows) == 1


# -- pure pipeline -------------------------------------------------------------------------

@given(raw=hostile_mail())
def test_pure_pipeline_never_raises_and_composes_inert_mail(bot_settings, raw: bytes) -> None:
    mail = parse_message(raw)
    reason = machine_generated_reason(mail, BOT)
    assert reason is None or isinstance(reason, str)
    result = triage(mail.subject, mail.new_text)
    assert result.language in (Language.EN, Language.VI)
    note = compose.staff_notification(
        bot_settings, ref="CJD-000001", triage=result, mail=mail, due_at=NOW,
        verification_status="not_required", to=["privacy@cijidas.jp"],
        message_id=compose.make_message_id("cijidas.jp"), date=NOW)
    assert_inert(bytes(note))
    try:
        ack = compose.acknowledgement(
            bot_settings, ref="CJD-000001", category=None, language=result.language,
            bilingual=result.bilingual, customer_name=mail.from_name,
            customer_email=mail.from_addr or "x@example.com", original_subject=mail.subject,
            received_at=NOW, due_at=NOW, verification_code=None, code_expires_at=None,
            in_reply_to=mail.message_id, references=list(mail.references),
            message_id=compose.make_message_id("cijidas.jp"), date=NOW)
    except ValueError as exc:  # an address SMTP cannot carry; the service must not send there
        assert "unusable mail address" in str(exc)
        assert not compose.is_sendable_address(mail.from_addr or "x@example.com")
        return
    assert_inert(bytes(ack))


# -- the whole service step against SQLite -------------------------------------------------

def test_service_records_every_hostile_message(service: Service) -> None:
    uids = itertools.count(1)
    raised: list[Exception] = []

    @given(raw=hostile_mail())
    def one(raw: bytes) -> None:
        uid = next(uids)
        _, error = take(service, uid, raw)
        if error is not None:
            raised.append(error)
        assert service.store.count("processed", "uid = ?", (uid,)) == 1

    one()
    fuzzed = next(uids) - 1
    assert fuzzed >= 50
    kinds = sorted({repr(exc) for exc in raised})[:5]
    assert raised == [], f"handle raised on {len(raised)} of {fuzzed}: {kinds}"
    print(f"\nfuzz: {fuzzed} hostile messages through Service.handle, none raised")
    for row in service.store.rows("SELECT raw FROM outbox"):
        assert_inert(bytes(row["raw"]))
    assert_good_mail_answered(service, fuzzed + 1)


@given(st.lists(st.sampled_from(sorted(GIANT_CASES)), min_size=1, max_size=3))
@settings(max_examples=5)
def test_giant_cases_in_any_order(bot_settings, tmp_path_factory, names: list[str]) -> None:
    bot_settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path_factory.mktemp("giant") / "g.db")
    try:
        service = Service(store, bot_settings)
        for uid, name in enumerate(names, start=1):
            _, error = take(service, uid, GIANT_CASES[name]())
            assert error is None, (name, error)
        assert store.count("processed") == len(names)
    finally:
        store.close()


# -- regression corpus ---------------------------------------------------------------------

def _corpus() -> list[tuple[str, bytes | None]]:
    files = sorted(HOSTILE_DIR.glob("*.eml"))
    return [(p.name, None) for p in files] + [(name, None) for name in sorted(GIANT_CASES)]


def _load(name: str) -> bytes:
    return GIANT_CASES[name]() if name in GIANT_CASES else (HOSTILE_DIR / name).read_bytes()


@pytest.mark.parametrize("name", [name for name, _ in _corpus()])
def test_hostile_corpus_is_recorded_and_the_next_mail_answered(service: Service,
                                                               name: str) -> None:
    raw = _load(name)
    result, error = take(service, 1, raw)
    assert error is None, f"{name}: {error!r}"
    assert service.store.count("processed", "uid = 1") == 1
    for row in service.store.rows("SELECT raw FROM outbox"):
        assert_inert(bytes(row["raw"]))
    assert_good_mail_answered(service, 2)


def test_corpus_is_not_empty() -> None:
    assert len(list(HOSTILE_DIR.glob("*.eml"))) >= 10
