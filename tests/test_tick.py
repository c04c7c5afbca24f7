"""`inquiry-bot tick` and the completion clock, end to end against the loopback servers.

Time is pretended with ``--now``; the mail that passes queue is dated with the real clock,
so each tick's flush delivers it at once (the tests wait on nothing but the command)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from botenv import query, write_config
from test_staff_flow import CUSTOMER, DELETION, STAFF, Bot, body, staff_reply

from bot.config import load_settings
from bot.ops.cli import main
from bot.rules.sla import calendar_from_settings, from_iso

pytestmark = pytest.mark.integration

DPO = "dpo@cijidas.jp"


@pytest.fixture
def bot(tmp_path, imap_server, smtp_server, env) -> Bot:
    """A deletion request from the customer, acknowledged with a code; staff notified."""
    config = write_config(tmp_path, imap_server, smtp_server,
                          staff={"token_secret_env": "TEST_STAFF_TOKEN_SECRET"})
    return Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server, DELETION)


def tick(bot: Bot, now: datetime, *extra: str) -> int:
    return main(["--config", str(bot.config), "tick", "--now", now.isoformat(), *extra])


def created(bot: Bot) -> datetime:
    return from_iso(bot.ticket("created_at"))


def subjects(bot: Bot, address: str) -> list[str]:
    return [str(m["Subject"]) for m in bot.sent_to(address)]


def test_tick_reminds_at_3_days_and_closes_unverified_at_8(bot):
    tick(bot, created(bot) + timedelta(days=3, hours=1))

    reminder = bot.sent_to(CUSTOMER)[-1]  # delivered by this tick's own flush
    assert len(bot.sent_to(CUSTOMER)) == 2
    assert "code" in body(reminder).lower()
    # Dated with the real clock, not the pretend one: it went out at once.
    assert abs(parsedate_to_datetime(reminder["Date"]) - datetime.now(UTC)) < timedelta(
        minutes=5)

    tick(bot, created(bot) + timedelta(days=8))

    assert len(bot.sent_to(CUSTOMER)) == 3
    assert bot.ticket("status") == "closed_unverified"
    assert any("identity never confirmed" in s for s in subjects(bot, STAFF))
    assert query(bot.db, "SELECT count(*) FROM outbox WHERE status != 'sent'") == [(0,)]


def test_a_decision_stops_reminders_and_expiry(bot):
    bot.deliver(staff_reply(bot, "#verified\n#done", quote=False))
    to_customer = len(bot.sent_to(CUSTOMER))  # acknowledgement + completion notice

    for days in (3, 8):
        tick(bot, created(bot) + timedelta(days=days, hours=1))

    assert len(bot.sent_to(CUSTOMER)) == to_customer
    assert bot.ticket("status") == "closed" and bot.ticket("decision") == "done"


def test_completion_clock_runs_after_the_answer(bot):
    bot.deliver(staff_reply(bot, "#verified\nWe are working on it.", quote=False))
    assert bot.ticket("status") == "answered"
    tick(bot, created(bot) + timedelta(minutes=5))  # sets completion_due_at
    due = from_iso(bot.ticket("completion_due_at"))
    assert due - created(bot) > timedelta(days=13)  # requests.deletion_days = 14 (en)
    staff_before, dpo_before = len(bot.sent_to(STAFF)), len(bot.sent_to(DPO))

    tick(bot, due - timedelta(days=1))
    reminders = [m for m in bot.sent_to(STAFF)[staff_before:] if "complete soon" in
                 str(m["Subject"])]
    assert len(reminders) == 1 and "CJD-000001" in body(reminders[0])
    assert bot.sent_to(DPO)[dpo_before:] == []

    tick(bot, due + timedelta(hours=1))
    tick(bot, due + timedelta(hours=2))  # each level once
    overdue = [m for m in bot.sent_to(DPO)[dpo_before:] if "OVERDUE" in str(m["Subject"])]
    assert len(overdue) == 1
    assert "not completed by the deadline" in str(overdue[0]["Subject"])
    assert bot.ticket("completion_level") == 2


def test_digest_lists_requests_answered_but_not_completed(bot):
    bot.deliver(staff_reply(bot, "#verified\nWe are working on it.", quote=False))
    settings = load_settings(bot.config, require_secrets=False)
    calendar = calendar_from_settings(settings)
    day = calendar.next_business_day(calendar.company_day(created(bot)))
    morning = datetime.combine(day, datetime.min.time().replace(hour=10), tzinfo=calendar.tz)

    tick(bot, morning)

    digest = [m for m in bot.sent_to(STAFF) if "digest" in str(m["Subject"])]
    assert len(digest) == 1
    assert "1 answered not completed" in str(digest[0]["Subject"])
    assert "Answered but not completed: 1." in body(digest[0])


def test_dry_run_creates_no_database(tmp_path, imap_server, smtp_server, env, capsys):
    config = write_config(tmp_path, imap_server, smtp_server)
    db = tmp_path / "state" / "tickets.db"

    assert main(["--config", str(config), "tick", "--dry-run"]) == 0

    assert not db.parent.exists()
    assert "verification: 0 reminded" in capsys.readouterr().out
    assert smtp_server.received == []


def _contents(folder: Path) -> dict[Path, str]:
    """Every file under ``folder`` (the cache folder included) with its hash."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_dry_run_writes_nothing(bot, capsys):
    folder = bot.db.parent
    before = _contents(folder)
    assert any(p.parts[0] == "cache" for p in before)  # the run before kept its cache
    sent = len(bot.smtp.received)
    capsys.readouterr()

    assert tick(bot, created(bot) + timedelta(days=8), "--dry-run") == 0

    out = capsys.readouterr().out
    assert f"would send: verification to {CUSTOMER}: [CJD-000001]" in out
    assert "verification: 0 reminded, 1 closed unverified" in out
    assert _contents(folder) == before
    assert len(bot.smtp.received) == sent
    assert bot.ticket("status") == "open"


def test_escalate_now_in_the_future_sends_at_once(tmp_path, imap_server, smtp_server, env):
    config = write_config(tmp_path, imap_server, smtp_server)
    bot = Bot(config, tmp_path / "state" / "tickets.db", imap_server, smtp_server,
              ("Cookies", "Hello, which cookies does your website use and why?"))
    assert main(["--config", str(config), "escalate", "--now",
                 (created(bot) + timedelta(days=20)).isoformat()]) == 0
    assert query(bot.db, "SELECT count(*) FROM outbox WHERE kind = 'escalation' AND "
                         "next_attempt_at <= ?", (datetime.now(UTC).strftime(
                             "%Y-%m-%dT%H:%M:%SZ"),)) == [(1,)]

    assert main(["--config", str(config), "once"]) == 0  # the real clock: sends it now

    escalations = bot.sent_to(DPO)
    assert len(escalations) == 1 and "ESCALATION" in str(escalations[0]["Subject"])
    assert abs(parsedate_to_datetime(escalations[0]["Date"]) - datetime.now(UTC)) < timedelta(
        minutes=5)
