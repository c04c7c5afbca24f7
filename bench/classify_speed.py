"""Triage throughput on the corpus: mails per second on one core.

The first figures are for ``bot.triage.triage`` alone (language + category), parsing done
up front: what the pipeline adds per mail. The last one is the whole ``classify`` command
path per file.

Usage: .venv/bin/python bench/classify_speed.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from triage_eval import CORPUS, load_labels, read_mail  # noqa: E402

from bot.ops.classify_files import classify_file  # noqa: E402
from bot.triage import triage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    mails = [read_mail(CORPUS / s.file)[:2] for s in load_labels("all") if not s.auto_generated]
    triage(*mails[0])  # warm up: compile rules, load langdetect profiles
    start = time.perf_counter()
    for _ in range(args.rounds):
        for subject, text in mails:
            triage(subject, text)
    elapsed = time.perf_counter() - start
    count = args.rounds * len(mails)
    print(f"{count} triages in {elapsed:.2f}s: {count / elapsed:.0f} mails/s "
          f"({1000 * elapsed / count:.2f} ms/mail)")
    start = time.perf_counter()
    for subject, text in mails:
        triage(subject, text * 20)
    elapsed = time.perf_counter() - start
    print(f"long mails (text x20): {len(mails) / elapsed:.0f} mails/s")
    files = [CORPUS / s.file for s in load_labels("all")]
    start = time.perf_counter()
    for _ in range(3):
        for path in files:
            classify_file(path, None)
    elapsed = time.perf_counter() - start
    print(f"`inquiry-bot classify` per file (read + parse + machine check + triage): "
          f"{3 * len(files) / elapsed:.0f} mails/s")


if __name__ == "__main__":
    main()
