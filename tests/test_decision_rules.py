"""Decisions without servers: parsing the commands, which decisions a ticket allows
(table-driven, bot.rules.decisions), the notices in both languages, the [requests] checks,
and the real-clock dating of `tick`."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from bot.config import settings_from_dict
from bot.config.problems import ConfigProblems
from bot.mail import compose
from bot.mail.decisions import NOTICES, Decision, decision_notice
from bot.models import Language
from bot.ops.tick import redated
from bot.rules.conversation import Command, parse_staff_text
from bot.rules.decisions import Limits, RequestState, problems

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
LIMITS = Limits(max_extensions=1, max_extension_days=15)
BASE = {"bot": {"address": "contact@cijidas.jp"},
        "mailbox": {"host": "127.0.0.1", "username": "u", "security": "none"},
        "smtp": {"host": "127.0.0.1", "security": "none"}}


def settings(**sections):
    """No database beside it: nothing is kept between runs (no template cache in ./state)."""
    loaded = settings_from_dict({**BASE, **sections}, Path("config.toml"), {},
                                require_secrets=False)
    return dataclasses.replace(loaded, cache_path=None)


# -- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "commands", "problems_found"), [
    ("#done", ((Command.DONE, ""),), 0),
    ("#done Your account was removed.", ((Command.DONE, "Your account was removed."),), 0),
    ("#refuse We must keep invoices.", ((Command.REFUSE, "We must keep invoices."),), 0),
    ("#refuse", (), 1),
    ("#partial", (), 1),
    ("#nodata", ((Command.NODATA, ""),), 0),
    ("#extend 14 The processor must confirm.",
     ((Command.EXTEND, "14 The processor must confirm."),), 0),
    ("#extend 14", (), 1),          # no reason
    ("#extend two weeks", (), 1),
    ("#extend 0 Nothing.", (), 1),
    ("#fee", ((Command.FEE, ""),), 0),
    ("#Done", ((Command.DONE, ""),), 0),
])
def test_decision_commands_parse(text, commands, problems_found):
    instruction = parse_staff_text(text)
    assert instruction.commands == commands
    assert len(instruction.problems) == problems_found


# -- what a ticket allows -------------------------------------------------------------------

REQUEST = RequestState(category="deletion", status="open", verification_status="pending",
                       completion_due_at=NOW + timedelta(days=10))


@pytest.mark.parametrize(("state", "text", "problem"), [
    (REQUEST, "#refuse We must keep it.", None),
    (REQUEST, "#extend 15 The processor must confirm.", None),
    (REQUEST, "#done", "identity is not confirmed"),
    (REQUEST, "#verified\n#done", None),
    (REQUEST, "#nodata", "identity is not confirmed"),
    (REQUEST, "#fee", "disclosure requests only"),
    (REQUEST, "#category disclosure\n#fee", None),
    (REQUEST, "#extend 16 Slow.", "at most 15 days per extension"),
    (REQUEST, "#extend 5 A.\n#extend 5 B.", "already extended 1 time(s)"),
    (REQUEST, "#refuse A.\n#refuse B.", "already has its decision"),
    (REQUEST, "#refuse A.\n#reopen\n#refuse B.", None),
    (REQUEST.__class__(**{**REQUEST.__dict__, "completion_due_at": NOW - timedelta(hours=1)}),
     "#extend 5 Late.", "completion deadline passed"),
    (REQUEST.__class__(**{**REQUEST.__dict__, "category": "question"}), "#done",
     "only for disclosure, correction and deletion requests"),
    (REQUEST.__class__(**{**REQUEST.__dict__, "category": "question",
                           "verification_status": "not_required"}),
     "#category deletion\n#done", "identity is not confirmed"),  # a new request: a new code
    (REQUEST.__class__(**{**REQUEST.__dict__, "status": "closed_unverified"}),
     "#refuse A.", "#reopen it first"),
    (REQUEST.__class__(**{**REQUEST.__dict__, "status": "closed", "decided": True}),
     "#extend 3 More.", "already has its decision"),
    (REQUEST, "#close\n#note\n#wait", None),  # not decisions: never refused here
])
def test_decision_problems(state, text, problem):
    found = problems(state, parse_staff_text(text).commands, LIMITS, NOW)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0]


def test_no_extensions_when_configured_off():
    found = problems(REQUEST, parse_staff_text("#extend 3 A.").commands,
                     Limits(max_extensions=0, max_extension_days=15), NOW)
    assert "at most 0 per request" in found[0]


# -- the notices ----------------------------------------------------------------------------

# English words that must not survive in a Vietnamese notice (the staff text aside).
ENGLISH = re.compile(r"\b(?:the|we|you|your|request|please|fee|reasons?|deleted|"
                     r"information)\b", re.IGNORECASE)
VIETNAMESE_MARKS = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệịỉĩọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")


@pytest.mark.parametrize("language", ["en", "vi"])
@pytest.mark.parametrize("category", ["disclosure", "correction", "deletion"])
@pytest.mark.parametrize("notice", NOTICES)
def test_every_notice_renders_in_both_languages(notice, category, language):
    thread = compose.CustomerThread("CJD-000123", Language(language), "a@example.com", "",
                                    "", "<m@example.com>")
    message = decision_notice(
        settings(), thread, Decision(notice, category, "", NOW, NOW + timedelta(days=20)),
        message_id="<n@cijidas.jp>", date=NOW)
    text = compose.plain_text(message)
    assert "CJD-000123" in text and "{{" not in text
    if language == "vi":
        assert len(VIETNAMESE_MARKS.findall(text)) > 20
        assert ENGLISH.findall(text.split("Trân trọng,")[0]) == []
    if notice == "extended":
        assert ("20 December 2026" if language == "en" else "20/12/2026") in text
    if notice == "fee":
        assert ("1,000 JPY" if language == "en" else "1.000 yên") in " ".join(text.split())


def test_notice_keeps_staff_text_as_data():
    thread = compose.CustomerThread("CJD-000123", Language.EN, "a@example.com")
    message = decision_notice(settings(), thread,
                              Decision("refused", "deletion", "<b>{{ ref }}</b>\x1b"),
                              message_id="<n@cijidas.jp>", date=NOW)
    assert "<b>{{ ref }}</b>" in compose.plain_text(message)  # not template source
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert "&lt;b&gt;" in html.get_payload(decode=True).decode()


# -- configuration --------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "key"), [
    ({"deletion_days_vi": 0}, "requests.deletion_days_vi"),
    ({"max_extensions": -1}, "requests.max_extensions"),
    ({"max_extension_days": 0}, "requests.max_extension_days"),
    ({"disclosure_days": "14"}, "requests.disclosure_days"),
    ({"max_extension": 1}, "requests.max_extension"),
])
def test_bad_requests_config_names_the_key(values, key):
    with pytest.raises(ConfigProblems, match=re.escape(key)):
        settings(requests=values)


# -- tick dates mail with the real clock ----------------------------------------------------

def test_redated_replaces_only_the_top_level_date():
    message = compose.internal_mail(settings(), to=["a@example.com"], subject="s",
                                    text="Date: in the body stays\n", html="<p>x</p>",
                                    message_id="<x@cijidas.jp>",
                                    date=NOW + timedelta(days=30))
    real = datetime(2026, 11, 30, 4, 5, 6, tzinfo=UTC)
    parsed = message_from_bytes(redated(bytes(message), real))
    assert parsedate_to_datetime(parsed["Date"]) == real
    assert parsed.get_all("Date") == [parsed["Date"]]
    assert "Date: in the body stays" in compose.plain_text(parsed)


# -- the completion pass reads through its indexes ------------------------------------------

def test_completion_queries_use_their_indexes(tmp_path):
    from bot.adapters.store import Store

    store = Store(tmp_path / "t.db")
    store.conn.execute("ANALYZE")
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        store.completion_unset()
        store.completion_candidates("2026-12-01T00:00:00Z")
        store.answered_uncompleted()
    finally:
        store.conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3
    for sql in selects:
        plan = " | ".join(row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX idx_tickets_" in plan, plan
        # never the whole table (scanning the partial index of unset rows is the point)
        assert re.search(r"SCAN tickets(?! USING INDEX)", plan) is None, plan
    store.close()
