"""The cost of one request, for the capacity model in docs/scaling.md (issue #21).

Builds a PostgreSQL primary of its own (``scripts/pg-replica``: a cluster on free ports in a
temporary folder, with its streaming replica, as production would run it) so that the CPU of
*its* processes and *its* WAL are not mixed with anything else on a shared machine. On a fresh
database with the demo catalogue it starts ``medloop serve --workers 1`` and sends the requests
of each kind one after another from one client (no concurrency: the figures are the work one
request costs, not a saturation measurement), in ``--rounds`` rounds, each kind on patients of
its own. Per kind it reports the medians over the rounds of:

- ``server_cpu_ms``: CPU of the server process (user + system) per request;
- ``postgres_cpu_ms``: CPU of every process of the primary cluster per request (the backend,
  the WAL writer, the checkpointer, the WAL sender to the replica);
- ``wal_bytes``: WAL written per request (``pg_current_wal_lsn`` before and after; no forced
  checkpoint, so full-page images appear as often as the server's own checkpoints cause them);
- ``stored_bytes``: growth of the database per request (``pg_database_size``: heap, indexes and
  TOAST, which grow by 8 KB pages, so take it over many requests);
- ``p50_ms``: the median latency seen by the client (loopback; the client shares the machine).

Kinds: ``list read`` (GP), ``dry-run check``, ``prescribe with checks``, ``pharmacy read``,
``dispense``, ``patient own list`` and ``chart a PRN dose`` (a nurse charts a paracetamol dose
given as needed for an admitted resident: admission, PRN limits, decision support on the last
24 h, audit), the requests a capacity model multiplies by the country's volumes.

  .venv/bin/python bench/costs.py --requests 300 --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
import api  # noqa: E402 - bench/api.py: patients, tokens, server start
import scale  # noqa: E402 - bench/scale.py: CPU of one cluster's processes

from fest.loader import import_catalogue  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP, NURSE, PHARMACIST  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pg-replica"
PARACETAMOL = "090028"
PARACETAMOL_EAN = "7046260900288"
PRN = {
    "use": "as-needed",
    "as_needed": [
        {
            "amount": {"value": 1, "unit": "tablett"},
            "max_per_24h": {"value": 4, "unit": "tablett"},
            "min_interval": {"value": 6, "unit": "hour"},
        }
    ],
}
KINDS = (
    "list read",
    "dry-run check",
    "prescribe with checks",
    "pharmacy read",
    "dispense",
    "patient own list",
    "chart a PRN dose",
)


class Session:
    """One keep-alive connection; every request must succeed."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(
        self, method: str, path: str, token: str, body=None, headers=None, expect: int = 200
    ) -> tuple[float, dict, str]:
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        started = time.perf_counter()
        self.http.request(method, path, body=payload, headers=sent)
        response = self.http.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return elapsed, (json.loads(data) if data else {}), response.getheader("ETag", "")


class Meter:
    """CPU of the server and of the primary cluster, WAL position and database size."""

    def __init__(self, admin_url: str, database: str, pair: Path, server_pid: int) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.database, self.pair, self.server_pid = database, pair, server_pid

    def read(self) -> dict[str, float]:
        with self.admin.connect() as conn:
            wal = conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
            size = conn.execute(
                text("SELECT pg_database_size(:d)"), {"d": self.database}
            ).scalar_one()
        return {
            "server": api._cpu_seconds_of_tree(self.server_pid),
            "postgres": scale._cluster_cpu(self.pair / "primary"),
            "wal": float(wal),
            "size": float(size),
        }


def _prescribe_body(varenr: str, **fields) -> dict:
    return {
        "entry_id": str(uuid.uuid4()),
        "drug": {"varenr": varenr},
        "use": "regular",
        "start": date.today().isoformat(),
        "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        **fields,
    }


def _batch(
    kind: str, session: Session, patients: list, tokens: dict, n: int, state: dict
) -> list[float]:
    """``n`` requests of ``kind``; what later kinds need (ETags, prescriptions) goes in
    ``state``."""
    gp, pharmacist, nurse = tokens["gp"], tokens["pharmacist"], tokens["nurse"]
    timings = []
    for k in range(n):
        patient = patients[k % len(patients)]
        pid = patient.id
        if kind == "list read":
            ms, _, etag = session.send("GET", f"/patients/{pid}/list", gp)
            state.setdefault("etag", {})[pid] = etag
        elif kind == "dry-run check":
            ms, _, _ = session.send(
                "POST",
                f"/patients/{pid}/list/check",
                gp,
                {"proposed": [{"drug": {"varenr": api.ROTATION[k % 10]}}]},
            )
        elif kind == "prescribe with checks":
            varenr = api.ROTATION[(k // len(patients)) % 10]
            body = _prescribe_body(varenr)
            ms, _, etag = session.send(
                "POST",
                f"/patients/{pid}/prescriptions",
                gp,
                body,
                {"If-Match": state["etag"][pid], "Idempotency-Key": str(uuid.uuid4())},
                201,
            )
            state["etag"][pid] = etag
            state.setdefault("rx", []).append((pid, body["terms"]["prescription_id"], varenr))
        elif kind == "pharmacy read":
            ms, _, etag = session.send("GET", f"/pharmacy/patients/{pid}/prescriptions", pharmacist)
            state.setdefault("pharmacy_etag", {})[pid] = etag
        elif kind == "dispense":
            # Each of the n prescriptions of this round dispensed once, with the ETag of the
            # pharmacy's read (or of the patient's previous dispense).
            rx_pid, rx, varenr = state["rx"][k % len(state["rx"])]
            ms, _, etag = session.send(
                "POST",
                f"/pharmacy/patients/{rx_pid}/dispenses",
                pharmacist,
                {
                    "dispense_id": str(uuid.uuid4()),
                    "prescription_id": rx,
                    "varenr": varenr,
                    "dispensed_on": date.today().isoformat(),
                    "quantity": {"packages": 1},
                    "batch": "B1",
                    "expiry": "2030-01-01",
                },
                {"If-Match": state["pharmacy_etag"][rx_pid]},
                201,
            )
            state["pharmacy_etag"][rx_pid] = etag
        elif kind == "patient own list":
            ms, _, _ = session.send("GET", "/me/list", patient.token)
        elif kind == "chart a PRN dose":
            entry = state["prn"][pid]
            ms, _, _ = session.send(
                "POST",
                f"/nursing/patients/{pid}/administrations",
                nurse,
                {
                    "administration_id": str(uuid.uuid4()),
                    "entry_id": entry,
                    "outcome": "given",
                    "given_at": datetime.now(UTC).isoformat(),
                    "dose": {"value": 1, "unit": "tablett"},
                    "scan": PARACETAMOL_EAN,
                },
                None,
                201,
            )
        else:  # pragma: no cover - KINDS lists every kind
            raise ValueError(kind)
        timings.append(ms)
    return timings


def _admit(session: Session, patients: list, tokens: dict, state: dict) -> None:
    """A ward of the demo nursing home, each resident with paracetamol as needed, admitted."""
    ward = str(uuid.uuid4())
    session.send(
        "POST",
        "/nursing/wards",
        tokens["ward_admin"],
        {"ward_id": ward, "name": f"Kostnad {ward[:8]}"},
        expect=201,
    )
    for patient in patients:
        _, _, etag = session.send("GET", f"/patients/{patient.id}/list", tokens["gp"])
        body = _prescribe_body(PARACETAMOL, use="as-needed", dosage=PRN)
        session.send(
            "POST",
            f"/patients/{patient.id}/prescriptions",
            tokens["gp"],
            body,
            {"If-Match": etag},
            201,
        )
        state.setdefault("prn", {})[patient.id] = body["entry_id"]
        session.send(
            "POST",
            f"/nursing/patients/{patient.id}/admissions",
            tokens["ward_admin"],
            {
                "admission_id": str(uuid.uuid4()),
                "ward_id": ward,
                "admitted_at": datetime.now(UTC).isoformat(),
                "reason": "Langtidsopphold (benchmark)",
                "decision_reference": "Vedtak 2026/0001 (benchmark)",
            },
            expect=201,
        )


def run(primary_url: str, pair: Path, args: argparse.Namespace) -> dict:
    name = f"medloop_bench_costs_{uuid.uuid4().hex[:8]}"
    admin = create_engine(primary_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = primary_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, api.DEMO, allow_shrink=True, allow_older=True)
    # Patients: one set per round and kind group; a PRN dose can be charted once per
    # resident per 6 hours, so the charting kind gets a resident per request.
    per_round = args.requests // 10 + 1
    patients = api._patients(engine, args.rounds * (per_round + args.requests) + 1)
    engine.dispose()
    port = api._free_port()
    env = {
        **__import__("os").environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_DATABASE_URL": url,
        "MEDLOOP_SCHEDULER": "off",
    }
    server = api.start_server(env, port, 1)
    tokens = {
        "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
        "pharmacist": issue_token(
            "pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id
        ),
        "nurse": issue_token("nurse", NURSE.personnel.hpr_number, NURSE.organisation.id),
        "ward_admin": issue_token(
            "nurse", NURSE.personnel.hpr_number, NURSE.organisation.id, ward_admin=True
        ),
    }
    per_kind: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    try:
        api._wait_until_serving(port, server)
        session = Session(port)
        meter = Meter(primary_url, name, pair, server.pid)
        # Warm up: the first command builds the catalogue knowledge in the worker.
        warm = patients.pop()
        _batch("list read", session, [warm], tokens, 1, {})
        for round_ in range(args.rounds):
            group = [patients.pop() for _ in range(per_round)]
            residents = [patients.pop() for _ in range(args.requests)]
            state: dict = {}
            _admit(session, residents, tokens, state)
            for kind in KINDS:
                who = residents if kind == "chart a PRN dose" else group
                before = meter.read()
                timings = _batch(kind, session, who, tokens, args.requests, state)
                after = meter.read()
                n = len(timings)
                per_kind[kind].append(
                    {
                        "round": round_ + 1,
                        "server_cpu_ms": (after["server"] - before["server"]) * 1000 / n,
                        "postgres_cpu_ms": (after["postgres"] - before["postgres"]) * 1000 / n,
                        "wal_bytes": (after["wal"] - before["wal"]) / n,
                        "stored_bytes": (after["size"] - before["size"]) / n,
                        "p50_ms": statistics.median(timings),
                    }
                )
        session.http.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    keys = ("server_cpu_ms", "postgres_cpu_ms", "wal_bytes", "stored_bytes", "p50_ms")
    return {
        kind: {
            **{key: round(statistics.median(r[key] for r in rounds), 3) for key in keys},
            "rounds": [{key: round(r[key], 3) for key in keys} for r in rounds],
        }
        for kind, rounds in per_kind.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="medloop-costs-", dir="/tmp"))
    folder.chmod(0o755)
    pair = folder / "pair"
    ports = api._free_port(), api._free_port()
    exports = subprocess.run(
        [str(SCRIPT), "start", str(pair), *map(str, ports)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
    started = datetime.now(UTC)
    try:
        measured = run(found["MEDLOOP_TEST_REPLICA_PRIMARY_URL"], pair, args)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(pair)], check=False)
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    print(
        json.dumps(
            {
                "conditions": {
                    "started": started.strftime("%Y-%m-%d %H:%M UTC"),
                    "requests_per_kind_and_round": args.requests,
                    "rounds": args.rounds,
                    "workers": 1,
                    "clients": 1,
                    "load_average_at_end": load,
                },
                "per_request": measured,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
