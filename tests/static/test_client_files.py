"""The browser client's committed files: the generated module and the types.

Its behaviour is tested in Chromium (tests/browser); here, that the ES
module matches its source and that the TypeScript declarations compile
under ``--strict`` and reject misuse.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NODE = ROOT / "tests" / "node"
USAGE = Path(__file__).parent / "typescript"
TSC_OPTIONS = [
    "--noEmit",
    "--strict",
    "--target",
    "es2020",
    "--lib",
    "es2020,dom",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
]


@pytest.fixture(scope="module")
def tsc() -> list[str]:
    """The pinned compiler; fail (not skip) when tests/node is not installed."""
    wanted = json.loads((NODE / "package.json").read_text())["dependencies"][
        "typescript"
    ]
    manifest = NODE / "node_modules" / "typescript" / "package.json"
    found = json.loads(manifest.read_text())["version"] if manifest.exists() else None
    if found != wanted:
        pytest.fail(
            f"tests/node/node_modules has typescript {found or 'missing'}, the tests "
            f"need {wanted}: run `npm ci --prefix tests/node`",
            pytrace=False,
        )
    return ["node", str(manifest.parent / "bin" / "tsc")]


def compile_ts(tsc: list[str], *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tsc, *TSC_OPTIONS, *(str(USAGE / f) for f in files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_module_build_is_up_to_date() -> None:
    """websocket-multiplex.mjs is generated: run scripts/build_client.py."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_client.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_declarations_type_check_both_builds(tsc: list[str]) -> None:
    done = compile_ts(tsc, "script_usage.ts", "module_usage.ts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_declarations_reject_misuse(tsc: list[str]) -> None:
    done = compile_ts(tsc, "mistakes.ts")
    lines = {
        int(m) for m in re.findall(r"mistakes\.ts\((\d+),\d+\): error", done.stdout)
    }
    source = (USAGE / "mistakes.ts").read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if n > 4 and line.strip()}
    assert lines == expected, done.stdout
