"""Category of a customer's mail from weighted phrase rules, with confidence and cues.

Decision, in the order a privacy officer would file the mail:
1. An explicit data-rights request (deletion, disclosure, correction) wins: it carries a legal
   deadline, even when the mail is also a complaint or is phrased as a question.
2. Otherwise a mail with complaint wording is a complaint.
3. Otherwise it is a question (the default, with low confidence when there is no cue at all).
Confidence is the winner's margin over its competitors, squashed to 0..1.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bot.models import Category
from bot.triage.lexicon import CONTRAST, HYPOTHETICAL, NEGATORS, PAST_PASSIVE, RULES
from bot.triage.text import clean_subject, fold

REQUESTS = (Category.DELETION, Category.DISCLOSURE, Category.CORRECTION)
REQUEST_MIN = 2.0      # a request needs at least one explicit request phrase (or two cues)
COMPLAINT_MIN = 1.5
CATEGORY_CAP = 6.0     # many cues of one kind should not drown a single clear request
SUBJECT_WEIGHT = 0.8   # subjects are short and often generic ("Request", "Re: ...")
CONFIDENCE_SCALE = 2.5  # margin 3 (one clear request, no rival) -> 0.70
SCOPE_TOKENS = 6        # how far back a negation reaches within a clause
_CLAUSE_END = re.compile(r"[.,;:!?\n]")
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Rule:
    category: Category
    weight: float
    kind: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Hit:
    """One rule that fired (or was switched off, when ``blocked`` names why)."""

    rule: Rule
    weight: float
    snippet: str
    blocked: str = ""

    @property
    def cue(self) -> str:
        label = "stop-use" if self.rule.kind == "stop" else self.rule.category.value
        if self.blocked:
            return f"{self.blocked}: '{self.snippet}'"
        return f"{label}: '{self.snippet}'"


COMPILED = tuple(Rule(Category(c), w, k, re.compile(p)) for c, w, k, p in RULES)


def classify(subject: str, text: str) -> tuple[Category, float, tuple[str, ...]]:
    """Category, confidence (0..1) and human-readable cues for one mail."""
    return _classify_hits(_mail_hits(subject, text))


def negated_requests(subject: str, text: str) -> frozenset[Category]:
    """Request categories whose phrases occur only negated, conditional or in the past
    ("I'm not asking you to delete anything"): a model reading that word is misled."""
    return _negated(_mail_hits(subject, text))


def classify_with_negations(subject: str, text: str
                            ) -> tuple[Category, float, tuple[str, ...], frozenset[Category]]:
    """:func:`classify` and :func:`negated_requests` from one pass of the rules."""
    hits = _mail_hits(subject, text)
    return (*_classify_hits(hits), _negated(hits))


def _mail_hits(subject: str, text: str) -> list[Hit]:
    return _hits(clean_subject(subject), SUBJECT_WEIGHT) + _hits(text, 1.0)


def _negated(hits: list[Hit]) -> frozenset[Category]:
    active = {h.rule.category for h in hits if not h.blocked}
    return frozenset(h.rule.category for h in hits
                     if h.blocked and h.rule.category not in active)


def _classify_hits(hits: list[Hit]) -> tuple[Category, float, tuple[str, ...]]:
    active = _best_per_rule([h for h in hits if not h.blocked])
    scores = _scores(active)
    category, competitor = _decide(scores)
    if not active:
        return Category.QUESTION, 0.1, _cues(category, active, hits) + ("no cues: default",)
    margin = scores[category] - competitor
    confidence = 1.0 - math.exp(-max(margin, 0.0) / CONFIDENCE_SCALE)
    return category, round(confidence, 3), _cues(category, active, hits)


def _hits(original: str, factor: float) -> list[Hit]:
    if not original:
        return []
    folded = fold(original)
    shown = original if len(folded) == len(original) else folded
    # Most rules find nothing: one search each in C, before the Python loop over matches.
    return [hit for rule in COMPILED if rule.regex.search(folded)
            for hit in (_match(rule, folded, shown, factor),) if hit is not None]


def _match(rule: Rule, folded: str, shown: str, factor: float) -> Hit | None:
    """First unblocked match of ``rule``; else the first blocked one (kept as a cue)."""
    blocked_hit = None
    for match in rule.regex.finditer(folded):
        snippet = shown[match.start():match.end()].strip()[:40] or match.group(0)
        reason = _blocked(folded, match.start()) if rule.kind in ("request", "object") else ""
        if not reason:
            return Hit(rule, rule.weight * factor, snippet)
        blocked_hit = blocked_hit or Hit(rule, 0.0, _with_context(shown, match), reason)
    return blocked_hit


def _with_context(shown: str, match: re.Match[str]) -> str:
    """The switched-off phrase with the few words before it that switched it off."""
    before = _CLAUSE_END.split(shown[max(0, match.start() - 40):match.start()])[-1].split()
    return " ".join(before[-4:] + [shown[match.start():match.end()].strip()])[:60]


def _blocked(folded: str, start: int) -> str:
    """Why a request phrase at ``start`` is not a request: negated, conditional, past."""
    window = folded[max(0, start - 120):start]
    clause = _CLAUSE_END.split(window)[-1]
    tokens = _TOKEN.findall(clause)
    for distance, token in enumerate(reversed(tokens)):
        if token in CONTRAST:
            return ""  # "không X mà chỉ Y": the negation belongs to X, not to Y
        if distance < SCOPE_TOKENS and token in NEGATORS:
            return "negated"
        if token in HYPOTHETICAL:
            return "conditional"
        if distance < 2 and token in PAST_PASSIVE:
            return "past"
    return ""


def _best_per_rule(hits: list[Hit]) -> list[Hit]:
    """The same rule in subject and body counts once (at its stronger weight)."""
    best: dict[int, Hit] = {}
    for hit in hits:
        key = id(hit.rule)
        if key not in best or hit.weight > best[key].weight:
            best[key] = hit
    return sorted(best.values(), key=lambda h: -h.weight)


def _scores(active: list[Hit]) -> dict[Category, float]:
    verbs = {h.rule.category for h in active if h.rule.kind in ("request", "stop")}
    scores = dict.fromkeys(Category, 0.0)
    for hit in active:
        if hit.rule.kind == "object" and verbs - {hit.rule.category}:
            continue  # "delete the data you hold about me": the verb decides
        scores[hit.rule.category] += hit.weight
    return {c: min(s, CATEGORY_CAP) for c, s in scores.items()}


def _decide(scores: dict[Category, float]) -> tuple[Category, float]:
    """Winning category and the score of its strongest competitor."""
    ranked = sorted(REQUESTS, key=lambda c: -scores[c])  # stable: deletion first on ties
    best, runner_up = ranked[0], scores[ranked[1]]
    if scores[best] >= REQUEST_MIN:
        return best, runner_up
    if scores[Category.COMPLAINT] >= COMPLAINT_MIN:
        return Category.COMPLAINT, max(scores[best], 0.5 * scores[Category.QUESTION])
    rivals = max(scores[best], scores[Category.COMPLAINT])
    return Category.QUESTION, rivals


def _cues(category: Category, active: list[Hit], hits: list[Hit]) -> tuple[str, ...]:
    """Winner's cues first, then secondary categories, then what was switched off."""
    first = [h.cue for h in active if h.rule.category == category]
    others = [h.cue for h in active if h.rule.category != category]
    blocked = [h.cue for h in hits if h.blocked]
    return tuple(dict.fromkeys(first + others + blocked))[:10]
