"""The wire format (bot.mail.mime): its shortcuts give the stdlib's bytes, without its costs."""

from __future__ import annotations

import random
import re
from email import generator, message_from_bytes
from email.policy import compat32

import pytest

from bot.mail import mime

SLOW = compat32.clone(linesep="\r\n")
ALPHABET = "abcXYZ019 ;,:=?<>@\"()[]\t-_.é\r\n"


def _values(seed: int = 5, count: int = 3000) -> list[str]:
    rng = random.Random(seed)
    values = ["", " ", "a", " a", "a ", "a  b", "1.0", "All", "en, vi",
              "=?utf-8?q?x?=", "<a@b>", "x" * 100, "a b " * 30]
    for _ in range(count):
        values.append("".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 90))))
        values.append(" ".join("w" * rng.randrange(1, 12) for _ in range(rng.randrange(1, 12))))
    return values


@pytest.mark.parametrize("name", ["To", "Subject", "Message-ID", "X-Auto-Response-Suppress"])
def test_header_fast_path_writes_what_the_stdlib_writes(name):
    for value in _values():
        try:
            expected = SLOW.fold_binary(name, value)
        except Exception as exc:  # noqa: BLE001 - then the fast path must raise too
            with pytest.raises(type(exc)):
                mime.WIRE_POLICY.fold_binary(name, value)
            continue
        assert mime.WIRE_POLICY.fold_binary(name, value) == expected, (name, value)


def test_fast_path_is_taken_for_plain_short_values(monkeypatch):
    def slow(*args):
        raise AssertionError("Header.encode used")

    monkeypatch.setattr(mime.Compat32, "_fold", slow)
    assert mime.WIRE_POLICY.fold_binary("Auto-Submitted", "auto-replied") == \
        b"Auto-Submitted: auto-replied\r\n"


def test_multipart_needs_no_boundary_scan(monkeypatch):
    def scan(*args):
        raise AssertionError("generator scanned the parts for a boundary")

    monkeypatch.setattr(generator.Generator, "_make_boundary", classmethod(scan))
    msg = mime.mail_body("Xin chào\n--\n", "<p>Xin chào</p>")
    raw = bytes(msg)
    boundary = msg.get_boundary()
    assert re.fullmatch(r"={15}\d{19}==", boundary)
    assert raw.count(f"--{boundary}".encode()) == 3  # two parts and the closing line
    parsed = message_from_bytes(raw)
    assert [p.get_payload(decode=True).decode() for p in parsed.get_payload()] == \
        ["Xin chào\n--\n", "<p>Xin chào</p>"]


def test_boundaries_differ():
    assert len({mime.new_boundary() for _ in range(100)}) == 100


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 300, 5000])
@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_text_part_is_what_mimetext_builds(size, subtype):
    from email.mime.text import MIMEText

    text = ("Xin chào <b>\r\n\tđ " * size)[:size]
    expected = MIMEText(text, subtype, mime.UTF8, policy=mime.WIRE_POLICY)
    del expected["MIME-Version"]
    part = mime.text_part(text, subtype)
    assert part.as_bytes() == expected.as_bytes()
    assert part.items() == expected.items()
    assert part.get_payload(decode=True) == expected.get_payload(decode=True)


def _stdlib_bytes(msg) -> bytes:
    """What the generator writes, bypassing the wire classes' own ``bytes()``."""
    from io import BytesIO

    out = BytesIO()
    generator.BytesGenerator(out, mangle_from_=False, policy=msg.policy).flatten(msg)
    return out.getvalue()


def _random_mail(rng: random.Random):
    from datetime import UTC, datetime

    from bot.mail.compose import build_mail
    from bot.models import Language

    def words(alphabet: str, most: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, most)))

    body_alphabet = "ab cđ ệ\n\r\t-<>&\"'" + "x" * 8
    html = words(body_alphabet, 3000) if rng.random() < 0.7 else None
    return build_mail(
        from_name=words("Công ty ab", 30), from_addr="contact@cijidas.jp",
        to=rng.choice(["a@example.org", ["a@example.org", "b@example.vn"], "nguyễn@ví-dụ.vn"]),
        subject=words(ALPHABET.replace("\r", "").replace("\n", "") + "ữ", 200),
        text=words(body_alphabet, 3000), html=html,
        message_id=f"<{rng.randrange(10**9)}@cijidas.jp>",
        date=datetime(2026, 11, 30, 3, 0, tzinfo=UTC), in_reply_to="<x@example.org>",
        references=["<y@example.org>"] * rng.randrange(0, 40),
        languages=[Language.VI, Language.EN], auto_submitted="auto-replied",
        reply_to="privacy@cijidas.jp" if rng.random() < 0.5 else None)


def test_bytes_of_built_mail_are_the_generators_bytes():
    rng = random.Random(11)
    shapes = set()
    for _ in range(300):
        msg = _random_mail(rng)
        shapes.add(msg.is_multipart())
        assert bytes(msg) == _stdlib_bytes(msg)
    assert shapes == {True, False}  # both the single part and the alternative were written


def test_unusual_shapes_go_through_the_generator():
    msg = mime.mail_body("a", "<p>a</p>")
    msg.preamble = "This is a multi-part message in MIME format."
    assert bytes(msg) == _stdlib_bytes(msg)
    assert b"MIME format.\r\n--=" in bytes(msg)
