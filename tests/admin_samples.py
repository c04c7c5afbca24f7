"""A ticket database filled by the real pipeline, for the admin view's browser tests and the
README screenshots (bench/screenshots.py).

Customer mail goes into the IMAP mailbox, ``inquiry-bot once`` opens tickets and sends the
acknowledgements and staff notifications over SMTP; then staff reply to a notification the
way a mail client does (the answer above the quoted notification, or a ``#category``
correction), and ``once`` runs again.
"""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from botenv import BOT, customer_mail, write_config

from bot.ops.cli import main

STAFF = "privacy@cijidas.jp"
TOKEN_SECRET_ENV = "TEST_STAFF_TOKEN_SECRET"
# (sender, name, subject, body)
CUSTOMERS = [
    ("alice@example.com", "Alice Tanaka", "Please delete my account",
     "Hello, I want you to delete my account and all my personal data.\nThanks, Alice"),
    ("binh@example.vn", "Nguyen Van Binh", "Câu hỏi về thông tin cá nhân",
     "Xin chào, tôi muốn hỏi công ty sử dụng thông tin cá nhân của tôi như thế nào? Cảm ơn."),
    ("carol@example.com", "Carol Smith", "Complaint about spam",
     "I am very unhappy: you shared my email address with advertisers without my consent. "
     "This is unacceptable and I want to complain."),
]
ANSWER = ("Dear Ms Tanaka,\nWe have deleted your account and the personal data linked to it.\n"
          "\nKind regards,\nYuki Sato\nPrivacy team")


def pipeline_config(tmp_path: Path, imap, smtp) -> Path:
    """A config whose notifications carry reply tokens, so staff replies authenticate."""
    return write_config(tmp_path, imap, smtp, staff={"token_secret_env": TOKEN_SECRET_ENV})


def deliver(config: Path, imap, smtp, *mails: bytes) -> None:
    """Put mail into the bot's mailbox and run one pass (it flushes the outbox)."""
    for raw in mails:
        imap.append(BOT, raw)
    assert main(["--config", str(config), "once"]) == 0


def notification(smtp, ref: str) -> EmailMessage:
    """The staff notification about ``ref`` that the SMTP server received last."""
    for received in reversed(smtp.received):
        message = email.message_from_bytes(received.raw, policy=policy.default)
        if STAFF in received.rcpt_tos and f"[{ref}]" in str(message["Subject"]):
            return message
    raise AssertionError(f"no notification about {ref} reached {STAFF}")


def staff_reply(note: EmailMessage, text: str) -> bytes:
    """A reply to ``note`` as a mail client writes it: the text above the quoted note."""
    msg = EmailMessage()
    msg["From"] = f"Yuki Sato <{STAFF}>"
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = "Re: " + str(note["Subject"])
    msg["Message-ID"] = make_msgid(domain="cijidas.jp")
    msg["In-Reply-To"] = note["Message-ID"]
    msg["References"] = note["Message-ID"]
    quoted = "\n".join("> " + line for line in
                       note.get_body(preferencelist=("plain",)).get_content().splitlines())
    msg.set_content(f"{text}\n\nOn Tue, 24 Nov 2026 at 12:00, Cijidas <{BOT}> wrote:\n{quoted}")
    return bytes(msg)


def fill(tmp_path: Path, imap, smtp, customers=CUSTOMERS) -> Path:
    """Tickets CJD-000001.. from ``customers``; CJD-000001 answered by staff (quoting the
    notification), CJD-000003's category changed by staff. Returns the database path."""
    config = pipeline_config(tmp_path, imap, smtp)
    deliver(config, imap, smtp)  # the first start: mail from now on is new, acknowledged mail
    deliver(config, imap, smtp, *(customer_mail(subject, body, sender=sender, name=name)
                                  for sender, name, subject, body in customers))
    deliver(config, imap, smtp, staff_reply(notification(smtp, "CJD-000001"), ANSWER))
    deliver(config, imap, smtp, staff_reply(notification(smtp, "CJD-000003"),
                                            "#category question"))
    return tmp_path / "state" / "tickets.db"
