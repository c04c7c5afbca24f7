"""Machine mail that carries no telling header: only its words show it. PURE.

Three shapes, in English, Vietnamese (with or without diacritics) and Japanese:
- auto-replies: an explicit "automatic message" marker, or an away notice together with
  a promise to answer later ("until", "when I am back", "limited access");
- bulk mail and no-reply notifications: an unsubscribe or "do not reply" footer in a mail
  whose opening never speaks as "I" (a customer who pastes an advert under a complaint
  writes "I" first);
- plain-text bounces: a delivery-failure subject with a delivery-failure sentence.
A person who writes "I'll be out of the office next week, so please ..." stays human:
the away notice alone is not enough.
"""

from __future__ import annotations

import re

from bot.triage.text import fold

OPENING_CHARS = 400
MIN_BULK_CHARS = 150
PERSONAL_MIN_CHARS = 150
_MARKER = re.compile(
    r"\[(?:tin nhan|thu|email|phan hoi|tra loi) tu dong\]|\[auto(?:matic)?[- ]?reply\]"
    r"|this is an? (?:automated|automatic(?:ally generated)?|auto[- ]?generated) "
    r"(?:reply|response|message|notification|e-?mail|delivery status notification"
    r"|acknowledge?ment|receipt|confirmation)"
    r"|(?:email|thu|tin nhan) (?:nay )?(?:duoc )?(?:gui|tao) tu dong"
    r"|day la (?:thu|email|tin nhan|thong bao|canh bao) (?:tra loi |phan hoi )?tu dong"
    r"|this is an? (?:automated|automatic) (?:alert|notice|warning)"
    r"|自動(?:返信|応答|送信)(?:メール|です|しています|されて)"
    r"|this (?:e-?mail|message) was (?:sent|generated) automatically"
    r"|repl(?:y|ies)(?: to this (?:e-?mail|message))? (?:is|are) not monitored"
    r"|this (?:mailbox|inbox|e-?mail address) is not monitored"
    r"|repl(?:y|ies) to (?:it|this (?:e-?mail|message|address)) (?:are|will) not (?:be )?read"
    r"|hop thu nay khong (?:duoc theo doi|nhan (?:thu )?phan hoi)"
    r"|requires you to confirm your (?:message|e-?mail)|confirm your message before"
    r"|your (?:request|ticket|case|enquiry|inquiry)(?: \S+)? (?:has been|was) "
    r"(?:received|created|opened|logged)"
    r"|yeu cau (?:ho tro )?(?:cua (?:ban|quy khach) )?(?:so \S+ )?da duoc tiep nhan"
    r"|お問い合わせを受け付けました|受付(?:完了|いたしました)")
_AWAY = re.compile(
    r"\b(?:i am|i'm|im) (?:currently )?(?:out of (?:the )?office|away|on (?:\w+ )?leave"
    r"|on (?:vacation|holiday)|travell?ing)"
    r"|\b(?:toi|minh|em) (?:hien )?(?:dang )?(?:nghi phep|nghi tet|vang mat|di cong tac|"
    r"nghi le|nghi thai san|nghi om)"
    r"|不在(?:にしております|です|となります)|休暇(?:中|を)")
_LATER = re.compile(
    r"\b(?:until|till|return(?:ing)? on|when i(?: a|')?m back|upon my return|on my return"
    r"|limited access|will (?:reply|respond|get back)|(?:will|i'll) be back)"
    r"|\b(?:den (?:het )?ngay|den \d{1,2}[/.-]\d|toi ngay|khi (?:quay|tro) lai"
    r"|se (?:phan hoi|tra loi|lien he))"
    r"|戻り次第|まで(?:不在|休暇)|確認できません")
# An office confirming it got a message, in reply to it: "we have received your enquiry
# ... we will reply within 10 days" (said as "we": a person answering says "I").
_RECEIPT = re.compile(
    r"\bwe(?:'ve| have) received (?:it|your (?:message|e-?mail|enquiry|inquiry|request|mail))"
    r"\b.{0,160}\b(?:will (?:respond|reply|get back|be in touch|contact you)|reference "
    r"(?:number|no)|within \d+ (?:working |business )?days)"
    r"|\bchung toi da nhan (?:duoc )?(?:email|thu|yeu cau|tin nhan) cua (?:ban|quy khach)"
    r"|(?:メール|お問い合わせ)を(?:受信|受け付け)(?:いたしました|しました)")
# Someone who has left, or an address that is being closed: nobody will read our answer.
_GONE = re.compile(
    r"\bno longer (?:work(?:s|ing)? (?:at|for|with)|with (?:the company|\w+)|employed)"
    r"|\b(?:this|my|the) (?:mailbox|inbox|e-?mail (?:address|account))(?: \w+){0,3} "
    r"(?:will be|is being|has been) (?:closed|deactivated|discontinued|deleted)"
    r"|\b(?:messages|e-?mails) sent to (?:it|this (?:address|mailbox)) will (?:no longer|not)"
    r" be (?:read|monitored|forwarded)"
    r"|\b(?:da )?khong con (?:lam viec|cong tac) (?:tai|o|cho|voi)"
    r"|\b(?:toi|minh|em) (?:da )?nghi viec (?:tai|o)\b"
    r"|\bkhong con (?:xu ly|theo doi|su dung|kiem tra) (?:email|hop thu|dia chi|thu) nay"
    r"|\bhop thu nay (?:se )?(?:som )?(?:bi khoa|bi xoa|ngung hoat dong|khong con)"
    r"|退職(?:いたしました|しました)|退社(?:いたしました|しました)")
# A company's holiday closure notice: "our office will be closed from ... to ...".
_CLOSED = re.compile(
    r"\bour (?:office|offices|company|customer service|support team|shop|store)s? "
    r"(?:will be|is|are) closed\b"
    r"|\b(?:thong bao )?lich nghi (?:le|tet)\b"
    r"|\b(?:cong ty|van phong|chung toi) (?:se )?(?:tam )?nghi (?:le|tet)\b"
    r"|(?:夏季|冬季|年末年始|ゴールデンウィーク|gw|お盆)(?:休暇|休業|休み)(?:のお知らせ|をいただ)"
    r"|休業(?:いたします|させていただきます|期間|日)")
_FOOTER = re.compile(
    r"\bunsubscribe\b|\bto stop receiving\b|\bmanage (?:your )?(?:email )?preferences\b"
    r"|\bdo not reply to this (?:e-?mail|message)\b|\bthis mailbox is not monitored\b"
    r"|\byou (?:are )?receiv(?:ed|ing) this (?:e-?mail|message|newsletter) because"
    r"|\bkhong muon (?:tiep tuc )?nhan (?:them )?(?:thu|email|tin|ban tin)"
    r"|\bban nhan duoc (?:thu|email) nay vi|\btu choi nhan tin|\bhuy dang ky\b"
    r"|\bhuy (?:dang ky|nhan) (?:nhan )?(?:thu|email|ban tin|tin)"
    r"|\b(?:vui long|xin) (?:dung|khong) (?:tra loi|phan hoi) (?:thu|email|tin nhan) nay"
    r"|配信(?:停止|解除)|送信専用|返信(?:はできません|できません|しないで)")
_FIRST_PERSON = re.compile(r"\b(?:i|my|me|toi|minh|em|chung toi muon)\b|私|僕")
_FIRST_PERSON_REQUEST = re.compile(
    r"\bplease (?:delete|remove|send|correct|update|process|unsubscribe)"
    r"|\b(?:xin|vui long|nho|de nghi|yeu cau) (?:xoa|xu ly|gui|sua|cap nhat|cung cap)")
_BOUNCE_SUBJECT = re.compile(
    r"^(?:undeliverable|undelivered mail|delivery (?:status notification|failure|failed|delayed)"
    r"|mail delivery (?:warning|failed|failure|subsystem)|returned mail|failure notice"
    r"|delivery notification)", re.IGNORECASE)
# The same, as mail servers in Vietnam and Japan write it (matched on the folded subject).
_BOUNCE_SUBJECT_LOCAL = re.compile(
    r"^(?:(?:thu|email|e-mail) (?:khong (?:the )?gui (?:duoc|di|den)|bi tra (?:lai|ve)"
    r"|gui khong thanh cong|chua (?:duoc )?gui)"
    r"|(?:メール)?(?:配信|配送|送信)(?:不能|エラー|失敗|できませんでした))")
_BOUNCE_BODY = re.compile(
    r"(?:was not|wasn't|could not be|couldn't be) delivered|address not found"
    r"|not listed in|delivery has failed|delivery to the following recipients? has been "
    r"delayed|could not be delivered|delivery to the following recipients? failed|permanent error"
    r"|the following addresses? (?:had permanent fatal errors|failed)|user unknown"
    r"|mailbox (?:unavailable|full)|no such user|(?:has not|hasn't) (?:yet )?been delivered"
    r"|see transcript for details"
    r"|khong the (?:gui|chuyen) (?:den|toi|duoc)|(?:nguoi nhan|hop thu)(?: \w+){0,3} khong ton tai"
    r"|(?:宛先|アドレス)が(?:見つかりません|存在しません)|配信できませんでした|送信できませんでした")


# What a company's system tells its own customers: orders, receipts, sign-in alerts,
# one-time codes, surveys, application receipts (matched on subject + opening, folded).
# Not a survey in Vietnamese: customers complain about survey messages in those words.
_NOTIFICATION = re.compile(
    r"\bwe(?:'| ha)?ve received your (?:order|payment|application)\b"
    r"|\byour (?:order|payment|purchase|booking|reservation|application)(?: #?\S+)? "
    r"(?:has been|was|is) (?:confirmed|received|shipped|dispatched|processed|approved|placed)"
    r"|\breceipt (?:#|for your (?:payment|order|purchase))|\bsecurity alert\b"
    r"|\bnew sign-?in\b|\bsign-?in (?:attempt|alert)\b"
    r"|\b(?:verification|security|one-time|login) code\b"
    r"|\b(?:how did we do|rate your (?:experience|visit|stay)"
    r"|(?:short|quick|customer satisfaction) survey)\b"
    r"|\bthank you for (?:applying|your application|shopping with us|your order|your purchase)"
    r"|\bma (?:xac thuc|xac minh|otp)\b|\b(?:canh bao|thong bao) dang nhap\b"
    r"|\bdon hang(?: \S+)?(?: cua (?:ban|quy khach))? (?:da|dang) duoc (?:xac nhan|giao"
    r"|ban giao|dong goi|van chuyen)|\bvua dang nhap (?:tu|tren|vao)\b"
    r"|\bcam on (?:quy khach|ban) da (?:dat hang|mua hang|thanh toan|ung tuyen)"
    r"|ご注文(?:ありがとう|を承り|内容の確認)|認証コード|ワンタイムパスワード"
    r"|ログイン(?:通知|のお知らせ)|アンケート(?:への)?ご協力"
    # social networks, bills, payments, lists, sender checks, quotas, tickets, monitors
    r"|\b(?:commented on|liked|reacted to) your (?:post|photo|comment)|\bmentioned you in\b"
    r"|いいね|\byour (?:water|electricity|gas|phone|internet|utility) bill\b"
    r"|\bthong bao tien (?:dien|nuoc)"
    r"|\byou paid\b|\bgiao dich thanh cong\b|\bbien dong so du\b|(?:カード)?ご利用のお知らせ"
    r"|\bawaits? moderator approval\b|\bsubscription (?:is )?confirmed\b"
    r"|メーリングリスト(?:への)?登録|\bplease verify your (?:message|e-?mail)\b"
    r"|\bxac minh nguoi gui\b|\bdang (?:duoc|bi) tam giu\b"
    r"|\bmailbox is (?:almost |nearly )?full\b|\bhop thu (?:cua ban )?(?:sap day|da day)\b"
    r"|メールボックスの容量|\b(?:ticket|case|request|yeu cau ho tro)(?: so)? #?\S+ "
    r"(?:has been|was|da duoc) (?:updated|closed|resolved|cap nhat|dong)"
    r"|\bmonitor is (?:down|up)\b|\bapplication (?:has been )?received\b"
    r"|\bda nhan (?:duoc )?ho so\b")
# "code not received", "đơn hàng chưa tới": a customer's complaint in a notice's words.
_NOT_RECEIVED = re.compile(r"\b(?:not|never|no|didn ?t|did not|haven ?t|chua|khong|van chua) "
                           r"(?:\w+ )?(?:receiv|arriv|come|came|got|get|nhan|toi|den|giao)")
# Writing back about what we asked for: "the documents you asked for", "như anh chị yêu cầu".
_ANSWERS_US = re.compile(r"\byou (?:asked|requested)\b|\bas (?:you )?requested\b"
                         r"|\b(?:anh chi|ban|quy cong ty|cong ty) (?:da )?yeu cau\b"
                         # a Vietnamese question needs no "?": "cho hỏi ... được không"
                         r"|\bcho (?:em |minh |toi )?hoi\b|\b(?:duoc|dc|co) (?:khong|ko|k)\b")
_CALENDAR_SUBJECT = re.compile(r"^(?:accepted|declined|tentative(?:ly accepted)?|updated "
                               r"invitation|chap nhan|tu choi|承諾|辞退)\s*:")
# Bracketed tags that notification systems, not people, put at the start of a subject.
_SUBJECT_TAG = re.compile(r"^\s*(?:【[^】]{0,30}(?:自動送信|自動返信|お知らせ|通知|ご案内)】"
                          r"|\[(?:auto(?:matic)?[- ]?reply|request received|no-?reply)\]"
                          r"|(?:thu )?(?:tra loi|phan hoi) tu dong\b|自動(?:返信|応答)\s*[:：])")
_READ_SUBJECT = re.compile(r"^(?:read|lu|gelesen|da doc|開封済み|開封確認)\s*[:：]",
                           re.IGNORECASE)
_READ_BODY = re.compile(r"\bwas read on\b|\bda duoc doc\b|開封されました|\bwurde .*gelesen")


def content_reason(subject: str, new_text: str, body: str = "") -> str | None:
    """``auto-reply-content``, ``notification-content``, ``bulk-content``,
    ``read-receipt-content`` or ``bounce-content``; None when human.

    Markers count only in the sender's new text (a customer quoting our acknowledgement
    is human); a bulk footer counts only in the closing part of a mail that is long enough
    to be a mailing and never speaks as "I" in its opening.
    """
    opening, folded_subject = fold(new_text[:OPENING_CHARS]), fold(subject)
    if _is_auto_reply(folded_subject, opening, new_text):
        return "auto-reply-content"
    body = body or new_text
    if _READ_SUBJECT.match(folded_subject.strip()) and _READ_BODY.search(fold(body)):
        return "read-receipt-content"
    bounce_subject = _BOUNCE_SUBJECT.match(subject.strip()) or \
        _BOUNCE_SUBJECT_LOCAL.match(folded_subject.strip())
    if bounce_subject and _BOUNCE_BODY.search(" ".join(fold(body).split())):
        return "bounce-content"
    if _is_notification(folded_subject, opening) and not _is_reply(subject):
        return "notification-content"
    closing = fold(body[len(body) * 2 // 3:])
    if (len(body) >= MIN_BULK_CHARS and _FOOTER.search(closing)
            and not _FIRST_PERSON.search(opening) and not _is_reply(subject)):
        return "bulk-content"
    return None


def reads_as_a_person(new_text: str) -> bool:
    """A longer text that speaks as "I" and is no away notice: someone replying under an
    inherited auto-reply subject, not the auto-reply itself."""
    opening = fold(new_text[:OPENING_CHARS])
    return (len(new_text.strip()) >= PERSONAL_MIN_CHARS and bool(_FIRST_PERSON.search(opening))
            and not _AWAY.search(opening) and not _MARKER.search(opening))


def _is_auto_reply(subject: str, opening: str, new_text: str) -> bool:
    if _MARKER.search(opening) or _SUBJECT_TAG.match(subject):
        return True
    if _asks(opening) or len(new_text) >= 1200:
        return False
    away = bool(_AWAY.search(opening) and _LATER.search(opening))
    notice = bool(_GONE.search(opening) or _CLOSED.search(f"{subject} {opening}"))
    receipt = bool(_RECEIPT.search(opening) and not _FIRST_PERSON.search(opening))
    return away or notice or receipt


def _is_notification(subject: str, opening: str) -> bool:
    """A system's notice to its customer: it never speaks as "I" and asks nothing."""
    if _asks(opening) or _FIRST_PERSON.search(opening) or _NOT_RECEIVED.search(opening):
        return False
    return bool(_CALENDAR_SUBJECT.match(subject.strip())
                or _NOTIFICATION.search(f"{subject} {opening}"))


def _asks(opening: str) -> bool:
    """A notice asks nothing of us: a question, a request or an answer to what we asked
    makes it a person's mail."""
    return "?" in opening or bool(_FIRST_PERSON_REQUEST.search(opening)
                                  or _ANSWERS_US.search(opening))


def _is_reply(subject: str) -> bool:
    return bool(re.match(r"\s*(re|aw|tr|sv|fwd?|wg)\s*:", subject, re.IGNORECASE))
