"""What a FHIR client may ask for: this server answers in FHIR R4's JSON only (the bulk export's
files in NDJSON). A request for anything else, by ``_format`` (``xml``, ``ttl``), by an
``Accept`` header that admits none of what the route answers with (``application/fhir+xml``),
or for another FHIR version (``fhirVersion`` other than 4.0 on the media type), is refused with
406 and an OperationOutcome, rather than answered in JSON the client did not ask for and may not
parse (FHIR R4, "RESTful API": Content Types and encodings, and the ``fhirVersion`` parameter).

A route answers with ``JSON`` unless its endpoint says otherwise (``produces``). Checked for
every route under ``/fhir`` before its endpoint runs (``router.FhirRoute``); an ``Accept``
header's verdict is kept (``_admits``): clients send few distinct ones."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from medloop.fhir.outcome import FhirError

JSON = frozenset(
    {"application/fhir+json", "application/json", "text/json", "application/json+fhir"}
)
"""The media types of FHIR JSON: its own, the generic JSON ones FHIR answers in it, and the
name it had before R4 (DSTU2's)."""
JSON_FORMATS = frozenset({"json", *JSON})
"""``_format`` values that ask for JSON."""
BODIES = frozenset({"application/fhir+json", "application/json"})
"""The media types a posted resource is read in (what FastAPI parses as JSON of these)."""
NDJSON = frozenset({"application/fhir+ndjson", "application/ndjson", "application/x-ndjson"})
"""The media types of the bulk export's files."""
VERSIONS = ("4.0",)
"""The ``fhirVersion`` values (FHIR's major.minor) this server speaks: R4."""
_NAMES = {JSON: "FHIR JSON (application/fhir+json)", NDJSON: "NDJSON (application/fhir+ndjson)"}

_F = TypeVar("_F", bound=Callable[..., Any])


def produces(media_types: frozenset[str]) -> Callable[[_F], _F]:
    """Mark an endpoint as answering with ``media_types`` instead of ``JSON`` (put it below the
    route's decorator)."""

    def mark(endpoint: _F) -> _F:
        endpoint.fhir_produces = media_types  # type: ignore[attr-defined]
        return endpoint

    return mark


def produced_by(endpoint: Callable[..., Any]) -> frozenset[str]:
    return getattr(endpoint, "fhir_produces", JSON)


def refuse_unacceptable(scope: dict[str, Any], answers: frozenset[str]) -> None:
    """``FhirError`` 406 when the request asks for a representation other than ``answers``."""
    query = scope.get("query_string", b"")
    if b"_format" in query and answers is JSON:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            # (a "+" left unencoded reads as a space: "application/fhir json")
            asked = value.strip().lower().replace(" ", "+")
            if name == "_format" and asked not in JSON_FORMATS:
                raise FhirError(
                    406,
                    "not-supported",
                    f"_format={asked[:100]}: this server answers in FHIR JSON only "
                    "(_format=json or application/fhir+json)",
                    expression=["_format"],
                )
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value.decode("latin-1")
            why = _admits(accept, answers)
            if why:
                raise FhirError(406, "not-supported", f"Accept: {accept[:200]}: {why}")


def refuse_unreadable_body(scope: dict[str, Any]) -> None:
    """``FhirError`` 415 when a posted resource is not said to be FHIR JSON (R4): no
    ``Content-Type``, another media type (``application/fhir+xml``), or another
    ``fhirVersion``. Only JSON is read, so anything else would be refused as a body that is
    not a resource, naming the body rather than its type."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = value.decode("latin-1")
            why = _readable(kind)
            if why:
                raise FhirError(415, "not-supported", f"Content-Type: {kind[:200]}: {why}")
            return
    raise FhirError(
        415,
        "not-supported",
        "the request has no Content-Type: send the resource as application/fhir+json",
    )


def _media_type(text: str) -> tuple[str, dict[str, str]]:
    """A media type (``application/fhir+json; fhirVersion=4.0; q=0.5``): the type in lower
    case, and its parameters by their names in lower case."""
    media, _, parameters = text.partition(";")
    found: dict[str, str] = {}
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        found[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), found


def _unspoken(version: str | None) -> str:
    """Why a ``fhirVersion`` is not this server's ("" when it is, or none is named)."""
    if version is None or version in VERSIONS:
        return ""
    return f"fhirVersion={version}: this server speaks FHIR {', '.join(VERSIONS)} only"


@lru_cache(maxsize=64)
def _readable(kind: str) -> str:
    """Why a ``Content-Type`` is not one this server reads a resource in ("" when it is)."""
    media, parameters = _media_type(kind)
    if media not in BODIES:
        return "this server reads resources in FHIR JSON only (application/fhir+json)"
    return _unspoken(parameters.get("fhirversion"))


@lru_cache(maxsize=256)
def _admits(accept: str, answers: frozenset[str]) -> str:
    """Why an ``Accept`` header admits nothing of ``answers`` ("" when it admits some)."""
    listed = False
    unspoken: list[str] = []
    for item in accept.split(","):
        media, parameters = _media_type(item)
        if not media:
            continue
        listed = True
        try:
            quality = float(parameters.get("q", "1"))
        except ValueError:
            quality = 0.0  # an unreadable weight admits nothing
        if quality <= 0 or not _matches(media, answers):  # q=0: "not this one"
            continue
        why = _unspoken(parameters.get("fhirversion"))
        if not why:
            return ""
        unspoken.append(why)
    if not listed:  # an empty header asks for nothing in particular
        return ""
    if unspoken:
        return unspoken[0]
    return f"this route answers in {_NAMES.get(answers, ', '.join(sorted(answers)))} only"


def _matches(media: str, answers: frozenset[str]) -> bool:
    if media == "*/*" or media in answers:
        return True
    kind, _, sub = media.partition("/")
    return sub == "*" and any(answer.startswith(f"{kind}/") for answer in answers)
