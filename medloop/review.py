"""Medication review on request: the JSON contract of ``medloop review``.

The request is exactly ``medloop check``'s (``medloop.check.CheckRequest``: medications by
varenr/atc/fest_id with optional structured ``dosage`` and ``start``/``stop``, and ``patient``
with ``age``, ``sex``, ``weight_kg`` and ``renal`` as ``{"egfr": N, "measured": DATE}`` or
``{"crcl": N, "measured": DATE}``); ``proposed`` and ``handled`` are accepted and play no part
(a review looks at the whole list). It is reviewed against the criteria of
``interactions.review`` with the catalogue version in force resolving each entry.

Response::

    {"catalogue": {"version": n, "hentet_dato": "…"},
     "findings": [{"criterion": "NORGEP-NH:6", "set": "NORGEP-NH", "medications": ["m1"],
                   "summary": "…", "detail": "…", "source": {…}}, …],
     "acb": {"score": N, "medications": [ids], "threshold": 3, "contributions": […]},
     "not_assessed": [{"criterion": "…", "set": "…", "summary": "…", "missing": ["…"],
                       "medications": [ids]}, …],
     "indicators": {"psychotropics": {"count": n, "regular": [ids], "other": [ids]}, …}}

Errors are ``medloop check``'s: the same problem objects (``medloop.check.problem_for``) and
exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine

from interactions import Knowledge
from interactions.catalogue import CatalogueInfo
from interactions.review import ReviewResult, review
from medloop.check import CheckRequest, load_knowledge, parse_request, resolve_medications
from medloop.domain.oslo import today as oslo_today
from medloop.settings import renal_max_age_days


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """A review and the catalogue version its entries were resolved with."""

    catalogue: CatalogueInfo
    result: ReviewResult

    def as_json(self) -> dict[str, Any]:
        body = self.result.as_json()
        return {
            "catalogue": {
                "version": self.catalogue.version,
                "hentet_dato": self.catalogue.hentet_dato,
            },
            "findings": body["findings"],
            "acb": body["acb"],
            "not_assessed": body["not_assessed"],
            "indicators": body["indicators"],
        }


def run_review(
    knowledge: Knowledge, request: CheckRequest, today: date | None = None
) -> ReviewOutcome:
    """Resolve and review ``request`` on ``today`` (default: today in Oslo); raises
    ``UnresolvedMedications`` naming every entry the catalogue does not know."""
    medications = resolve_medications(knowledge, request)
    result = review(
        medications,
        request.patient,
        today=today or oslo_today(),
        renal_max_age_days=renal_max_age_days(),
        dose_rules=knowledge.dose_rules,
    )
    return ReviewOutcome(knowledge.info, result)


def review_request(engine: Engine, text: str | bytes) -> ReviewOutcome:
    """The whole ``medloop review``: parse, then review against the catalogue in force. Raises
    one of ``medloop.check.CHECK_ERRORS``."""
    request = parse_request(text)
    return run_review(load_knowledge(engine), request)


def describe_review(outcome: ReviewOutcome) -> list[str]:
    """Short lines for a terminal."""
    result = outcome.result
    lines = [
        f"Catalogue version {outcome.catalogue.version}: {len(result.findings)} finding(s), "
        f"{len(result.not_assessed)} not assessed, ACB score {result.acb.score}"
    ]
    for finding in result.findings:
        lines.append(f"{finding.criterion:<28} {', '.join(finding.medications)}: {finding.summary}")
    for item in result.not_assessed:
        lines.append(f"not assessed {item.criterion}: missing {'; '.join(item.missing)}")
    return lines
