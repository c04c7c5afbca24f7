"""PURE: jinja2 rendering of the mails' wording into a text part and an HTML part.

Each mail's wording is written once per language (``<lang>/<name>.j2``); two layouts turn
it into plain text (wrapped at 76 columns) and autoescaped HTML, so the parts cannot drift
apart. Dates are formatted for the reader's language.

Its only I/O is reading the templates and, when given a cache folder, their compiled form
(jinja2's bytecode cache): compiling every template again cost each ``once`` run 60-80 ms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from bot.models import Language

_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
_VI_ZONES = {"Asia/Tokyo": "giờ Nhật Bản", "Asia/Ho_Chi_Minh": "giờ Việt Nam"}
_VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")  # Vietnamese readers also get the time there
_NBSP = "\u00a0"  # textwrap only breaks at ASCII whitespace
_BLOCK_TAG = re.compile(r"<(?:p|div|ul|ol|h\d|blockquote|table|pre)\b")


def format_datetime(moment: datetime, language: Language | str) -> str:
    """en ``24 November 2026, 12:00 (JST)``; vi ``12:00 ngày 24/11/2026 (giờ Nhật Bản),
    tức 10:00 giờ Việt Nam`` (the Vietnam time is added unless the zone is Vietnam's)."""
    if language == Language.VI:
        key = getattr(moment.tzinfo, "key", "")
        zone = _VI_ZONES.get(key, f"giờ {moment.tzname()}")
        text = f"{moment:%H:%M} ngày {moment:%d/%m/%Y} ({zone})"
        if key == _VIETNAM.key:
            return text
        there = moment.astimezone(_VIETNAM)
        day = "" if there.date() == moment.date() else f" ngày {there:%d/%m/%Y}"
        return f"{text}, tức {there:%H:%M}{day} giờ Việt Nam"
    return f"{format_date(moment, language)}, {moment:%H:%M} ({moment.tzname()})"


def format_date(moment: datetime, language: Language | str) -> str:
    """en ``8 December 2026``; vi ``08/12/2026`` (templates write "ngày" before it), with
    the Vietnam date after it when that is another day."""
    if language == Language.VI:
        there = moment.astimezone(_VIETNAM) if moment.tzinfo else moment
        if there.date() == moment.date():
            return f"{moment:%d/%m/%Y}"
        return f"{moment:%d/%m/%Y} ({there:%d/%m/%Y} giờ Việt Nam)"
    return f"{moment.day} {_EN_MONTHS[moment.month - 1]} {moment.year}"


def _unbroken(formatter: Any) -> Any:
    """A date filter for the text part whose result is never split by line wrapping."""
    return lambda moment, language: formatter(moment, language).replace(" ", _NBSP)


def wrap_words(line: str, width: int, indent: str = "") -> list[str]:
    """Greedy wrap on plain spaces only (NBSP keeps dates together; long words stay whole);
    continuation lines start with ``indent``.

    textwrap does the same but was the largest cost of rendering an acknowledgement; this
    cuts at the last space that fits, one step per output line rather than per word.
    """
    rest = " ".join(filter(None, line.split(" "))) if "  " in line else line.strip(" ")
    out: list[str] = []
    room = width
    while len(rest) > room:
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= 0:  # the first word alone is longer than the line
            cut = rest.find(" ")
            if cut < 0:
                break
        out.append((indent if out else "") + rest[:cut])
        rest = rest[cut + 1:]
        room = max(width - len(indent), 0)
    if rest:
        out.append((indent if out else "") + rest)
    return out


def _tidy_text(text: str) -> str:
    """Wrap prose at 76 columns; leave quotes ("> ") and indented lines alone."""
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if len(line) <= 76 or line.startswith((">", " ")):
            lines.append(line)
        else:
            lines.extend(wrap_words(line, 76, "  " if line.startswith("- ") else ""))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"
    return text.replace(_NBSP, " ")


def _paragraphs(value: str) -> Markup:
    """HTML blocks from rendered (already escaped) text: blank line = new block,
    "- " lines = list, other line breaks = ``<br>``."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", str(escape(value)).strip()):
        lines = [line.strip() for line in chunk.strip().splitlines()]
        if not lines or not lines[0]:
            continue
        if _BLOCK_TAG.match(lines[0]):
            blocks.append("\n".join(lines))
        elif lines[0].startswith("- "):
            items = "".join(f"<li>{line[2:]}</li>\n" for line in lines)
            blocks.append(f"<ul>\n{items}</ul>")
        else:
            blocks.append("<p>" + "<br>\n".join(lines) + "</p>")
    return Markup("\n".join(blocks))


def _html_link(url: str, label: str | None = None) -> Markup:
    if not str(url).startswith(("https://", "http://", "mailto:")):
        return escape(label or url)
    return Markup('<a href="%s">%s</a>') % (url, label or url)


def _html_quote(text: str) -> Markup:
    # Newlines become character references so that the block survives _paragraphs intact.
    body = str(escape(text)).replace("\n", "&#10;")
    return Markup('<blockquote style="white-space:pre-wrap;border-left:3px solid #ccc;'
                  f'margin:0;padding-left:1em">{body}</blockquote>')


# Template helpers: the same call gives plain text in the text part and markup in the HTML.
_TEXT_HELPERS = {
    "strong": str,
    "link": lambda url, label=None: str(label or url),
    "quote": lambda text: "\n".join(f"> {line}" for line in str(text).splitlines()) or ">",
    "when": _unbroken(format_datetime), "day": _unbroken(format_date),
}
_HTML_HELPERS = {
    "strong": lambda value: Markup("<strong>%s</strong>") % value,
    "link": _html_link, "quote": _html_quote, "when": format_datetime, "day": format_date,
}


class CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """jinja2's compiled templates kept in an owner-only folder between runs.

    jinja2 keys an entry by template name and file and checks the source's checksum, but not
    the environment's settings: the text and HTML environments (autoescape off and on)
    therefore get separate file names (``kind``), or one would run the other's code. A
    cache that cannot be read or written is skipped; rendering never depends on it."""

    def __init__(self, folder: Path, kind: str) -> None:
        super().__init__(str(folder), f"{kind}-%s.cache")
        self.folder = folder

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError, TypeError):  # unreadable or damaged: compile
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with suppress(OSError):
            for folder in (self.folder.parent, self.folder):  # inside the state folder
                folder.mkdir(mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)


@lru_cache(maxsize=8)
def _environments(templates_dir: Path, cache_dir: Path | None
                  ) -> tuple[jinja2.Environment, jinja2.Environment]:
    """(text, html) environments over one template folder; html autoescapes everything."""
    loader = jinja2.FileSystemLoader(str(templates_dir))
    envs = []
    for autoescape, helpers in ((False, _TEXT_HELPERS), (True, _HTML_HELPERS)):
        kind = "html" if autoescape else "text"
        env = jinja2.Environment(loader=loader, autoescape=autoescape,
                                 bytecode_cache=CompiledTemplates(cache_dir, kind)
                                 if cache_dir else None,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True, keep_trailing_newline=True,
                                 auto_reload=False)  # no stat() per render; restart to reload
        env.globals.update(strong=helpers["strong"], link=helpers["link"],
                           quote=helpers["quote"])
        env.filters.update(when=helpers["when"], day=helpers["day"], paragraphs=_paragraphs)
        envs.append(env)
    return envs[0], envs[1]


def render(templates_dir: Path, name: str, language: Language, context: Mapping[str, Any],
           *, bilingual: bool = False, cache_dir: Path | None = None) -> tuple[str, str]:
    """Render ``<lang>/<name>.j2`` as (text, html); bilingual = Vietnamese, then English.
    ``cache_dir``: where compiled templates are kept between runs (see
    :class:`CompiledTemplates`)."""
    languages = [Language.VI, Language.EN] if bilingual else [Language(language)]
    data = {**context, "mail_name": name, "languages": [lang.value for lang in languages]}
    text_env, html_env = _environments(Path(templates_dir), cache_dir)
    text = text_env.get_template("layout.txt.j2").render(data)
    html = html_env.get_template("layout.html.j2").render(data)
    return _tidy_text(text), html
