"""Every error under ``/fhir`` as an ``OperationOutcome`` (``application/fhir+json``), never a
problem document and never a bare 500.

The JSON API's handlers (``medloop.api.problems``) stay the one place that decides an error's
status, audit and headers: ``install`` wraps each of them so that, for a request under
``/fhir``, the problem document they produce is re-expressed as an OperationOutcome with the
same status and headers (the problem's stable code is kept as the issue's ``details``
coding). ``FhirError`` is what the FHIR layer itself raises (an unknown search parameter, a
resource it cannot read).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.responses import Response

from medloop.api.responses import JSONResponse
from medloop.fhir.resources import ALERT_KEY, FHIR_JSON

PROBLEM_SYSTEM = "https://medloop.dev/problems"
"""The system of an issue's ``details`` coding: the JSON API's problem code."""
PREFIXES = ("/fhir", "/.well-known/smart-configuration")

_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
    503: "transient",
}


class FhirError(Exception):
    """A request the FHIR layer refuses: ``status``, the issue ``code`` (FHIR IssueType), the
    diagnostics and, where it helps, the FHIRPath ``expression`` of what is wrong."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        expression: Sequence[str] = (),
        problem: str | None = None,
        issues: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = tuple(expression)
        self.problem = problem
        self.issues = tuple(issues)


def issue(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    expression: Sequence[str] = (),
    problem: str | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if problem is not None:
        found["details"] = {"coding": [{"system": PROBLEM_SYSTEM, "code": problem}]}
    if expression:
        found["expression"] = list(expression)
    return found


def operation_outcome(issues: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def outcome_response(
    status: int, issues: Sequence[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(issues), status_code=status, media_type=FHIR_JSON, headers=headers
    )


def fhir_error_response(error: FhirError) -> JSONResponse:
    first = issue(error.code, error.diagnostics, expression=error.expression, problem=error.problem)
    return outcome_response(error.status, [first, *error.issues])


def under_fhir(request: Request) -> bool:
    return request.url.path.startswith(PREFIXES)


def from_problem(response: Response) -> Response:
    """The problem document ``response`` as an OperationOutcome (same status and headers)."""
    try:
        problem = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        problem = {}
    status = response.status_code
    problem_code = problem.get("code") if isinstance(problem, dict) else None
    faults = (problem.get("errors") or []) if isinstance(problem, dict) else []
    body_fault = any((f.get("loc") or [None])[0] == "body" for f in faults)
    if status == 422 and (problem_code == "malformed-json" or body_fault):
        status = 400  # FHIR: a body that cannot be parsed (or is missing) is a Bad Request
    code = _ISSUE_CODE.get(status, "exception" if status >= 500 else "processing")
    detail = problem.get("detail") if isinstance(problem, dict) else None
    issues = [issue(code, str(detail or "the request was refused"), problem=problem_code)]
    for fault in (problem.get("errors") or [])[:50] if isinstance(problem, dict) else []:
        where = ".".join(str(part) for part in fault.get("loc", ()))
        issues.append(
            issue(
                "invalid" if status == 422 else code,
                f"{where}: {fault.get('msg', '')}",
                expression=[where] if where else (),
            )
        )
    if problem.get("request_id") if isinstance(problem, dict) else None:
        issues[0]["diagnostics"] += f" (request id {problem['request_id']})"
    alerts = problem.get("alerts") if isinstance(problem, dict) else None
    contained = []
    for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
        # An alert that needs an override: one issue naming its key, and the DetectedIssue.
        key = str(alert.get("key", ""))
        found = issue("business-rule", str(alert.get("summary", key)), problem=None)
        found["details"] = {"coding": [{"system": ALERT_KEY, "code": key}], "text": key}
        issues.append(found)
        contained.append(_detected_issue(f"alert-{index + 1}", alert))
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-type", "content-length")
    }
    body = operation_outcome(issues)
    if contained:
        body["contained"] = contained
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


_SEVERITY = {"avoid": "high", "precautions": "moderate"}


def _detected_issue(local_id: str, alert: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": local_id,
        "identifier": [{"system": ALERT_KEY, "value": str(alert.get("key", ""))}],
        "status": "preliminary",
        "code": {
            "coding": [
                {
                    "system": "https://medloop.dev/fhir/CodeSystem/alert-kind",
                    "code": str(alert.get("kind", "alert")),
                }
            ]
        },
        "severity": _SEVERITY.get(str(alert.get("severity")), "low"),
        "detail": str(alert.get("summary", "")),
    }
    implicated = [
        {"reference": f"MedicationStatement/{m}"}
        for m in alert.get("medications", ())
        if isinstance(m, str) and len(m) == 36
    ]
    if implicated:
        body["implicated"] = implicated
    return body


def install(app: Any) -> None:
    """Wrap every exception handler the app has so that answers under ``/fhir`` are
    OperationOutcomes; add the handler of ``FhirError``."""

    for cls, handler in list(app.exception_handlers.items()):
        app.exception_handlers[cls] = _wrapped(handler)

    async def fhir_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, FhirError)
        return fhir_error_response(error)

    app.add_exception_handler(FhirError, fhir_error)


def _wrapped(handler: Any) -> Any:
    async def handle(request: Request, error: Exception) -> Response:
        response = await handler(request, error)
        if not under_fhir(request):
            return response
        return from_problem(response)

    return handle
