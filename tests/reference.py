"""Where the tests find the repository's seed catalogue and the reference data of ``../shared``
(the real FEST extract, the official XSDs): plain paths and helpers that skip a test cleanly when
the reference data is not beside the repository. Imported by test modules; not fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_EXTRACT = SHARED / "reference" / "fest" / "fest-extract-2017.xml.gz"
XSD_DIR = SHARED / "reference" / "xsd" / "eresept"
DEMO = REPO / "seeds" / "demo-fest.xml"


def real_extract() -> Path:
    if not REAL_EXTRACT.exists():
        pytest.skip("the real FEST extract in ../shared/reference/fest is not here")
    return REAL_EXTRACT


def xsd_dir() -> Path:
    if not XSD_DIR.is_dir():
        pytest.skip("the official XSDs in ../shared/reference/xsd are not here")
    return XSD_DIR
