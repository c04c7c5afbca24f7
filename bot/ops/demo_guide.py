"""What ``inquiry-bot demo`` tells its user: every login, a neomutt config per mailbox, how
to answer a customer from a mail client, and the exact command for the admin view.

The ports change with every run, so the muttrc files are rewritten each time.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

Account = tuple[str, str, str, str]  # role, address, display name, what the mailbox is for

# Written into <demo dir>/muttrc-<name>; `neomutt -F <file>` opens that mailbox.
MUTTRC = """\
# neomutt -F {path}
# Written by `inquiry-bot demo` for this run (the ports change each run).
set imap_user = "{address}"
set imap_pass = "{password}"
set folder = "imap://127.0.0.1:{imap_port}/"
set spoolfile = "+INBOX"
set record = ""
set postponed = ""
set smtp_url = "smtp://127.0.0.1:{smtp_port}/"
set from = "{address}"
set realname = "{name}"
set ssl_starttls = no
set ssl_force_tls = no
set imap_keepalive = 60
set mail_check = 5
set timeout = 5
set reply_to = yes
set include = yes
set edit_headers = no
"""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (also when it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def muttrc_path(folder: Path, address: str) -> Path:
    """``<folder>/muttrc-<local part>``: the neomutt config for ``address``'s mailbox."""
    return folder / f"muttrc-{address.split('@')[0]}"


def write_muttrcs(folder: Path, accounts: Iterable[Account], password: str,
                  imap_port: int, smtp_port: int) -> None:
    """One muttrc per mailbox (it holds the demo password: owner-only)."""
    for _role, address, name, _use in accounts:
        path = muttrc_path(folder, address)
        write_private(path, MUTTRC.format(path=path, address=address, name=name,
                                          password=password, imap_port=imap_port,
                                          smtp_port=smtp_port))


def login_lines(accounts: Iterable[Account], password: str) -> list[str]:
    """``  role  address / password  name: what it is for``, one line per mailbox."""
    accounts = list(accounts)
    width = max(len(address) for _role, address, _name, _use in accounts)
    return [f"  {role:<10}{address:<{width}} / {password}   {name}: {use}"
            for role, address, name, use in accounts]


def admin_command(config: Path) -> str:
    """The command that serves the admin view of ``config``'s database, runnable as printed
    (the venv's console script by full path when it is not the one on PATH)."""
    script = Path(sys.executable).with_name("inquiry-bot")
    on_path = shutil.which("inquiry-bot")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        program = "inquiry-bot"
    elif script.exists():
        program = shlex.quote(str(script))
    else:
        program = f"{shlex.quote(sys.executable)} -m bot"
    return f"{program} --config {shlex.quote(str(config))} admin"


def try_it_text(accounts: list[Account], password: str, ports: tuple[int, int],
                folder: Path, config: Path) -> str:
    """What the demo prints once the samples are answered."""
    imap_port, smtp_port = ports
    staff, bot, customer = (next(account[1] for account in accounts if account[0] == role)
                            for role in ("staff", "bot", "customer"))
    admin = admin_command(config)
    if importlib.util.find_spec("datasette") is None:
        admin += "   (needs the admin extra: pip install '.[admin]')"
    return "\n".join([
        "",
        "The demo keeps running - try the whole loop yourself.",
        "",
        f"Mail accounts: IMAP 127.0.0.1:{imap_port}, SMTP 127.0.0.1:{smtp_port}, no TLS; "
        "SMTP needs no login.",
        *login_lines(accounts, password),
        "Mail to any other address on this server is refused (550).",
        "",
        "Answer a customer as staff, from a mail client:",
        f"  neomutt -F {muttrc_path(folder, staff)}     (Thunderbird: README, "
        "\"Demo walkthrough\")",
        "  open a notification \"[CJD-...] New ... inquiry\", reply (r), write above the quote,",
        f"  send. The bot relays your answer: see it in neomutt -F "
        f"{muttrc_path(folder, customer)}",
        "  First line \"#note ...\": an internal note (not relayed); \"#close\": close the ticket.",
        f"Write as a new customer: swaks --server 127.0.0.1:{smtp_port} --to {bot} "
        f"--from {customer}",
        f"Admin view (datasette, read-only):  {admin}",
        f"Worker log:  tail -f {folder / 'bot.log'}",
        "Press Ctrl-C to stop.",
    ])
