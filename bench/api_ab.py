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
per_phase = args.clients * args.patients_per_client
patients = 3 * (a.runs + 1) * per_phase + 2
with (
    api.private_postgres(a.pg_port) as base_url,
    api.floor_world(base_url, args.catalogue, patients) as world,
):
    env = api.server_env(world.url)
    env.pop("PYTHONPATH", None)
    ports = {"base": a.http_port, "branch": a.http_port + 2, "floor": a.http_port + 4}
    base = api.start_server({**env, "PYTHONPATH": a.base}, ports["base"], args.workers)
    world.serve("base", ports["base"], base, floor=False)
    branch = api.start_server(env, ports["branch"], args.workers)
    world.serve("branch", ports["branch"], branch, floor=False)
    floor = api.start_floor(world.calibration, world.url, ports["floor"], args.workers)
    world.serve("floor", ports["floor"], floor, floor=True)
    world.until_serving()
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
        r = world.measure(order, per_phase, args, at=time.strftime("%H:%M:%S", time.gmtime()))
        if run > 0:
            out["runs"].append(r)
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
out["ended"] = time.strftime("%H:%M:%S", time.gmtime())
print(json.dumps(out, indent=1))
