"""The protocol fuzz target (fuzz/fuzz_protocol.py) runs a bounded while and
finds nothing; its seed corpus replays cleanly."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "fuzz" / "fuzz_protocol.py"
SECONDS = 10


def require_atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.fail(
            "atheris is not installed: install the test extras, "
            "pip install -e '.[test]'"
        )


def fuzz(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    # libFuzzer adds what it finds to its first corpus folder: use a copy.
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    return subprocess.run(
        [
            sys.executable,
            str(TARGET),
            f"-artifact_prefix={tmp_path}/",
            *options,
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SECONDS + 110,
    )


def test_the_seed_corpus_is_small_and_readable() -> None:
    seeds = list((ROOT / "fuzz" / "corpus").iterdir())
    assert 20 <= len(seeds) <= 100
    assert all(seed.stat().st_size < 4096 for seed in seeds)


def test_fuzzing_the_protocol_finds_nothing(tmp_path: Path) -> None:
    require_atheris()
    result = fuzz(tmp_path, f"-max_total_time={SECONDS}")
    assert result.returncode == 0, result.stderr[-6000:]
    assert "Done" in result.stderr
    assert not list(tmp_path.glob("crash-*"))
