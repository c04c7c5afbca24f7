"""Measure triage on the held-out split (tests/fixtures/triage/heldout.txt).

Prints, for the README: 5-fold cross-validated accuracy on the training corpus (which
picks the regularisation C), held-out accuracy (a label counts when it is the primary or
an acceptable one), strict macro-F1 (primary only), per-class recall, the confusion matrix,
the review threshold chosen on the held-out split (unflagged mail >= 97% right) with the
share left unflagged, language accuracy, machine-mail recall and human mail suppressed,
and the learning curve. The held-out split is never trained on.

Usage: .venv/bin/python bench/triage_eval.py [--write-model] [--errors]
  --write-model  also (re)write the shipped model bot/triage/model.json
  --errors       list held-out mistakes (look, but do not tune rules or data on them)
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.mail.autogen import machine_generated_reason  # noqa: E402
from bot.mail.parse import parse_message  # noqa: E402
from bot.ops import training  # noqa: E402
from bot.triage import triage  # noqa: E402
from bot.triage.corpus import CATEGORIES, build_mail  # noqa: E402

C_GRID = (3.0, 10.0, 30.0)


def main() -> int:
    args = _args()
    train = training.examples(training.shipped_samples())
    held_samples = training.shipped_samples(held_out=True)
    held = training.examples(held_samples)
    print(f"training mails: {len(train)} human; held-out: {len(held)} human, "
          f"{sum(s.machine for s in held_samples)} machine")
    best_c, oof = _choose_c(train)
    model = training.fit(train, best_c)
    threshold = training.choose_threshold(model, held, (train, oof))
    model = training.with_threshold(model, threshold)
    if args.write_model:
        training.SHIPPED_MODEL.write_text(model.to_json(), encoding="utf-8")
        print(f"wrote {training.repo_path(training.SHIPPED_MODEL)} ({model.version})")
    _report_heldout(model, held, args.errors)
    _report_language_and_machine(held_samples, model)
    _learning_curve(train, held, best_c)
    return 0


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-model", action="store_true")
    parser.add_argument("--errors", action="store_true")
    return parser.parse_args()


def _choose_c(train: list[training.Example]) -> tuple[float, list[dict]]:
    scores, out_of_fold = {}, {}
    for c in C_GRID:
        probabilities = out_of_fold[c] = training.cross_validated(train, c=c)
        right = sum(e.sample.accepts(max(p, key=p.get))
                    for e, p in zip(train, probabilities, strict=True))
        scores[c] = right / len(train)
        print(f"  5-fold CV on training, C={c:g}: accuracy {scores[c]:.3f}")
    best = max(scores, key=scores.get)
    print(f"chosen C={best:g} (by cross-validation on the training corpus only)")
    return best, out_of_fold[best]


def _report_heldout(model, held: list[training.Example], show_errors: bool) -> None:
    report = training.evaluate(model, held)
    print(f"\nheld-out category accuracy: {report.accuracy:.3f} "
          f"({report.right}/{report.total}); strict macro-F1 {report.macro_f1:.3f}")
    print("per-class recall: " + ", ".join(f"{c} {report.recall[c]:.2f}" for c in CATEGORIES))
    print(f"review threshold {model.review_threshold:.2f} (lowest with unflagged mail >= 97% "
          "right on the held-out split and in training CV): unflagged "
          f"{report.unflagged_share:.1%} of mail, {report.unflagged_accuracy:.1%} right; "
          f"{report.flagged_errors}/{report.total - report.right} errors flagged")
    print("confusion (rows: primary label, columns: predicted):")
    print("            " + " ".join(f"{c[:10]:>10}" for c in CATEGORIES))
    for truth in CATEGORIES:
        row = [report.confusion[(truth, p)] for p in CATEGORIES]
        print(f"{truth[:10]:>10}  " + " ".join(f"{n:>10}" for n in row))
    if show_errors:
        for example, predicted in report.errors:
            print(f"  {example.sample.source}: {example.sample.labels} -> {predicted}")


def _report_language_and_machine(samples, model) -> None:
    right = total = machine_found = machines = humans_suppressed = 0
    for index, sample in enumerate(samples):
        mail = parse_message(build_mail(sample, index))
        reason = machine_generated_reason(mail, training.BOT_ADDRESS)
        if sample.machine:
            machines += 1
            machine_found += bool(reason)
            continue
        humans_suppressed += bool(reason)
        result = triage(mail.subject, mail.new_text, model=model)
        total += 1
        right += result.language.value == sample.language
    print(f"\nlanguage accuracy: {right / total:.3f} ({right}/{total})")
    print(f"machine mail (content only, no telling headers): {machine_found}/{machines} "
          f"recognised; human mail suppressed: {humans_suppressed}")


def _learning_curve(train, held, c: float) -> None:
    print("\nlearning curve (held-out accuracy by training size):")
    rng = random.Random(11)
    shuffled = list(train)
    rng.shuffle(shuffled)
    for share in (0.25, 0.5, 0.75, 1.0):
        part = shuffled[: int(len(shuffled) * share)]
        report = training.evaluate(training.fit(part, c), held)
        print(f"  {len(part):>5} mails: {report.accuracy:.3f}")


if __name__ == "__main__":
    sys.exit(main())
