"""Outbox flushing against a real SMTP server: 4xx and outages retry, 5xx fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters import outbox
from bot.adapters.store import Store
from bot.config import settings_from_dict
from bot.ops.devmail import SmtpSink

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def sink():
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


def make(tmp_path: Path, port: int) -> tuple[Store, object]:
    settings = settings_from_dict(
        {"bot": {"address": "contact@cijidas.jp"}, "mailbox": {"host": "x", "username": "u"},
         "smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                  "timeout_seconds": 5}},
        tmp_path / "config.toml", {"INQUIRY_BOT_IMAP_PASSWORD": "p"})
    return Store(settings.database_path), settings


def queue(store: Store, count: int) -> None:
    with store.transaction() as conn:
        for i in range(count):
            store.enqueue(conn, message_id=f"<m{i}@cijidas.jp>", ticket_id=None,
                          recipients=[f"c{i}@example.com"],
                          raw=f"Subject: t{i}\r\n\r\nhello\r\n".encode(), kind="acknowledgement",
                          now=NOW)


def statuses(store: Store) -> list[tuple]:
    return [(r["status"], r["attempts"]) for r in
            store.rows("SELECT status, attempts FROM outbox ORDER BY id")]


def test_everything_due_is_sent_once(tmp_path, sink):
    store, settings = make(tmp_path, sink.port)
    queue(store, 3)
    report = outbox.flush(store, settings, lambda: NOW)
    assert report == outbox.FlushReport(sent=3)
    assert statuses(store) == [("sent", 1)] * 3
    assert outbox.flush(store, settings, lambda: NOW) == outbox.FlushReport()
    assert len(sink.wait_for(3)) == 3


def test_4xx_is_retried_later_and_5xx_fails(tmp_path, sink):
    store, settings = make(tmp_path, sink.port)
    queue(store, 2)
    sink.reject_next(1, "451 4.3.0 try again later")
    outbox.flush(store, settings, lambda: NOW)
    assert statuses(store) == [("pending", 1), ("sent", 1)]
    retry_at = store.rows("SELECT next_attempt_at FROM outbox WHERE id = 1")[0]
    assert retry_at["next_attempt_at"] == "2026-11-24T03:00:15Z"
    assert outbox.flush(store, settings, lambda: NOW) == outbox.FlushReport()  # not due yet
    sink.reject_next(1, "550 5.1.1 no such user")
    outbox.flush(store, settings, lambda: NOW + timedelta(seconds=16))
    assert statuses(store) == [("failed", 2), ("sent", 1)]
    assert "550" in store.rows("SELECT last_error FROM outbox WHERE id = 1")[0]["last_error"]


def test_server_down_keeps_mail_pending_with_growing_backoff(tmp_path, free_port):
    store, settings = make(tmp_path, free_port)
    queue(store, 1)
    moments = [NOW, NOW + timedelta(seconds=15), NOW + timedelta(seconds=45)]
    for moment in moments:
        outbox.flush(store, settings, lambda moment=moment: moment)
    row = store.rows("SELECT status, attempts, next_attempt_at FROM outbox")[0]
    assert row == {"status": "pending", "attempts": 3, "next_attempt_at": "2026-11-24T03:01:45Z"}


@pytest.mark.parametrize("attempts, seconds", [(0, 15), (1, 30), (4, 240), (20, 3600)])
def test_retry_delay_is_capped_exponential(attempts, seconds):
    assert outbox.retry_delay(attempts) == timedelta(seconds=seconds)
