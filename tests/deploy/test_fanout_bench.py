"""benchmarks/fanout.py --short runs to the end and loses no message.

No timing is asserted: the machine running the tests is not a benchmark
machine. Without Redis the benchmark runs the in-memory case only.
"""

from __future__ import annotations

import subprocess
import sys

from .processes import ROOT


def test_the_short_benchmark_delivers_everything() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deliveries/s" in done.stdout
