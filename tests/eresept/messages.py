"""Helpers for the e-prescription tests: the official examples and schemas from ../shared
(tests skip cleanly without them), and ways to derive bad inputs from the examples."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from medloop.eresept import ReaderConfig, read_message

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "reference"
MESSAGES = SHARED / "messages"
XSD = SHARED / "xsd"

SHARED_PRESENT = MESSAGES.is_dir() and (XSD / "felleskomponenter" / "MsgHead-v1_2.xsd").is_file()
needs_shared = pytest.mark.skipif(
    not SHARED_PRESENT,
    reason="../shared/reference (official e-prescription examples and XSDs) not present",
)

EXAMPLES = {
    "M1": "M1-resept.xml",
    "M10": "M10-utleveringsrapport.xml",
    "M25.1": "M25.1-pll.xml",
    "M25.2": "M25.2-multidose-forslag.xml",
    "M27.1": "M27.1-multidoseansvarlig-lege.xml",
    "M5": "M5-tilbakekalling.xml",
}


def example(name: str) -> bytes:
    return (MESSAGES / EXAMPLES[name]).read_bytes()


def config(**kwargs) -> ReaderConfig:
    return ReaderConfig(xsd_dir=XSD, **kwargs)


def read(data: bytes, source: str = "msg.xml", **kwargs):
    return read_message(data, source=source, config=config(**kwargs))


def without_signature(data: bytes) -> bytes:
    return re.sub(
        rb"\s*<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">.*</Signature>",
        b"",
        data,
        flags=re.S,
    )


B64 = re.compile(rb"<ReseptDokLegemiddelB64>([^<]*)</ReseptDokLegemiddelB64>")


def embedded_m1s(data: bytes) -> list[bytes]:
    return [base64.b64decode(m.group(1)) for m in B64.finditer(data)]


def replace_embedded(data: bytes, index: int, payload: bytes, *, encode: bool = True) -> bytes:
    """The message with its ``index``-th ``ReseptDokLegemiddelB64`` holding ``payload``."""
    found = list(B64.finditer(data))[index]
    body = base64.b64encode(payload) if encode else payload
    return data[: found.start(1)] + body + data[found.end(1) :]


def line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1
