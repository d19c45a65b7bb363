"""Reading a scanned pack code with the GS1 library ``biip``: a GS1 element string (GTIN or
Norwegian NTIN, expiry, batch, serial) from a DataMatrix, raw with FNC1/GS separators or in
human-readable ``(01)…(17)…`` form, or a plain EAN-13. The domain decides what the code may be
(``medloop.domain.administration.check_scanned_pack``); this module only reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from biip import ParseError, parse
from biip.checksums import gs1_standard_check_digit
from biip.gs1_messages import GS1Message

from medloop.domain.administration import InvalidGsrn, PackCode, ScannedPack, ScanUnreadable

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from medloop.domain.entry import ListEntry


def read_pack_code(code: str) -> PackCode:
    """Parse a scanned code: a GS1 element string (raw with FNC1/GS separators, or in
    human-readable ``(01)…(17)…`` form) or a plain EAN-13/GTIN."""
    return _read(code)


@lru_cache(maxsize=4096)
def _read(code: str) -> PackCode:
    # A code always reads the same (``PackCode`` is immutable): a ward's packs parse once per
    # process. An unreadable code raises every time (exceptions are not cached).
    text = code.strip()
    try:
        if text.startswith("("):
            message = GS1Message.parse_hri(text)
        else:
            result = parse(text)
            if result.gtin is not None and result.gs1_message is None:
                return PackCode(gtin=_gtin13(result.gtin.value))
            message = result.gs1_message
    except ParseError as error:
        raise ScanUnreadable(f"the scanned code cannot be read: {error}", code=code) from error
    if message is None:
        raise ScanUnreadable(
            "the scanned code is neither a GS1 element string nor an EAN", code=code
        )
    fields = {element.ai.ai: element for element in message.element_strings}
    if "01" not in fields:
        raise ScanUnreadable("the scanned GS1 code carries no GTIN (AI 01)", code=code)
    expiry = fields["17"].date if "17" in fields else None
    return PackCode(
        gtin=_gtin13(fields["01"].value),
        expiry=expiry,
        batch=fields["10"].value if "10" in fields else None,
        serial=fields["21"].value if "21" in fields else None,
    )


def _gtin13(value: str) -> str:
    return value[1:] if len(value) == 14 and value.startswith("0") else value


def check_pack(conn: Connection, entry: ListEntry, code: str, on: date) -> ScannedPack:
    """Whether the scanned ``code`` is a right pack for ``entry`` on ``on``, as charting would
    decide it (``domain.administration.check_scanned_pack``: the entry's product or its
    substitution group, not expired), before anything is charted: the answer a bedside page
    shows at once. Refusals: ``ScanUnreadable``, ``ScannedPackUnknown``,
    ``ScannedPackMismatch``, ``ScannedPackExpired``."""
    from medloop.domain.administration import check_scanned_pack
    from medloop.loop.catalogue import catalogue_in_force

    packages = catalogue_in_force(conn).packages_by_gtin
    return check_scanned_pack(code, read_pack_code(code), entry.drug, packages, on)


@dataclass(frozen=True)
class Wristband:
    """A read wristband: the resident's national id, or a GS1 GSRN (AI 8018)."""

    national_id: str | None = None
    gsrn: str | None = None


def read_wristband(code: str) -> Wristband:
    """A scanned wristband: 11 digits are a national id; 18 digits, or a GS1 element string
    (raw or ``(8018)…``) with a GSRN (AI 8018), are that GSRN, its check digit checked
    (``InvalidGsrn`` when wrong). ``ScanUnreadable`` otherwise."""
    text = code.strip()
    if len(text) == 11 and text.isdigit():
        return Wristband(national_id=text)
    return Wristband(gsrn=gsrn_of(text))


def gsrn_of(code: str) -> str:
    """The GS1 GSRN in ``code``: the bare 18 digits, or the AI 8018 of a GS1 element string
    (raw, as a keyboard-wedge scanner types it, or ``(8018)…``; parsed by biip), with the GS1
    check digit (biip's ``gs1_standard_check_digit``) right. ``ScanUnreadable`` when there is
    none, ``InvalidGsrn`` when it is not a valid GSRN."""
    text = code.strip()
    if len(text) == 18 and text.isdigit():
        value = text
    else:
        try:
            message = GS1Message.parse_hri(text) if text.startswith("(") else GS1Message.parse(text)
        except ParseError as error:
            raise ScanUnreadable(f"the wristband code cannot be read: {error}", code=code) from None
        found = next((e.value for e in message.element_strings if e.ai.ai == "8018"), None)
        if found is None:
            raise ScanUnreadable("the code has neither a national id nor a GSRN", code=code)
        value = found
    if len(value) != 18 or not value.isdigit():
        raise InvalidGsrn("a GSRN has 18 digits", gsrn=value[:40])
    if gs1_standard_check_digit(value[:17]) != int(value[17]):
        raise InvalidGsrn("the GSRN's check digit is wrong", gsrn=value)
    return value
