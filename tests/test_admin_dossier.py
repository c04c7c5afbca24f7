"""A privacy officer's datasette (issue 17, item 4): the ticket dossier, the dashboard, times
in company time next to UTC, refs as links, tickets first, column notes folded, and metadata
that lists the values the code really writes.

The page tests read a database filled by the real pipeline (tests/admin_samples.py: IMAP ->
``once`` -> SMTP, then staff replies from a mail client); the browser tests open the pages
in headless chromium as served by ``inquiry-bot admin``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from admin_samples import ANSWER, fill
from botenv import REPO, admin_server

from bot.flows import commands, verification
from bot.models import MessageKind, Outcome
from bot.ops import admin
from bot.rules.status import Status

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_CHROMIUM = Path(CHROMIUM).exists()
TOKYO = {"timezone": "Asia/Tokyo", "config": "/srv/inquiry-bot/config.toml"}


def load_views_plugin():
    """admin/plugins/inquiry_bot_views.py as datasette loads it (a file, not a package)."""
    path = admin.PLUGINS_DIR / "inquiry_bot_views.py"
    spec = importlib.util.spec_from_file_location("inquiry_bot_views", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


views = load_views_plugin()


# -- pure helpers of the plugin ---------------------------------------------------------

@pytest.mark.parametrize(("value", "zone", "local"), [
    ("2026-12-04T14:59:59Z", "Asia/Tokyo", "2026-12-04 23:59 JST"),  # 23:59 in Tokyo
    ("2026-11-30T20:00:00Z", "Asia/Tokyo", "2026-12-01 05:00 JST"),  # the date moves on
    ("2026-11-30T20:00:00Z", "Asia/Ho_Chi_Minh", "2026-12-01 03:00 +07"),
    ("2026-11-30T20:00:00.123Z", "UTC", "2026-11-30 20:00 UTC"),
])
def test_a_stored_time_shows_company_time_and_utc(value, zone, local):
    html = str(views.time_markup(value, ZoneInfo(zone)))
    assert f">{local}</time>" in html
    assert f'<span class="ib-utc">{value}</span>' in html  # the stored value stays visible


@pytest.mark.parametrize("value", ["2026-12", "2026-12-04", "2026-12-04 14:59:59",
                                   "CJD-000001", 3, None, "2026-12-04T14:59:59+09:00"])
def test_other_values_are_left_to_datasette(value):
    assert views.time_markup(value, ZoneInfo("Asia/Tokyo")) is None


@pytest.mark.parametrize(("text", "own", "quoted_start"), [
    ("Dear Ms Tanaka,\nDone.\n\nOn Tue, 24 Nov 2026 at 12:00, Cijidas <c@cijidas.jp> wrote:\n"
     "> New ticket\n> more", "Dear Ms Tanaka,\nDone.", "On Tue, 24 Nov 2026"),
    ("Thanks!\n\nFrom: Cijidas <contact@cijidas.jp>\nSent: Tuesday, 24 November 2026 12:00\n"
     "To: me\nSubject: [CJD-000001] x\n\nYour reference", "Thanks!", "From: Cijidas"),
    ("See below\n-----Original Message-----\nold text", "See below", "-----Original"),
    ("Vâng, cảm ơn.\n\nVào 24 thg 11, 2026 lúc 12:00 Cijidas <c@cijidas.jp> đã viết:\n> cũ",
     "Vâng, cảm ơn.", "Vào 24 thg 11"),
    ("> only a quote\n> nothing else", "> only a quote\n> nothing else", None),
    ("No quote at all.\nSecond line.", "No quote at all.\nSecond line.", None),
    ("", "", None),
])
def test_fold_quote_separates_the_quoted_history(text, own, quoted_start):
    shown, quoted = views.fold_quote(text)
    assert shown == own
    if quoted_start is None:
        assert quoted == ""
    else:
        assert quoted.startswith(quoted_start)


NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("due", "done", "closed", "state", "words"), [
    ("2026-12-04T14:59:59Z", None, None, "due", "due in 3 d 11 h"),
    ("2026-12-01T01:00:00Z", None, None, "overdue", "overdue by 2 h 0 min"),
    ("2026-12-01T02:53:00Z", None, None, "overdue", "overdue by 7 min"),
    ("2026-12-04T14:59:59Z", "2026-12-02T14:59:59Z", None, "met", "met, 2 d 0 h early"),
    ("2026-11-30T00:00:00Z", "2026-11-30T05:30:00Z", None, "missed", "missed by 5 h 30 min"),
    ("2026-11-30T00:00:00Z", None, "2026-11-29T00:00:00Z", "closed", "closed before it was met"),
    (None, None, None, "none", "no deadline"),
])
def test_deadline_state(due, done, closed, state, words):
    assert views.deadline_state(due, done, closed, now=NOW) == (state, words)


# -- the metadata lists what the code writes ----------------------------------------------

def listed_values(description: str) -> set[str]:
    """``"a (why) | b | c: text."`` -> {"a", "b", "c"}."""
    head = description.split(":")[0].rstrip(".")
    return {re.sub(r"\s*\(.*?\)", "", part).strip() for part in head.split("|")}


def bot_source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "bot").rglob("*.py"))


def test_metadata_lists_the_values_the_code_writes():
    tables = yaml.safe_load(admin.METADATA_PATH.read_text())["databases"]["tickets"]["tables"]
    described = {(t, c): listed_values(tables[t]["columns"][c]) for t, c in [
        ("tickets", "status"), ("tickets", "verification_status"), ("messages", "kind"),
        ("messages", "direction"), ("outbox", "status"), ("outbox", "kind"),
        ("processed", "outcome")]}
    assert described[("tickets", "status")] == {s.value for s in Status}
    assert described[("messages", "kind")] == {k.value for k in MessageKind} | {
        verification.MAIL_KIND, commands.DECISION_KIND}
    assert described[("messages", "direction")] == {"in", "out"}
    assert described[("processed", "outcome")] == {o.value for o in Outcome}
    assert described[("outbox", "status")] == {"pending", "sent", "failed"}
    assert described[("outbox", "kind")] == described[("messages", "kind")] - {
        "customer", "staff_note"}  # what the bot itself sends
    assert described[("tickets", "verification_status")] == {
        "not_required", "pending", "email_confirmed", "staff_verified", "failed"}
    assert {verification.PENDING, verification.CONFIRMED, verification.FAILED} <= described[
        ("tickets", "verification_status")]
    source = bot_source()
    for value in described[("tickets", "verification_status")]:
        assert f'"{value}"' in source, value  # written somewhere, not invented


# -- pages of a pipeline database, through datasette's own client -------------------------

@pytest.fixture
def pipeline_db(tmp_path, imap_server, smtp_server, env) -> Path:
    return fill(tmp_path, imap_server, smtp_server)


def get(ds, path: str):
    async def fetch():
        return await ds.client.get(path)
    response = asyncio.run(fetch())
    assert response.status_code == 200, (path, response.text[:300])
    return response


def test_pages_for_a_privacy_officer(pipeline_db):
    ds = admin.build_datasette(pipeline_db, environ={}, views=TOKYO)
    db = pipeline_db.stem

    home = get(ds, "/").text
    assert f'action="/{db}/ticket"' in home and f'href="/{db}/dashboard"' in home
    assert home.index(f'href="/{db}/tickets"') < home.index(f'href="/{db}/messages"')
    assert ">Ticket dossier<" in home and ">Triage corrections<" in home

    table = get(ds, f"/{db}/tickets").text
    notes = table.index('<dl class="column-descriptions">')
    assert table.rfind('<details class="ib-columns">', 0, notes) > 0  # folded, closed
    assert table.index("<table class=\"rows-and-columns\"") - notes > 0
    assert f'<a class="ib-ref" href="/{db}/ticket?ref=CJD-000001">CJD-000001</a>' in table
    created = sqlite3.connect(pipeline_db).execute(
        "SELECT created_at FROM tickets WHERE id = 1").fetchone()[0]
    local = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(
        ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
    assert f'<time datetime="{created}">{local}</time>' in table

    for query in ("open_tickets_by_due_date", "ticket_conversation"):  # canned query, view
        assert f'<a class="ib-ref" href="/{db}/ticket?ref=' in get(ds, f"/{db}/{query}").text
    assert f'href="/{db}/ticket?ref=CJD-000002"' in get(ds, f"/{db}/open_tickets_by_due_date").text

    row = get(ds, f"/{db}/tickets/1").text
    for href in (f"/{db}/ticket?ref=CJD-000001", f"/{db}/events?ticket_id=1",
                 f"/{db}/outbox?ticket_id=1"):
        assert f'href="{href}"' in row
    events = get(ds, f"/{db}/events").text
    assert f'<a href="/{db}/tickets/1">1</a>' in events  # no foreign key, still a link


def test_dossier_data_has_no_outgoing_raw_mail(pipeline_db):
    ds = admin.build_datasette(pipeline_db, environ={}, views=TOKYO)
    data = get(ds, f"/{pipeline_db.stem}/ticket.json?ref=cjd-000001&_shape=objects").json()
    (ticket,) = data["rows"]
    assert ticket["ref"] == "CJD-000001" and ticket["customer_email"] == "alice@example.com"
    assert "raw" not in ticket["outbox"] and "code_hash" not in ticket["verification"]
    kinds = [m["kind"] for m in views.from_json(ticket["mail"])]
    assert kinds[:3] == ["customer", "acknowledgement", "notification"]
    assert "staff_reply" in kinds
    assert {o["status"] for o in views.from_json(ticket["outbox"])} == {"sent"}


def test_triage_corrections_per_model(pipeline_db):
    ds = admin.build_datasette(pipeline_db, environ={}, views=TOKYO)
    rows = get(ds, f"/{pipeline_db.stem}/triage_corrections.json?_shape=objects").json()["rows"]
    model = sqlite3.connect(pipeline_db).execute(
        "SELECT DISTINCT triage_model FROM tickets").fetchall()
    assert [(r["triage_model"], r["triaged"], r["changed_by_staff"], r["unchanged_percent"])
            for r in rows] == [(model[0][0], 3, 1, 66.7)]  # CJD-000003: #category question


def canned_sql(name: str) -> str:
    return yaml.safe_load(admin.METADATA_PATH.read_text())["databases"]["tickets"][
        "queries"][name]["sql"]


@pytest.mark.parametrize("with_completion", [False, True])
def test_response_times_with_and_without_completed_at(with_completion):
    """The chart's query runs on a database from before tickets.completed_at existed."""
    conn = sqlite3.connect(":memory:")
    columns = "id, category, created_at, first_response_at" + (
        ", completed_at" if with_completion else "")
    conn.execute(f"CREATE TABLE tickets ({columns})")
    now = datetime.now(UTC)
    day = now.strftime("%Y-%m-%dT")
    rows = [(1, "deletion", f"{day}00:00:00Z", f"{day}06:00:00Z", f"{day}12:00:00Z"),
            (2, "deletion", f"{day}00:00:00Z", None, None)]
    width = 5 if with_completion else 4
    conn.executemany(f"INSERT INTO tickets VALUES ({', '.join('?' * width)})",
                     [r[:width] for r in rows])
    conn.row_factory = sqlite3.Row
    (result,) = conn.execute(canned_sql("response_times")).fetchall()
    assert (result["tickets"], result["answered"], result["avg_hours_to_first_response"]) == (
        2, 1, 6.0)
    assert result["completion_recorded"] == int(with_completion)
    assert (result["completed"], result["avg_hours_to_completion"]) == (
        (1, 12.0) if with_completion else (0, None))


# -- in a browser, as served by `inquiry-bot admin` ---------------------------------------

@contextmanager
def serving(config: Path) -> Iterator[str]:
    """``inquiry-bot admin`` on a free loopback port; yields its base URL."""
    with admin_server(config) as (_proc, base):
        yield base


def chromium_dom(url: str) -> str:
    """The page's DOM after its scripts ran (virtual time lets the chart fetches finish)."""
    page = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert page.stdout, page.stderr[-2000:]
    return page.stdout


@pytest.mark.skipif(not HAS_CHROMIUM, reason="Debian's chromium not installed")
def test_dossier_and_dashboard_in_headless_chromium(pipeline_db, tmp_path):
    db = pipeline_db.stem
    with serving(tmp_path / "config.toml") as base:
        dossier = chromium_dom(f"{base}/{db}/ticket?ref=CJD-000001")
        dashboard = chromium_dom(f"{base}/{db}/dashboard")

    assert '<span class="ib-ref">CJD-000001</span>' in dossier
    assert "alice@example.com" in dossier and "deletion" in dossier
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d JST</time>", dossier)  # config: Asia/Tokyo
    staff = dossier[dossier.index('class="ib-mail ib-in ib-kind-staff_reply"'):]
    staff = staff[:staff.index("</article>")]
    assert ANSWER.splitlines()[1] in staff.split("<details")[0]  # the answer is shown
    folded = staff[staff.index('<details class="ib-quote">'):]
    assert folded.startswith('<details class="ib-quote"><summary>')  # closed: no "open"
    assert "&gt; New ticket CJD-000001." in folded
    events = dossier[dossier.index('id="events"'):dossier.index('id="outbox"')]
    for event in ("ticket_created", "staff_reply"):
        assert f'<td class="ib-event-type">{event}</td>' in events
    outbox = dossier[dossier.index('id="outbox"'):dossier.index('id="export"')]
    assert outbox.count('class="ib-outbox-sent"') >= 3  # acknowledgement, notice, answer
    assert "export CJD-000001 &gt; CJD-000001.json" in dossier

    assert 'data-ready="1"' in dashboard, dashboard[-3000:]
    assert "message-error" not in dashboard
    charts = re.findall(r'<svg [^>]*data-chart="(\w+)"', dashboard)
    assert sorted(set(charts)) == ["mail_per_week", "open_by_category", "response_times",
                                   "sla_compliance"]
    assert dashboard.count('class="ib-bar"') >= 6
    table = dashboard[dashboard.index('data-chart="triage_corrections"'):]
    table = table[:table.index("</table>")]
    assert re.search(r">3</td><td[^>]*>1</td><td[^>]*>66\.7 %</td>", table), table
