"""Real processes for the deployment tests: chat workers, nginx, Redis.

Every process is started by a context manager that kills it on the way
out, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from ..support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CHAT_SERVER = ROOT / "examples" / "chat" / "app.py"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"
SOCKJS_CLIENT = ROOT / "tests/node/node_modules/sockjs-client/dist/sockjs.min.js"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a system dependency; under CI, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the test script installs it)")
    pytest.skip(reason)


def require_redis() -> str:
    """The Redis URL to use, after checking that Redis answers there."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis does not answer at {REDIS_URL} ({exc}); set REDIS_URL")
    finally:
        client.close()
    return REDIS_URL


def require_nginx() -> str:
    if not os.access(NGINX, os.X_OK):
        unavailable(f"nginx is not installed ({NGINX}): apt-get install nginx")
    return NGINX


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``process`` prints on stdout, within ``timeout`` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            raise RuntimeError(f"{process.args!r} printed {line!r}, then nothing")
        if select.select([process.stdout], [], [], left)[0]:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{process.args!r} closed stdout after {line!r}")
            line += chunk
    return line.decode()


@contextlib.contextmanager
def chat_workers(
    count: int, *args: str, logs: Path | None = None
) -> Iterator[list[tuple[int, int]]]:
    """Start ``count`` chat workers; yields their (port, pid) once listening.

    With ``logs``, each worker's log (its stderr) goes to the file
    ``logs / worker_log(port)`` instead of the test's stderr.
    """
    started: list[tuple[int, subprocess.Popen[bytes]]] = []
    with contextlib.ExitStack() as files:
        try:
            for _ in range(count):
                port = free_port()
                command = [sys.executable, str(CHAT_SERVER), "--port", str(port)]
                stderr = None
                if logs is not None:
                    stderr = files.enter_context((logs / worker_log(port)).open("wb"))
                process = subprocess.Popen(
                    [*command, *args], stdout=subprocess.PIPE, stderr=stderr
                )
                started.append((port, process))
            for port, process in started:
                line = read_line(process, timeout=20)
                assert f"listening on http://127.0.0.1:{port}/" in line, line
            yield [(port, process.pid) for port, process in started]
        finally:
            for _, process in started:
                stop(process)


def worker_log(port: int) -> str:
    return f"worker-{port}.log"


def nginx_config(listen: str, workers: list[str], *, sticky: bool = True) -> str:
    """deploy/nginx.conf with its placeholders filled.

    ``sticky=False`` drops the ``hash`` line (round robin), to show what
    breaks without it.
    """
    config = NGINX_TEMPLATE.read_text()
    for name, value in (
        ("LISTEN", listen),
        ("WORKER_1", workers[0]),
        ("WORKER_2", workers[1]),
    ):
        assert f"{{{{{name}}}}}" in config, name
        config = config.replace(f"{{{{{name}}}}}", value)
    assert "{{" not in config, "a placeholder the test does not know"
    if not sticky:
        config, found = re.subn(r"\n\s*hash \$sockjs_session consistent;", "", config)
        assert found == 1
    return config


@contextlib.contextmanager
def nginx(prefix: Path, workers: list[str], *, sticky: bool = True) -> Iterator[str]:
    """Run nginx in the foreground before ``workers``, files under ``prefix``.

    Yields its base URL once it accepts connections.
    """
    port = free_port()
    config = nginx_config(f"127.0.0.1:{port}", workers, sticky=sticky)
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)  # nginx's workers (nobody when we are root) enter it
    for folder in ("logs", "temp"):
        (prefix / folder).mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(config)
    command = [
        require_nginx(), "-p", f"{prefix}/", "-c", str(conf),
        "-e", "logs/error.log", "-g", "daemon off;",
    ]  # fmt: skip
    process = subprocess.Popen(command)
    try:
        wait_listening(port, process, prefix / "logs" / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = log.read_text() if log.exists() else ""
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{errors}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port)),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not listen within 10 s")
