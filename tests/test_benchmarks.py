"""``benchmarks/run.py --smoke``: the harness works and every server answers.

The smoke run starts every server of the table (ours over SockJS, its raw
endpoint, the plain WebSocket route and ASGI; the original node server; a
plain aiohttp echo; the trivial echo behind the generator's ceiling) and
runs every workload briefly, with every reply compared to its request. It
asserts no timing: figures from a tenth of a second measure nothing.

Needs ``npm ci --prefix benchmarks/node`` (the generator's ``ws``) and
``npm ci --prefix tests/node`` (the original server), as scripts/test.sh
does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


def test_smoke_run_answers_on_every_row(tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(output.read_text())
    assert results["failures"] == []
    measured = {(run["target"], run["workload"]) for run in results["runs"]}
    for target in results["targets"]:
        workloads = {"W1", "W2", "W3"} | ({"M1"} if target["memory"] else set())
        for workload in workloads:
            assert (target["name"], workload) in measured
    assert {t["name"] for t in results["targets"]} >= {
        "ceiling",
        "original",
        "original-raw",
        "ours-sockjs",
        "ours-sockjs+deflate",
        "ours-raw",
        "ours-asgi",
        "aiohttp-echo",
    }
    assert "Ratios" in done.stdout
