"""FHIR search as a client expects it: the parameters each resource type supports (the one
table the routes and the CapabilityStatement both read), strict handling of unknown
parameters (``Prefer: handling=lenient`` ignores them), date prefixes, tokens, ``_count``
paging with ``next`` links, ``_summary=count`` and the searchset Bundle."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from medloop.fhir.memo import Memo
from medloop.fhir.outcome import FhirError, issue
from medloop.fhir.subset import WHOLE, Subset, cut, subset_of

DEFAULT_COUNT = 50
MAX_COUNT = 500

COMMON = {
    "_count": "number",
    "_offset": "number",
    "_summary": "token",
    "_format": "token",
    "_elements": "string",
    "_pretty": "token",
}
"""Result parameters every search takes (``_offset`` is what our ``next`` links carry)."""

PARAMETERS: dict[str, dict[str, str]] = {
    "Patient": {"_id": "token", "identifier": "token"},
    "Practitioner": {"_id": "token", "identifier": "token"},
    "Organization": {"_id": "token", "identifier": "token"},
    "PractitionerRole": {"_id": "token", "practitioner": "reference", "organization": "reference"},
    "Medication": {"_id": "token", "code": "token"},
    "MedicationStatement": {
        "_id": "token",
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "code": "token",
        "effective": "date",
        "date": "date",
        "_lastUpdated": "date",
    },
    "MedicationRequest": {
        "_id": "token",
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "code": "token",
        "authoredon": "date",
        "date": "date",
        "_lastUpdated": "date",
    },
    "MedicationDispense": {
        "_id": "token",
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "code": "token",
        "whenhandedover": "date",
        "prescription": "reference",
    },
    "MedicationAdministration": {
        "_id": "token",
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "code": "token",
        "effective-time": "date",
    },
    "AllergyIntolerance": {"patient": "reference"},
    "DetectedIssue": {"patient": "reference", "identified": "date"},
    "AuditEvent": {"patient": "reference", "entity": "reference", "date": "date"},
}
"""Search parameters per resource type (name → FHIR type)."""

INCLUDES: dict[str, tuple[str, ...]] = {
    "MedicationStatement": ("MedicationStatement:medication",),
    "MedicationRequest": ("MedicationRequest:medication",),
    "MedicationAdministration": ("MedicationAdministration:medication",),
}
"""The ``_include`` values each resource type supports."""


@dataclass(frozen=True)
class Search:
    """One search: its parameters (each name → its values, ``:modifier`` kept apart), the
    include wanted, the page and whether only the count is asked for."""

    resource: str
    params: dict[str, list[str]]
    include_medication: bool
    count: int
    offset: int
    summary_count: bool
    ignored: tuple[str, ...]
    subset: Subset = WHOLE
    """``_summary`` or ``_elements``: what a matched resource is cut to (``WHOLE``: all)."""

    def one(self, name: str) -> str | None:
        values = self.params.get(name)
        return None if not values else values[-1]


def lenient(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(p.strip().lower() == "handling=lenient" for p in prefer.split(";"))


def parse(request: Request, resource: str) -> Search:
    """The request's search; ``FhirError`` (400) for an unknown parameter under strict handling
    (the default) or a value that is not what the parameter takes. A search is a function of
    the query string and the ``Prefer`` header alone: one parsed before is answered from
    ``PARSED`` (a refusal is parsed and raised again)."""
    scope = request.scope
    prefer = next((v for k, v in scope["headers"] if k == b"prefer"), b"")
    query = scope.get("query_string", b"")
    return PARSED.get(
        (resource, query, prefer), lambda: _parse(request, resource), len(query) + len(prefer)
    )


PARSED: Memo[Search] = Memo(4096)
"""Searches parsed, by resource type, query string and ``Prefer`` header (the first, as
``lenient`` reads it): a client repeats its searches (a patient's list, refreshed), and parsing
one again was ≈ 2 % of a served search's CPU (bench/RESULTS.md, issue #18, session 8). A
``Search`` is never changed once made."""


def _parse(request: Request, resource: str) -> Search:
    known = {**PARAMETERS[resource], **COMMON}
    strict = not lenient(request)
    params: dict[str, list[str]] = {}
    ignored: list[str] = []
    include = False
    problems: list[dict[str, Any]] = []
    for raw_name, value in request.query_params.multi_items():
        name, _, modifier = raw_name.partition(":")
        if name == "_include":
            if value in INCLUDES.get(resource, ()):
                include = True
            elif strict:
                problems.append(
                    issue(
                        "not-supported",
                        f"_include={value} is not supported on {resource}"
                        + (
                            f" (supported: {', '.join(INCLUDES[resource])})"
                            if resource in INCLUDES
                            else ""
                        ),
                        expression=["_include"],
                    )
                )
            else:
                ignored.append(raw_name)
            continue
        if name not in known or (modifier and modifier not in _MODIFIERS.get(known[name], ())):
            if strict:
                problems.append(
                    issue(
                        "not-supported",
                        f"unknown search parameter {raw_name!r} for {resource}; supported: "
                        + ", ".join(sorted(PARAMETERS[resource])),
                        expression=[raw_name],
                    )
                )
            else:
                ignored.append(raw_name)
            continue
        params.setdefault(raw_name, []).append(value)
    if problems:
        raise FhirError(
            400,
            problems[0]["code"],
            problems[0]["diagnostics"],
            expression=problems[0].get("expression", ()),
            issues=problems[1:],
        )
    count = _integer(params, "_count", DEFAULT_COUNT)
    offset = _integer(params, "_offset", 0)
    parts, summary_count, unknown = subset_of(params, resource, search=True, strict=strict)
    ignored += [f"_elements={name}" for name in unknown]
    return Search(
        resource=resource,
        params=params,
        include_medication=include,
        count=min(count, MAX_COUNT),
        offset=offset,
        summary_count=summary_count,
        ignored=tuple(ignored),
        subset=parts,
    )


_MODIFIERS = {"token": ("not", "below"), "string": ("exact",), "date": ()}
"""Token modifiers: ``:not``, and ``:below`` (a code and everything under it: ATC levels)."""


def _integer(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values:
        return default
    value = values[-1]
    if not value.isdigit() or len(value) > 9:
        raise FhirError(
            400, "invalid", f"{name} must be a whole number, not {value!r}", expression=[name]
        )
    return int(value)


# -- value types ----------------------------------------------------------------------------------

_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<time>[0-9:.]+)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class DateParam:
    """A date search value: its prefix and the range [lower, upper) its precision spans."""

    prefix: str
    lower: datetime
    upper: datetime

    def matches(self, start: datetime, end: datetime | None = None) -> bool:
        """Whether the resource's range [start, end) (a point when ``end`` is ``None``;
        open-ended when ``end`` is ``datetime.max``) matches."""
        stop = end if end is not None else start + timedelta(microseconds=1)
        if self.prefix == "eq":
            return start < self.upper and stop > self.lower
        if self.prefix == "ne":
            return not (start < self.upper and stop > self.lower)
        if self.prefix in ("gt", "sa"):
            return stop > self.upper
        if self.prefix in ("ge",):
            return stop > self.lower
        if self.prefix in ("lt", "eb"):
            return start < self.lower
        if self.prefix == "le":
            return start < self.upper
        # ap: within a day either side
        return start < self.upper + timedelta(days=1) and stop > self.lower - timedelta(days=1)


def date_param(name: str, value: str) -> DateParam:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    found = _DATE.match(text)
    if found is None:
        raise FhirError(
            400,
            "invalid",
            f"{name}={value!r} is not a FHIR date (YYYY[-MM[-DD[Thh:mm:ss]]])",
            expression=[name],
        )
    try:
        year, month, day = int(found["y"]), int(found["m"] or 1), int(found["d"] or 1)
        if found["time"]:
            stamp = datetime.fromisoformat(f"{text[:10]}T{found['time']}{_tz(found['tz'])}")
            lower = stamp.astimezone(UTC)
            upper = lower + timedelta(seconds=1)
        else:
            lower = datetime(year, month, day, tzinfo=UTC)
            if found["d"]:
                upper = lower + timedelta(days=1)
            elif found["m"]:
                upper = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            else:
                upper = datetime(year + 1, 1, 1, tzinfo=UTC)
    except ValueError as error:
        raise FhirError(400, "invalid", f"{name}={value!r}: {error}", expression=[name]) from None
    return DateParam(prefix, lower, upper)


def _tz(value: str | None) -> str:
    return "+00:00" if value in (None, "Z") else value


def day_range(start: date, end: date | None) -> tuple[datetime, datetime]:
    """A range of days [start, end] as instants (open-ended: ``datetime.max``)."""
    lower = datetime(start.year, start.month, start.day, tzinfo=UTC)
    if end is None:
        return lower, datetime.max.replace(tzinfo=UTC)
    return lower, datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)


def at_instant(moment: datetime) -> tuple[datetime, None]:
    return moment.astimezone(UTC), None


def token(value: str) -> tuple[str | None, str]:
    """(system or ``None`` for any, code) of a token value (``system|code``, ``|code``,
    ``code``)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system or None, code
    return None, value


def reference_id(name: str, value: str, resource: str = "Patient") -> str:
    """The id of a reference parameter (``Patient/123``, ``123`` or a full URL)."""
    tail = value.rstrip("/").split("/")
    if len(tail) >= 2 and tail[-2] != resource:
        raise FhirError(
            400, "invalid", f"{name} must reference a {resource}, not {value!r}", expression=[name]
        )
    return tail[-1]


def codings_match(
    values: Sequence[str], codings: Sequence[dict[str, Any]], modifier: str = ""
) -> bool:
    """Whether any token of ``values`` (a comma list each, OR) matches one of the codings
    (``below``: the code or one under it, by prefix as ATC levels go; ``not``: none does)."""
    found = False
    for value in values:
        for one in value.split(","):
            system, code = token(one)
            for coding in codings:
                given = str(coding.get("code", ""))
                same = given.startswith(code) if modifier == "below" else given == code
                if same and (system is None or coding.get("system") == system):
                    found = True
    return not found if modifier == "not" else found


def filtered(
    resources: list[dict[str, Any]],
    search: Search,
    rules: dict[str, Callable[[dict[str, Any], str, str], bool]],
) -> list[dict[str, Any]]:
    """The resources every given parameter matches (values of one parameter are ANDed, a
    comma list within one value ORed by each rule)."""
    found = resources
    for raw_name, values in search.params.items():
        name, _, modifier = raw_name.partition(":")
        rule = rules.get(name)
        if rule is None:
            continue
        for value in values:
            found = [r for r in found if rule(r, value, modifier)]
    return found


def bundle(
    request: Request,
    search: Search,
    matches: list[dict[str, Any]],
    include: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    fragments: Mapping[int, Any] | None = None,
) -> dict[str, Any]:
    """The searchset Bundle of one page of ``matches`` (with its included resources), its
    ``self`` and ``next`` links and the total. ``fragments`` holds the JSON already encoded of
    resources (``orjson.Fragment``, by the identity of the resource dict): an entry carries that
    instead of the dict, and the response's encoder copies it as it stands."""
    base = str(request.base_url).rstrip("/") + "/fhir"
    body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
    if search.summary_count:
        body["link"] = [{"relation": "self", "url": str(request.url)}]
        return body
    page = matches[search.offset : search.offset + search.count]
    links = [{"relation": "self", "url": str(request.url)}]
    if search.count and search.offset + search.count < len(matches):
        links.append(
            {"relation": "next", "url": _page_url(request, search, search.offset + search.count)}
        )
    if search.offset > 0:
        links.append(
            {
                "relation": "previous",
                "url": _page_url(request, search, max(0, search.offset - search.count)),
            }
        )
    body["link"] = links
    encoded = fragments or {}
    if search.subset:  # the matches cut (their kept JSON is of the whole ones)
        page = [cut(r, search.subset) for r in page]
    entries = [_entry(base, r, "match", encoded) for r in page]
    if include is not None and search.include_medication:
        entries += [_entry(base, r, "include", encoded) for r in include(page)]
    if search.ignored:
        entries.append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        issue(
                            "not-supported",
                            f"ignored (Prefer: handling=lenient): {', '.join(search.ignored)}",
                            severity="warning",
                        )
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    if entries:
        body["entry"] = entries
    return body


def _entry(
    base: str, resource: dict[str, Any], mode: str, fragments: Mapping[int, Any]
) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": fragments.get(id(resource), resource),
        "search": {"mode": mode},
    }


def _page_url(request: Request, search: Search, offset: int) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]
    items.append(("_offset", str(offset)))
    if "_count" not in {k for k, _ in items}:
        items.append(("_count", str(search.count)))
    return str(request.url.replace(query=urlencode(items)))
