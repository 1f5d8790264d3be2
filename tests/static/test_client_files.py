"""The browser client's committed files: the generated module and the types.

Its behaviour is tested in Chromium (tests/browser); here, that the
generated files (the ES module and its ``.d.mts``) match their sources,
that the TypeScript declarations of the classic script and of the ES module
compile under ``--strict`` and reject misuse, and that every file is served.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex.adapters.aiohttp import add_client_routes

ROOT = Path(__file__).parents[2]
NODE = ROOT / "tests" / "node"
USAGE = Path(__file__).parent / "typescript"
STATIC = ROOT / "src" / "websocket_multiplex" / "static"
CLIENT_FILES = {
    "websocket-multiplex.js": "text/javascript",
    "websocket-multiplex.mjs": "text/javascript",
    "websocket-multiplex.d.ts": "text/plain",
    "websocket-multiplex.d.mts": "text/plain",
}
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
    """websocket-multiplex.mjs and .d.mts are generated: run scripts/build_client.py."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_client.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_declarations_type_check_both_builds(tsc: list[str]) -> None:
    done = compile_ts(tsc, "script_usage.ts", "module_usage.ts")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("mistakes", ["mistakes.ts", "module_mistakes.ts"])
def test_declarations_reject_misuse(tsc: list[str], mistakes: str) -> None:
    """Every line after the fourth of ``mistakes`` is an error, and no other.

    Alone, as each file is compiled here, module_mistakes.ts also shows that
    the module's declarations define no global.
    """
    done = compile_ts(tsc, mistakes)
    pattern = re.escape(mistakes) + r"\((\d+),\d+\): error"
    lines = {int(m) for m in re.findall(pattern, done.stdout)}
    source = (USAGE / mistakes).read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if n > 4 and line.strip()}
    assert lines == expected, done.stdout


async def test_every_client_file_is_served_as_committed() -> None:
    assert {f.name for f in STATIC.glob("websocket-multiplex.*")} == set(CLIENT_FILES)
    app = web.Application()
    add_client_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/websocket-multiplex"
    try:
        async with aiohttp.ClientSession() as http:
            for name, content_type in CLIENT_FILES.items():
                async with http.get(f"{base}/{name}") as response:
                    assert response.status == 200, name
                    assert response.content_type == content_type, name
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    assert await response.read() == (STATIC / name).read_bytes()
    finally:
        await runner.cleanup()
