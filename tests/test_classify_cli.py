"""`inquiry-bot classify` as an operator runs it: the JSON contract per file, and many files
shared among worker processes (bot.ops.filemap) giving the same lines, in the same order,
as one process does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botenv import REPO, bot_env, customer_mail

from bot.ops import filemap
from bot.triage.corpus import build_mail


def classify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "classify", *args],
                          capture_output=True, text=True, env=bot_env(), cwd=REPO, timeout=120)


def test_one_human_and_one_machine_mail(tmp_path):
    human = tmp_path / "human.eml"
    human.write_bytes(customer_mail("Xóa tài khoản", "Tôi muốn xóa tài khoản và toàn bộ dữ "
                                    "liệu cá nhân của tôi. Cảm ơn."))
    machine = tmp_path / "away.eml"
    machine.write_bytes(customer_mail("Out of office", "I am away until Monday.",
                                      headers={"Auto-Submitted": "auto-replied"}))
    done = classify("--json", str(human), str(machine))
    assert done.returncode == 0, done.stderr
    first, second = map(json.loads, done.stdout.splitlines())
    assert (first["file"], first["category"], first["language"]) == \
        (str(human), "deletion", "vi")
    assert first["auto_generated"] is False and 0 < first["probability"] <= 1
    assert first["model"] and isinstance(first["top_terms"], list)
    assert (second["category"], second["auto_generated"]) == (None, True)


@pytest.fixture(scope="module")
def many_files(tmp_path_factory) -> list[str]:
    """Enough files for two workers, with an unreadable name in the middle."""
    from bot.ops import training

    folder = tmp_path_factory.mktemp("many")
    samples = training.shipped_samples(held_out=True)[:3 * filemap.MIN_FILES_PER_JOB]
    names = []
    for i, sample in enumerate(samples):
        path = folder / f"{i:03d}.eml"
        path.write_bytes(build_mail(sample, i))
        names.append(str(path))
    names.insert(len(names) // 2, str(folder / "missing.eml"))
    return names


def test_many_files_in_workers_match_one_process(many_files):
    alone = classify("--json", "--jobs", "1", *many_files)
    shared = classify("--json", "--jobs", "2", *many_files)
    assert alone.returncode == shared.returncode == 1  # the missing file
    assert "missing.eml" in shared.stderr and shared.stderr == alone.stderr
    assert shared.stdout == alone.stdout
    files = [json.loads(line)["file"] for line in shared.stdout.splitlines()]
    assert files == [name for name in many_files if not name.endswith("missing.eml")]


def test_a_pipe_gets_every_line_when_the_process_ends_at_once(many_files):
    """``bot.ops.cli.entry`` ends the process without the interpreter's teardown: output
    buffered for a pipe (no PYTHONUNBUFFERED) is still written, and the status kept."""
    env = {k: v for k, v in bot_env().items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-m", "bot", "classify", "--json", "--jobs", "1",
                           *many_files], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert done.returncode == 1 and "missing.eml" in done.stderr
    assert len(done.stdout.splitlines()) == len(many_files) - 1
    assert all(json.loads(line)["file"] for line in done.stdout.splitlines())


@pytest.mark.parametrize(("count", "jobs", "expected"), [
    (10, 8, 1),            # too few files: no pool
    (64, 8, 2),            # one worker per 32 files at most
    (1000, 4, 4),          # never more than asked
    (1000, 1, 1),
])
def test_worker_count(count, jobs, expected, monkeypatch):
    calls = []
    monkeypatch.setattr(filemap, "_in_workers",
                        lambda read, settings, names, n: calls.append(n) or iter(()))
    list(filemap.read_files(lambda path, settings: {}, [f"{i}" for i in range(count)],
                            None, jobs))
    assert calls == ([expected] if expected > 1 else [])


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_jobs_must_be_positive(bad, tmp_path):
    done = classify("--jobs", bad, str(tmp_path / "x.eml"))
    assert done.returncode == 2 and "--jobs" in done.stderr
