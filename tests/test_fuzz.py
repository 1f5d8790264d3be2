"""The fuzz targets run a bounded while and find nothing: the protocol's
(fuzz/fuzz_protocol.py), the SockJS core's (fuzz/fuzz_sockjs.py) and the
flow control's (fuzz/fuzz_flow.py); their seed corpora are small and
readable, and replay cleanly."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "fuzz" / "fuzz_protocol.py"
SOCKJS_TARGET = ROOT / "fuzz" / "fuzz_sockjs.py"
SOCKJS_CORPUS = ROOT / "fuzz" / "sockjs-corpus"
FLOW_TARGET = ROOT / "fuzz" / "fuzz_flow.py"
FLOW_CORPUS = ROOT / "fuzz" / "flow-corpus"
SECONDS = 10


def require_atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.fail(
            "atheris is not installed: install the test extras, "
            "pip install -e '.[test]'"
        )


def fuzz(
    tmp_path: Path,
    *options: str,
    target: Path = TARGET,
    seeds: Path = ROOT / "fuzz" / "corpus",
) -> subprocess.CompletedProcess[str]:
    # libFuzzer adds what it finds to its first corpus folder: use a copy.
    corpus = tmp_path / "corpus"
    shutil.copytree(seeds, corpus)
    return subprocess.run(
        [
            sys.executable,
            str(target),
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


def test_the_sockjs_seed_corpus_is_small_and_readable() -> None:
    seeds = sorted(SOCKJS_CORPUS.iterdir())
    assert 15 <= len(seeds) <= 40
    for seed in seeds:
        data = seed.read_bytes()
        assert len(data) < 4096, seed.name
        # One script a file: its target (session, http, frames), then lines.
        assert data[:1] in (b"s", b"h", b"f") and data.endswith(b"\n"), seed.name
        assert seed.name.startswith(("session-", "route-", "frames-")), seed.name


def test_the_sockjs_seeds_replay_cleanly(tmp_path: Path) -> None:
    require_atheris()
    seeds = sorted(SOCKJS_CORPUS.iterdir())
    result = subprocess.run(
        [sys.executable, str(SOCKJS_TARGET), *map(str, seeds)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stderr.count("Executed ") == len(seeds), result.stderr[-6000:]


def test_fuzzing_sockjs_finds_nothing(tmp_path: Path) -> None:
    require_atheris()
    result = fuzz(
        tmp_path,
        f"-max_total_time={SECONDS}",
        target=SOCKJS_TARGET,
        seeds=SOCKJS_CORPUS,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert "Done" in result.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_the_flow_seed_corpus_is_small_and_readable() -> None:
    seeds = sorted(FLOW_CORPUS.iterdir())
    assert 10 <= len(seeds) <= 40
    for seed in seeds:
        data = seed.read_bytes()
        assert len(data) < 4096 and data.endswith(b"\n"), seed.name
        # One script a file: a line of limits (numbers), then the steps,
        # plain printable ASCII.
        lines = data.decode("ascii").splitlines()
        assert all(word.isdigit() for word in lines[0].split()), seed.name
        assert all(line.isprintable() for line in lines), seed.name


def test_the_flow_seeds_replay_cleanly(tmp_path: Path) -> None:
    require_atheris()
    seeds = sorted(FLOW_CORPUS.iterdir())
    result = subprocess.run(
        [sys.executable, str(FLOW_TARGET), *map(str, seeds)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stderr.count("Executed ") == len(seeds), result.stderr[-6000:]


def test_fuzzing_the_flow_control_finds_nothing(tmp_path: Path) -> None:
    require_atheris()
    result = fuzz(
        tmp_path,
        f"-max_total_time={SECONDS}",
        target=FLOW_TARGET,
        seeds=FLOW_CORPUS,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert "Done" in result.stderr
    assert not list(tmp_path.glob("crash-*"))
