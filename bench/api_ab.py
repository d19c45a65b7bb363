"""Benchmark: two medloop trees and the floor, interleaved in one invocation (issue #20).

``bench/api.py --floor`` compares medloop with the floor; this compares a base tree (``--base``,
e.g. a ``git archive`` of main, run with this venv through ``PYTHONPATH``) with this tree, each
against the floor, on one private PostgreSQL cluster (``--pg-port``) and one database: three
servers (2 workers each) run side by side and each run measures the three in a rotating order
with ``bench/api.py``'s phases (16 clients prescribe the rotation to 4 patients each, then read
those lists 100 times each); the first run warms up. Prints every run's figures as JSON.

The servers' working directory is /tmp: ``python -c`` puts the working directory first on
``sys.path``, so a base server started inside a source tree would import that tree's medloop."""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
import api  # noqa: E402
from sqlalchemy import text  # noqa: E402

from fest.loader import import_catalogue  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP  # noqa: E402
from medloop.store.db import make_engine, normalise_url  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

os.chdir(tempfile.gettempdir())  # not a source tree (see the module docstring)
p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--base", required=True, help="the base tree (its medloop is imported)")
p.add_argument("--pg-port", type=int, required=True, help="the private cluster's port")
p.add_argument("--http-port", type=int, default=19700, help="base; this tree +2; floor +4")
p.add_argument("--runs", type=int, default=6, help="measured runs (after one warm-up)")
a = p.parse_args()
args = argparse.Namespace(
    clients=16,
    client_processes=1,
    seconds=60.0,
    iterations=100,
    patients_per_client=4,
    catalogue=api.DEMO,
    workers=2,
)
out = {"started": time.strftime("%H:%M:%S", time.gmtime()), "runs": []}
with api.private_postgres(a.pg_port) as base_url:
    admin, name, url = api._postgres(base_url)
    servers = []
    probes = []
    try:
        engine = make_engine(url)
        upgrade(engine)
        import_catalogue(engine, args.catalogue, allow_shrink=True, allow_older=True)
        per_phase = args.clients * args.patients_per_client
        patients = api._patients(engine, 3 * (a.runs + 1) * per_phase + 2)
        tokens = {
            "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
            "pharmacist": "",
        }
        directory = Path(tempfile.mkdtemp(prefix="edge-ab3-"))
        calibration = directory / "floor.calibration"
        api._calibrate_floor(engine, patients.pop(), patients.pop(), tokens["gp"], calibration)
        engine.dispose()
        env = {
            **os.environ,
            "MEDLOOP_ALLOW_DEV_KEYS": "1",
            "MEDLOOP_DATABASE_URL": url,
            "MEDLOOP_SCHEDULER": "off",
        }
        env.pop("PYTHONPATH", None)
        env_base = {**env, "PYTHONPATH": a.base}
        env_branch = dict(env)
        ports = {"base": a.http_port, "branch": a.http_port + 2, "floor": a.http_port + 4}
        started = {
            "base": api.start_server(env_base, ports["base"], args.workers),
            "branch": api.start_server(env_branch, ports["branch"], args.workers),
            "floor": api.start_floor(calibration, url, ports["floor"], args.workers),
        }
        servers.extend(started.values())
        for which, server in started.items():
            api._wait_until_serving(ports[which], server)
        admin_url = normalise_url(base_url)
        probes = [api._BackendCpu(admin_url, name, False), api._BackendCpu(admin_url, name, True)]
        probe = {"base": probes[0], "branch": probes[0], "floor": probes[1]}
        orders = [
            ("base", "branch", "floor"),
            ("branch", "floor", "base"),
            ("floor", "base", "branch"),
            ("branch", "base", "floor"),
            ("base", "floor", "branch"),
            ("floor", "branch", "base"),
        ]
        for run in range(a.runs + 1):
            order = orders[run % len(orders)]
            measured = {
                "order": list(order),
                "load_before": api._loadavg(),
                "at": time.strftime("%H:%M:%S", time.gmtime()),
            }
            for which in order:
                share = [patients.pop() for _ in range(per_phase)]
                measured[which] = api._floor_phase(
                    ports[which], started[which].pid, share, tokens, args, probe[which]
                )
            measured["load_after"] = api._loadavg()
            if run > 0:
                out["runs"].append(measured)
            r = measured
            print(
                run,
                order,
                r["load_before"],
                {
                    w: (
                        r[w]["prescribe"]["server_cpu_ms"],
                        r[w]["prescribe"]["requests_per_s"],
                        r[w]["list read"]["server_cpu_ms"],
                        r[w]["list read"]["requests_per_s"],
                        r[w]["prescribe"]["statuses"],
                        r[w]["list read"]["statuses"],
                    )
                    for w in order
                },
                file=sys.stderr,
                flush=True,
            )
    finally:
        for s in servers:
            s.terminate()
            s.wait(timeout=30)
        for pr in probes:
            pr.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
out["ended"] = time.strftime("%H:%M:%S", time.gmtime())
print(json.dumps(out, indent=1))
