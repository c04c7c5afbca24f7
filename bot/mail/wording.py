"""Wording that customer mails share, per language. PURE.

- :func:`fee_text`: a yen amount as each language writes it ("1,000 JPY", "1.000 yên");
- :func:`customer_context`: what every customer template may name (the policy's name, the
  complaints owner, the disclosure fee and payment instructions, in both languages), plus
  the per-request facts of an acknowledgement (agent, incident, opt-out) defaulting to None;
- :func:`agent_facts`, :func:`incident_facts`, :func:`opt_out_facts`: those facts for one
  acknowledgement (see bot.flows.intake).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from bot.config import Settings
from bot.models import Language

# Who may write for someone else, as the acknowledgement names them (relation -> words).
AGENT_RELATIONS: Mapping[str, Mapping[str, str]] = {
    "parent": {"en": "the parent of a child", "vi": "cha hoặc mẹ của người chưa thành niên"},
    "guardian": {"en": "their guardian", "vi": "người giám hộ"},
    "spouse": {"en": "their spouse or relative", "vi": "vợ/chồng hoặc người thân"},
    "heir": {"en": "the relative or heir of a customer who has died",
             "vi": "người thân hoặc người thừa kế của khách hàng đã qua đời"},
    "representative": {"en": "their lawyer or other representative",
                       "vi": "luật sư hoặc người đại diện khác"},
}


def fee_text(amount_yen: int, language: Language | str) -> str:
    """``1,000 JPY`` in English; ``1.000 yên`` in Vietnamese (dot for thousands)."""
    grouped = f"{amount_yen:,}"
    if Language(language) == Language.VI:
        return f"{grouped.replace(',', '.')} yên"
    return f"{grouped} JPY"


def customer_context(settings: Settings) -> dict[str, Any]:
    """Names and amounts every customer template may use, in both languages."""
    disclosure, bot = settings.disclosure, settings.bot
    return {
        "policy_name": bot.policy_name, "policy_name_vi": bot.policy_name_vi,
        "complaints_owner": bot.complaints_owner,
        "complaints_owner_vi": bot.complaints_owner_vi,
        "fee": disclosure.fee or fee_text(disclosure.fee_yen, Language.EN),
        "fee_vi": disclosure.fee or fee_text(disclosure.fee_yen, Language.VI),
        "payment_instructions": disclosure.payment_instructions,
        "payment_instructions_vi": disclosure.payment_instructions_vi,
        "agent": None, "incident": None, "opt_out": None,
    }


def agent_facts(relation: str) -> dict[str, str] | None:
    """Who wrote for the data subject, for the acknowledgement's proof-of-authority part."""
    words = AGENT_RELATIONS.get(relation)
    return {"relation": relation, **words} if words else None


def incident_facts(by: datetime, hours: int, tz: tzinfo) -> dict[str, Any]:
    """When the complaints owner will have answered a reported incident (``by`` shown in
    the company's time zone, ``tz``)."""
    return {"by": by.astimezone(tz), "hours": hours}


def opt_out_facts(by: datetime, days: int, tz: tzinfo, *, pure: bool) -> dict[str, Any]:
    """By when marketing sends stop; ``pure``: the mail asks for nothing else."""
    return {"by": by.astimezone(tz), "days": days, "pure": pure}
