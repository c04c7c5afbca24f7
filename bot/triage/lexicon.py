"""Weighted phrase rules, written over folded text (lower-case, no diacritics, đ -> d).

Each rule is (category, weight, kind, pattern). Kinds:
- "request": a request verb; switched off when a negation, a conditional ("if", "nếu") or a
  past/passive marker governs it ("I do not want my account deleted", "nếu ... bị xoá").
- "stop": a stop-use request (APPI Art. 35: suspend use, stop third-party provision, stop
  marketing) -> deletion with a "stop-use" cue; the negation is part of the phrase.
- "object": describes the customer's own data ("the data you hold about me"); counts for
  disclosure only when no other category's request verb governs it ("delete the data ...").
- "plain": evidence that negation does not invert (complaint words, question forms).
Weights: 3 = explicit request; 2-2.5 = strong cue; 1-1.5 = supporting cue.
Patterns describe ways of asking, not individual mails: keep them general.
"""

from __future__ import annotations

# Building blocks (regex alternations over folded text).
ME_VI = r"(toi|minh|mk|mik|em|e|tui|tao)"
MINE_VI = rf"(cua {ME_VI}|ve {ME_VI})"
DATA_VI = (r"(du lieu|thong tin|thong tin ca nhan|tt|data|ho so|tai khoan|tk|account|"
           r"lich su|profile|ban sao|ban copy|file|ghi am|camera|danh sach|ds)")
FIELD_VI = (r"(ten|ho ten|ho|dia chi|ngay sinh|sdt|so dien thoai|so dt|email|mail|"
            r"nghe nghiep|noi lam viec|thong tin|ho so|cong ty|address|ten cong ty)")
FIELD_EN = (r"(name|surname|first name|last name|family name|middle name|maiden name|"
            r"address|email|e-mail|email address|phone|phone number|number|birth ?date|"
            r"date of birth|birthday|gender|job title|occupation|company name|"
            r"contact details|details|spelling)")
DATA_EN = (r"(data|information|informations|info|details|records?|history|profile|"
           r"recordings?|footage|notes|logs|everything)")

RULES: list[tuple[str, float, str, str]] = [
    # --- deletion (en) ---
    ("deletion", 3.0, "request", r"\b(delete|deleted|deleting|deletion)\b"),
    ("deletion", 3.0, "request", r"\b(erase|erased|erasure)\b"),
    ("deletion", 3.0, "request", r"\bremov(e|ed|al)\b( \w+){0,3} (my|me|all|everything|data|"
                                 r"account|information|photo|number)"),
    ("deletion", 3.0, "request", r"\b(account|data|information|details|number|photo)\w*"
                                 r"( \w+){0,2} (removed|erased|taken down)\b"),
    ("deletion", 2.5, "request", r"\b(destroy|take down|take (my|me) \w+ off|"
                                 r"close my account|cancel my (account|membership))\b"),
    ("deletion", 3.0, "stop", r"\b(unsubscribe|opt(-| )?out)\b"),
    ("deletion", 3.0, "stop", r"\b(stop|cease|quit)( \w+){0,1} (sending|using|providing|"
                              r"sharing|calling|contacting|processing|spamming|emailing|"
                              r"texting|it)\b"),
    ("deletion", 3.0, "stop", r"\b(do not|don ?t|never) (share|send|call|contact|email|use|"
                              r"sell|provide)\b"),
    ("deletion", 3.0, "stop", r"\b(do not|don ?t) want( \w+){0,2} (to be contacted|any more|"
                              r"anymore|more) \w*"),
    ("deletion", 3.0, "stop", r"\b(withdraw\w*|revok\w*)( \w+){0,2} consent|"
                              r"\bno longer consent"),
    ("deletion", 3.0, "stop", r"\bsuspend\w*( \w+){0,2} (use|using|processing)"),
    # --- deletion (vi) ---
    ("deletion", 3.0, "request", r"\bxoa\b"),
    ("deletion", 2.5, "request", r"\bhuy (tk|tai khoan|account|thanh vien)\b"),
    ("deletion", 2.5, "request", r"\bgo (bo )?(anh|hinh|thong tin|bai)\b"),
    ("deletion", 3.0, "stop", r"\b(ngung|ngung lai|dung lai|tam dung|dung ngay)\b"
                              r"( \w+){0,3} (gui|su dung|dung|xu ly|cung cap|chia se|goi)\b"),
    ("deletion", 3.0, "stop", r"\b(ngung|tam dung)\b( \w+){0,2} (viec )?(xu ly|su dung)"),
    ("deletion", 3.0, "stop", r"\b(khong|ko|k|hok) (muon|can) (nhan|bi goi|bi lam phien)\b"),
    ("deletion", 3.0, "stop", r"\b(khong|ko|k) (duoc|dong y)( \w+){0,4} (cung cap|chia se|"
                              r"su dung|dang|ban|gui)\b"),
    ("deletion", 3.0, "stop", r"\b(dung|yeu cau dung|de nghi dung) (gui|goi|lam phien)\b"),
    ("deletion", 3.0, "stop", r"\brut (lai )?(su )?dong y\b"),
    ("deletion", 2.5, "stop", r"\bhuy dang ky\b( \w+){0,2} (nhan|ban tin|quang cao|email)"),
    # --- correction (en) ---
    ("correction", 3.0, "request", r"\b(correct|corrected|correction|rectify|"
                                   r"rectification|amend|amended|modify)\b"),
    ("correction", 3.0, "request", r"\b(update|change|fix|replace|edit)\b( \w+){0,3} "
                                   r"(my|it|the|to|them|that)\b"),
    ("correction", 3.0, "request", rf"\b(change|update|correct)d?\b( \w+){{0,2}} {FIELD_EN}"),
    ("correction", 3.0, "request", r"\bplease (fix|correct|update|change|amend)\b"),
    ("correction", 3.0, "request", rf"\b{FIELD_EN}\b( \w+){{0,3}} (updated|changed|fixed)\b"),
    ("correction", 2.5, "plain", r"\b(not|no longer|isn ?t|aren ?t) (correct|accurate|"
                                 r"up to date)\b"),
    ("correction", 2.5, "request", rf"\badd\b( \w+){{0,2}} {FIELD_EN}"),
    ("correction", 2.5, "plain", r"\b(misspel\w*|spelled wrong|spelt wrong|wrongly spelled|"
                                 r"spelled with)\b"),
    ("correction", 2.5, "plain", rf"\b{FIELD_EN}\b( \w+){{0,6}} (is|are|was|were) (\w+ )?"
                                 r"(wrong|incorrect|not correct|outdated|out of date|old)\b"),
    ("correction", 1.5, "plain", rf"\b(wrong|incorrect|outdated|old) {FIELD_EN}\b"),
    ("correction", 2.0, "plain", rf"\b(my )?new {FIELD_EN}\b"),
    ("correction", 2.0, "plain", r"\b(it )?should be\b"),
    # --- correction (vi) ---
    ("correction", 3.0, "request", r"\b(sua|chinh lai|chinh sua|dieu chinh|cap nhat)\b|"
                                   r"\bupdate (giup|lai|dum|ho)\b"),
    ("correction", 3.0, "request", rf"\bdoi\b( \w+){{0,3}} {FIELD_VI}\b"),
    ("correction", 3.0, "request", r"\bbo sung\b"),
    ("correction", 2.5, "request", rf"\bthem\b( \w+){{0,2}} {FIELD_VI}"),
    ("correction", 2.5, "plain", r"\bbi (ghi |viet )?(sai|nham)\b|\bsai chinh ta\b|"
                                 r"\bkhong (con )?chinh xac\b"),
    ("correction", 1.5, "plain", r"\b(ghi|viet) sai\b|\bdung la\b"),
    ("correction", 2.0, "plain", rf"\b{FIELD_VI} moi\b"),
    # --- disclosure (en) ---
    ("disclosure", 3.0, "request", rf"\bwhat\b( \w+){{0,3}} {DATA_EN}\b( \w+){{0,6}} "
                                   r"(about me|on me|of mine|for me|on file)"),
    ("disclosure", 3.0, "request", rf"\bwhat ({DATA_EN} )?(do )?you (have|hold|keep|store|"
                                   r"retain|collect\w*|colect\w*)\b( \w+){0,3} (about|on) me"),
    ("disclosure", 3.0, "request", rf"\b(copy|export|access|disclos\w+|see|view|obtain|"
                                   rf"send|give|show|provide)\b( \w+){{0,4}} {DATA_EN}\b"),
    ("disclosure", 2.5, "object", rf"\b{DATA_EN}\b( \w+){{0,2}} (of|about|on) me\b"),
    ("disclosure", 3.0, "request", r"\b(tell|show|let) me\b( \w+){0,2} (what|which|who)\b"
                                   r"( \w+){0,3}"),
    ("disclosure", 2.0, "object", rf"\b{DATA_EN}\b( \w+){{0,3}} (you|that you) (hold|have|"
                                   r"keep|retain|store|collected|wrote)\b"),
    ("disclosure", 3.0, "request", r"\b(who|which (third parties|companies|partners|"
                                   r"parties))\b( \w+){0,4} (given|gave|shared|provided|"
                                   r"sold|disclosed)\b( \w+){0,3} (my|me)\b"),
    ("disclosure", 3.0, "request", r"\b(subject access request|request access|disclosure "
                                   r"request|request (for )?disclosure|records of (any )?"
                                   r"provision)\b"),
    # --- disclosure (vi) ---
    ("disclosure", 3.0, "request", rf"\b(cung cap|gui|xem|trich xuat|export|nhan lai)\b"
                                   rf"( \w+){{0,6}} {DATA_VI}( \w+){{0,8}} {MINE_VI}"),
    ("disclosure", 3.0, "request", rf"\b(cung cap|gui|xem)( cho| lai)* {ME_VI}\b( \w+){{0,4}} "
                                   rf"{DATA_VI}\b"),
    ("disclosure", 3.0, "request", r"\b(xin|muon) trich xuat\b"),
    ("disclosure", 3.0, "request", rf"\bxin\b(?! hoi| chao)( \w+){{0,3}} {DATA_VI}\b"),
    ("disclosure", 3.0, "request", r"\b(ban sao|ban copy|copy)\b"),
    ("disclosure", 2.0, "object", rf"\b{DATA_VI}\b( \w+){{0,6}} (dang )?(luu|giu)( \w+){{0,3}} "
                                  rf"(ve|cua) {ME_VI}\b"),
    ("disclosure", 3.0, "request", r"\b(dang )?(luu|giu|thu thap)( giu)? (nhung )?"
                                   r"(thong tin|du lieu|data)? ?(gi|nao)\b"),
    ("disclosure", 3.0, "request", r"\b(muon|duoc) biet\b( \w+){0,6} (du lieu|thong tin)"
                                   rf"( \w+){{0,3}} {MINE_VI}"),
    ("disclosure", 3.0, "request", r"\b(cho (toi|minh|em) biet|phai cho \w+ biet)\b( \w+){0,8} "
                                   r"(cho|voi) (ai|nhung ai|nhung ben nao|ben nao)\b"),
    ("disclosure", 2.5, "request", r"\bcho (ai|nhung ai|nhung ben nao|ben nao)\b"),
    # --- complaint ---
    ("complaint", 2.0, "plain", r"\b(complain\w*|khieu nai|phan anh|phan nan)\b"),
    ("complaint", 2.0, "plain", r"\b(unacceptable|not acceptable|outrage\w*|furious|"
                                r"angry|upset|shocked|disgust\w*|terrible|careless|"
                                r"irresponsible|unprofessional|fed up|misleading)\b"),
    ("complaint", 1.5, "plain", r"\b(disappoint\w*|dissapoint\w*|frustrat\w*|unhappy|annoy\w*|"
                                r"not (happy|satisfied|ok|fair)|poor service|bad privacy)\b"),
    ("complaint", 1.5, "plain", r"\b(leak\w*|breach|hacked|without (my )?(consent|permission|"
                                r"asking)|never (gave|agreed|requested|asked)|against the law)\b"),
    ("complaint", 2.0, "plain", r"\b(buc xuc|buc minh|buc qua|buc|that vong|khong hai long|"
                                r"khong (the )?chap nhan duoc|qua te|te qua|thieu chuyen nghiep|"
                                r"thieu ton trong|thieu an toan|vo trach nhiem|cau tha|vo ly|"
                                r"kho chiu|chan that|lam an kieu gi|kieu gi vay|uncomfortable|"
                                r"(khong|ko|k) thoai mai)\b"),
    ("complaint", 1.5, "plain", r"\b(bi lo|de lo|lam lo|lam phien|ma khong hoi|khong hoi y kien|"
                                r"tu y|khong he cho phep|chua bao gio dong y|khong on|"
                                r"phien|qua cham|khong ai tra loi|chua ai tra loi)\b"),
    # --- question ---
    ("question", 1.0, "plain", r"\?"),
    ("question", 1.5, "plain", r"\b(cho (toi|minh|mk|mik|em|e|to) hoi|xin hoi|muon hoi|"
                               r"thac mac|cho hoi|hoi chut)\b|"
                               r"\b(can|may) i ask\b|\bi have a question\b"),
    ("question", 1.0, "plain", r"\b(co|duoc)\b( \w+){1,8} (khong|ko|k|hok|chua)\s*(a|vay|"
                               r"nhi|ad|shop)?\s*($|\?|\.)"),
    ("question", 1.5, "plain", r"\b(want to know|would like to know|wonder\w*|i want ask|"
                               r"like to ask|just asking|just checking|curious|quick q|"
                               r"muon biet|muon hoi)\b"),
    ("question", 1.0, "plain", r"(^|[.!?]\s*)(is|are|do|does|did|can|could|will|how|what|"
                               r"which|who|when|where|why|on what)\b"),
]

# Words that switch off a "request" rule when they come shortly before it in the same clause.
NEGATORS = frozenset({"not", "never", "no", "dont", "don", "t", "isn", "aren", "without",
                      "khong", "ko", "k", "hok", "hong", "khg", "kg", "chang", "chua"})
# Conditionals and past/passive markers: "if I want a copy", "nếu ... bị xoá", "was deleted".
HYPOTHETICAL = frozenset({"if", "neu", "when", "whether"})
PAST_PASSIVE = frozenset({"was", "were", "been", "already", "bi", "da"})
# Words after which the negation scope ends ("not X, but/only Y", "không X mà chỉ Y").
CONTRAST = frozenset({"but", "only", "just", "chi", "ma", "nhung", "thoi", "instead"})
