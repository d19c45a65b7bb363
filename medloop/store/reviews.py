"""Signed medication reviews: ``medication_review``, one row per review (the
``MedicationReview`` as JSON). Append-only: a signed review is never changed; the next review
is a new row."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    select,
)

from fest.schema import metadata
from medloop.domain.review import MedicationReview
from medloop.store import attestation
from medloop.store.columns import UUID_LENGTH, parsed

medication_review = Table(
    "medication_review",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the MedicationReview
    Index("ix_medication_review_patient", "patient_id", "signed_at"),
)


def append_review(conn: Connection, review: MedicationReview) -> None:
    attestation.insert(
        conn,
        medication_review,
        id=str(review.id),
        patient_id=str(review.patient_id),
        list_version=review.assessment.list_version,
        signed_at=review.signed_at,
        record=review.model_dump(mode="json"),
    )


def reviews_of(conn: Connection, patient_id: UUID) -> list[MedicationReview]:
    """The patient's signed reviews, oldest first."""
    return [
        parsed(MedicationReview, found.record, medication_review, {"id": found.id})
        for found in conn.execute(
            select(medication_review.c.id, medication_review.c.record)
            .where(medication_review.c.patient_id == str(patient_id))
            .order_by(medication_review.c.signed_at, medication_review.c.id)
        )
    ]


def latest_review(conn: Connection, patient_id: UUID) -> MedicationReview | None:
    """The patient's most recently signed review."""
    found = conn.execute(
        select(medication_review.c.id, medication_review.c.record)
        .where(medication_review.c.patient_id == str(patient_id))
        .order_by(medication_review.c.signed_at.desc(), medication_review.c.id.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    return parsed(MedicationReview, found.record, medication_review, {"id": found.id})


def review_of(conn: Connection, patient_id: UUID, review_id: UUID) -> MedicationReview | None:
    found = conn.execute(
        select(medication_review.c.id, medication_review.c.record).where(
            medication_review.c.patient_id == str(patient_id),
            medication_review.c.id == str(review_id),
        )
    ).first()
    if found is None:
        return None
    return parsed(MedicationReview, found.record, medication_review, {"id": found.id})
