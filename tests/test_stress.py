"""Every stress script's --short form passes against a real server process.

Each script (stress/*.py) starts ``python -m stress.server`` in a subprocess
on 127.0.0.1, runs its clients, prints a table and exits non-zero when one
of its checks fails; its long form is the same command without ``--short``.
A short form must stay well under a minute (about 10 s each here).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["load", "churn", "slow", "garbage"])
def test_short_form_passes(script: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"stress.{script}", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    assert "== PASS ==" in result.stdout
