"""The work of a FHIR bulk export (``$export``): each patient the export covers is read on its
own (its state and its chartings: memory bounded by one patient, never by the export) and
written as NDJSON, one file per resource type, then the patients read are audited and the
export's manifest recorded. A patient whose stored record cannot be read is left out with an
OperationOutcome naming the record in the export's error file (the manifest's ``error``), and
the export goes on. Run by the ``fhir-export`` job (``medloop.jobs``)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
from sqlalchemy import Engine

from medloop import queries
from medloop.fhir import resources as fhir
from medloop.loop import administration, exports
from medloop.loop.runner import skipping_unreadable

TYPES = (
    "Patient",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationAdministration",
)
"""What an export can hold (``_type``; all of them by default)."""


def export_directory(base: Path, export_id: UUID) -> Path:
    return base / str(export_id)


def run_pending(engine: Engine, now: datetime, base: Path) -> dict[str, Any]:
    """Run every export waiting, oldest first; counts of what was done."""
    done = failed = resources = 0
    while (export := exports.claim_next(engine)) is not None:
        try:
            resources += run(engine, export, now, base)
            done += 1
        except Exception as error:  # noqa: BLE001 - recorded on the export, the job goes on
            exports.finish(engine, export.id, exports.FAILED, now, error=type(error).__name__)
            failed += 1
    return {"exports": done, "failed": failed, "resources": resources}


def run(engine: Engine, export: exports.Export, now: datetime, base: Path) -> int:
    directory = export_directory(base, export.id)
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = dict.fromkeys(export.types, 0)
    errors = {ERRORS: 0}
    read: list[UUID] = []
    try:
        for patient_id in exports.patient_ids(engine, export.group_id):
            written = skipping_unreadable(
                "fhir.export",
                patient_id,
                lambda patient_id=patient_id: _patient(
                    engine, patient_id, export, directory, files, counts
                ),
                [],
                on_skip=lambda unreadable, patient_id=patient_id: _write(
                    ERRORS, _unreadable(patient_id, unreadable), directory, files, errors
                ),
            )
            if written:
                read.append(patient_id)
    finally:
        for handle in files.values():
            handle.close()
    exports.audit_export(engine, export, read)
    output = [
        {"type": kind, "file": f"{kind}.ndjson", "count": counts[kind]}
        for kind in export.types
        if counts[kind]
    ]
    if errors[ERRORS]:
        output.append(
            {"type": ERRORS, "file": f"{ERRORS}.ndjson", "count": errors[ERRORS], "error": True}
        )
    if not exports.finish(engine, export.id, exports.COMPLETED, now, output=output):
        shutil.rmtree(directory, ignore_errors=True)  # cancelled while it ran
    return sum(counts.values())


ERRORS = "OperationOutcome"
"""The type of the export's error file: one OperationOutcome per patient left out."""


def _unreadable(patient_id: UUID, unreadable: Any) -> dict[str, Any]:
    """Why the patient's resources are not in the export: the stored record that does not
    load (table and key, never its value)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "exception",
                "diagnostics": (
                    f"Patient/{patient_id} is not in this export: {unreadable} "
                    f"(table {unreadable.table}); `medloop records check` lists it"
                ),
            }
        ],
    }


def _write(
    kind: str,
    resource: dict[str, Any],
    directory: Path,
    files: dict[str, IO[bytes]],
    counts: dict[str, int],
) -> None:
    handle = files.get(kind)
    if handle is None:
        handle = files[kind] = (directory / f"{kind}.ndjson").open("wb")
    handle.write(orjson.dumps(resource))
    handle.write(b"\n")
    counts[kind] += 1


def _patient(
    engine: Engine,
    patient_id: UUID,
    export: exports.Export,
    directory: Path,
    files: dict[str, IO[bytes]],
    counts: dict[str, int],
) -> bool:
    since = export.since
    wanted = set(export.types)
    with exports.connection(engine) as conn:
        state = queries.patient_state_uncached(conn, patient_id)
        charted = (
            administration.administration_history(conn, patient_id, None, None)
            if "MedicationAdministration" in wanted
            else []
        )
    before = sum(counts.values())
    if "MedicationStatement" in wanted:
        latest: dict[UUID, Any] = {}
        for change in state.changes:
            for version in change.entry_versions:
                latest[version.entry_id] = version
        for version in latest.values():
            if since is None or version.at >= since:
                resource = fhir.medication_statement(version, patient_id)
                _write("MedicationStatement", resource, directory, files, counts)
    if "MedicationRequest" in wanted:
        for versions in state.prescription_history.values():
            if since is None or versions[-1].at >= since:
                resource = fhir.medication_request(versions[-1], patient_id)
                _write("MedicationRequest", resource, directory, files, counts)
    if "MedicationDispense" in wanted:
        for dispense in state.dispenses:
            recorded = state.dispense_recorded_at.get(dispense.id)
            if since is None or (recorded is not None and recorded >= since):
                resource = fhir.medication_dispense(
                    dispense, patient_id, state.prescriptions.get(dispense.prescription_id)
                )
                _write("MedicationDispense", resource, directory, files, counts)
    if charted:
        entries = {e.id: e for e in state.medication_list.entries}
        for record in charted:
            if since is not None and record.administration.recorded_at < since:
                continue
            resource = fhir.medication_administration(
                record, patient_id, entries.get(record.administration.entry_id)
            )
            _write("MedicationAdministration", resource, directory, files, counts)
    if "Patient" in wanted and (since is None or sum(counts.values()) > before):
        # With _since: the patients whose records changed, so the lines can be identified.
        _write("Patient", fhir.patient(state.patient), directory, files, counts)
    return sum(counts.values()) > before
