"""Machine mail that carries no telling header: only its words show it. PURE.

Four shapes, in English, Vietnamese (with or without diacritics) and Japanese:
- auto-replies: an explicit "automatic message" marker (also in brackets, or named in the
  subject: "Đang đi công tác – phản hồi tự động"), or an away notice together with a
  promise to answer later ("until", "when I am back", "limited access");
- notices a company's system sends its customers (orders, sign-in alerts, "if this was you,
  ignore this", calendar invitations, shared files);
- bulk mail and no-reply notifications: an unsubscribe, "do not reply" or "sent
  automatically" line in the closing part of a mail whose opening never speaks as "I";
- plain-text bounces: a delivery-failure subject with a delivery-failure sentence or an
  SMTP status code, said by a server, not by a person telling us about one.
Guards keep a person's mail human: speaking as "I" (read with the Vietnamese marks when the
text has them: "giao tới bạn" is not "tôi"), asking or requesting something, answering what
we asked, or quoting an automatic mail ("I got a mail saying 'this is an automatic ...'").
Links and addresses are read as neither. A person who writes "I'll be out of the office
next week, so please ..." stays human: the away notice alone is not enough.
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
    r"|自動(?:返信|応答|送信)(?:メール)?(?:です|でございます|しています|されています|されて"
    r"|にて)|(?:この|本)メールは[^。\n]{0,30}自動(?:的に)?(?:送信|配信|返信)"
    r"|[(（\[【]\s*(?:tin nhan|thu|email|phan hoi|tra loi) tu dong\s*[)）\]】]"
    r"|[(（\[【]\s*auto(?:matic)?[- ]?(?:reply|response|generated)(?: message)?\s*[)）\]】]"
    r"|[(（\[【]\s*自動(?:返信|応答|送信)(?:メッセージ|メール)?\s*[)）\]】]"
    r"|(?:^|\n)##-[^\n]{5,80}-##"
    r"|this (?:e-?mail|message) was (?:sent|generated) automatically"
    r"|repl(?:y|ies)(?: to this (?:e-?mail|message))? (?:is|are) not monitored"
    r"|this (?:mailbox|inbox|e-?mail address) is not monitored"
    r"|repl(?:y|ies) to (?:it|this (?:e-?mail|message|address)) (?:are|will) not (?:be )?read"
    r"|hop thu nay khong (?:duoc theo doi|nhan (?:thu )?phan hoi)"
    r"|requires you to confirm your (?:message|e-?mail)|confirm your message before"
    r"|(?:your|a|the) (?:support )?(?:request|ticket|case|enquiry|inquiry)(?: \S+)? "
    r"(?:has been|was) (?:received|created|opened|logged)"
    r"|\b(?:request|ticket|case) #?\d+ (?:has been|was) (?:set to|marked as) "
    r"(?:solved|resolved|closed)"
    r"|\bphieu (?:ho tro|yeu cau)(?: so)? #?\S+\b.{0,80}\bda duoc tao"
    r"|\bphieu (?:nay )?(?:duoc )?tao tu dong"
    r"|yeu cau (?:ho tro )?(?:cua (?:ban|quy khach) )?(?:so \S+ )?da duoc tiep nhan"
    r"|お問い合わせを受け付けました|受付(?:完了|いたしました)")
_AWAY = re.compile(
    r"\b(?:i am|i'm|im) (?:currently )?(?:out of (?:the )?office|away|on (?:\w+ )?leave"
    r"|on (?:vacation|holiday)|travell?ing)"
    r"|\b(?:with )?(?:only )?(?:limited|intermittent|no) access to (?:my )?(?:e-?mail|inbox)"
    r"|^\W*(?:out|away|off)(?: of (?:the )?office)? (?:until|till|through|from)\b"
    r"|\b(?:is|are) (?:currently )?(?:out of (?:the )?office|away|on (?:\w+ )?leave"
    r"|on (?:vacation|holiday)|travell?ing)\b"
    r"|\b(?:not|won't be|will not be) (?:reading|checking|monitoring) (?:e-?mails?|(?:this|my) "
    r"(?:inbox|mailbox|e-?mail))"
    r"|\b(?:toi|minh|em) (?:hien )?(?:dang )?(?:nghi phep|nghi tet|vang mat|di cong tac|"
    r"nghi le|nghi thai san|nghi om)"
    r"|不在(?:にしております|です|となります|のため|にして)|休暇(?:中|を)")
_LATER = re.compile(
    r"\b(?:until|till|return(?:ing)? on|when i(?: a|')?m back|upon my return|on my return"
    r"|limited access|will (?:reply|respond|get back)|\bbe back\b|won't be checking)"
    r"|\b(?:den (?:het )?ngay|den (?:het )?(?:thu|chu nhat)\b|den \d{1,2}[/.-]\d|toi ngay"
    r"|khi (?:quay|tro) lai|se (?:phan hoi|tra loi|lien he)|(?:tra loi|phan hoi) (?:cham|muon))"
    r"|戻り次第|まで(?:不在|休暇)|確認できません")
# An office confirming it got a message, in reply to it: "we have received your enquiry
# ... we will reply within 10 days" (said as "we": a person answering says "I").
_RECEIPT = re.compile(
    r"\bwe(?:'ve| have) received (?:it|your (?:message|e-?mail|enquiry|inquiry|request|mail))"
    r"\b.{0,160}\b(?:will (?:respond|reply|get back|be in touch|contact you)|reference "
    r"(?:number|no)|within \d+ (?:working |business )?days)"
    r"|\bchung toi da nhan (?:duoc )?(?:email|thu|yeu cau|tin nhan) cua (?:ban|quy khach)"
    r"|\b(?:yeu cau|thu|email) cua (?:ban|quy khach) da duoc (?:ghi nhan|tiep nhan)"
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
    r"|\b(?:vui long|xin) (?:dung|khong) (?:tra loi|phan hoi)\b"
    r"|\bdo not reply\b|\bno-?reply\b|\b(?:is|are) not monitored\b|\bunmonitored\b"
    r"|\b(?:this|the) (?:e-?mail|message|notification) (?:was|is|has been) (?:sent|generated) "
    r"(?:automatically|by|from an? (?:automated|unmonitored))"
    r"|\bmanage (?:your |all )?(?:\w+ )?(?:notifications|alerts)\b"
    r"|\byou(?:'re| are)? (?:receiving|getting|get|received) (?:this|these|\w+(?: \w+)? e-?mails?)"
    r"(?: \w+){0,3} because\b|\bturn (?:it )?off\b|\bchange how often\b"
    r"|\b(?:thu|email|tin nhan|thong bao)(?: dien tu| thong bao)? (?:nay )?(?:duoc )?"
    r"(?:gui |tao )?tu dong\b"
    r"|\b(?:email|thu|thong bao) (?:nay )?(?:duoc )?gui (?:tu|toi|den|boi) (?:he thong|dia chi "
    r"khong|tat ca|(?:email |dia chi )?(?:khach hang|nguoi dung|thanh vien))"
    r"|\bgui (?:tu|boi) he thong\b|\b(?:thu|email) nay do he thong\b"
    r"|\bban nhan (?:duoc )?(?:ban tin|thu|email|thong bao|tin) nay(?: \w+){0,3} vi\b"
    r"|\b(?:tat|huy) (?:ban tin|thong bao)\b"
    r"|\bkhong (?:nhan|tiep nhan) (?:thu )?(?:tra loi|phan hoi)|\bkhong duoc (?:giam sat|theo doi)"
    r"|\bdia chi (?:email )?khong nhan thu|\bngung nhan (?:ban tin|thu|email|tin)"
    r"|配信(?:停止|解除|専用)|送信専用|返信(?:はできません|できません|しないで|には(?:お答え|対応))"
    r"|返信[^。\n]{0,12}できません|(?:配信|受信)を停止|メール配信の(?:解除|停止)"
    r"|(?:すべての|全ての|全)(?:お客様|会員(?:の皆)?様?|ユーザー)(?:へ|に)(?:お送り|配信|送信)"
    r"|自動(?:的に)?(?:送信|配信)(?:されて|して)")
_FIRST_PERSON = re.compile(r"\b(?:i|my|me|(?<!chung )toi|minh|em|chung toi muon)\b|私|僕")
_FIRST_PERSON_REQUEST = re.compile(
    r"\bplease (?:delete|remove|send|correct|update|process|unsubscribe)"
    r"|\b(?:xin|vui long|nho|de nghi|yeu cau) (?:xoa|xu ly|gui|sua|cap nhat|cung cap)")
_BOUNCE_SUBJECT = re.compile(
    r"^(?:undeliverable|undelivered mail|delivery (?:status notification|failure|failed|delayed)"
    r"|mail delivery (?:warning|failed|failure|subsystem)|returned mail|failure notice"
    r"|delivery notification|delayed mail|warning: (?:message|delivery) (?:delayed|failed))",
    re.IGNORECASE)
# The same, as mail servers in Vietnam and Japan write it (matched on the folded subject).
_BOUNCE_SUBJECT_LOCAL = re.compile(
    r"^(?:thong bao\s*:\s*)?(?:(?:thu|email|e-mail) (?:khong (?:the )?gui (?:duoc|di|den)"
    r"|bi tra (?:lai|ve)|gui khong thanh cong|chua (?:duoc )?gui|khong (?:duoc )?chuyen phat)"
    r"|khong the gui\s*:|khong gui duoc (?:thu|email)"
    r"|(?:メール)?(?:配信|配送|送信)(?:不能|エラー|失敗|できませんでした))")
_BOUNCE_BODY = re.compile(
    r"(?:was not|wasn't|could not be|couldn't be) delivered|address not found"
    r"|not listed in|delivery has failed|delivery to the following recipients? has been "
    r"delayed|could not be delivered|delivery to the following recipients? failed|permanent error"
    r"|the following addresses? (?:had permanent fatal errors|failed)|user unknown"
    r"|mailbox (?:unavailable|full)|no such user|(?:has not|hasn't) (?:yet )?been delivered"
    r"|see transcript for details|(?:unable|failed) to deliver|this is the mail system at host"
    r"|\b[245]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b|\bstatus: [245]\.\d{1,3}\.\d{1,3}\b"
    r"|khong (?:duoc )?chuyen phat|khong the (?:gui|chuyen)(?:(?: \w+){0,4} (?:den|toi)| duoc)"
    r"|khong tim thay (?:dia chi|ten mien)|chua (?:duoc )?gui di"
    r"|(?:nguoi nhan|hop thu)(?: \w+){0,3} khong ton tai"
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
    r"|\bda nhan (?:duoc )?ho so\b"
    r"|\bif (?:this|it) was(?:n't| not)? you\b|\bif you did(?:n't| not) (?:request|make|sign|"
    r"initiate|ask)\b|\b(?:neu|trong truong hop) (?:day (?:la|khong phai(?: la)?) ban"
    r"|ban khong (?:yeu cau|thuc hien))|お心当たり(?:の|が)?(?:ない|ある)場合"
    r"|\bdat lai mat khau\b|\breset your password\b|パスワード(?:の)?再設定"
    r"|\bnhac (?:(?:ban|anh|chi|quy khach) )?lich hen\b|\bappointment reminder\b"
    r"|\breminder: your (?:appointment|booking|reservation)\b|ご予約(?:日|の)?(?:前日|確認)"
    r"|\bfor immediate release\b")
# "code not received", "đơn hàng chưa tới": a customer's complaint in a notice's words.
_NOT_RECEIVED = re.compile(r"\b(?:not|never|no|didn ?t|did not|haven ?t|chua|khong|van chua) "
                           r"(?:\w+ )?(?:receiv|arriv|come|came|got|get|nhan|toi|den|giao)"
                           r"|届か(?:ない|ず)|届いて(?:い|お)(?:ない|りません)|届きません|受け取れ(?:ない|ません)")
# Writing back about what we asked for: "the documents you asked for", "như anh chị yêu cầu".
_ANSWERS_US = re.compile(r"\byou (?:asked|requested)\b|\bas (?:you )?requested\b"
                         r"|\b(?:anh chi|ban|quy cong ty|cong ty) (?:da )?yeu cau\b"
                         # a Vietnamese question needs no "?": "cho hỏi ... được không"
                         r"|\bcho (?:em |minh |toi )?hoi\b|\b(?:duoc|dc|co) (?:khong|ko|k)\b"
                         # a customer addressing us, or asking for their own ("ad ơi",
                         # "please update our name", "đề nghị quý công ty ...", "giúp em")
                         r"|\b(?:ad|admin|shop) oi\b|\b(?:gui|xoa|sua|xem|kiem tra|check|cap nhat"
                         r"|cung cap|huy) giup (?:e|em|minh|toi|to)\b"
                         r"|\bplease (?:\w+ ){1,2}(?:my|our)\b|\b(?:could|can|would) you "
                         r"(?:please )?(?:\w+ ){1,2}(?:my|our)\b"
                         r"|\b(?:de nghi|yeu cau|mong|nho) (?:quy |ben )?(?:cong ty|cijidas)\b"
                         # nor does a Japanese one: "…いただけないでしょうか。"
                         r"|でしょうか|(?:ます|ません|です)か[。？?\s]|いただけ(?:ます|ません)か"
                         # or asks for something of their own: "…を教えてください"
                         r"|(?:教え|削除し|訂正し|開示し|停止し|送っ)て(?:ください|下さい|いただ)")
# Subjects only systems write: calendar answers and invitations ("Invitation: Review @ Thu
# 20 Nov 2025 15:00"), files shared with you.
_SYSTEM_SUBJECT = re.compile(
    r"(?:accepted|declined|tentative(?:ly accepted)?|updated invitation|chap nhan|tu choi"
    r"|承諾|辞退)\s*:"
    r"|(?:(?:updated )?invitation|loi moi|招待状)\s*:.{1,120}@ .{0,40}\d"
    r"|.{1,60} (?:has shared|shared|da chia se|invited you to (?:edit|view|comment))"
    r" (?:(?:a|an|the|mot) )?(?:document|file|folder|spreadsheet|presentation|tep|tai lieu"
    r"|bang tinh|thu muc|trang tinh)\b.{0,80}\b(?:with you|voi ban)"
    r"|.{1,60}(?:さん)?が.{1,60}を共有しました")
_MAIL_SYSTEM = re.compile(r"\bthis is the (?:qmail-send program|mail system|mail delivery "
                          r"(?:system|subsystem)|postfix program)\b|\bmailer-daemon\b"
                          r"|\bcreated automatically by mail delivery software\b")
_LINK = re.compile(r"\b(?:https?://|www\.)\S+|\S+@[\w-]+\.[\w.-]+")
_QUOTED = re.compile(r"[\"“«「『][^\"”»」』]{1,200}[\"”»」』]")
_VIETNAMESE_MARKS = re.compile(r"[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữự"
                               r"ỳýỷỹỵđ]", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|aw|tr|sv|fwd?|wg)\s*:)+\s*", re.IGNORECASE)
_PARTIAL_WORD = re.compile(r"\w+$")
_QUOTE_LINES = re.compile(r"^[ \t]*>.*(?:\n|$)", re.MULTILINE)
# Without marks, "Minh" inside a sentence or before another name is a name ("chao Minh Thu",
# "CONG TY MINH LONG"); at the start of a sentence it may be "Mình".
_NAME_MINH = re.compile(r"(?<=\w[ ,])Minh\b|\bMinh(?= [A-ZĐ])|\bMINH\b")
_FIRST_PERSON_MARKED = re.compile(r"\b(?:i|my|me|(?<!chúng )tôi|mình|em|chúng tôi muốn)\b|私|僕")
# An auto-reply named in its subject after the original one or before a colon:
# "Đang đi công tác – phản hồi tự động", "Tự động: nghỉ ốm".
_AUTO_SUBJECT_END = re.compile(r"[-–—:|]\s*(?:thu )?(?:tra loi|phan hoi) tu dong\s*$"
                               r"|^\s*tu dong\s*:|[-–—:|]\s*auto(?:matic)?[- ]?reply\s*$")
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
    # Links and addresses say nothing about who writes ("my.example.jp", "reset?token=").
    original = _LINK.sub(" ", _opening(new_text))
    opening, folded_subject = fold(original), fold(subject)
    if _is_auto_reply(folded_subject, opening, new_text, original):
        return "auto-reply-content"
    body = body or new_text
    if _READ_SUBJECT.match(folded_subject.strip()) and _READ_BODY.search(fold(body)):
        return "read-receipt-content"
    bounce_subject = _BOUNCE_SUBJECT.match(subject.strip()) or \
        _BOUNCE_SUBJECT_LOCAL.match(folded_subject.strip())
    if bounce_subject and _is_bounce(" ".join(fold(body).split()), opening, original):
        return "bounce-content"
    if _is_notification(folded_subject, opening, original) and \
            not _is_reply(subject):
        return "notification-content"
    # The sender's own closing: a footer in a part they quote ("> This invoice was generated
    # automatically. Please do not reply.") is what they answer, not what they are.
    own = _QUOTE_LINES.sub("", body)
    closing = " ".join(fold(own[len(own) * 2 // 3:]).split())
    if (len(body) >= MIN_BULK_CHARS and _FOOTER.search(closing)
            and not _speaks_as_i(original) and not _is_reply(subject)
            and not _ANSWERS_US.search(opening)):
        return "bulk-content"
    return None


def reads_as_a_person(new_text: str) -> bool:
    """A longer text that speaks as "I" and is no away notice: someone replying under an
    inherited auto-reply subject, not the auto-reply itself."""
    opening = fold(_opening(new_text))
    return (len(new_text.strip()) >= PERSONAL_MIN_CHARS and bool(_FIRST_PERSON.search(opening))
            and not _AWAY.search(opening) and not _MARKER.search(opening))


def _is_auto_reply(subject: str, opening: str, new_text: str, original: str) -> bool:
    if _MARKER.search(_QUOTED.sub(" ", opening)) or _SUBJECT_TAG.match(subject) \
            or _AUTO_SUBJECT_END.search(_REPLY_PREFIX.sub("", subject)):
        return True
    if _asks(opening) or len(new_text) >= 1200:
        return False
    away = bool(_AWAY.search(opening) and _LATER.search(opening))
    notice = bool(_GONE.search(opening) or _CLOSED.search(f"{subject} {opening}"))
    receipt = bool(_RECEIPT.search(f"{subject} {opening}") and not _speaks_as_i(original))
    return away or notice or receipt


def _is_notification(subject: str, opening: str, original: str) -> bool:
    """A system's notice to its customer: it never speaks as "I" and asks nothing. Calendar
    and sharing notices are told by their subject alone (the invitation or the note of
    whoever shared the file may say anything)."""
    if _SYSTEM_SUBJECT.match(subject.strip()):
        return True
    if _asks(opening) or _speaks_as_i(original) or _NOT_RECEIVED.search(opening):
        return False
    return bool(_NOTIFICATION.search(f"{subject} {opening}"))


def _is_bounce(body: str, opening: str, original: str) -> bool:
    """A delivery failure said by a mail server; a person telling us about one ("my mail
    came back: 550 5.1.1 ...") speaks as "I" or asks, unless a server introduces itself."""
    if not _BOUNCE_BODY.search(body):
        return False
    return bool(_MAIL_SYSTEM.search(opening)) or not (_speaks_as_i(original) or _asks(opening))


def _opening(text: str) -> str:
    """The first :data:`OPENING_CHARS` characters, without a word cut in two ("được k...")."""
    if len(text) <= OPENING_CHARS or not text[OPENING_CHARS].isalnum():
        return text[:OPENING_CHARS]
    return _PARTIAL_WORD.sub("", text[:OPENING_CHARS])


def _speaks_as_i(original: str) -> bool:
    """"I", "my", "tôi", "mình", "em", "私" in the opening. In a text written with marks the
    marks tell the pronoun: "giao tới bạn" and "Chào Minh Châu" fold to "toi" and "minh"."""
    if _VIETNAMESE_MARKS.search(original):
        return bool(_FIRST_PERSON_MARKED.search(original.lower()))
    return bool(_FIRST_PERSON.search(fold(_NAME_MINH.sub(" ", original))))


def _asks(opening: str) -> bool:
    """A notice asks nothing of us: a question, a request or an answer to what we asked
    makes it a person's mail."""
    return "?" in opening or bool(_FIRST_PERSON_REQUEST.search(opening)
                                  or _ANSWERS_US.search(opening))


def _is_reply(subject: str) -> bool:
    return bool(_REPLY_PREFIX.match(subject))
