"""Read many .eml files for ``classify``/``inspect``, in order, on every CPU.

The work per file is pure (parse + triage), so a long list is shared among forked worker
processes: they inherit the loaded model and compiled patterns from the parent, which reads
the first file itself to warm them. Short lists, one CPU, or ``--jobs 1`` stay in this
process. Results come back in the order of the file names.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bot.config import Settings

Reader = Callable[[Path, Settings | None], dict]
# (file name, result, error): exactly one of result and error is None.
Outcome = tuple[str, dict | None, str | None]

# Below this many files a worker pool costs more (fork, pickling) than it saves.
MIN_FILES_PER_JOB = 32
CHUNK = 8

_job: tuple[Reader, Settings | None] | None = None  # what forked workers run (inherited)


def default_jobs() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def read_files(read: Reader, names: Sequence[str], settings: Settings | None,
               jobs: int) -> Iterator[Outcome]:
    """One outcome per name, in order; an unreadable file is an error, not an exception."""
    jobs = min(jobs, len(names) // MIN_FILES_PER_JOB)
    if jobs < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield from (_read_one(read, settings, name) for name in names)
        return
    yield _read_one(read, settings, names[0])  # warms the model and caches before the fork
    yield from _in_workers(read, settings, names[1:], jobs)


def _in_workers(read: Reader, settings: Settings | None, names: Sequence[str],
                jobs: int) -> Iterator[Outcome]:
    global _job
    _job = (read, settings)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            yield from pool.imap(_read_in_worker, names, chunksize=CHUNK)
    finally:
        _job = None


def _read_in_worker(name: str) -> Outcome:
    assert _job is not None  # set by the parent before the fork
    return _read_one(*_job, name)


def _read_one(read: Reader, settings: Settings | None, name: str) -> Outcome:
    try:
        return name, read(Path(name), settings), None
    except OSError as exc:
        return name, None, exc.strerror or str(exc)
