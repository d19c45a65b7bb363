"""Benchmark: the prescribe route's own work in-process (issue #20), without HTTP or a server.

``bench/api.py --floor`` measures the whole server against the floor of its stack, on a machine
whose other work moves every figure by tens of percent. This measures only the loop's command
(``loop.prescribe.prescribe``: the transaction, the idempotency key, the state, the decision,
decision support, the appends and the audit record) as the floor benchmark's scenario runs it: a
fresh PostgreSQL database (``MEDLOOP_TEST_POSTGRES_URL`` names the server; with ``--sqlite`` a
SQLite file in a temporary directory) with the demo catalogue, ``--patients`` patients registered
as by another process (the state cache cleared), each prescribed ``api.ROTATION`` in turn with an
idempotency key, based on the list version the last prescription left. It prints one JSON object:
the thread CPU time per prescribe (mean, median, p10; the mean includes each patient's first
command), the wall time per prescribe, and with ``--parts`` the inclusive thread CPU of the
command's parts per prescribe (each part timed by a wrapper around it: a few µs of overhead each).
Run it alternately on two trees (``PYTHONPATH``) for an A/B. With ``--callgrind``, run under
``valgrind --tool=callgrind --instr-atstart=no``, the instrumentation is switched on
(``callgrind_control -i on``) only around the measured prescribes: valgrind's "Collected" count
divided by ``prescribes`` is the command's instructions per prescribe, which the machine's load
does not move (an A/B that resolves a 1 % change on a shared machine). With ``--read`` the measured
work is the list read instead (``GET /patients/{id}/list``'s audited transaction, as the route
calls it: ``store.access.read_audited`` of ``api.views.list_view``), ``--read N`` per patient in
turn over patients whose lists the rotation filled and which were read once before (their states
cached and bodies rendered, as a serving process has them); the figures are per read. With
``--route`` each prescribe goes through the route function itself (``api.routes.gp.prescribe_drug``:
the caller's authorisation, ``order_of``, ``Caller.command_call``, the command and ``render``), as
the route threads run it: one GP principal (the same object every request, as the token
verifier's memory gives it), a new ``Caller`` per request, the request body a ``PrescribeRequest``
validated before the measured window (FastAPI's or the hot path's work, not the route's).

    MEDLOOP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/route.py --patients 50 --parts
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from api import DEMO, ROTATION  # noqa: E402

from fest.loader import import_catalogue  # noqa: E402
from medloop.demo import GP, national_id  # noqa: E402
from medloop.domain.patient import NationalId, Patient  # noqa: E402
from medloop.loop.patients import register_patient  # noqa: E402
from medloop.loop.prescribe import PrescribeOrder, prescribe  # noqa: E402
from medloop.loop.runner import Call  # noqa: E402
from medloop.store.access import Accessor, read_audited  # noqa: E402
from medloop.store.db import make_engine, normalise_url  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from medloop.store.state_cache import cache_for  # noqa: E402

#: The parts timed with ``--parts``: (module, attribute, modules that imported it by name).
RUNNER = "medloop.loop.runner"
PARTS = (
    (RUNNER, "_locked", ()),
    (RUNNER, "_decide_and_store", ()),
    (RUNNER, "_screen", ()),
    (RUNNER, "_store", ()),
    (RUNNER, "_audit", ()),
    ("medloop.store.patient_state", "load_patient_state", (RUNNER, "medloop.queries")),
    ("medloop.store.batch", "first_row", ()),
    ("medloop.store.attestation", "stamp", ()),
    ("medloop.store.idempotency", "request_fingerprint", (RUNNER,)),
    ("medloop.store.idempotency", "_as_stored", ()),
    ("medloop.domain.medication_list", "MedicationList.apply", ()),
    ("medloop.domain.prescription", "issue", ("medloop.loop.prescribe",)),
    (
        "medloop.domain.versioning",
        "diff",
        ("medloop.domain.medication_list", "medloop.domain.prescription"),
    ),
    ("medloop.domain.state", "PatientState.advanced", ()),
    ("sqlalchemy.engine.base", "Transaction.commit", ()),
    ("psycopg", "Connection.commit", ()),
)


def _timed(spent: Counter, calls: Counter) -> None:
    """Wrap every part of ``PARTS`` (that exists in this tree) to add its thread CPU to
    ``spent`` and count its calls."""
    for module_name, attribute, users in PARTS:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for step in path:
            owner = getattr(owner, step)
        original = getattr(owner, name, None)
        if original is None:
            continue
        label = f"{module_name.rsplit('.', 1)[-1]}.{attribute}"
        setattr(owner, name, _wrapped(original, label, spent, calls))
        for user in users:
            module = importlib.import_module(user)
            if getattr(module, name, None) is original:
                setattr(module, name, getattr(owner, name))


def _wrapped(original: Any, label: str, spent: Counter, calls: Counter) -> Any:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started
            calls[label] += 1

    return wrapper


def _patients(engine, count: int) -> list[uuid.UUID]:
    at = datetime.now(UTC)
    found = []
    for n in range(count):
        birth = date(1930 + n % 60, 1 + n % 12, 1 + n % 28)
        patient = Patient(
            id=uuid.uuid4(),
            national_id=NationalId(national_id(birth, (n * 7) % 400)),
            given_name="Bench",
            family_name=f"Pasient {n}",
            birth_date=birth,
        )
        register_patient(engine, patient, Call(actor=GP, at=at))
        found.append(patient.id)
    return found


def prescribe_order(varenr: str) -> tuple[PrescribeOrder, Call]:
    """A GP's order of one package of ``varenr`` as regular use from today, with fresh ids, and
    its call (with an idempotency key), as the floor benchmark's scenario prescribes
    (``bench/decide.py`` times the same order's deciding side)."""
    order = PrescribeOrder.model_validate(
        {
            "entry_id": str(uuid.uuid4()),
            "drug": {"varenr": varenr},
            "use": "regular",
            "start": date.today().isoformat(),
            "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        }
    )
    return order, Call(actor=GP, at=datetime.now(UTC), idempotency_key=str(uuid.uuid4()))


def _prescribe(engine, patient_id: uuid.UUID, based_on: int, varenr: str):
    order, call = prescribe_order(varenr)
    return prescribe(engine, patient_id, order, call, based_on=based_on)


def _route(engine) -> Any:
    """``_prescribe`` through the route function (``--route``): its answer's list version (the
    ETag) is what the scenario checks."""
    from medloop.api.auth import Principal, Role  # noqa: PLC0415 (the API only with --route)
    from medloop.api.deps import ApiState, Caller  # noqa: PLC0415
    from medloop.api.routes import gp  # noqa: PLC0415
    from medloop.api.schemas import PrescribeRequest  # noqa: PLC0415

    state = ApiState(engine=engine, verifier=None)  # type: ignore[arg-type]
    principal = Principal(
        role=Role.GP,
        subject=GP.personnel.hpr_number,
        organisation=GP.organisation.id,
        name=GP.personnel.name,
        organisation_name=GP.organisation.name,
    )
    bodies: list[tuple[Any, str]] = []

    def body(varenr: str) -> tuple[Any, str]:
        order, call = prescribe_order(varenr)
        return PrescribeRequest.model_validate(order.model_dump(mode="json")), str(
            call.idempotency_key
        )

    def prepare(count: int) -> None:
        bodies.extend(body(varenr) for _ in range(count) for varenr in ROTATION)
        bodies.reverse()

    def routed(_engine: Any, patient_id: uuid.UUID, based_on: int, varenr: str) -> Any:
        request, key = bodies.pop() if bodies else body(varenr)
        assert request.drug.varenr == varenr
        caller = Caller(state, principal, "bench-route", datetime.now(UTC))
        response = gp.prescribe_drug(caller, patient_id, request, based_on, key)
        return _Done(int(response.headers["etag"].strip('"')))

    routed.prepare = prepare  # type: ignore[attr-defined]
    return routed


class _Done:
    """What the scenario checks of a route's answer: the list version (its ETag)."""

    def __init__(self, list_version: int) -> None:
        self.list_version = list_version


def _read_list(engine, patient_id: uuid.UUID) -> tuple[bytes, int]:
    """The list route's audited read of the patient's list (``api.routes.gp.read_list``)."""
    from medloop.api import views  # noqa: PLC0415 (the API's modules only when reading)

    at = datetime.now(UTC)
    return read_audited(
        engine,
        _READER,
        patient_id,
        "list",
        lambda conn: views.list_view(conn, patient_id, at),
    )


_READER = Accessor(
    actor=GP.personnel.hpr_number,
    actor_role="gp",
    organisation=GP.organisation.id,
    request_id="bench-route-read",
)


def run(
    url: str | None,
    patients: int,
    parts: bool,
    callgrind: bool = False,
    reads: int = 0,
    route: bool = False,
) -> dict[str, Any]:
    """The scenario on a fresh database of the PostgreSQL server ``url`` names, or with
    ``url=None`` on a fresh SQLite file in a temporary directory (``reads``: list reads per
    patient measured instead of the prescribes; ``route``: the prescribes through the route
    function)."""
    if url is None:
        folder = tempfile.TemporaryDirectory(prefix="medloop-bench-route-")
        engine = make_engine(f"sqlite:///{folder.name}/route.db")
        try:
            return _measured(engine, patients, parts, callgrind, reads, route)
        finally:
            engine.dispose()
            folder.cleanup()
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    name = f"medloop_bench_route_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(normalise_url(url)).set(database=name).render_as_string(False))
    try:
        return _measured(engine, patients, parts, callgrind, reads, route)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _measured(
    engine, patients: int, parts: bool, callgrind: bool = False, reads: int = 0, route: bool = False
) -> dict[str, Any]:
    """The scenario on ``engine``'s fresh database (see the module docstring)."""
    upgrade(engine)
    import_catalogue(engine, DEMO)
    warm, *measured = _patients(engine, patients + 1)
    for based_on, varenr in enumerate(ROTATION[:2]):  # the catalogue knowledge is built
        _prescribe(engine, warm, based_on, varenr)
    if reads:
        for patient_id in measured:
            for based_on, varenr in enumerate(ROTATION):
                _prescribe(engine, patient_id, based_on, varenr)
    cache_for(engine).clear()  # as registered by another process
    for patient_id in measured if reads else ():  # read before: lists rendered, as a server's
        _read_list(engine, patient_id)
    prescribed = _prescribe
    if route and not reads:
        prescribed = _route(engine)
        prescribed.prepare(len(measured))  # type: ignore[attr-defined]
    spent: Counter = Counter()
    calls: Counter = Counter()
    if parts:
        _timed(spent, calls)
    gc.collect()
    gc.freeze()  # as the server does after start-up
    cpu: list[float] = []
    _instrument(callgrind, "on")
    wall = time.perf_counter()
    if reads:
        for _ in range(reads):
            for patient_id in measured:
                started = time.thread_time()
                _body, version = _read_list(engine, patient_id)
                cpu.append(time.thread_time() - started)
                assert version == len(ROTATION)
    else:
        for patient_id in measured:
            for based_on, varenr in enumerate(ROTATION):
                started = time.thread_time()
                done = prescribed(engine, patient_id, based_on, varenr)
                cpu.append(time.thread_time() - started)
                assert done.list_version == based_on + 1
    wall = time.perf_counter() - wall
    _instrument(callgrind, "off")
    n = len(cpu)
    ordered = sorted(cpu)
    found: dict[str, Any] = {
        "reads" if reads else "prescribes": n,
        **({"through": "the route function"} if route and not reads else {}),
        "load_before": os.getloadavg()[0],
        "cpu_ms": {
            "mean": round(1000 * sum(cpu) / n, 3),
            "median": round(1000 * ordered[n // 2], 3),
            "p10": round(1000 * ordered[n // 10], 3),
        },
        "wall_ms": round(1000 * wall / n, 3),
    }
    if parts:
        found["parts_us"] = {
            label: {"us": round(1e6 * spent[label] / n, 1), "calls": round(calls[label] / n, 2)}
            for label, _ in spent.most_common()
        }
    return found


def _instrument(callgrind: bool, switch: str) -> None:
    """Switch callgrind's instrumentation of this process ``on`` or ``off`` (``--callgrind``)."""
    if callgrind:
        subprocess.run(
            ["callgrind_control", "-i", switch, str(os.getpid())], check=True, capture_output=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--parts", action="store_true", help="time the command's parts too")
    parser.add_argument("--sqlite", action="store_true", help="on a SQLite file instead")
    parser.add_argument(
        "--callgrind", action="store_true", help="count only the measured prescribes (valgrind)"
    )
    parser.add_argument(
        "--read",
        type=int,
        default=0,
        metavar="READS",
        help="measure READS list reads per patient instead of the prescribes",
    )
    parser.add_argument(
        "--route",
        action="store_true",
        help="the prescribes through the route function (order_of, command_call, render)",
    )
    args = parser.parse_args()
    url = None if args.sqlite else os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
    if not url and not args.sqlite:
        raise SystemExit("MEDLOOP_TEST_POSTGRES_URL names the PostgreSQL server to measure on")
    found = run(url, args.patients, args.parts, args.callgrind, args.read, args.route)
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
