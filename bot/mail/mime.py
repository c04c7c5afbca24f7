"""The wire format of mail the bot sends: MIME parts and header folding. PURE.

CRLF line ends; UTF-8 bodies in base64 (7-bit safe for any relay, compact for Vietnamese,
and encoded in C: quoted-printable cost twice as much). Built with the stdlib's classic
(compat32) MIME classes, with two costs of its generator taken out, byte for byte the same:

- a header whose value is short printable ASCII (single spaces, no line break) is written as
  ``Name: value`` directly; ``email.header.Header.encode`` would return it unchanged, at
  about 60 microseconds a header (tests/test_mime.py compares both on many values);
- a multipart gets its boundary when it is built, in the stdlib's own format
  (``===============<19 digits>==``) from :mod:`secrets`, so the generator does not compile
  a regular expression per mail to scan the parts for it. Every part is base64, and no
  base64 line can start with ``--``: a boundary can never collide with a body line.

``bytes()`` of a message built here (:class:`WireText`, :class:`WireAlternative`) is written
by :func:`wire_bytes` rather than the generator, whose per-part buffers, policy clones and
content-type dispatch cost more than the bytes themselves; tests/test_mime.py checks that
both give the same bytes.
"""

from __future__ import annotations

import base64
import re
import secrets
import sys
from email.charset import BASE64, Charset
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.policy import Compat32

# Printable ASCII words separated by single spaces: what Header.encode leaves as it is when
# the line is short enough (no folding, no encoding, no whitespace to normalise).
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")
MAX_LINE = 78  # compat32's max_line_length


class WirePolicy(Compat32):
    """compat32 with CRLF line ends and a fast path for headers that need no folding."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if isinstance(value, str) and len(name) + 2 + len(value) <= MAX_LINE - 1 \
                and _PLAIN_VALUE.fullmatch(value):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


WIRE_POLICY = WirePolicy(linesep="\r\n")
UTF8 = Charset("utf-8")
UTF8.body_encoding = BASE64
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator formats its boundaries


def new_boundary() -> str:
    """A fresh multipart boundary, in the format email.generator would have made."""
    return "=" * 15 + f"{secrets.randbelow(sys.maxsize):0{_BOUNDARY_DIGITS}d}" + "=="


class WireText(Message):
    """One text part; ``bytes()`` is :func:`wire_bytes`."""

    def __bytes__(self) -> bytes:
        return wire_bytes(self)


class WireAlternative(MIMEMultipart):
    """multipart/alternative of text parts; ``bytes()`` is :func:`wire_bytes`."""

    def __bytes__(self) -> bytes:
        return wire_bytes(self)


def mail_body(text: str, html: str | None) -> Message:
    """text/plain, or multipart/alternative with an HTML part; base64 UTF-8."""
    plain = text_part(text, "plain")
    if not html:
        return plain
    return WireAlternative("alternative", boundary=new_boundary(),
                           _subparts=[plain, text_part(html, "html")], policy=WIRE_POLICY)


_NEWLINE = re.compile(r"\r\n|\r|\n")  # email.generator's NLCRE: any line end becomes CRLF
CRLF = b"\r\n"


def wire_bytes(msg: Message) -> bytes:
    """What ``BytesGenerator(policy=WIRE_POLICY)`` writes for ``msg``, for the shapes built
    here: a text part with a str payload, or a multipart of such parts with its boundary set
    and no preamble or epilogue. Anything else goes through the generator."""
    head = b"".join(WIRE_POLICY.fold_binary(name, value) for name, value in msg.raw_items())
    payload = msg._payload  # noqa: SLF001 - the generator reads it the same way
    if isinstance(payload, str):
        return head + CRLF + _NEWLINE.sub("\r\n", payload).encode("ascii", "surrogateescape")
    boundary = msg.get_boundary()
    if not isinstance(payload, list) or not boundary or msg.preamble is not None \
            or msg.epilogue is not None:
        return Message.as_bytes(msg, policy=WIRE_POLICY)
    dash = b"--" + boundary.encode("ascii")
    parts = (CRLF + dash + CRLF).join(map(wire_bytes, payload))
    return head + CRLF + dash + CRLF + parts + CRLF + dash + b"--" + CRLF


def text_part(content: str, subtype: str) -> Message:
    """One UTF-8 text part in base64 (only the top level carries MIME-Version).

    The same headers and payload as ``MIMEText(content, subtype, UTF8)``, whose
    ``set_charset`` re-parses the Content-Type and encodes line by line in Python;
    :func:`base64.encodebytes` writes the same 76-column lines in C."""
    part = WireText(policy=WIRE_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(content.encode("utf-8")).decode("ascii"))
    part._charset = UTF8  # what set_charset records (get_charset())
    return part
