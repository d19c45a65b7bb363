"""Nursing-home administration: ward set-up, admissions, planning doses, charting and the
chart queries, one module each.

- ``wards``: ``create_ward`` / ``configure_ward``, a ward of the caller's organisation and its
  configuration (versions, never edits), through ``runner.run_work``;
- ``admissions``: ``admit`` / ``discharge`` (through ``run_command``); admitting plans the next
  48 h at once; ``is_admitted``; ``register_wristband`` (the GS1 GSRN of the stay) and
  ``wristband_gsrn``;
- ``planning``: schedules and planned doses; the jobs' ``roll_forward`` (keep ``HORIZON``
  planned; a changed dosage gets a new schedule from the time of the change) and
  ``mark_missed``, each patient one ``run_work`` of the system, idempotent;
- ``charting``: ``chart`` (facts read first, one decision in
  ``medloop.domain.administration.decide_charting``, decision support on the last 24 h) and
  ``mark_in_error``;
- ``queries``: ``ward_chart`` (with every PRN entry's limits and what remains),
  ``resident_chart`` (a resident's MAR over days), ``as_needed_given`` (and their medicines,
  ``prn_medicines``, in one query),
  ``administration_history``, and one ``admission`` or ``charting``.
"""

from medloop.loop.administration.admissions import (
    AdmissionOrder,
    admit,
    discharge,
    is_admitted,
    register_wristband,
    wristband_gsrn,
)
from medloop.loop.administration.charting import chart, mark_in_error
from medloop.loop.administration.planning import HORIZON, mark_missed, roll_forward
from medloop.loop.administration.queries import (
    ChartLine,
    PatientChart,
    PrnLine,
    PrnMedicine,
    ResidentDay,
    WardChart,
    administration_history,
    admission,
    as_needed_given,
    charting,
    patient_of_administration,
    prn_lines,
    prn_medicines,
    resident_chart,
    ward_chart,
)
from medloop.loop.administration.wards import WardOrder, configure_ward, create_ward

__all__ = [
    "HORIZON",
    "AdmissionOrder",
    "ChartLine",
    "PatientChart",
    "PrnLine",
    "PrnMedicine",
    "ResidentDay",
    "WardChart",
    "WardOrder",
    "admit",
    "admission",
    "administration_history",
    "as_needed_given",
    "patient_of_administration",
    "prn_lines",
    "prn_medicines",
    "charting",
    "chart",
    "configure_ward",
    "create_ward",
    "discharge",
    "is_admitted",
    "mark_in_error",
    "register_wristband",
    "wristband_gsrn",
    "mark_missed",
    "resident_chart",
    "roll_forward",
    "ward_chart",
]
