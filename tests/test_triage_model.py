"""The learned triage model: the pure scorer matches scikit-learn, review decisions, the
failure patterns rules alone got wrong, content-only machine mail, and `train` end to end.

The sentences below were written for these tests (not copied from an issue or the corpus).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.models import Category
from bot.triage import shipped_model, triage
from bot.triage.corpus import CATEGORIES, Sample, build_mail, parse_corpus
from bot.triage.decide import decide
from bot.triage.model import Model, Prediction

D, Q, C, X, K = (Category.DELETION, Category.QUESTION, Category.CORRECTION,
                 Category.DISCLOSURE, Category.COMPLAINT)

SMALL_CORPUS = """
### question en
S: Retention
How long do you keep the data of closed accounts?
### question vi
S: Hỏi
Cho tôi hỏi công ty lưu dữ liệu ở Nhật hay Việt Nam?
### complaint en
S: Courier
The driver read my parcel's label out loud to the whole queue.
### complaint vi
S: Phản ánh
Nhân viên gửi hoá đơn của tôi cho người khác.
### disclosure en
S: Copy
Please send me a copy of all personal data you hold about me.
### disclosure vi
S: Dữ liệu
Đề nghị cung cấp cho tôi toàn bộ dữ liệu cá nhân công ty đang lưu.
### correction en
S: Address
Please change my address to 3-1 Shibuya, Tokyo.
### correction vi
S: Sửa
Nhờ sửa lại ngày sinh của tôi thành 12/03/1990.
### deletion en
S: Delete
Delete my account and every record about me.
### deletion vi
S: Xoá
Xin xoá tài khoản và dữ liệu của tôi.
"""


def small_samples(copies: int = 4) -> list[Sample]:
    base = parse_corpus(SMALL_CORPUS)
    return [Sample(s.labels, s.language, s.subject, s.body + f"\n{'.' * i}\n")
            for i in range(copies) for s in base]


# -- the pure scorer is scikit-learn's arithmetic -------------------------------------------

def test_pure_scorer_matches_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from bot.ops.training import _export
    from bot.triage.features import analyze

    texts = [f"{s.subject}\n{s.body}" for s in small_samples()]
    labels = [s.primary for s in small_samples()]
    vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=1)
    classifier = LogisticRegression(C=10.0, max_iter=2000).fit(
        vectorizer.fit_transform(texts), labels)
    model = _export(vectorizer, classifier, len(texts))
    probe = ["please erase my account", "what data do you have on me?", "xin chao"]
    expected = classifier.predict_proba(vectorizer.transform(probe))
    for text, row in zip(probe, expected, strict=True):
        got = model.predict(text).probabilities
        for cls, value in zip(classifier.classes_, row, strict=True):
            assert got[cls] == pytest.approx(value, abs=1e-3)
    assert sklearn.__version__


def test_model_file_round_trip_and_format_check() -> None:
    model = shipped_model()
    again = Model.from_json(model.to_json())
    assert again.predict("delete my account").probabilities == pytest.approx(
        model.predict("delete my account").probabilities)
    with pytest.raises(ValueError):
        Model.from_json('{"format": 999}')


# -- review decisions -------------------------------------------------------------------

def probabilities(**values: float) -> Prediction:
    base = dict.fromkeys(CATEGORIES, 0.0)
    base.update(values)
    return Prediction(base)


@pytest.mark.parametrize(("prediction", "rule", "rule_conf", "review"), [
    (probabilities(deletion=0.9, question=0.1), D, 0.8, False),    # sure and agreed
    (probabilities(deletion=0.5, question=0.5), D, 0.8, True),     # below threshold
    (probabilities(question=0.9, deletion=0.1), D, 0.8, True),     # explicit phrase disagrees
    (probabilities(question=0.9, deletion=0.1), D, 0.3, False),    # weak rule: no guard
    (probabilities(deletion=0.62, disclosure=0.38), D, 0.8, True),  # two requests at once
    (probabilities(complaint=0.7, question=0.3), Q, 0.1, False),   # rule default never guards
])
def test_review_decision(prediction: Prediction, rule: Category, rule_conf: float,
                         review: bool) -> None:
    assert decide(prediction, rule, rule_conf, threshold=0.6).needs_review is review


def test_stricter_threshold_flags_more() -> None:
    text = "Hi, can you check what you have on file about my old address?"
    low = triage("", text, review_threshold=0.05)
    high = triage("", text, review_threshold=1.0)
    assert not any(r.startswith("model probability") for r in low.review_reasons)
    assert high.needs_review


# -- patterns the phrase rules alone got wrong ------------------------------------------

PATTERN_CASES = [
    # a polite opener does not make a mail a disclosure request
    ("Xin vui lòng xoá tài khoản và số điện thoại của tôi khỏi hệ thống.", {D}),
    ("xin vui long huy tai khoan cua em, cam on shop", {D}),
    # a hypothetical with a comma inside is still a question
    ("Suppose I cancel my membership next month, will my purchase history be erased "
     "automatically or do I have to ask?", {Q}),
    # thinking about a request is not a request
    ("I'm weighing up whether to ask for my account to be removed; first, what happens to "
     "my loyalty points if I do?", {Q}),
    # a list after a colon still carries the request
    ("Đề nghị công ty gửi cho tôi:\n- các thông tin cá nhân đang lưu\n- lịch sử giao dịch",
     {X}),
    # complaints without emotion words
    ("Your cookie banner has a big Accept button and the reject option is hidden three "
     "screens deep.", {K}),
    ("I wrote to you on 2 October and again on 16 October. It is now November and I have "
     "had no reply.", {K}),
    ("The delivery man read out my name and what was in the box in front of my neighbours.",
     {K}),
    # discipline your staff is a complaint, not a correction
    ("Đề nghị công ty chấn chỉnh lại thái độ của nhân viên quầy số 3, họ nói chuyện rất "
     "thiếu tôn trọng với khách.", {K}),
    # a complaint about the fee for a copy
    ("Charging me 1,000 yen just to see my own data is outrageous. It should be free.", {K}),
    # documents sent for a pending request are that request
    ("As asked, attached are my passport scan and a utility bill for my request to receive "
     "a copy of my data (CJD-000712).", {X}),
]


@pytest.mark.parametrize(("text", "accepted"), PATTERN_CASES)
def test_failure_patterns(text: str, accepted: set[Category]) -> None:
    result = triage("", text)
    assert result.category in accepted or result.needs_review, result


# -- content-only machine mail -----------------------------------------------------------

MACHINE_CASES = [
    ("Re: Yêu cầu của tôi", "[Tin nhắn tự động] Tôi đang nghỉ Tết đến hết ngày 5/2. "
     "Tôi sẽ phản hồi khi quay lại.", "auto-reply-content"),
    ("お問い合わせ", "このメールは自動返信メールです。担当者より改めてご連絡いたします。",
     "auto-reply-content"),
    ("Thanks for your mail", "I am currently out of the office until 12 May with limited "
     "access to email.", "auto-reply-content"),
    ("Ưu đãi tháng 12", "Giảm giá 50% cho mọi đơn hàng trong tuần này! Mua ngay tại cửa "
     "hàng gần bạn. " * 4 + "\nNếu không muốn tiếp tục nhận thư này, bấm vào đây.",
     "bulk-content"),
    ("年末セール", "全品20%オフのセールを開催中です。詳しくはウェブサイトをご覧ください。" * 4
     + "\n配信停止はこちら", "bulk-content"),
    ("Undeliverable: your message", "Your message could not be delivered to one or more "
     "recipients.", "bounce-content"),
    # Away in other words, people who left, closures, no-reply boxes, local bounces.
    ("Re: Your question", "I'm on parental leave and will be back in the office in "
     "September. For anything urgent, my colleague at ops@example.com can help.",
     "auto-reply-content"),
    ("Trả lời: Hóa đơn tháng 5", "Em đã nghỉ việc ở công ty từ tháng 3, hộp thư này sẽ sớm "
     "bị khóa. Anh chị liên hệ phòng kế toán giúp em nhé.", "auto-reply-content"),
    ("Lich nghi Tet", "Cong ty chung toi se nghi Tet tu 26/1 den 2/2. Don hang se duoc xu ly "
     "khi lam viec tro lai.", "auto-reply-content"),
    ("お盆休みのお知らせ", "8月12日から16日まで休業いたします。17日より順次ご対応いたします。",
     "auto-reply-content"),
    ("Thư trả lời tự động", "Cảm ơn anh chị đã gửi thư, chúng tôi sẽ đọc khi có thể.",
     "auto-reply-content"),
    ("Re: Đơn hàng", "Hộp thư này không được theo dõi. Vui lòng gọi hotline 1900 1234.",
     "auto-reply-content"),
    ("Delivery delayed: report", "This message hasn't been delivered yet. Delivery will "
     "continue to be attempted.", "bounce-content"),
    ("Thư bị trả lại", "Không thể gửi thư đến địa chỉ ketoan@example.vn: hộp thư không tồn "
     "tại.", "bounce-content"),
    # A company's system writing to its own customer.
    ("Your Maple & Co order", "Hello Sam, we've received your order and will email you when "
     "it ships. Order total: $42.00", "notification-content"),
    ("Mã OTP", "Mã OTP của Quý khách là 556677, hiệu lực trong 3 phút. Không chia sẻ mã "
     "này cho bất kỳ ai.", "notification-content"),
    ("Accepted: Quarterly review", "Tran Binh has accepted this meeting.",
     "notification-content"),
    ("Re: Price list", "Thank you for writing. We have received your message and will get "
     "back to you within 3 working days.", "auto-reply-content"),
    ("Cảnh báo", "Đây là thông báo tự động từ hệ thống thư: thư của bạn chưa được gửi đi.",
     "auto-reply-content"),
    # Said in the subject, in brackets, or only in a closing no-reply line.
    ("Đang nghỉ phép – trả lời tự động", "Tôi nghỉ phép tuần này. Việc gấp xin gửi chị Hoa.",
     "auto-reply-content"),
    ("Re: Báo giá", "(Tin nhắn tự động)\nAnh Tuấn đi công tác, sẽ xem thư sau.",
     "auto-reply-content"),
    ("Giao hàng", "Chào bạn, kiện hàng đang được giao tới bạn trong hôm nay. Mã vận đơn "
     "GH123456789, dự kiến giao trước 18:00.\n\n(Email tự động – vui lòng không phản hồi)",
     "bulk-content"),
    ("Phiếu lương tháng 9", "Thân gửi anh Minh, phiếu lương tháng 9 đã có trong tệp đính kèm, "
     "mật khẩu là ngày sinh của anh.\nEmail này được gửi từ hệ thống nhân sự, vui lòng "
     "không trả lời.", "bulk-content"),
    ("Invitation: Vendor review @ Thu 20 Nov 2025 15:00 - 16:00 (JST)", "Vendor review\n"
     "When: Thursday 20 November\nOrganizer: Rachel", "notification-content"),
    ("An đã chia sẻ một tài liệu với bạn: \"Kế hoạch\"", "Em gửi anh bản kế hoạch nhé.",
     "notification-content"),
    ("New sign-in to your account", "A new sign-in from Firefox on Windows. If this was you, "
     "you can ignore this message. https://my.example.com/security?x=1",
     "notification-content"),
    ("Failure Notice", "Sorry, we were unable to deliver your message to the following "
     "address.\n<a@example.com>: 554 delivery error", "bounce-content"),
    ("Thông báo: Thư không được chuyển phát", "Thư của bạn KHÔNG được chuyển phát thành công "
     "tới a@example.vn.\nMã lỗi: 552 5.2.2 Mailbox quota exceeded", "bounce-content"),
    ("Re: Consent form", "Dr. Marsh is on research leave until 30 September and is not "
     "reading email. Her assistant reviews this inbox on Mondays.", "auto-reply-content"),
    ("[#VN-0457] Chúng tôi đã nhận được yêu cầu của bạn", "Xin chào, cảm ơn bạn đã liên hệ. "
     "Thời gian phản hồi dự kiến: trong vòng 2 ngày làm việc.", "auto-reply-content"),
    ("12 viec lam moi", "Xin chao Minh Thu,\nViecHay tim thay 12 viec lam moi phu hop voi "
     "ho so cua ban trong tuan nay.\n" + "Chuyen vien phap che - Ha Noi\n" * 4
     + "Ban nhan ban tin nay hang tuan vi da bat goi y viec lam. Tat ban tin tai day.",
     "bulk-content"),
]
HUMAN_LOOKALIKES = [
    ("Deletion before I leave", "I'll be out of the office from Monday until the 20th, so "
     "please delete my account before then."),
    ("Stop this", "I keep getting this advert although I unsubscribed:\n\nBig sale! " * 3
     + "\nTo stop receiving these emails, click unsubscribe."),
    ("Re: [CJD-000300] We received your request", "Here is the code you asked for: "
     "12345678\n\n> This is an automatically generated acknowledgement."),
    ("hỏi", "Em đang đi công tác đến ngày 10, lúc đó em gửi giấy tờ được không ạ?"),
    ("Fwd: Trả lời tự động", "Tôi gửi yêu cầu từ tuần trước mà chỉ nhận được thư tự động "
     "này.\n\n---------- Thư đã chuyển tiếp ----------\nĐây là thư trả lời tự động, chúng "
     "tôi sẽ phản hồi sớm."),
    ("Nhân viên nghỉ việc", "Chị Lan đã nghỉ việc tại công ty chúng tôi từ tháng trước. Đề "
     "nghị xóa tài khoản thành viên của chị ấy."),
    ("New address", "I no longer work for Acme and this mailbox will be closed soon. Please "
     "update the email on my account to jo@example.com."),
    ("Documents", "Our office will be closed next week for the holidays, so please send the "
     "copy of my data before Friday."),
    ("Verification code", "Verification code not received. Please send it again."),
    ("Order 5521", "Your order confirmation says it was shipped, but nothing came. Fix this."),
    ("Security alert", "Security alert mail from you with a strange link. Is it real?"),
    ("Khảo sát", "Vừa khiếu nại xong thì nhận 5 tin nhắn khảo sát đánh giá mức độ hài lòng."),
    ("Re: Documents", "Thanks for your email. I'm travelling today, I will reply tomorrow "
     "with the papers you asked for."),
    ("hoa don", "cho hoi hoa don dien tu gui qua email dc ko"),
    # Quoting or naming an automatic mail is not being one.
    ("Nhận thư tự động lạ", "Tôi nhận được email \"Đây là thư tự động – tài khoản của bạn đã "
     "được cập nhật\" dù tôi không sửa gì. Ai đã vào tài khoản của tôi?"),
    ("Re: 【自動送信】お問い合わせを受け付けました",
     "1か月前に利用停止をお願いしましたが、届いたのは下記の自動返信メールだけです。"
     "どうなっているのでしょうか。"),
    ("Fwd: Automatic reply", "This is all I got back after two weeks. Please answer my "
     "request."),
    ("Thư không gửi được", "Tôi gửi thư cho bộ phận bảo mật nhưng bị trả về: 550 5.1.1 User "
     "unknown. Xin cho biết địa chỉ đúng để gửi yêu cầu xóa dữ liệu."),
    ("アンケートについて質問です", "先日届いたアンケートに生年月日の設問がありました。理由を教えて"
     "ください。\n---\n【Cijidas】アンケートご協力のお願い\n※本メールは配信専用アドレスから送信しています。"),
    ("SMS認証コードが届かない件", "ログイン時のSMS認証コードが届かず、ログインできません。"
     "新しい番号に変更していただけないでしょうか。"),
    # A footer in what the customer quotes; a customer asking for their own data.
    ("Wrong name on invoice", "We received the invoice below with our old company name on "
     "it. Please update our name in your records and reissue it. " * 2 + "\n\n> INVOICE "
     "CJ-1\n> This invoice was generated automatically. Please do not reply to this email."),
    ("xin lich su dang nhap", "Chao ad, hom qua e nhan dc mail canh bao dang nhap tu thiet bi "
     "la. Ad gui giup e lich su dang nhap cua tk trong 1 thang nha."),
    ("Minh muon xoa tai khoan", "Minh muon xoa tai khoan va toan bo du lieu ca nhan. "
     + "Tai khoan dang ky bang so dien thoai cu. " * 3 + "\nKhong muon nhan them email nao."),
]


@pytest.mark.parametrize(("subject", "text", "reason"), MACHINE_CASES)
def test_machine_mail_without_headers(subject: str, text: str, reason: str) -> None:
    from bot.mail.autogen import machine_generated_reason
    from bot.mail.parse import parse_message

    # Built as a person's mail (ordinary sender and headers): only the content tells.
    sample = Sample(("question",), "vi", subject, text + "\n")
    mail = parse_message(build_mail(sample, 1))
    assert machine_generated_reason(mail, "contact@cijidas.jp") == reason


@pytest.mark.parametrize(("subject", "text"), HUMAN_LOOKALIKES)
def test_human_lookalikes_stay_human(subject: str, text: str) -> None:
    from bot.mail.autogen import machine_generated_reason
    from bot.mail.parse import parse_message

    quoted = text.split("\n\n> ")
    body = quoted[0] + ("\n\n> " + quoted[1] if len(quoted) > 1 else "")
    sample = Sample(("question",), "en", subject, body + "\n")
    mail = parse_message(build_mail(sample, 2))
    assert machine_generated_reason(mail, "contact@cijidas.jp") is None


def test_shipped_corpus_suppresses_no_human_mail() -> None:
    from bot.mail.autogen import machine_generated_reason
    from bot.mail.parse import parse_message
    from bot.ops.training import shipped_samples

    samples = shipped_samples() + shipped_samples(held_out=True)
    suppressed = [s.source for i, s in enumerate(samples) if not s.machine
                  and machine_generated_reason(parse_message(build_mail(s, i)),
                                               "contact@cijidas.jp")]
    assert suppressed == []


@pytest.mark.parametrize(("name", "floor", "machine"), [
    ("dev-machine.txt", 89, 96), ("dev-machine-2.txt", 65, 72), ("dev-machine-3.txt", 78, 78),
    ("dev-machine-4.txt", 75, 78), ("dev-machine-5.txt", 69, 70),
    # Written as a measurement: first read 59/60 caught, 5 of 60 look-alikes suppressed.
    # The guards were then fixed on those five (a footer in a quoted part, a customer
    # asking for their own data); its misses were never looked at.
    ("measure-machine.txt", 59, 60),
    # Second measurement: first read 38/40 caught, 1 of 90 look-alikes suppressed (a
    # Japanese question pasting a survey notice: "…を教えてください" now keeps it human).
    ("measure-machine-2.txt", 38, 40),
    # Third measurement, read once and never tuned on: 48/50 caught, 0 of 70 suppressed.
    ("measure-machine-3.txt", 48, 50)])
def test_development_sets_of_machine_mail(name: str, floor: int, machine: int) -> None:
    """Development sets written from the labelling rules alone to tune these rules on (the
    held-out split is not): what they catch, and no human mail lost. Left out on purpose:
    human-written list posts, which only their headers tell, and notices that say "I" or
    ask a question, which customers' mail does too."""
    from bot.mail.autogen import machine_generated_reason
    from bot.mail.parse import parse_message
    from bot.triage.corpus import parse_corpus

    path = Path(__file__).parent / "fixtures" / "triage" / name
    samples = parse_corpus(path.read_text(encoding="utf-8"), path.name)
    reasons = [machine_generated_reason(parse_message(build_mail(s, i)), "contact@cijidas.jp")
               for i, s in enumerate(samples)]
    caught = sum(r is not None for s, r in zip(samples, reasons, strict=True) if s.machine)
    suppressed = [s.subject for s, r in zip(samples, reasons, strict=True)
                  if not s.machine and r is not None]
    assert caught >= floor and sum(s.machine for s in samples) == machine
    assert suppressed == []


# -- train end to end --------------------------------------------------------------------

@pytest.fixture
def bot_settings(tmp_path):
    from types import SimpleNamespace

    from botenv import write_config

    from bot.config import load_settings

    fake = SimpleNamespace(host="127.0.0.1", port=1)
    return load_settings(write_config(tmp_path, fake, None), environ={"TEST_IMAP_PASSWORD": "x"})


def test_train_writes_a_company_model_the_service_picks_up(tmp_path, bot_settings) -> None:
    pytest.importorskip("sklearn")
    from datetime import UTC, datetime

    from bot.adapters.model_file import company_model_path, load_triage_model
    from bot.adapters.store import Store
    from bot.flows.service import Service
    from bot.models import MessageSource
    from bot.ops.training import train_company_model

    store = Store(bot_settings.database_path)
    lines: list[str] = []
    model = train_company_model(store, bot_settings, out=lines.append,
                                corpus=small_samples(), held_out=small_samples(1))
    path = company_model_path(bot_settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_triage_model(bot_settings).version == model.version != shipped_model().version
    assert any("held-out accuracy" in line for line in lines)
    raw = build_mail(Sample(("deletion",), "en", "Delete", "Delete my account please.\n"), 3)
    now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    handled = Service(store, bot_settings).handle(MessageSource("INBOX", 1, 1), raw, now)
    ticket = store.ticket_by_ref(handled.ref)
    assert ticket["triage_model"] == model.version
    store.close()


@pytest.mark.parametrize(("text", "folded"), [
    ("Xoá TÀI khoản", "xoa tai khoan"),
    ("Đặng Thị Ưu", "dang thi uu"),
    ("まで確認できません", "まで確認できません"),  # kana keep their voicing marks
    ("ご連絡", "ご連絡"),
    ("년월일", "년월일"),  # Hangul syllables stay whole
])
def test_fold_strips_only_latin_marks(text: str, folded: str) -> None:
    from bot.triage.text import fold

    assert fold(text) == folded and len(fold(text)) == len(text)


def test_corpus_section_headings_are_not_part_of_a_mail() -> None:
    text = ("# a corpus\n### question en\nS: Hours\nWhen do you open?\n# of items: 3\n"
            "Thanks\n\n# ---- complaint ----\n#\n### complaint en\nS: Late\nStill waiting.\n"
            "# ---- end ----\n")
    first, second = parse_corpus(text)
    assert first.body == "When do you open?\n# of items: 3\nThanks\n"
    assert second.body == "Still waiting.\n"


@pytest.mark.parametrize(("body", "text"), [
    ("Hello <b>there</b>\nBye\n", "Hello <b>there</b>\n\nBye"),  # text: converted, escaped
    ("<html><body><p>Sale <b>50%</b></p><p>Unsubscribe</p></body></html>\n",
     "Sale 50%\n\nUnsubscribe"),  # already markup: sent as it is
])
def test_html_samples_are_built_from_text_or_markup(body: str, text: str) -> None:
    from bot.mail.parse import parse_message

    mail = parse_message(build_mail(Sample(("machine",), "en", "News", body, html=True), 4))
    assert mail.content_type == "text/html" and mail.body_text.strip() == text
