"""Build and measure the triage model: ``inquiry-bot train`` and bench/triage_eval.py.

Training data: the shipped corpus (tests/fixtures/triage/train-*.txt and the older
tests/fixtures/corpus/source/*.txt) plus the company's labelled tickets still in the
database (a staff ``#category`` correction, or a ticket staff closed without correcting).
The held-out split (tests/fixtures/triage/heldout.txt) is never trained on; it only picks
the review threshold and reports figures. scikit-learn is needed here only (the ``train``
extra); the worker scores the exported JSON in pure Python (:mod:`bot.triage.model`).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import PACKAGE_ROOT
from bot.mail.parse import parse_message
from bot.triage import SHIPPED_MODEL  # noqa: F401  (bench/triage_eval.py writes it)
from bot.triage.corpus import (
    BOT_ADDRESS,  # noqa: F401  (re-exported for bench)
    CATEGORIES,
    Sample,
    build_mail,
    parse_corpus,
)
from bot.triage.decide import RuleReading, read_rules
from bot.triage.features import analyze, model_text
from bot.triage.model import Model, Prediction

CORPUS_DIR = PACKAGE_ROOT / "tests" / "fixtures" / "triage"
OLD_CORPUS_DIR = PACKAGE_ROOT / "tests" / "fixtures" / "corpus" / "source"
REGULARISATION_C = 30.0  # chosen by 5-fold CV in bench/triage_eval.py
TARGET_UNFLAGGED_ACCURACY = 0.97
MIN_DF = 2


@dataclass(frozen=True)
class Example:
    """One training or evaluation mail: what the model reads, and its labels."""

    text: str
    sample: Sample


def shipped_samples(held_out: bool = False) -> list[Sample]:
    """The shipped corpus: the training files, or the held-out split."""
    if held_out:
        files = [CORPUS_DIR / "heldout.txt"]
    else:
        files = sorted(CORPUS_DIR.glob("train-*.txt")) + sorted(OLD_CORPUS_DIR.glob("*.txt"))
    samples: list[Sample] = []
    for path in files:
        samples += parse_corpus(path.read_text(encoding="utf-8"), path.name)
    return samples


def examples(samples: Sequence[Sample], humans_only: bool = True) -> list[Example]:
    """Build each sample as a mail, parse it as the worker would, keep the model's text."""
    result = []
    for index, sample in enumerate(samples):
        if humans_only and sample.machine:
            continue
        mail = parse_message(build_mail(sample, index))
        result.append(Example(model_text(mail.subject, mail.new_text, mail.body_text), sample))
    return result


def fit(items: Sequence[Example], c: float = REGULARISATION_C) -> Model:
    """TF-IDF + multinomial logistic regression, exported to a pure-Python :class:`Model`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=MIN_DF)
    matrix = vectorizer.fit_transform([e.text for e in items])
    classifier = LogisticRegression(C=c, max_iter=3000)
    classifier.fit(matrix, [e.sample.primary for e in items])
    return _export(vectorizer, classifier, len(items))


def _export(vectorizer, classifier, size: int) -> Model:
    classes = tuple(str(c) for c in classifier.classes_)
    weights = classifier.coef_.T
    kept = sorted((term, column) for term, column in vectorizer.vocabulary_.items()
                  if weights[column].any())
    index = {term: row for row, (term, _) in enumerate(kept)}
    idf = array("f", (float(vectorizer.idf_[column]) for _, column in kept))
    flat = array("f", (float(w) for _, column in kept for w in weights[column]))
    intercepts = tuple(round(float(b), 6) for b in classifier.intercept_)
    digest = hashlib.sha256(idf.tobytes() + flat.tobytes()).hexdigest()[:10]
    return Model(classes, index, idf, flat, intercepts, version=f"lr-{size}-{digest}",
                 meta={"examples": size, "C": classifier.C})



def cross_validated(items: Sequence[Example], folds: int = 5,
                    c: float = REGULARISATION_C) -> list[dict[str, float]]:
    """Out-of-fold probabilities for every example (stratified by primary label)."""
    from sklearn.model_selection import StratifiedKFold

    labels = [e.sample.primary for e in items]
    result: list[dict[str, float]] = [{} for _ in items]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=7)
    for train_idx, test_idx in splitter.split(labels, labels):
        model = fit([items[i] for i in train_idx], c)
        for i in test_idx:
            result[i] = model.predict(items[i].text).probabilities
    return result



def repo_path(path: Path) -> str:
    """``path`` relative to the repository, for printed reports."""
    try:
        return str(path.relative_to(PACKAGE_ROOT))
    except ValueError:
        return str(path)


@dataclass
class Report:
    """Held-out figures of one model."""

    total: int
    right: int
    macro_f1: float
    recall: dict[str, float]
    confusion: Counter
    unflagged_share: float
    unflagged_accuracy: float
    flagged_errors: int
    errors: list[tuple[Example, str]]

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


def evaluate(model: Model, items: Sequence[Example]) -> Report:
    """Accuracy (primary or acceptable), strict macro-F1, recall, review figures."""
    return _report(score(model, items), model.review_threshold)


@dataclass(frozen=True)
class Scored:
    """One example as the model and the rules read it (read once, decided at any
    threshold)."""

    example: Example
    prediction: Prediction
    reading: RuleReading


def score(model: Model, items: Sequence[Example]) -> list[Scored]:
    """The model's prediction and the rules' reading of every example."""
    return [Scored(e, model.predict(e.text), _reading(e)) for e in items]


def _reading(example: Example) -> RuleReading:
    subject, _, text = example.text.partition("\n")
    return read_rules(subject, text, example.text)


def _report(scored: Sequence[Scored], threshold: float) -> Report:
    outcomes = [(s.example, s.reading.decide(s.prediction, threshold)) for s in scored]
    confusion = Counter((e.sample.primary, d.category.value) for e, d in outcomes)
    right = [e.sample.accepts(d.category.value) for e, d in outcomes]
    unflagged = [ok for ok, (_, d) in zip(right, outcomes, strict=True) if not d.needs_review]
    flagged_errors = sum(1 for ok, (_, d) in zip(right, outcomes, strict=True)
                         if not ok and d.needs_review)
    total = len(outcomes)
    return Report(total, sum(right), _macro_f1(confusion), _recall(confusion), confusion,
                  len(unflagged) / total if total else 0.0,
                  sum(unflagged) / len(unflagged) if unflagged else 0.0, flagged_errors,
                  [(e, d.category.value) for (e, d), ok in zip(outcomes, right, strict=True)
                   if not ok])


def choose_threshold(model: Model, items: Sequence[Example],
                     cross_validation: tuple[Sequence[Example], Sequence[dict]] | None = None
                     ) -> float:
    """The lowest review threshold at which unflagged mail is >= 97% right on ``items``
    (the held-out split) and, when given, on the out-of-fold predictions of the training
    corpus: mail phrased unlike the held-out split keeps a margin."""
    splits = [score(model, items)]
    if cross_validation is not None:
        splits.append([Scored(e, Prediction(p), _reading(e))
                       for e, p in zip(*cross_validation, strict=True)])
    for step in range(30, 100):
        threshold = step / 100
        if all(_report(scored, threshold).unflagged_accuracy >= TARGET_UNFLAGGED_ACCURACY
               for scored in splits):
            return threshold
    return 0.99


def with_threshold(model: Model, threshold: float) -> Model:
    """``model`` with another review threshold."""
    from dataclasses import replace

    return replace(model, review_threshold=threshold)


def _recall(confusion: Counter) -> dict[str, float]:
    result = {}
    for c in CATEGORIES:
        total = sum(n for (t, _), n in confusion.items() if t == c)
        result[c] = confusion[(c, c)] / total if total else 0.0
    return result


def _macro_f1(confusion: Counter) -> float:
    scores = []
    for c in CATEGORIES:
        tp = confusion[(c, c)]
        fp = sum(n for (t, p), n in confusion.items() if p == c and t != c)
        fn = sum(n for (t, p), n in confusion.items() if t == c and p != c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0)
    return sum(scores) / len(scores)


def ticket_examples(rows: Sequence[dict]) -> list[Example]:
    """Training examples from the store's labelled tickets."""
    result = []
    for row in rows:
        sample = Sample((row["category"],), "", row["subject"] or "", row["body_text"] or "",
                        source=f"ticket:{row['id']}")
        result.append(Example(model_text(sample.subject, sample.body), sample))
    return result


def train_company_model(store, settings, out=print, corpus: Sequence[Sample] | None = None,
                        held_out: Sequence[Sample] | None = None) -> Model:
    """``inquiry-bot train``: shipped corpus + labelled tickets -> the company model.

    ``corpus``/``held_out`` replace the shipped files (tests train on a small corpus)."""
    from bot.adapters.model_file import save_company_model

    corpus_items = examples(shipped_samples() if corpus is None else corpus)
    tickets = ticket_examples(store.labelled_tickets())
    items = corpus_items + tickets
    out(f"training on {len(corpus_items)} corpus mails + {len(tickets)} labelled tickets")
    oof = cross_validated(items, folds=3)
    right = sum(e.sample.accepts(max(p, key=p.get)) for e, p in zip(items, oof, strict=True))
    out(f"3-fold cross-validated accuracy: {right / len(items):.3f}")
    held = examples(shipped_samples(held_out=True) if held_out is None else held_out)
    model = fit(items)
    model = with_threshold(model, choose_threshold(model, held, (items, oof)))
    report = evaluate(model, held)
    out(f"held-out accuracy: {report.accuracy:.3f}; strict macro-F1 {report.macro_f1:.3f}; "
        f"review threshold {model.review_threshold:.2f} leaves {report.unflagged_share:.0%} "
        f"unflagged at {report.unflagged_accuracy:.1%} right")
    path = save_company_model(settings, model.to_json())
    out(f"wrote {path} ({model.version}); the worker uses it from its next start")
    return model
