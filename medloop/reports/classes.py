"""The drug classes the quality reports count (``classes.json``, by ATC code prefix, each
with a cited source and an empty ``reviewed_by``): psychotropics as the nursing-home quality
indicators count them, systemic and narrow-spectrum antibiotics, and which indications are
respiratory tract infections."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class DrugClass:
    id: str
    label: str
    prefixes: tuple[str, ...]
    excluded: tuple[str, ...]
    antipsychotic: bool

    def contains(self, atc: str | None) -> bool:
        if not atc:
            return False
        code = atc.upper()
        return code.startswith(self.prefixes) and not code.startswith(self.excluded or ("\0",))


@dataclass(frozen=True)
class Classes:
    psychotropic: tuple[DrugClass, ...]
    systemic_antibiotic: tuple[str, ...]
    narrow_spectrum: tuple[str, ...]
    respiratory_codes: tuple[str, ...]
    respiratory_terms: tuple[str, ...]

    def psychotropic_classes(self, atc: str | None) -> tuple[DrugClass, ...]:
        return tuple(c for c in self.psychotropic if c.contains(atc))

    def is_antibiotic(self, atc: str | None) -> bool:
        return bool(atc) and atc.upper().startswith(self.systemic_antibiotic)  # type: ignore[union-attr]

    def is_narrow_spectrum(self, atc: str | None) -> bool:
        return bool(atc) and atc.upper().startswith(self.narrow_spectrum)  # type: ignore[union-attr]

    def is_respiratory(self, indication: str | None) -> bool:
        """An ICPC-2 code of a respiratory chapter at the start (``R74``, ``R81 Pneumoni``) or
        one of the terms anywhere (case-insensitive)."""
        if not indication:
            return False
        text = indication.strip()
        code = _ICPC2.match(text)
        if code is not None and code.group(1).upper().startswith(self.respiratory_codes):
            return True
        lowered = text.lower()
        return any(term in lowered for term in self.respiratory_terms)


_ICPC2 = re.compile(r"^([A-Za-z]\d\d)\b")


@cache
def classes() -> Classes:
    raw = json.loads(resources.files("medloop.reports").joinpath("classes.json").read_text())
    antibiotics = raw["antibiotics"]
    respiratory = antibiotics["respiratory_indication"]
    return Classes(
        psychotropic=tuple(
            DrugClass(
                id=c["id"],
                label=c["label"],
                prefixes=tuple(c["atc_prefixes"]),
                excluded=tuple(c["exclude_prefixes"]),
                antipsychotic=bool(c["antipsychotic"]),
            )
            for c in raw["psychotropic"]
        ),
        systemic_antibiotic=tuple(antibiotics["systemic"]["atc_prefixes"]),
        narrow_spectrum=tuple(antibiotics["narrow_spectrum"]["atc_prefixes"]),
        respiratory_codes=tuple(p.upper() for p in respiratory["icpc2_prefixes"]),
        respiratory_terms=tuple(t.lower() for t in respiratory["terms"]),
    )
