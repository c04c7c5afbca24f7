"""Triage speed and footprint: what the README's figures for the learned model come from.

Prints: triage latency per mail (p50, p95; parsing done up front), the model's load time and
resident-memory growth, and `inquiry-bot classify --json` over 200 files as a fresh process
(start-up included), in mails per second.

Usage: .venv/bin/python bench/classify_speed.py [--rounds N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.mail.parse import parse_message  # noqa: E402
from bot.ops import training  # noqa: E402
from bot.triage.corpus import build_mail  # noqa: E402

FILES = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples = training.shipped_samples(held_out=True)
    raws = [build_mail(s, i) for i, s in enumerate(samples)]
    _model_load()
    _latency([parse_message(r) for r in raws], args.rounds)
    _classify_process(raws[:FILES])


def _model_load() -> None:
    before = _rss_mb()
    start = time.perf_counter()
    from bot.triage import shipped_model
    model = shipped_model()
    elapsed = time.perf_counter() - start
    print(f"model {model.version}: {len(model.index)} terms, loaded in {elapsed * 1000:.0f} ms, "
          f"peak RSS +{_rss_mb() - before:.0f} MB")


def _latency(mails: list, rounds: int) -> None:
    from bot.triage import triage

    triage(mails[0].subject, mails[0].new_text)  # warm: langdetect profiles
    times = []
    for _ in range(rounds):
        for mail in mails:
            start = time.perf_counter()
            triage(mail.subject, mail.new_text, quoted=mail.body_text)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[int(len(times) * 0.95)]
    print(f"triage per mail over {len(times)} runs: p50 {statistics.median(times):.2f} ms, "
          f"p95 {p95:.2f} ms, max {times[-1]:.1f} ms")


def _classify_process(raws: list[bytes]) -> None:
    from bot.ops.filemap import default_jobs

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, raw in enumerate(raws):
            path = Path(folder) / f"mail-{i:03d}.eml"
            path.write_bytes(raw)
            paths.append(str(path))
        for jobs, label in ((None, f"one worker per CPU ({default_jobs()})"),
                            (1, "--jobs 1, one process")):
            options = ["--jobs", str(jobs)] if jobs else []
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "bot", "classify", "--json",
                                     *options, *paths],
                                    cwd=folder, capture_output=True, check=True)
            elapsed = time.perf_counter() - start
            lines = result.stdout.decode().count("\n")
            print(f"`inquiry-bot classify --json` over {lines} files as a new process, {label}: "
                  f"{elapsed:.2f} s including start-up = {lines / elapsed:.0f} mails/s")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
