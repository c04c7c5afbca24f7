"""PURE: text out of bytes whose charset is wrong, missing or absent (headers in raw 8-bit).

Mail often declares a charset narrower than the one it was written in: GB2312 for GBK text,
Shift_JIS for Windows' CP932, ISO-2022-JP with NEC extension characters (①), EUC-KR for
CP949, ISO-8859-1 for windows-1252. When the declared charset fails, its known supersets
are tried in order; then the bytes are detected (charset-normalizer); only then does a
lossless last resort apply. Text is never decoded through U+FFFD here, so an address or a
filename keeps every character it had.

Detection costs 1-3 ms a call, so it reads at most the first ``DETECT_MAX_BYTES`` of its input
and a :class:`Decoder` (one per mail part of parse.py) detects at most ``MAX_DETECTIONS``
times; after that undeclared bytes are read losslessly (UTF-8, else latin-1).
"""

from __future__ import annotations

import codecs
import re
from email.message import Message

from bot.mail.decode import has_surrogates, word_bytes

# Python codec name of the declared charset -> wider charsets that decode the same bytes.
SUPERSETS: dict[str, tuple[str, ...]] = {
    "gb2312": ("gbk", "gb18030"),
    "gbk": ("gb18030",),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "euc_jp": ("cp51932", "euc_jis_2004"),
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", "cp50221", "iso2022_jp_3"),
    "euc_kr": ("cp949",),
    "iso8859-1": ("iso8859-1",),  # after cp1252: see WIDER_FIRST
    "ascii": ("utf-8",),
    "big5": ("cp950", "big5hkscs"),
}
# Read with the wider charset first, because the narrow one never fails: ISO-8859-1 text
# with bytes 0x80-0x9F is windows-1252 (the WHATWG encoding standard does the same).
WIDER_FIRST = {"iso8859-1": "cp1252"}
# Declarations that say "unknown" (read as no declaration at all).
UNKNOWN = frozenset({"unknown-8bit", "x-unknown", "8bit", "default", "unknown", ""})
DETECT_MIN_BYTES = 4  # shorter 8-bit text is not worth detecting: UTF-8 or the last resort
DETECT_MAX_BYTES = 65_536  # detection reads at most this much (then decodes the whole)
MAX_DETECTIONS = 32  # per Decoder (per mail part of parse.py): ~0.1 s at worst
# Readings real mail hardly ever has, retried without that charset family: short Cyrillic
# (KOI8-R) read as Shift_JIS half-width katakana; Shift_JIS kana read as CP949 syllables from
# outside EUC-KR (the Unified Hangul Code extension area).
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]")
_SJIS_FAMILY = ["shift_jis", "shift_jis_2004", "shift_jisx0213", "cp932"]
_UHC_FAMILY = ["cp949", "johab"]
# Undeclared mail text is never UTF-16/32 without a BOM, yet short 8-bit text often reads as it.
_NEVER_DETECTED = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
# Western text has its 8-bit bytes apart (café, €); CJK, Cyrillic, Greek... have them in runs.
# Text with none in a row is read as windows-1252 (the WHATWG default for unlabelled text):
# detection cannot tell "café €" from a Cyrillic or CJK reading.
_HIGH_RUN = re.compile(rb"[\x80-\xff]{2}")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_JIS_SWITCH = re.compile(rb"(\x1b(?:\$[@B]|\([BJI]))")


def codec_name(charset: str | None) -> str | None:
    """Python's name for a declared charset, or None (unknown or not a charset Python has)."""
    declared = (charset or "").strip().strip('"').lower()
    if declared in UNKNOWN:
        return None
    try:
        return codecs.lookup(declared).name
    except (LookupError, ValueError):
        return None


def candidates(charset: str | None) -> tuple[str, ...]:
    """The charsets to try, in order: the declared one and its supersets."""
    name = codec_name(charset)
    if name is None:
        return ()
    return (WIDER_FIRST.get(name, name), *SUPERSETS.get(name, ()))


def decode_declared(data: bytes, charset: str | None) -> str | None:
    """``data`` in its declared charset or a superset of it; None when none fits."""
    for name in candidates(charset):
        try:
            return _cp50221(data) if name == "cp50221" else data.decode(name)
        except (LookupError, UnicodeError, ValueError):
            continue
    return None


def decode_text(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Declared charset, its supersets, UTF-8, detection, then a lossless last resort."""
    return Decoder().text(data, charset, defects)


def decode_undeclared(data: bytes) -> str:
    """Bytes with no (usable) declaration - raw 8-bit headers, filenames, bodies: ASCII or
    UTF-8 as they are, else detected; never U+FFFD (latin-1 as the lossless last resort)."""
    return Decoder().undeclared(data)


def decode_header(value: str) -> str:
    """One raw header value (RFC 2047 words, raw 8-bit bytes as surrogates, raw ISO-2022-JP)."""
    return Decoder().header(value)


class Decoder:
    """Decoding for one mail (or one part of it) with at most ``max_detections`` detections."""

    def __init__(self, max_detections: int = MAX_DETECTIONS) -> None:
        self.detections_left = max_detections

    def text(self, data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
        """Declared charset, its supersets, UTF-8, detection, then a lossless last resort."""
        text = decode_declared(data, charset)
        if text is not None:
            return text
        if defects is not None and codec_name(charset):
            defects.append(f"charset-superset-or-detected:{str(charset)[:40]}")
        return self.undeclared(data)

    def undeclared(self, data: bytes) -> str:
        """UTF-8 as it is, else detected (while detections last), else latin-1; never U+FFFD."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if _HIGH_RUN.search(data) is None:
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                pass
        detected = None
        if self.detections_left > 0 and len(data) >= DETECT_MIN_BYTES:
            self.detections_left -= 1
            detected = detect(data)
        return detected if detected is not None else data.decode("latin-1")

    def header(self, value: str) -> str:
        """One raw header value: undeclared 8-bit bytes (surrogates, as the stdlib parser
        leaves them) read from the bytes, raw ISO-2022-JP, RFC 2047 words with supersets."""
        value = "".join(value.splitlines())
        if has_surrogates(value):
            value = self.undeclared(value.encode("utf-8", "surrogateescape"))
        if "\x1b" in value and value.isascii():  # raw ISO-2022-JP, common in Japanese mail
            value = decode_declared(value.encode("ascii"), "iso-2022-jp") or value
        return self._words(value) if "=?" in value else value

    def filename(self, part: Message) -> str:
        """The attachment name of ``part`` from its raw header bytes (Content-Disposition
        ``filename``, else Content-Type ``name``; RFC 2231 and RFC 2047 forms)."""
        carrier = Message()
        for key, value in part.raw_items():
            if key.lower() in ("content-disposition", "content-type"):
                carrier[key] = self.header(str(value)) if has_surrogates(str(value)) else value
        found = carrier.get_param("filename", None, "content-disposition")
        if found is None:
            found = carrier.get_param("name", None, "content-type")
        if isinstance(found, tuple):  # RFC 2231: (charset, language, %-decoded latin-1 text)
            data = str(found[2]).encode("latin-1", "surrogateescape")
            return self.text(data, found[0] or None)
        return self.header(str(found or "")).strip().strip('"')

    def _words(self, value: str) -> str:
        """RFC 2047 words; adjacent words of one charset are decoded together (a character may
        be split across two), whitespace between two words is folding (RFC 2047, 6.2)."""
        pieces: list[tuple[str | None, list[bytes] | str]] = []
        pos = 0
        for match in _ENCODED_WORD.finditer(value):
            between = value[pos:match.start()]
            if between and not (pieces and pieces[-1][0] and between.isspace()):
                pieces.append((None, between))
            charset = match.group(1).split("*")[0].lower()  # "*lang" of RFC 2231
            data = word_bytes(match.group(2), match.group(3))
            if data is None:  # undecodable: keep it as written
                pieces.append((None, match.group(0)))
            elif pieces and pieces[-1][0] == charset:
                pieces[-1][1].append(data)  # type: ignore[union-attr]
            else:
                pieces.append((charset, [data]))
            pos = match.end()
        pieces.append((None, value[pos:]))
        return "".join(p if c is None else self.text(b"".join(p), c)  # type: ignore[misc]
                       for c, p in pieces)


def detect(data: bytes) -> str | None:
    """charset-normalizer's best reading of ``data`` (judged on its first
    ``DETECT_MAX_BYTES``), or None."""
    if len(data) < DETECT_MIN_BYTES:
        return None
    encoding = _detected_encoding(_sample(data))
    if encoding is None:
        return None
    try:
        text = data.decode(encoding)
    except (LookupError, UnicodeError):
        if len(data) <= DETECT_MAX_BYTES:
            return None
        text = data.decode(encoding, "replace")  # a long body: its start is read right
    return None if "\ufffd" in text[:DETECT_MAX_BYTES] else text


def _sample(data: bytes) -> bytes:
    """The first ``DETECT_MAX_BYTES`` of ``data``, cut at a line end when there is one."""
    if len(data) <= DETECT_MAX_BYTES:
        return data
    sample = data[:DETECT_MAX_BYTES]
    end = sample.rfind(b"\n")
    return sample[:end] if end > DETECT_MAX_BYTES // 2 else sample


def _detected_encoding(sample: bytes) -> str | None:
    from charset_normalizer import from_bytes  # 8 ms to import; most mail declares its charset

    try:
        best = from_bytes(sample, cp_exclusion=_NEVER_DETECTED).best()
        implausible = None if best is None else _implausible(best.encoding, str(best), sample)
        if implausible:
            retry = from_bytes(sample, cp_exclusion=_NEVER_DETECTED + implausible)
            best = retry.best() or best
    except Exception:  # noqa: BLE001 - a detector bug must not lose the mail
        return None
    return None if best is None else best.encoding


def _implausible(encoding: str, text: str, sample: bytes) -> list[str]:
    """The charset family to leave out when ``text`` is an implausible reading of ``sample``."""
    wide = sum(1 for ch in text if ord(ch) > 0x7F)
    if wide and len(_HALFWIDTH_KANA.findall(text)) * 2 > wide:
        return _SJIS_FAMILY
    if encoding in _UHC_FAMILY:
        try:
            sample.decode("euc_kr")
        except UnicodeDecodeError:
            return _UHC_FAMILY
    return []




def _cp50221(data: bytes) -> str:
    """ISO-2022-JP with the NEC and IBM extension characters (Microsoft's CP50221): the
    JIS rows are mapped to Shift_JIS and read as CP932, which has the extensions."""
    out, mode = bytearray(), b"(B"
    for piece in _JIS_SWITCH.split(data):
        if piece.startswith(b"\x1b"):
            mode = piece[1:]
        elif mode in (b"$@", b"$B"):
            if len(piece) % 2:
                raise ValueError("odd byte count in a double-byte run")
            for i in range(0, len(piece), 2):
                out += _jis_to_sjis(piece[i], piece[i + 1])
        elif mode == b"(I":
            out += bytes(b | 0x80 for b in piece)
        else:
            out += piece
    return out.decode("cp932")


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
        raise ValueError("not a JIS code")
    s1 = (j1 + 1) // 2 + 0x70
    s1 = s1 + 0x40 if s1 >= 0xA0 else s1
    s2 = (j2 + 0x1F + (j2 >= 0x60)) if j1 % 2 else j2 + 0x7E
    return bytes((s1, s2))
