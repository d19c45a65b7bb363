"""patient.revision 0 means "as registered": the patients with data from before 0007 are bumped

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-05

A patient's revision is bumped by every command (0007), and everything of a patient's state but
the record is written by commands, so at revision 0 (``store.patients.FIRST_REVISION``) the state
is the record and nothing else: the loop then knows it without reading the tables
(``store.patient_state.patient_state_at``). Patients whose list, prescriptions, dispenses,
alerts or handled alerts were written before 0007 added the column kept revision 0 with that
data; they get revision 1 here, so that their state is read as before. The revision is not
attested (``store.attestation``): every digest stays as it was. Downgrading leaves the revisions
as they are (any revision is valid; a cached state is only ever used for its own).
"""

from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None

#: The tables of a patient's state (``store.patient_state.load_patient_state``) that name the
#: patient; the others (entry and prescription versions, annulments) hang off rows of these.
STATE_TABLES = ("list_change", "prescription", "dispense", "alert", "handled_alert")


def upgrade() -> None:
    written = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE {table}.patient_id = patient.id)"
        for table in STATE_TABLES
    )
    op.execute(f"UPDATE patient SET revision = 1 WHERE revision = 0 AND ({written})")


def downgrade() -> None:
    pass
