"""Command line: the only place that prints. Exit codes: 0 ok, 1 runtime failure, 2 usage/config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from bot.config import Settings, load_config, load_settings, resolve_config_path
from bot.errors import BotError, ConfigError

log = logging.getLogger("bot")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``inquiry-bot`` and ``python -m bot``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.handler(args) or EXIT_OK)
    except ConfigError as exc:
        print(f"inquiry-bot: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BotError as exc:
        print(f"inquiry-bot: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


def entry() -> NoReturn:
    """The console script and ``python -m bot``: :func:`main`, then the process ends at once.

    When :func:`main` returns, every store is closed and the logs are flushed here; the
    interpreter's own teardown (freeing the triage model, the calendar and every imported
    module) would add about 120 ms to each run, a fifth of a ``once`` on an empty mailbox.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe has nothing to lose
            stream.flush()
    os._exit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inquiry-bot", description="First responder on the privacy-inquiry mailbox.")
    parser.add_argument("--config", help="config file (default: $INQUIRY_BOT_CONFIG, then "
                        "./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="long-running worker (IDLE/poll + scheduled jobs)")
    run.set_defaults(handler=cmd_run)
    once = commands.add_parser("once", help="process all new mail, flush outbox, escalate, exit")
    once.add_argument("--since", type=_since, metavar="DATE",
                      help="also import earlier mail that arrived from DATE on (tickets and "
                           "acknowledgements); DATE is ISO 8601, in bot.timezone without offset")
    once.set_defaults(handler=cmd_once)
    inspect = commands.add_parser("inspect", help="what the bot reads in .eml files "
                                  "(sender, text, quote, attachments, machine mail, triage)")
    inspect.add_argument("--json", action="store_true", help="one JSON object per line")
    inspect.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                         help="worker processes for many files (default: one per CPU)")
    inspect.add_argument("files", nargs="+", metavar="FILE.eml")
    inspect.set_defaults(handler=cmd_inspect)

    classify = commands.add_parser("classify", help="triage .eml files (no mail is sent)")
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                         help="worker processes for many files (default: one per CPU)")
    classify.add_argument("files", nargs="+", metavar="FILE.eml")
    classify.set_defaults(handler=cmd_classify)

    escalate = commands.add_parser("escalate", help="one escalation pass")
    escalate.add_argument("--now", type=_iso_datetime, help="pretend it is this ISO 8601 time")
    escalate.add_argument("--dry-run", action="store_true", help="print, send nothing")
    escalate.set_defaults(handler=cmd_escalate)

    tick = commands.add_parser("tick", help="every time-driven pass once, then flush the outbox")
    tick.add_argument("--now", type=_iso_datetime, help="pretend it is this ISO 8601 time")
    tick.add_argument("--dry-run", action="store_true",
                      help="print what would be sent; write nothing, create no database")
    tick.set_defaults(handler=cmd_tick)

    demo = commands.add_parser("demo", help="embedded local mail system + sample mail")
    demo.add_argument("--exit-after-samples", action="store_true",
                      help="stop once every sample is answered (for tests)")
    demo.add_argument("--dir", type=Path, default=None,
                      help="folder for the demo config, database and log (default: state/demo)")
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="rebuild the triage model from the shipped "
                                "corpus and the labelled tickets in the database")
    train.set_defaults(handler=cmd_train)

    check = commands.add_parser("check", help="validate config, mail servers, database, "
                                "templates; exit 0 only if all pass")
    check.set_defaults(handler=cmd_check)
    _add_admin_commands(commands)
    return parser


def _add_admin_commands(commands: argparse._SubParsersAction) -> None:
    """Admin view and data-protection commands; their handlers live in bot.ops.admin
    (imported only when one of them runs: it pulls in the store, which `classify` and
    `--help` do not need)."""
    serve = commands.add_parser("admin", help="datasette on the ticket database (read-only)")
    serve.add_argument("--host", help="bind address (default: admin.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: admin.port, 8001)")
    serve.set_defaults(handler=_admin_handler("cmd_admin"))
    export = commands.add_parser("export", help="a ticket's full history as JSON")
    export.add_argument("ref", metavar="REF")
    export.set_defaults(handler=_admin_handler("cmd_export"))
    purge = commands.add_parser("purge", help="redact tickets closed longer than "
                                "retention.days_after_close")
    purge.add_argument("--dry-run", action="store_true", help="list, change nothing")
    purge.set_defaults(handler=_admin_handler("cmd_purge"))
    forget = commands.add_parser("forget", help="redact everything about one customer")
    forget.add_argument("email", metavar="EMAIL")
    forget.add_argument("--force", action="store_true",
                        help="also when a ticket is open (it is closed)")
    forget.add_argument("--vacuum", action="store_true",
                        help="also rebuild the database file (VACUUM; see README)")
    forget.set_defaults(handler=_admin_handler("cmd_forget"))


def _admin_handler(name: str):
    def run(args: argparse.Namespace) -> int:
        from bot.ops import admin

        return getattr(admin, name)(args)
    return run


# Protocol traces hold whole mails (imapclient routes imaplib's debug output, every FETCH
# line, to "imapclient.imaplib"; aiosmtpd in the demo logs DATA lines to "mail.log"): never
# on, not even with -v. The IMAP adapter also turns imaplib's tracing off at the source.
_PROTOCOL_LOGGERS = ("imapclient", "mail.log")
_NOISY_LOGGERS = ("apscheduler", "aiosmtplib")


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr; no level, not even -v (DEBUG), logs message bodies or secrets."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    for protocol in _PROTOCOL_LOGGERS:
        logging.getLogger(protocol).setLevel(logging.WARNING)


def owner_only_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parent 0700, or make an existing one of ours 0700.

    The database folder holds personal data (tickets.db, -wal, -shm, lock, heartbeat). A
    checkout's ``state/`` is 0755 (git keeps no folder modes), so creating new folders
    0700 is not enough. The home directory and "/" are never changed, only reported.
    """
    folder = folder.resolve()
    for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    stat = folder.stat()
    if not stat.st_mode & 0o077:
        return
    if stat.st_uid == os.getuid() and folder not in (Path.home().resolve(), Path("/")):
        folder.chmod(0o700)
        log.info("made %s owner-only (mode was %o)", folder, stat.st_mode & 0o777)
    else:
        log.warning("%s is readable by others (mode %o): chmod 700 it", folder,
                    stat.st_mode & 0o777)


@contextmanager
def _locked_worker(args: argparse.Namespace) -> Iterator[tuple[Settings, Any]]:
    """The one worker allowed on this database, stopping on SIGTERM/SIGINT."""
    settings = load_config(args.config)
    from bot.ops.worker import Worker, worker_lock  # after config: bad config fails fast

    owner_only_folder(settings.database_path.parent)
    with worker_lock(settings.database_path):
        worker = Worker(settings)
        _stop_on_signals(worker.stop)
        yield settings, worker


def cmd_run(args: argparse.Namespace) -> int:
    with _locked_worker(args) as (settings, worker):
        log.info("worker started (database %s)", settings.database_path)
        worker.run()
        log.info("worker stopped")
    return EXIT_OK


def cmd_once(args: argparse.Namespace) -> int:
    with _locked_worker(args) as (settings, worker):
        try:
            since = args.since
            count = worker.once(since.replace(tzinfo=settings.tz)
                                if since and since.tzinfo is None else since)
        finally:
            worker.store.close()
    log.info("once: %d new message(s) handled", count)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    settings = load_config(args.config, require_secrets=False)
    from bot.adapters.store import Store
    from bot.ops.training import train_company_model

    store = Store(settings.database_path)
    try:
        train_company_model(store, settings)
    finally:
        store.close()
    return EXIT_OK


def _each_file(args: argparse.Namespace, read, as_text) -> int:
    """``classify``/``inspect``: one result per file, JSON or text, in the order given
    (many files are shared among worker processes: bot.ops.filemap); unreadable files are
    reported on stderr and make the exit code 1, the others are still shown."""
    from bot.ops.filemap import default_jobs, read_files

    settings = _optional_settings(args)
    failures = 0
    for name, result, error in read_files(read, args.files, settings,
                                          args.jobs or default_jobs()):
        if error is not None:
            print(f"inquiry-bot: {name}: {error}", file=sys.stderr)
            failures += 1
        else:
            print(json.dumps(result, ensure_ascii=False) if args.json else as_text(result))
    return EXIT_FAILURE if failures else EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from bot.ops.classify_files import classify_file

    return _each_file(args, classify_file, _classify_line)


def cmd_escalate(args: argparse.Namespace) -> int:
    from bot.adapters.store import Store
    from bot.flows import escalation
    from bot.ops.tick import real_time_store
    from bot.ops.worker import utcnow

    settings = _config_of_pass(args)
    # Mail is dated with the real clock, so a pretend --now never holds it back.
    store = (Store(settings.database_path) if args.dry_run
             else real_time_store(settings.database_path))
    try:
        lines = escalation.run_all(store, settings, args.now or utcnow(), dry_run=args.dry_run)
    finally:
        store.close()
    for line in lines:
        print(line)
    return EXIT_OK


def _config_of_pass(args: argparse.Namespace) -> Settings:
    """The config of ``escalate``/``tick``; a dry run writes no cache either."""
    settings = load_config(args.config, require_secrets=not args.dry_run)
    return dataclasses.replace(settings, cache_path=None) if args.dry_run else settings


def cmd_tick(args: argparse.Namespace) -> int:
    from bot.ops.tick import tick
    from bot.ops.worker import AlreadyRunning, worker_lock

    settings = _config_of_pass(args)
    if args.dry_run:
        lines = tick(settings, args.now, dry_run=True)
    else:
        owner_only_folder(settings.database_path.parent)
        try:
            with worker_lock(settings.database_path):
                lines = tick(settings, args.now, dry_run=False)
        except AlreadyRunning:  # the worker owns the outbox: it sends what the passes queue
            lines = tick(settings, args.now, dry_run=False, can_send=lambda: False)
    for line in lines:
        print(line)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.ops.demo import DEFAULT_DIR, DEMO_EXTRA_MESSAGE, missing_demo_extra, run_demo

    if missing_demo_extra():  # before any folder is made: a clear message, not a traceback
        print(f"inquiry-bot: {DEMO_EXTRA_MESSAGE}", file=sys.stderr)
        return EXIT_USAGE
    owner_only_folder(args.dir or DEFAULT_DIR)
    if args.dir is None:
        owner_only_folder(DEFAULT_DIR.parent)  # the checkout's state/
    return run_demo(exit_after_samples=args.exit_after_samples, directory=args.dir)


def cmd_check(args: argparse.Namespace) -> int:
    from bot.ops.check import exit_code, format_report, run_checks

    findings = run_checks(resolve_config_path(args.config))
    print(format_report(findings))
    return exit_code(findings)


def _optional_settings(args: argparse.Namespace) -> Settings | None:
    """classify works without a config file (defaults), but a given bad config is an error."""
    path = resolve_config_path(args.config)
    if args.config is None and not path.exists():
        return None
    return load_settings(path, require_secrets=False)


def _classify_line(result: dict) -> str:
    if result["auto_generated"]:
        return f"{result['file']}\tauto-generated\t{result['reason']}"
    review = "\tneeds-review" if result.get("needs_review") else ""
    return (f"{result['file']}\t{result['category']}\t{result['language']}\t"
            f"{result['confidence']:.2f}{review}")


def _since(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date: {value!r}") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    from bot.ops.inspect import inspect_file, text_report

    return _each_file(args, inspect_file, text_report)


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {value!r}")
    return int(value)


def _iso_datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone offset: {value!r}")
    return moment


def _stop_on_signals(stop) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the message in hand, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
