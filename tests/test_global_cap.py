"""The overall cap on automatic mail (limits.auto_mail_per_hour): the pure slot rule, and the
outbox rows it produces on a real store with a pretend clock. The 300-sender flood through
the real servers is in tests/test_loops_spoofing.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botenv import customer_mail
from test_verification import Desk

from bot.adapters.store import Store, utc_iso
from bot.flows.autoreply import send_slot
from bot.rules.sla import from_iso

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize(("sent", "now", "cap", "expected"), [
    ([], T0, 3, T0),
    ([T0, T0], T0, 3, T0),                               # room left
    ([T0, T0, T0], T0, 3, T0 + H),                       # same second: the hour after
    ([T0, T0 + M, T0 + 2 * M], T0 + 3 * M, 3, T0 + H),   # the oldest of the last 3 + 1 h
    ([T0 - 2 * H, T0 - H, T0 - M], T0, 3, T0),           # the window has moved on
    ([T0 + H, T0, T0 + M], T0 + 2 * M, 3, T0 + H),       # order does not matter
    ([T0] * 10, T0, 3, T0 + H),                          # only the latest `cap` count
])
def test_send_slot(sent, now, cap, expected, tmp_path):
    """The store keeps the send times and finds the cap-th latest; the pure rule adds the
    hour."""
    store = Store(tmp_path / "tickets.db")
    with store.transaction() as conn:
        for at in sent:
            store.add_auto_mail_slot(conn, utc_iso(at), drop_before=utc_iso(now - H))
    nth = store.nth_latest_auto_mail(cap)
    assert send_slot(from_iso(nth) if nth else None, now) == expected


def test_send_times_older_than_the_hour_are_dropped(tmp_path):
    store = Store(tmp_path / "tickets.db")
    with store.transaction() as conn:
        for minutes in (0, 30, 61, 91):
            now = T0 + minutes * M
            store.add_auto_mail_slot(conn, utc_iso(now), drop_before=utc_iso(now - H))
    assert store.count("auto_mail_slots") == 2  # 61 and 91: 0 and 30 no longer count


def test_acknowledgements_beyond_the_cap_wait_for_their_slot(tmp_path):
    desk = Desk(tmp_path, limits={"auto_mail_per_hour": 3})
    for i in range(5):
        desk.receive(customer_mail("Question", "What data do you keep about me?",
                                   sender=f"c{i}@example.com"), T0 + i * M)
    acks = desk.store.rows("SELECT next_attempt_at FROM outbox WHERE kind = "
                           "'acknowledgement' ORDER BY id")
    assert [r["next_attempt_at"] for r in acks] == [
        "2026-11-24T03:00:00Z", "2026-11-24T03:01:00Z", "2026-11-24T03:02:00Z",
        "2026-11-24T04:00:00Z", "2026-11-24T04:01:00Z"]
    assert desk.events().count("auto_mail_deferred") == 2
    alerts = [m for m in desk.mails_to("privacy@cijidas.jp") if "held back" in m["Subject"]]
    assert len(alerts) == 1  # once per hour, not per held mail
    assert "2026-11-24 13:00 JST" in alerts[0].get_body().get_content()  # 04:00 UTC

    # Two hours on, the window is free again: no wait, and a new alert may come.
    desk.receive(customer_mail("Question", "And now?", sender="late@example.com"), T0 + 3 * H)
    assert desk.store.rows("SELECT next_attempt_at FROM outbox WHERE kind = 'acknowledgement' "
                           "ORDER BY id DESC LIMIT 1")[0]["next_attempt_at"] == \
        "2026-11-24T06:00:00Z"
