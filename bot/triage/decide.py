"""Combine the learned model with the phrase rules into one category decision. PURE.

The model's probability is the primary signal. The rules are evidence and a guard: an
explicit request phrase the model disagrees with, or a mail that reads as two requests at
once, goes to staff review whatever the model's confidence, and the rules' cues stay in the
explanation staff see.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Category
from bot.triage.classify import classify_with_negations
from bot.triage.model import Prediction
from bot.triage.text import words

REQUESTS = frozenset({Category.DELETION, Category.DISCLOSURE, Category.CORRECTION})
GUARD_CONFIDENCE = 0.6      # a rule this sure of a request is an explicit request phrase
GUARD_OVERRIDES_BELOW = 0.5  # ... and wins over a model less sure than this (5-fold CV on
                             # the training corpus: 90.2% -> 91.9%)
NEGATION_OVERRIDES_BELOW = 0.8  # the model's request word is negated: rules win (CV +0.2 pt)
RULES_WIN_BELOW = 0.5       # a model this unsure yields to a rule reading of some confidence
RULES_MIN_CONFIDENCE = 0.3  # (5-fold CV on the training corpus: 92.1% -> 93.0%)
MIN_WORDS = 3               # fewer words than this: nothing to decide on
MIXED_SECOND = 0.3          # a second request this likely: the mail asks for two things


@dataclass(frozen=True)
class Decision:
    """The category, how sure we are, and why staff should look (empty: no review)."""

    category: Category
    probability: float
    review_reasons: tuple[str, ...]

    @property
    def needs_review(self) -> bool:
        return bool(self.review_reasons)


@dataclass(frozen=True)
class RuleReading:
    """What the phrase rules read in one mail, and how many words the model read: all a
    decision needs besides the model's prediction and the threshold."""

    category: Category
    confidence: float
    cues: tuple[str, ...]
    negated: frozenset[Category]
    words: int

    def decide(self, prediction: Prediction, threshold: float) -> Decision:
        """:func:`decide` with this reading."""
        return decide(prediction, self.category, self.confidence, threshold,
                      words=self.words, negated=self.negated)


def read_rules(subject: str, text: str, read: str) -> RuleReading:
    """The rules' reading of a mail; ``read`` is the text the model reads
    (:func:`bot.triage.features.model_text`)."""
    category, confidence, cues, negated = classify_with_negations(subject, text)
    return RuleReading(category, confidence, cues, negated, len(words(read)))


def decide(prediction: Prediction, rule_category: Category, rule_confidence: float,
           threshold: float, words: int = MIN_WORDS,
           negated: frozenset[Category] = frozenset()) -> Decision:
    """The model's category, flagged for review when unsure, contradicted or mixed. The
    rules' reading wins when the model is unsure itself (below 0.5) and the rules found
    cues, and when the model's request word is negated ("not asking you to delete")."""
    category = Category(prediction.category)
    reasons = []
    if prediction.probability < threshold:
        reasons.append(f"model probability {prediction.probability:.2f} < {threshold:.2f}")
    if words < MIN_WORDS:
        reasons.append("too little text to decide")
    if _guard_disagrees(category, rule_category, rule_confidence):
        reasons.append(f"rules read an explicit {rule_category.value} request")
        if prediction.probability < GUARD_OVERRIDES_BELOW:
            category = rule_category
    if category in negated:
        reasons.append(f"rules read '{category.value}' only negated or hypothetical")
        if prediction.probability < NEGATION_OVERRIDES_BELOW:
            category = rule_category
    if prediction.probability < RULES_WIN_BELOW and rule_confidence >= RULES_MIN_CONFIDENCE:
        category = rule_category
    second = _second_request(prediction, category)
    if second:
        reasons.append(f"also reads as {second.value}")
    return Decision(category, prediction.probability, tuple(reasons))


def _guard_disagrees(category: Category, rule_category: Category, confidence: float) -> bool:
    return (rule_category in REQUESTS and confidence >= GUARD_CONFIDENCE
            and category != rule_category)


def _second_request(prediction: Prediction, category: Category) -> Category | None:
    if category not in REQUESTS:
        return None
    others = [(p, c) for c, p in prediction.probabilities.items()
              if Category(c) in REQUESTS and c != category.value]
    probability, second = max(others, default=(0.0, category.value))
    return Category(second) if probability >= MIXED_SECOND else None
