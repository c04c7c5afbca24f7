"""``inquiry-bot inspect [--json] FILE.eml...``: what the bot reads in a mail.

For admins debugging a surprising ticket (and for tests): the sender as the bot takes it,
subject, date, language, the new text, the quoted part, attachments, why it counts as
machine mail (if it does) and the triage. Nothing is stored and no mail is sent.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.mail.autogen import machine_generated_reason
from bot.mail.parse import parse_message
from bot.models import InboundMail
from bot.ops.classify_files import DEFAULT_BOT_ADDRESS, _triage_options
from bot.triage import triage

PREVIEW_CHARS = 400  # the text report shortens long texts; --json gives them whole


def inspect_file(path: Path, settings: Settings | None) -> dict:
    """One JSON-able object for ``path``."""
    mail = parse_message(path.read_bytes())
    return inspect_mail(mail, settings, str(path))


def inspect_mail(mail: InboundMail, settings: Settings | None, name: str = "") -> dict:
    bot_address = settings.bot.address if settings else DEFAULT_BOT_ADDRESS
    reason = machine_generated_reason(mail, bot_address)
    result: dict = {
        "file": name, "from": mail.from_addr, "from_name": mail.from_name,
        "sender_known": bool(mail.from_addr), "reply_to": mail.reply_to,
        "to": list(mail.to_addrs), "subject": mail.subject,
        "date": mail.date.isoformat() if mail.date else None,
        "message_id": mail.message_id, "new_text": mail.new_text,
        "quoted": quoted_part(mail),
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size} for a in mail.attachments],
        "machine_mail": reason, "language": None, "triage": None,
        "defects": list(mail.defects)}
    if reason is None:
        found = triage(mail.subject, mail.new_text, quoted=mail.body_text,
                       **_triage_options(settings))
        result["language"] = found.language.value
        result["triage"] = {
            "category": found.category.value, "probability": round(found.confidence, 3),
            "language_confidence": round(found.language_confidence, 3),
            "needs_review": found.needs_review, "review_reasons": list(found.review_reasons),
            "cues": list(found.cues), "top_terms": list(found.top_terms),
            "model": found.model_version}
    return result


def quoted_part(mail: InboundMail) -> str:
    """What the bot left out of the new text (quoted history, signature)."""
    body, new = mail.body_text.strip(), mail.new_text.strip()
    if not new:
        return body
    at = body.find(new)
    if at < 0:
        return body
    return (body[:at] + body[at + len(new):]).strip()


def text_report(result: dict) -> str:
    """The human-readable report of :func:`inspect_file`."""
    sender = result["from"] or "(cannot be determined: ticket for staff, no acknowledgement)"
    lines = [f"== {result['file']}",
             f"from:        {sender}" + (f" ({result['from_name']})" if result["from_name"]
                                         else ""),
             f"subject:     {result['subject']}",
             f"date:        {result['date'] or '-'}",
             f"language:    {result['language'] or '-'}",
             f"machine:     {result['machine_mail'] or 'no (human mail)'}"]
    triage_ = result["triage"]
    if triage_:
        lines += [f"category:    {triage_['category']} (p={triage_['probability']:.2f})"
                  + (" needs review" if triage_["needs_review"] else ""),
                  f"review:      {'; '.join(triage_['review_reasons']) or '-'}",
                  f"cues:        {'; '.join(triage_['cues']) or '-'}",
                  f"top terms:   {', '.join(triage_['top_terms']) or '-'}"]
    for item in result["attachments"]:
        lines.append(f"attachment:  {item['filename']} ({item['content_type']}, "
                     f"{item['size']} bytes)")
    lines += ["--- new text", _preview(result["new_text"]),
              "--- quoted part", _preview(result["quoted"]) or "(none)"]
    return "\n".join(lines)


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " [...]"
