"""Evaluate triage on the labelled corpus (tests/fixtures/corpus).

Prints per-class precision/recall/F1, a confusion matrix, language accuracy and, when
bot/autogen.py is present, machine-generated precision/recall.

Usage: .venv/bin/python bench/triage_eval.py [--split test|train|all] [--errors]
(--errors lists misclassified mails; use it on the train split only, the test split is
held out.)
"""

from __future__ import annotations

import argparse
import csv
import email
import email.policy
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.models import Category, Language, Triage  # noqa: E402
from bot.triage import triage  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
BOT_ADDRESS = "contact@cijidas.jp"


@dataclass(frozen=True)
class Sample:
    file: str
    category: str
    language: str
    auto_generated: bool
    split: str


def load_labels(split: str = "test") -> list[Sample]:
    """Rows of labels.csv for ``split`` ("all" for every row)."""
    with (CORPUS / "labels.csv").open(encoding="utf-8") as handle:
        rows = [Sample(r["file"], r["category"], r["language"], r["auto_generated"] == "1",
                       r["split"]) for r in csv.DictReader(handle)]
    return [r for r in rows if split == "all" or r.split == split]


def read_mail(path: Path) -> tuple[str, str, object]:
    """(subject, new text, parsed mail) via bot.mail.parse, or a minimal stdlib parse."""
    raw = path.read_bytes()
    try:
        from bot.mail.parse import parse_message
    except ImportError:
        return _stdlib_mail(raw)
    mail = parse_message(raw)
    return mail.subject, mail.new_text, mail


def _stdlib_mail(raw: bytes) -> tuple[str, str, object]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    kept = []
    for line in text.splitlines():
        if line.startswith(">") or line.rstrip() == "--" or line.endswith("wrote:"):
            break
        kept.append(line)
    return str(msg.get("Subject", "")), "\n".join(kept), msg


def machine_detector():  # type: ignore[no-untyped-def]
    """bot.mail.autogen.machine_generated_reason, or None while it does not exist."""
    try:
        from bot.mail.autogen import machine_generated_reason
    except ImportError:
        return None
    return machine_generated_reason


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(samples: list[Sample]) -> dict[str, object]:
    """Run triage on the human mails of ``samples``; return predictions and figures."""
    results: list[tuple[Sample, Triage]] = []
    for sample in samples:
        if sample.auto_generated:
            continue
        subject, text, _ = read_mail(CORPUS / sample.file)
        results.append((sample, triage(subject, text, default_language=Language.EN)))
    correct = sum(s.category == t.category for s, t in results)
    lang_ok = sum(s.language == t.language for s, t in results)
    per_class = {}
    for cat in Category:
        tp = sum(s.category == cat and t.category == cat for s, t in results)
        fp = sum(s.category != cat and t.category == cat for s, t in results)
        fn = sum(s.category == cat and t.category != cat for s, t in results)
        per_class[cat.value] = (*prf(tp, fp, fn), tp + fn)
    n = len(results) or 1
    return {"results": results, "accuracy": correct / n, "language_accuracy": lang_ok / n,
            "macro_f1": sum(v[2] for v in per_class.values()) / len(per_class),
            "per_class": per_class}


def print_report(figures: dict[str, object], show_errors: bool) -> None:
    results = figures["results"]
    print(f"human mails: {len(results)}")
    print(f"{'class':<12}{'prec':>7}{'recall':>8}{'f1':>7}{'n':>5}")
    for name, (p, r, f, n) in figures["per_class"].items():
        print(f"{name:<12}{p:>7.3f}{r:>8.3f}{f:>7.3f}{n:>5}")
    print(f"accuracy {figures['accuracy']:.3f}  macro-F1 {figures['macro_f1']:.3f}  "
          f"language accuracy {figures['language_accuracy']:.3f}")
    review = sum(t.needs_review for _, t in results)
    wrong_review = sum(t.needs_review for s, t in results if s.category != t.category)
    bilingual = sum(t.bilingual for _, t in results)
    print(f"needs_review {review} (of which misclassified {wrong_review}); bilingual {bilingual}")
    print("confusion (rows = label, columns = predicted):")
    names = [c.value for c in Category]
    print(" " * 12 + "".join(f"{n[:6]:>8}" for n in names))
    for label in names:
        row = [sum(s.category == label and t.category == p for s, t in results) for p in names]
        print(f"{label:<12}" + "".join(f"{v:>8}" for v in row))
    if show_errors:
        for s, t in results:
            if s.category != t.category or s.language != t.language:
                print(f"  {s.file}: {s.category}/{s.language} -> {t.category}/{t.language} "
                      f"({t.confidence:.2f}, {t.language_confidence:.2f}) {list(t.cues)}")


def print_machine(samples: list[Sample]) -> None:
    detector = machine_detector()
    if detector is None:
        print("machine-generated: bot.mail.autogen not available yet")
        return
    tp = fp = fn = 0
    for sample in samples:
        _, _, mail = read_mail(CORPUS / sample.file)
        predicted = detector(mail, BOT_ADDRESS) is not None
        tp += predicted and sample.auto_generated
        fp += predicted and not sample.auto_generated
        fn += sample.auto_generated and not predicted
    p, r, _ = prf(tp, fp, fn)
    print(f"machine-generated: precision {p:.3f} recall {r:.3f} "
          f"(tp {tp}, human taken as machine {fp}, machine taken as human {fn})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--errors", action="store_true")
    args = parser.parse_args()
    samples = load_labels(args.split)
    print(f"split: {args.split}")
    print_report(evaluate(samples), args.errors)
    print_machine(samples)


if __name__ == "__main__":
    main()
