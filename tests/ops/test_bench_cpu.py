"""bench/api.py reads a process's CPU time exactly (issue #20): the figures it divides by the
requests served come from each live thread's schedstat, not /proc/PID/stat's whole clock ticks,
and an ended thread's time (only in stat) is never lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="needs Linux's /proc with per-thread schedstat"
)

_CHILD = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {bench!r})
    import api

    def burn(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    burn(0.037)
    print(api._cpu_seconds(api.os.getpid()), time.process_time())
    ended = threading.Thread(target=burn, args=(0.2,))
    ended.start()
    ended.join()
    print(api._cpu_seconds(api.os.getpid()), time.process_time())
    """
)


def _readings() -> list[tuple[float, float]]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(bench=str(BENCH))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [tuple(map(float, line.split())) for line in done.stdout.split("\n") if line.strip()]


def test_cpu_time_is_exact_while_every_thread_lives_and_keeps_ended_threads():
    (live_read, live_true), (after_read, after_true) = _readings()
    # Every thread alive: the exact figure, not one cut to 10 ms ticks.
    assert abs(live_read - live_true) < 0.002
    # A thread that ran 200 ms and ended: its time is still counted, from stat, whose user and
    # system times are each cut to whole 10 ms ticks (at worst two ticks short of the truth).
    assert after_read - live_read > 0.2 - 0.0201 - 0.002
    assert after_true - 0.0201 <= after_read <= after_true + 0.002
