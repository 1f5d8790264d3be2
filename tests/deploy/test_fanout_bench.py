"""benchmarks/fanout.py --short runs to the end and loses no message.

No timing is asserted: the machine running the tests is not a benchmark
machine. Without Redis (at ``$REDIS_URL``) the benchmark runs the in-memory
rows only, and this test then skips, or fails under CI, as every Redis test
does.
"""

from __future__ import annotations

import subprocess
import sys

from .processes import ROOT, unavailable


def test_the_short_benchmark_delivers_everything() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deliveries/s" in done.stdout
    brokers = [line.split("|")[0].strip() for line in done.stdout.splitlines()]
    assert "memory" in brokers, done.stdout
    if "redis" not in brokers:
        why = [line for line in done.stderr.splitlines() if "Redis" in line]
        unavailable(f"the memory rows passed; {' '.join(why) or 'no Redis rows'}")
