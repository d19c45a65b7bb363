"""Benchmark: the deciding side of a prescribe in-process, without the database (issue #20).

``bench/route.py`` measures the whole command on PostgreSQL, where the round trips, the audit
record and a shared machine move every figure by more than the deciding side weighs. This
measures only what ``runner._decide_and_store`` does in-process besides the store: the decision
(``loop.prescribe.prescribe_decision``: resolving the drug, ``MedicationList.apply``,
``prescription.issue``), decision support (``runner._screen``), the alerts' dumps and
``PatientState.advanced``, for ``--patients`` registered patients each prescribed
``api.ROTATION`` in turn (their state carried from command to command, as the state cache
carries it), ``--rounds`` times. The demo catalogue is read from a temporary SQLite database.
Prints one JSON object: thread CPU per prescribe (median, p10, mean) in µs. Run it alternately
on two trees (``PYTHONPATH``) for an A/B.

    .venv/bin/python bench/decide.py --patients 30 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from api import DEMO, ROTATION  # noqa: E402
from route import prescribe_order  # noqa: E402

from fest.loader import import_catalogue  # noqa: E402
from medloop.demo import national_id  # noqa: E402
from medloop.domain.patient import NationalId, Patient  # noqa: E402
from medloop.domain.state import PatientState  # noqa: E402
from medloop.loop.catalogue import Catalogue, catalogue_of  # noqa: E402
from medloop.loop.prescribe import prescribe_decision  # noqa: E402
from medloop.loop.runner import Context, _screen  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from medloop.store.patient_state import registered_state  # noqa: E402
from medloop.store.patients import catalogue_key_in_force  # noqa: E402


def _catalogue() -> Catalogue:
    folder = tempfile.mkdtemp(prefix="medloop-bench-decide-")
    engine = make_engine(f"sqlite:///{folder}/decide.db")
    try:
        upgrade(engine)
        import_catalogue(engine, DEMO)
        with engine.connect() as conn:
            return catalogue_of(conn, catalogue_key_in_force(conn))
    finally:
        engine.dispose()


def _prescribed(catalogue: Catalogue, state: PatientState, varenr: str) -> tuple[float, Any]:
    """The thread CPU of one prescribe's deciding side, and the state after it."""
    order, call = prescribe_order(varenr)
    started = time.thread_time()
    effect = prescribe_decision(order, call)(Context(None, state, catalogue, call))  # type: ignore[arg-type]
    alerts = _screen(catalogue, state, effect.screening, call.at.date())
    [alert.model_dump(mode="json") for alert in alerts]
    after = state.advanced(
        list_change=effect.list_change,
        prescription_versions=effect.prescription_versions,
        dispenses=(),
        annulments=(),
        handled=(),
        recorded_at=call.at,
    )
    return time.thread_time() - started, after


def run(patients: int, rounds: int) -> dict[str, Any]:
    catalogue = _catalogue()
    gc.collect()
    gc.freeze()  # as the server does after start-up
    cpu: list[float] = []
    for _ in range(rounds):
        for n in range(patients):
            birth = date(1930 + n % 60, 1 + n % 12, 1 + n % 28)
            state = registered_state(
                Patient(
                    id=uuid.uuid4(),
                    national_id=NationalId(national_id(birth, (n * 7) % 400)),
                    given_name="Bench",
                    family_name=f"Pasient {n}",
                    birth_date=birth,
                )
            )
            for varenr in ROTATION:
                spent, state = _prescribed(catalogue, state, varenr)
                cpu.append(spent)
    ordered = sorted(cpu)
    count = len(ordered)
    return {
        "prescribes": count,
        "cpu_us": {
            "median": round(1e6 * ordered[count // 2], 1),
            "p10": round(1e6 * ordered[count // 10], 1),
            "mean": round(1e6 * sum(ordered) / count, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.patients, args.rounds), indent=1))


if __name__ == "__main__":
    main()
