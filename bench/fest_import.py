"""Benchmark: FEST import speed and memory against a bare lxml pass over the same file.

Generates (once) a scale-1.0 synthetic catalogue, then measures, each as the median of
--runs runs in fresh subprocesses:
  (a) a bare lxml ``iterparse`` pass that touches (and clears) every element;
  (b) the full import into a fresh SQLite database, with its memory: the peak RSS of the
      importing process and of its parser process, and the peak of their summed PSS
      (proportional set size, which counts pages the two share once: the footprint);
  (c) re-importing the same file into that database (detected as already in force).
Prints one JSON object.  Targets (issue #2): ratio (b)/(a) <= 3.0, peak RSS <= 250 MB,
re-import <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

BARE_PASS = """
import gzip, resource, sys, time, zipfile
from lxml import etree
started = time.perf_counter()
elements = 0
source = sys.argv[1]
if source.endswith(".gz"):
    source = gzip.open(source)
elif source.endswith(".zip"):
    archive = zipfile.ZipFile(source)
    source = archive.open(max(archive.infolist(), key=lambda i: i.file_size))
for _, elem in etree.iterparse(source, events=("end",)):
    elements += 1
    elem.clear(keep_tail=False)
print(time.perf_counter() - started, elements, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

IMPORT = """
import os, resource, sys, threading, time
from fest.loader import import_catalogue
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade

def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []

peak_pss = 0
done = threading.Event()
def sample():
    global peak_pss
    me = os.getpid()
    while not done.wait(0.05):
        peak_pss = max(peak_pss, pss_kb(me) + sum(pss_kb(c) for c in children(me)))

engine = make_engine(sys.argv[2])
upgrade(engine)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.perf_counter()
result = import_catalogue(engine, sys.argv[1])
seconds = time.perf_counter() - started
done.set()
sampler.join()
print(seconds, int(result.unchanged),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
      peak_pss)
"""


def run(code: str, *args: str) -> list[float]:
    output = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    ).stdout
    return [float(x) for x in output.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="measure this FEST file (.xml, .xml.gz, .zip) instead of the synthetic one",
    )
    args = parser.parse_args()

    from fest.synth import write_synthetic

    OUT.mkdir(exist_ok=True)
    if args.file is not None:
        path = args.file.resolve()
        counts_file = None
    else:
        path = OUT / f"synth-scale{args.scale}-seed{args.seed}.xml"
        counts_file = path.with_suffix(".counts.json")
        if not path.exists() or not counts_file.exists():
            counts_file.write_text(
                json.dumps(write_synthetic(path, scale=args.scale, seed=args.seed))
            )

    bare, imports, rss, parser_rss, pss, reimports = [], [], [], [], [], []
    for _ in range(args.runs):
        bare.append(run(BARE_PASS, str(path))[0])
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            seconds, unchanged, maxrss_kb, child_kb, pss_kb = run(IMPORT, str(path), url)
            pss.append(pss_kb / 1024)
            assert not unchanged
            imports.append(seconds)
            rss.append(maxrss_kb / 1024)
            parser_rss.append(child_kb / 1024)
            seconds, unchanged, _, _, _ = run(IMPORT, str(path), url)
            assert unchanged
            reimports.append(seconds)
    bare_s, import_s = statistics.median(bare), statistics.median(imports)
    print(
        json.dumps(
            {
                "file": path.name,
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "counts": json.loads(counts_file.read_text()) if counts_file else None,
                "runs": args.runs,
                "bare_iterparse_seconds": round(bare_s, 2),
                "import_seconds": round(import_s, 2),
                "ratio": round(import_s / bare_s, 2),
                "bare_iterparse_runs": [round(x, 2) for x in bare],
                "import_runs": [round(x, 2) for x in imports],
                "import_peak_pss_mb": round(max(pss), 1),
                "rss_sum_upper_bound_mb": round(
                    max(r + p for r, p in zip(rss, parser_rss, strict=True)), 1
                ),
                "importer_process_peak_rss_mb": round(max(rss), 1),
                "parser_process_peak_rss_mb": round(max(parser_rss), 1),
                "reimport_seconds": round(statistics.median(reimports), 3),
                "targets": {"ratio": 3.0, "import_peak_pss_mb": 250, "reimport_seconds": 1.0},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
