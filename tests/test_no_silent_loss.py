"""No silent loss (issue 14): the long letter, an unexpected error on a human mail, a mail
that kills the worker twice, and quarantined mail in the digest and in datasette.

Before the fix a 1,650-word English letter overflowed ``math.exp`` and, like any other
exception, left the mail "quarantined" with no ticket, no acknowledgement and no notice;
a mail that killed the worker was retried forever and the mail behind it never answered.
"""

from __future__ import annotations

import email
import signal
import sqlite3
import subprocess
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from botenv import BOT, REPO, customer_mail, query, scalar, start_worker, wait_until, write_config

from bot.adapters.store import Store
from bot.config import load_settings
from bot.flows import escalation, intake
from bot.flows.service import Service
from bot.mail import compose
from bot.models import MessageSource, Outcome
from bot.ops.cli import main
from bot.ops.worker import HANG_ENV

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # Tuesday 12:00 in Tokyo
STAFF = "privacy@cijidas.jp"
SENTENCES = [
    "I am writing to you because I would like to know what personal data your company "
    "holds about me.",
    "Last year I bought a phone from your shop and I gave you my name, my address and my "
    "phone number.",
    "Since then I have been getting calls and I do not know if you have shared my data "
    "with anyone.",
    "Could you please tell me which data you have, where it is kept and who can see it?",
    "If you have given it to other companies, I want to know their names and what they did "
    "with it.",
    "I would also like to know how long you will keep my data and why you need it at all.",
    "I have been a customer for many years and I was always happy with your service.",
    "Thank you for reading this, and I hope to hear from you soon with a clear answer.",
]


def long_letter(words: int = 1_650) -> str:
    """A polite English letter of about ``words`` words."""
    paragraphs, count = [], 0
    while count < words:
        paragraph = " ".join(SENTENCES[len(paragraphs) % 3:] + SENTENCES[:len(paragraphs) % 3])
        paragraphs.append(paragraph)
        count += len(paragraph.split())
    return "Dear Cijidas team,\n\n" + "\n\n".join(paragraphs) + "\n\nBest regards,\nJohn Smith"


@pytest.fixture
def service(tmp_path: Path):
    config = write_config(tmp_path, SimpleNamespace(host="127.0.0.1", port=1), None,
                          limits={"auto_replies_per_hour": 1_000})
    settings = load_settings(config, environ={"TEST_IMAP_PASSWORD": "x"})
    store = Store(settings.database_path)
    yield Service(store, settings)
    store.close()


def take(service: Service, uid: int, raw: bytes):
    """What the worker does with one message (bot.ops.worker.Worker._handle_one)."""
    source = MessageSource("INBOX", 1, uid)
    try:
        return service.handle(source, raw, NOW)
    except Exception as exc:  # noqa: BLE001 - exactly the worker's fallback
        return service.record_failure(source, raw, f"error: {exc!r}", NOW, False,
                                      type(exc).__name__)


def outbox_kinds(service: Service) -> list[tuple[str, str]]:
    rows = service.store.rows("SELECT kind, recipients FROM outbox ORDER BY id")
    return [(r["kind"], r["recipients"]) for r in rows]


# -- the long letter ---------------------------------------------------------------------------

def test_a_long_english_letter_becomes_a_normal_ticket(service: Service) -> None:
    letter = long_letter()
    assert len(letter.split()) >= 1_650
    result = service.handle(MessageSource("INBOX", 1, 1),
                            customer_mail("What data do you keep?", letter), NOW)
    assert result.outcome == Outcome.TICKET and result.language == "en"
    assert [k for k, _ in outbox_kinds(service)] == ["acknowledgement", "notification"]


# -- any unexpected error on a human mail ---------------------------------------------------------

def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_an_unexpected_error_still_opens_a_ticket_end_to_end(tmp_path, imap_server,
                                                              smtp_server, env, monkeypatch):
    monkeypatch.setattr(intake, "triage_mail", _boom)
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail("Xóa dữ liệu", "Tôi muốn xóa dữ liệu của tôi."))

    assert main(["--config", str(config), "once"]) == 0

    db = tmp_path / "state" / "tickets.db"
    assert query(db, "SELECT outcome, substr(reason, 1, 12) FROM processed") == [
        ("ticket", "unreadable: ")]
    assert query(db, "SELECT category, needs_review, customer_email FROM tickets") == [
        ("question", 1, "customer@example.com")]
    assert query(db, "SELECT body_text FROM messages WHERE direction = 'in'") == [
        ("[could not be read: RuntimeError]",)]
    received = smtp_server.wait_for(2)
    assert sorted(r.rcpt_tos for r in received) == [("customer@example.com",), (STAFF,)]
    ack = next(r for r in received if r.rcpt_tos == ("customer@example.com",))
    assert "CJD-000001" in str(email.message_from_bytes(ack.raw, policy=policy.default)["Subject"])


@pytest.mark.parametrize(("headers", "outcome"), [
    ({}, "ticket"),
    ({"Auto-Submitted": "auto-replied"}, "quarantined"),  # machine mail
    ({"From": "Staff <privacy@cijidas.jp>"}, "quarantined"),  # staff mail
    ({"From": "undisclosed-recipients:;"}, "quarantined"),  # no usable sender
])
def test_only_human_mail_gets_a_review_ticket(service: Service, monkeypatch,
                                              headers: dict, outcome: str) -> None:
    monkeypatch.setattr(service, "route", _boom)
    result = take(service, 1, customer_mail("Question", "What do you keep?", headers=headers))
    assert result.outcome == outcome
    assert service.store.count("processed", "uid = 1 AND outcome = ?", (outcome,)) == 1
    assert service.store.count("tickets") == (outcome == "ticket")
    assert len(outbox_kinds(service)) == (2 if outcome == "ticket" else 0)


def test_a_failing_acknowledgement_still_leaves_ticket_and_notice(service: Service,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(compose, "acknowledgement", _boom)
    result = take(service, 1, customer_mail("Question", "What do you keep about me?"))
    assert result.outcome == Outcome.TICKET and result.reason == "unreadable: RuntimeError"
    assert [k for k, _ in outbox_kinds(service)] == ["notification"]
    assert service.store.rows("SELECT needs_review FROM tickets") == [{"needs_review": 1}]


def test_the_same_mail_twice_gets_one_review_ticket(service: Service, monkeypatch) -> None:
    monkeypatch.setattr(intake, "triage_mail", _boom)
    raw = customer_mail("Question", "What do you keep?", message_id="<once@example.com>")
    assert take(service, 1, raw).outcome == Outcome.TICKET
    assert take(service, 2, raw).outcome == Outcome.IGNORED  # the normal path: a duplicate
    monkeypatch.setattr(service, "route", _boom)
    assert take(service, 3, raw).outcome == Outcome.QUARANTINED  # the fallback: known
    assert service.store.count("tickets") == 1


# -- a mail that kills the worker -------------------------------------------------------------

def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


@pytest.mark.integration
def test_a_mail_that_kills_the_worker_twice_is_quarantined(tmp_path, imap_server, smtp_server,
                                                           monkeypatch):
    marker = "POISON-7f3a"
    monkeypatch.setenv(HANG_ENV, marker)  # handling this mail hangs until the worker dies
    config = write_config(tmp_path, imap_server, smtp_server)
    imap_server.append(BOT, customer_mail("Poison", f"{marker} please delete my data",
                                          sender="poison@example.com",
                                          message_id="<poison@example.com>"))
    imap_server.append(BOT, customer_mail("Question", "How long do you keep my data?"))
    db, log = tmp_path / "state" / "tickets.db", tmp_path / "worker.log"
    for start in (1, 2):
        worker = start_worker(config, log)
        try:
            wait_until(lambda s=start, w=worker: w.poll() is not None or scalar(
                db, "SELECT tries FROM attempts WHERE uid = 1") == s, 60, f"start {start}")
            assert worker.poll() is None, log.read_text()[-2000:]
        finally:
            worker.kill()  # SIGKILL in the middle of the mail, like the OOM killer
            worker.wait(timeout=10)
        assert scalar(db, "SELECT count(*) FROM processed") == 0
    worker = start_worker(config, log)
    try:
        wait_until(lambda: scalar(db, "SELECT count(*) FROM processed") == 2, 60,
                   "the poison mail quarantined and the next one answered")
        received = smtp_server.wait_for(3, timeout=30)
    finally:
        _stop(worker)
    rows = query(db, "SELECT uid, outcome, reason FROM processed ORDER BY uid")
    assert rows[0][:2] == (1, "quarantined") and "started 2 times" in rows[0][2]
    assert rows[1][:2] == (2, "ticket")
    assert scalar(db, "SELECT count(*) FROM tickets") == 1
    assert scalar(db, "SELECT count(*) FROM attempts") == 0
    notices = [r for r in received if b"Quarantined: a mail the bot could not handle" in r.raw]
    assert [r.rcpt_tos for r in notices] == [(STAFF,)]
    text = email.message_from_bytes(notices[0].raw, policy=policy.default).get_content()
    assert "<poison@example.com>" in text and "UID 1)" in text
    assert "poison@example.com" in text.split("From:")[1].splitlines()[0]
    assert ("customer@example.com",) in [r.rcpt_tos for r in received]
    assert not any(r.rcpt_tos == ("poison@example.com",) for r in received)


def test_attempts_count_workers_not_retries(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    source = MessageSource("INBOX", 7, 42)
    steps = [("start", "A", 1), ("start", "A", 1), ("start", "B", 2), ("undo", "B", 1),
             ("start", "B", 2), ("start", "C", 3)]
    for action, worker, tries in steps:
        if action == "start":
            assert store.start_attempt(source, worker, NOW) == tries, (action, worker)
        else:
            store.undo_attempt(source, worker)
            assert store.rows("SELECT tries FROM attempts")[0]["tries"] == tries
    with store.transaction() as conn:
        store.record_processed(conn, source, "<k@x>", Outcome.QUARANTINED, "r", None, NOW)
    assert store.count("attempts") == 0
    store.close()


def _commits(store: Store) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


@pytest.mark.parametrize("ending", ["commit", "rollback", "withdraw", "other-mail"])
def test_the_next_start_rides_on_this_mails_commit(tmp_path: Path, ending: str) -> None:
    """The start of the next mail is written by the transaction that finishes this one (no
    commit of its own); after a rollback, or when another mail is started instead, the start
    gets its own transaction; a stop before the next mail takes the start back, so that it
    does not count as a crash."""
    store = Store(tmp_path / "a.db")
    this, following = MessageSource("INBOX", 7, 1), MessageSource("INBOX", 7, 2)
    assert store.start_attempt(this, "A", NOW) == 1
    store.announce_start(following, "A", NOW)
    commits = _commits(store)
    with suppress(RuntimeError), store.transaction() as conn:
        store.record_processed(conn, this, "<k@x>", Outcome.TICKET, None, None, NOW)
        if ending == "rollback":
            raise RuntimeError("the mail failed after it was recorded")
    written = store.rows("SELECT uid, tries, worker FROM attempts")
    if ending == "rollback":
        assert written == [{"uid": 1, "tries": 1, "worker": "A"}]
    else:
        assert written == [{"uid": 2, "tries": 1, "worker": "A"}]
    if ending == "withdraw":
        store.withdraw_start()
        assert store.rows("SELECT tries, worker FROM attempts") == [{"tries": 0, "worker": None}]
        assert store.start_attempt(following, "B", NOW) == 1  # a stop is not a crash
        return
    started = MessageSource("INBOX", 7, 3) if ending == "other-mail" else following
    commits.clear()
    assert store.start_attempt(started, "A", NOW) == 1
    assert len(commits) == (0 if ending == "commit" else 1)  # no commit of its own
    if started is not following:
        assert store.start_attempt(following, "A", NOW) == 1  # written ahead, same worker
    store.close()


# -- quarantined mail is listed for staff ------------------------------------------------------

def _digest_text(service: Service) -> tuple[str, str]:
    raw = service.store.rows("SELECT raw FROM outbox ORDER BY id DESC LIMIT 1")[0]["raw"]
    message = email.message_from_bytes(bytes(raw), policy=policy.default)
    return str(message["Subject"]), message.get_body(preferencelist=("plain",)).get_content()


def test_the_digest_lists_quarantined_mail_once(service: Service) -> None:
    service.record_failure(MessageSource("INBOX", 1, 17), None, "not-fetched: no data",
                           NOW - timedelta(hours=1), False)
    assert escalation.run_digest(service.store, service.settings, NOW, dry_run=False)
    subject, text = _digest_text(service)
    assert subject.endswith(", 1 quarantined")
    assert "Quarantined mail since the last digest: 1." in text
    assert "INBOX UID 17" in text and "not-fetched: no data" in text
    assert text.rstrip().endswith("This digest is sent automatically on business days.")
    assert escalation.run_digest(service.store, service.settings, NOW + timedelta(days=1),
                                 dry_run=False)
    subject, text = _digest_text(service)
    assert "quarantined" not in subject and "Quarantined" not in text


def test_datasette_has_a_quarantined_query(service: Service) -> None:
    service.record_failure(MessageSource("INBOX", 1, 17), None, "not-fetched: no data", NOW,
                           False)
    metadata = yaml.safe_load((REPO / "admin" / "metadata.yml").read_text())
    database = metadata["databases"]["tickets"]
    sql = database["queries"]["quarantined"]["sql"]
    with sqlite3.connect(service.store.path) as conn:
        rows = conn.execute(sql).fetchall()
    assert [(r[1], r[3], r[5]) for r in rows] == [("INBOX", 17, "not-fetched: no data")]
    assert "description" in database["tables"]["attempts"]


def test_mail_ignored_by_its_words_alone_is_listed_for_staff(service: Service) -> None:
    """An auto-reply told only by its words is listed in the digest and in datasette (a
    customer's mail misread that way must not vanish); one its headers mark is not."""
    by_words = customer_mail("Re: Your request", "[Tin nhắn tự động] Tôi đang nghỉ phép đến "
                             "hết ngày 5/2, sẽ phản hồi khi quay lại.", sender="an@example.vn")
    by_header = customer_mail("Re: Your request", "Away until Monday.", sender="b@example.org",
                              headers={"Auto-Submitted": "auto-replied"})
    for uid, raw in ((21, by_words), (22, by_header)):
        service.handle(MessageSource("INBOX", 1, uid), raw, NOW - timedelta(hours=1))
    assert escalation.run_digest(service.store, service.settings, NOW, dry_run=False)
    subject, text = _digest_text(service)
    assert subject.endswith(", 1 ignored by content")
    assert "Ignored as automatic by its words alone since the last digest: 1." in text
    assert "INBOX UID 21" in text and "auto-reply-content" in text and "UID 22" not in text
    metadata = yaml.safe_load((REPO / "admin" / "metadata.yml").read_text())
    sql = metadata["databases"]["tickets"]["queries"]["ignored_by_content"]["sql"]
    with sqlite3.connect(service.store.path) as conn:
        assert [(r[3], r[5]) for r in conn.execute(sql)] == [(21, "auto-reply-content")]
    assert escalation.run_digest(service.store, service.settings, NOW + timedelta(days=1),
                                 dry_run=False)
    assert "ignored" not in _digest_text(service)[0]


@pytest.mark.parametrize(("arrived", "outcome", "acknowledged"), [
    (NOW - timedelta(days=1), Outcome.TICKET, False),  # in the first-start window: quiet
    (NOW - timedelta(days=40), Outcome.QUARANTINED, False),  # older: not answered at all
    (NOW + timedelta(minutes=1), Outcome.TICKET, True),  # arrived after the start: as usual
])
def test_a_failing_mail_follows_the_first_start_rules(service: Service, monkeypatch, arrived,
                                                      outcome, acknowledged) -> None:
    from bot.rules.intake import IntakePolicy, Start

    monkeypatch.setattr(intake, "triage_mail", _boom)
    first_start = IntakePolicy(Start.FIRST_RUN, NOW - timedelta(days=7), started=NOW)
    raw = customer_mail("Question", "What data do you keep about me?")
    result = service.record_failure(MessageSource("INBOX", 1, 1), raw, "error: boom", NOW,
                                    False, "RuntimeError", arrived, first_start)
    assert result.outcome == outcome
    kinds = [k for k, _ in outbox_kinds(service)]
    assert ("acknowledgement" in kinds) == acknowledged
