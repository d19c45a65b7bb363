"""Reading a scanned pack code with the GS1 library ``biip``: a GS1 element string (GTIN or
Norwegian NTIN, expiry, batch, serial) from a DataMatrix, raw with FNC1/GS separators or in
human-readable ``(01)…(17)…`` form, or a plain EAN-13. The domain decides what the code may be
(``medloop.domain.administration.check_scanned_pack``); this module only reads it."""

from __future__ import annotations

from functools import lru_cache

from biip import ParseError, parse
from biip.gs1_messages import GS1Message

from medloop.domain.administration import PackCode, ScanUnreadable


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
