"""The control-plane benchmark runs end to end at its smallest sizes and prints its three measurements.

Timings on a shared machine say nothing about correctness, so only the lines' form and that every value was
measured (no ERROR) are checked, not whether a target is met.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_serve.py"
NUMBER = r"\d+(?:\.\d+)?(?:e[+-]?\d+)?"
LINES = {
    "overhead": re.compile(
        rf"^remote run overhead, 4-way fan-out: (?P<measured>{NUMBER}) s  \(baseline: local (?P<baseline>{NUMBER}) s, "
        rf"ratio (?P<ratio>{NUMBER})x, target <= 2x, (?:ok|MISS)\)$"
    ),
    "kubernetes": re.compile(
        rf"^remote run on Kubernetes emulator, 3 tasks: (?P<measured>{NUMBER}) s  \(baseline: local "
        rf"(?P<baseline>{NUMBER}) s, ratio (?P<ratio>{NUMBER})x, target <= 2x, (?:ok|MISS)\)$"
    ),
    "watch": re.compile(
        rf"^WatchRun fan-in, 5 watchers of a 50-way fan-out: (?P<measured>{NUMBER}) events/s  \(baseline: 1 watcher "
        rf"(?P<baseline>{NUMBER}) events/s, ratio (?P<ratio>{NUMBER})x, target info\)$"
    ),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_quick_run_prints_the_three_measurements_each_beside_its_baseline() -> None:
    done = _run("--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name, pattern in LINES.items():
        found = [m for m in map(pattern.match, lines) if m]
        assert len(found) == 1, f"{name}: no line like {pattern.pattern!r} in:\n{done.stdout}\n{done.stderr}"
        measured, baseline, ratio = (float(found[0][k]) for k in ("measured", "baseline", "ratio"))
        assert measured > 0
        assert baseline > 0
        # The printed ratio is the printed values' ratio (each rounded to 3 significant digits).
        assert ratio == pytest.approx(measured / baseline, rel=0.02)
    assert "ERROR" not in done.stdout


def test_an_unknown_measurement_is_refused_with_the_accepted_names() -> None:
    done = _run("--only", "overhead,latency")
    assert done.returncode == 2
    assert "'overhead,latency' names unknown measurements ['latency']" in done.stderr
    assert "overhead,kubernetes,watch" in done.stderr
