"""Write the labelled triage corpus: tests/fixtures/corpus/*.eml + labels.csv.

The human texts live in tests/fixtures/corpus/source/{test,train}.txt (written by hand;
the test split was written first and is never used to tune rules). This script only wraps
them in realistic headers and adds machine-generated mail (auto-replies, bounces, lists,
no-reply newsletters) built here. Deterministic: same input, same bytes.

Usage: .venv/bin/python bench/make_corpus.py
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "corpus"
BOT = "contact@cijidas.jp"
BASE_DATE = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
NAMES = ["Nguyen Van An", "Tran Thi Binh", "Le Minh", "Pham Thu Ha", "Emily Carter",
         "John Smith", "Sato Kenji", "Vo Thanh Tam", "Hoang Lan", "Maria Garcia",
         "Dang Quoc Bao", "Ngo Phuong", "Ahmed Khan", "Bui Thi Hoa", "Tanaka Yui"]


def parse_source(path: Path) -> list[tuple[str, str, str, str]]:
    """``### category language`` / ``S: subject`` / body blocks -> tuples."""
    blocks: list[tuple[str, str, str, str]] = []
    current: list[str] | None = None
    header: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            if current is not None:
                blocks.append(_block(header, current))
            header, current = line[4:].split(), []
        elif current is not None:
            current.append(line)
    if current is not None:
        blocks.append(_block(header, current))
    return blocks


def _block(header: list[str], lines: list[str]) -> tuple[str, str, str, str]:
    category, language = header
    assert lines[0].startswith("S:"), lines[0]
    subject = lines[0][2:].strip()
    body = "\n".join(lines[1:]).strip("\n") + "\n"
    return category, language, subject, body


def _sender(index: int) -> tuple[str, str]:
    name = NAMES[index % len(NAMES)]
    local = name.lower().replace(" ", ".")
    domain = ["example.com", "example.vn", "example.jp", "example.org"][index % 4]
    return name, f"{local}{index}@{domain}"


def _msgid(seed: str, domain: str) -> str:
    digest = hashlib.sha1(seed.encode()).hexdigest()[:16]
    return f"<{digest}@{domain}>"


def human_mail(index: int, subject: str, body: str) -> EmailMessage:
    """A customer's mail; some look like Outlook (X-Auto-Response-Suppress) or carry HTML."""
    name, addr = _sender(index)
    msg = EmailMessage()
    msg["From"] = f"{name} <{addr}>"
    msg["To"] = BOT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(minutes=37 * index))
    msg["Message-ID"] = _msgid(f"h{index}{subject}", addr.rpartition("@")[2])
    if subject.lower().startswith("re:"):
        msg["In-Reply-To"] = _msgid(f"bot{index}", "cijidas.jp")
    if index % 5 == 0:
        msg["X-Auto-Response-Suppress"] = "All"  # Outlook adds this to human mail
    if index % 11 == 0:
        msg["Auto-Submitted"] = "no"
    msg.set_content(body)
    if index % 4 == 0:
        html = "".join(f"<p>{_escape(p)}</p>" for p in body.split("\n") if p)
        msg.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    return msg


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _auto_base(sender: str, subject: str, index: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = BOT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(minutes=53 * index + 5))
    msg["Message-ID"] = _msgid(f"a{index}{subject}", sender.rpartition("@")[2].strip(">"))
    return msg


OOO = [
    ("en", "Out of Office: Your request", "I am out of the office until 14 April with limited "
     "access to email. For urgent matters please contact my colleague at support@example.com."),
    ("en", "Automatic reply: Re: [CJD-000120] Delete my account", "Thank you for your message. "
     "I'm on parental leave and will reply when I'm back in May."),
    ("en", "Auto: I'm away", "I'm travelling until Monday. Your mail will not be forwarded."),
    ("en", "Out of office", "Hi, I'm currently on holiday. Please resend anything urgent "
     "after 3/20."),
    ("vi", "Trả lời tự động: Yêu cầu xoá dữ liệu", "Tôi đang nghỉ phép đến hết ngày 10/4. "
     "Trong thời gian này tôi sẽ không kiểm tra email thường xuyên."),
    ("vi", "Vắng mặt: Re: [CJD-000130]", "Cảm ơn anh/chị đã liên hệ. Tôi đang đi công tác và "
     "sẽ phản hồi sau khi quay lại văn phòng."),
    ("vi", "Tra loi tu dong", "Xin chao, toi dang nghi Tet den 20/2. Viec gap xin goi so 0903 "
     "000 111."),
    ("vi", "Thư trả lời tự động: Thông báo", "Email này được gửi tự động. Tôi hiện không có mặt "
     "tại văn phòng."),
    ("ja", "不在: お問い合わせ", "申し訳ございませんが、4月10日まで不在にしております。"
     "急ぎの場合は代表番号までご連絡ください。"),
    ("ja", "自動応答: Re: [CJD-000140] 受付のお知らせ",
     "ただいま休暇中のため、メールを確認できません。"
     "戻り次第ご連絡いたします。"),
    ("ja", "不在通知", "出張のため3月25日まで不在です。"),
    ("en", "Automatic reply: Privacy request", "This mailbox is not monitored on weekends."),
]


def auto_reply(index: int, spec: tuple[str, str, str]) -> EmailMessage:
    """Out-of-office in en/vi/ja; some mark Auto-Submitted, some only X-Autoreply or nothing."""
    _, subject, body = spec
    msg = _auto_base(f"Staff Member <staff{index}@example.co.jp>", subject, index)
    style = index % 3
    if style == 0:
        msg["Auto-Submitted"] = "auto-replied"
    elif style == 1:
        msg["X-Autoreply"] = "yes"
        msg["Precedence"] = "auto_reply"
    msg["In-Reply-To"] = _msgid(f"ack{index}", "cijidas.jp")
    msg.set_content(body)
    return msg


def bounce(index: int, reason: str) -> EmailMessage:
    """A multipart/report delivery-status notification carrying the original message."""
    raw = BOUNCE_TEMPLATE.format(
        index=index, reason=reason, boundary=f"=_bounce_{index}", bot=BOT,
        date=format_datetime(BASE_DATE + timedelta(minutes=53 * index + 5)),
        msgid=_msgid(f"b{index}", "mx.example.net"), orig=_msgid(f"orig{index}", "cijidas.jp"))
    return message_from_bytes(raw.encode("utf-8"), policy=policy.default)


BOUNCE_TEMPLATE = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {bot}
Subject: Undelivered Mail Returned to Sender
Date: {date}
Message-ID: {msgid}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mx.example.net.

{reason}

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; customer{index}@example.net
Action: failed
Status: 5.1.1

--{boundary}
Content-Type: message/rfc822

From: Cijidas <{bot}>
To: customer{index}@example.net
Subject: [CJD-0002{index:02d}] We received your request
Message-ID: {orig}
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=utf-8

Thank you. Please verify your identity to delete or correct data.

--{boundary}--
"""


BOUNCES = [
    "I'm sorry to have to inform you that your message could not be delivered: user unknown.",
    "Delivery to the following recipient failed permanently: mailbox full.",
    "The recipient's domain does not exist.",
    "Your message was rejected by the remote server (550 5.7.1 spam policy).",
    "Message delivery has been delayed and finally given up after 5 days.",
    "Địa chỉ người nhận không tồn tại.",
]

LISTS = [
    ("Privacy Law Weekly <news@privacylaw.example.org>", "This week: APPI amendments",
     "Top stories: guidance on deletion requests, new PPC FAQ on third-party provision."),
    ("JP Retail Forum <forum@lists.example.jp>", "[retail-forum] Meeting minutes",
     "Minutes of the March meeting. Please correct any errors by Friday."),
    ("Bản tin Công nghệ <bantin@tin.example.vn>", "Bản tin tuần: bảo vệ dữ liệu cá nhân",
     "Nghị định 356/2025 hướng dẫn Luật Bảo vệ dữ liệu cá nhân có hiệu lực."),
    ("Vendor Updates <updates@saas.example.com>", "Product update: new export feature",
     "You can now export your data in CSV. Unsubscribe at any time."),
    ("Security Digest <digest@sec.example.net>", "Security digest #112",
     "Breach notifications this week; how to handle a complaint about leaked data."),
    ("Cộng đồng Nhật-Việt <list@cd.example.vn>", "[nhatviet] Thông báo họp mặt",
     "Mời các bạn tham dự buổi họp mặt cuối tháng."),
]

NOREPLY = [
    ("ShopNow <no-reply@shopnow.example.com>", "Your order has shipped",
     "Your order #55102 is on its way. Do not reply to this email."),
    ("Cloud Billing <noreply@billing.example.net>", "Invoice for March",
     "Your invoice is attached. Please do not reply to this message."),
    ("Ngân hàng ABC <khong-tra-loi@abc.example.vn>", "Thông báo biến động số dư",
     "Tài khoản của quý khách vừa thay đổi. Đây là email tự động, vui lòng không trả lời."),
    ("Social App <do-not-reply@social.example.com>", "You have 3 new notifications",
     "See what your friends have been up to. Manage email preferences."),
    ("Postmaster <postmaster@example.co.jp>", "Mailbox quota warning",
     "Your mailbox is 95% full. Please delete old messages."),
    ("Travel Deals <no_reply@deals.example.com>", "Spring sale: 30% off",
     "Book now. To stop receiving these emails, update your preferences."),
]


def list_mail(index: int, spec: tuple[str, str, str]) -> EmailMessage:
    """Mailing-list and newsletter traffic (List-Id / List-Unsubscribe / Precedence)."""
    sender, subject, body = spec
    msg = _auto_base(sender, subject, index)
    domain = sender.rpartition("@")[2].strip(">")
    msg["List-Id"] = f"<news.{domain}>"
    msg["List-Unsubscribe"] = f"<mailto:unsubscribe@{domain}>"
    msg["Precedence"] = "bulk" if index % 2 else "list"
    msg.set_content(body)
    return msg


def noreply_mail(index: int, spec: tuple[str, str, str]) -> EmailMessage:
    """Notifications from no-reply style senders; half also carry List-Unsubscribe."""
    sender, subject, body = spec
    msg = _auto_base(sender, subject, index)
    if index % 2 == 0:
        msg["List-Unsubscribe"] = "<https://example.com/unsub>"
    msg.set_content(body)
    return msg


def own_mail(index: int) -> EmailMessage:
    """The bot's own acknowledgement coming back (loop)."""
    msg = _auto_base(f"Cijidas <{BOT}>", f"[CJD-0003{index:02d}] We received your request", index)
    msg.replace_header("Message-ID", _msgid(f"loop{index}", "cijidas.jp"))
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Thank you for contacting Cijidas. Your reference is in the subject.")
    return msg


def auto_header_mail(index: int, header: str, value: str) -> EmailMessage:
    """Auto-generated system mail marked only by one header."""
    msg = _auto_base(f"System <alerts{index}@monitor.example.com>", "Daily report", index)
    msg[header] = value
    msg.set_content("Daily report: 0 errors, 12 warnings.")
    return msg


def machine_mails() -> list[EmailMessage]:
    """40 machine-generated mails in a fixed order."""
    mails = [auto_reply(i, spec) for i, spec in enumerate(OOO)]
    mails += [bounce(i, reason) for i, reason in enumerate(BOUNCES)]
    mails += [list_mail(i, spec) for i, spec in enumerate(LISTS)]
    mails += [noreply_mail(i, spec) for i, spec in enumerate(NOREPLY)]
    mails += [own_mail(i) for i in range(3)]
    mails += [auto_header_mail(i, h, v) for i, (h, v) in enumerate([
        ("Auto-Submitted", "auto-generated"), ("X-Autogenerated", "Reply"),
        ("X-Autorespond", "yes"), ("Precedence", "junk"), ("Precedence", "bulk"),
        ("Auto-Submitted", "auto-notified"), ("X-Autoreply", "true")])]
    return mails


def main() -> None:
    """Regenerate every .eml and labels.csv from the sources."""
    for old in CORPUS.glob("*.eml"):
        old.unlink()
    rows: list[dict[str, str]] = []
    index = 0
    for split in ("test", "train"):
        for category, language, subject, body in parse_source(CORPUS / "source" / f"{split}.txt"):
            index += 1
            name = f"{split}-{index:03d}.eml"
            (CORPUS / name).write_bytes(human_mail(index, subject, body).as_bytes())
            rows.append({"file": name, "category": category, "language": language,
                         "auto_generated": "0", "split": split})
    for i, msg in enumerate(machine_mails()):
        split = "test" if i % 3 == 0 else "train"
        name = f"{split}-auto-{i:02d}.eml"
        (CORPUS / name).write_bytes(msg.as_bytes())
        rows.append({"file": name, "category": "", "language": "", "auto_generated": "1",
                     "split": split})
    with (CORPUS / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["file", "category", "language", "auto_generated",
                                         "split"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} mails to {CORPUS}")


if __name__ == "__main__":
    main()
