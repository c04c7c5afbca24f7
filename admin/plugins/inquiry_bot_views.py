"""Datasette plugin shipped with the inquiry bot: how a privacy officer reads the database.

Loaded with ``--plugins-dir admin/plugins`` beside the guard plugin; configured by
``inquiry-bot admin`` under ``plugins: inquiry-bot-views`` (``timezone``: the company time
zone, ``bot.timezone``; ``config``: the config file, for the export command it shows).

- **Times in company time next to UTC.** Every cell holding a time as the bot stores it
  (``2026-12-04T14:59:59Z``) shows ``2026-12-04 23:59 JST`` with the stored UTC value below
  it - in every table, view, canned query and hand-written SQL (a ``render_cell`` hook).
- **Refs are links** to the ticket dossier (``/<db>/ticket?ref=...``) wherever a ``ref``
  column appears; ``ticket_id`` in tables without a foreign key links to the ticket.
- **Template helpers** for the templates in ``admin/templates``: ``from_json``,
  ``fold_quote`` (a mail's own text apart from the quoted history), ``when`` (a time
  as above), ``deadline`` (met / missed / overdue / due in ...), and
  ``fold_column_descriptions`` (table pages start with rows, not column notes).

Nothing here changes what the JSON and CSV outputs contain: they keep the stored values.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from datasette import hookimpl
from markupsafe import Markup, escape

from bot.mail import quotes

PLUGIN = "inquiry-bot-views"
STATIC_MOUNT = "inquiry-bot"
STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")
REF = re.compile(r"^[A-Z][A-Z0-9]*-\d+$")
# Tables whose ticket_id has no foreign key (datasette links the others itself).
TICKET_ID_TABLES = {"events", "outbox", "processed", "bounces", "staff_notices"}
_COLUMN_NOTES = re.compile(r'<dl class="column-descriptions">.*?</dl>', re.DOTALL)


def _config(datasette) -> dict[str, Any]:
    return datasette.plugin_config(PLUGIN) or {}


def company_zone(datasette) -> ZoneInfo:
    """The configured time zone (UTC when none or an unknown one is configured)."""
    try:
        return ZoneInfo(_config(datasette).get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_stored(value: object) -> datetime | None:
    """A stored UTC time (``...Z``) as an aware datetime, else None."""
    if not isinstance(value, str) or not STORED_TIME.match(value):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_text(moment: datetime, zone: ZoneInfo) -> str:
    """``2026-12-04 23:59 JST``: minutes are enough to read; the UTC value stays beside."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def time_markup(value: object, zone: ZoneInfo) -> Markup | None:
    """A stored time as company time with the stored UTC value under it, else None."""
    moment = parse_stored(value)
    if moment is None:
        return None
    return Markup('<span class="ib-time"><time datetime="{0}">{1}</time>'
                  '<span class="ib-utc">{0}</span></span>').format(value,
                                                                     local_text(moment, zone))


def dossier_href(datasette, database: str, ref: str) -> str:
    return datasette.urls.database(database) + "/ticket?ref=" + ref


@hookimpl
def render_cell(value, column, table, database, datasette):
    if column == "ref" and isinstance(value, str) and REF.match(value):
        return Markup('<a class="ib-ref" href="{}">{}</a>').format(
            dossier_href(datasette, database, value), value)
    if column == "ticket_id" and table in TICKET_ID_TABLES and isinstance(value, int):
        return Markup('<a href="{}">{}</a>').format(
            datasette.urls.row(database, "tickets", str(value)), value)
    return time_markup(value, company_zone(datasette))


# -- template helpers --------------------------------------------------------------------

def from_json(value: object) -> Any:
    """JSON text from a query column as Python data (``[]`` for empty or broken JSON)."""
    if not isinstance(value, str) or not value:
        return []
    try:
        return json.loads(value)
    except ValueError:
        return []


def fold_quote(text: object) -> tuple[str, str]:
    """``(own, quoted)``: the mail's own text, and everything from the first quoted earlier
    mail on (attribution, header block, separator or ``>`` lines, as the triage reads them).
    A mail that is all quotation is shown whole: there is nothing else to show first."""
    lines = str(text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = [quotes.clean(line) for line in lines]
    for index, line in enumerate(cleaned):
        if line.startswith(">") or quotes.splitter_at(cleaned, index) is not None:
            own = "\n".join(lines[:index]).strip("\n")
            if own.strip():
                return own, "\n".join(lines[index:]).strip("\n")
            break
    return "\n".join(lines).strip("\n"), ""


def span_text(span: timedelta) -> str:
    """``2 d 3 h``, ``5 h 10 min``, ``7 min``."""
    minutes = int(abs(span).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def deadline_state(due: object, done: object = None, closed: object = None,
                   now: datetime | None = None) -> tuple[str, str]:
    """``(state, words)`` for a deadline: state is met, missed, closed, overdue, due or
    none; ``done`` is when what the deadline asks for happened (e.g. the first response)."""
    due_at, done_at = parse_stored(due), parse_stored(done)
    if due_at is None:
        return "none", "no deadline"
    if done_at is not None:
        if done_at <= due_at:
            return "met", f"met, {span_text(due_at - done_at)} early"
        return "missed", f"missed by {span_text(done_at - due_at)}"
    if parse_stored(closed) is not None:
        return "closed", "closed before it was met"
    now = now or datetime.now(UTC)
    if now > due_at:
        return "overdue", f"overdue by {span_text(now - due_at)}"
    return "due", f"due in {span_text(due_at - now)}"


def fold_column_descriptions(html: str) -> Markup:
    """A table page with its column notes folded into a closed ``<details>``."""
    folded = _COLUMN_NOTES.sub(
        lambda m: '<details class="ib-columns"><summary>What the columns mean</summary>'
                  f'{m.group(0)}</details>', str(html), count=1)
    return Markup(folded)


@hookimpl
def prepare_jinja2_environment(env, datasette):
    env.filters["from_json"] = from_json
    env.filters["fold_quote"] = fold_quote
    env.filters["fold_column_descriptions"] = fold_column_descriptions
    env.filters["when"] = lambda value: time_markup(value, company_zone(datasette)) or (
        escape(value) if value else Markup("&mdash;"))
    env.globals["deadline"] = deadline_state
    env.globals["inquiry_bot"] = lambda: {
        "timezone": str(company_zone(datasette)),
        "config": _config(datasette).get("config") or "config.toml",
        "static": datasette.urls.path(f"/{STATIC_MOUNT}/")}


@hookimpl
def extra_css_urls(datasette):
    if any(name == STATIC_MOUNT for name, _ in datasette.static_mounts or ()):
        return [datasette.urls.path(f"/{STATIC_MOUNT}/admin.css")]
    return []
