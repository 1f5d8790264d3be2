"""Throughput, server CPU per message, latency and memory, side by side.

    .venv/bin/python benchmarks/run.py            # everything: ~6.5 minutes
    .venv/bin/python benchmarks/run.py --smoke    # every server answers: ~20 s

Needs ``npm ci --prefix tests/node`` (the original server's packages) and
``npm ci --prefix benchmarks/node`` (the load generator's ``ws``).

Every server runs in a process of its own, pinned to one core; the load
generators (benchmarks/node/loadgen.js) run on the other cores. Each
repetition runs every server in turn, so that the ratios compare figures
measured minutes apart, not hours. Workloads (payloads: 100 bytes with
commas in them, echoed back):

W1  1 connection x 3 channels, 50 requests outstanding per channel
W2  100 connections x 5 channels, 5 outstanding per channel
W3  1 connection, 1 channel, strict ping-pong: latency p50 / p99
M1  2,000 idle connections with 10 channels each: server RSS delta per
    connection, after a full garbage collection

Server CPU per message is (utime + stime of the server process, from
/proc/<pid>/stat, over the measuring window) / (replies received in it):
it stays comparable when the load generator, not the server, limits the
throughput. The ``ceiling`` rows run the same generator against a trivial
echo that costs next to nothing: no server row can be faster than it.

Results: a table on stdout, the ratios against the original node server
and against a plain aiohttp echo, and everything as JSON
(benchmarks/results/latest.json; ``--smoke`` writes smoke.json).
docs/PERFORMANCE.md explains the method and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
LOADGEN = BENCHMARKS / "node" / "loadgen.js"
RESULTS = BENCHMARKS / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchmarkError(Exception):
    """A server or a generator failed, or answered something unexpected."""


# -- what runs ---------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A server program; it prints a ready line and obeys ``gc`` (_common.py)."""

    key: str
    argv: tuple[str, ...]
    about: str


PY = sys.executable
SERVERS = {
    server.key: server
    for server in (
        Server(
            "trivial",
            ("node", "benchmarks/servers/trivial_echo.js"),
            "a trivial echo in node, no WebSocket library: the generator's ceiling",
        ),
        Server(
            "original",
            ("node", "--expose-gc", "benchmarks/servers/original.js"),
            "the original: websocket-multiplex 0.1.0 on sockjs-node 0.3.24",
        ),
        Server(
            "ours-aiohttp",
            (PY, "benchmarks/servers/ours_aiohttp.py"),
            "ours on aiohttp: add_sockjs_endpoint + add_websocket_route",
        ),
        Server(
            "ours-aiohttp-uvloop",
            (PY, "benchmarks/servers/ours_aiohttp.py", "--uvloop"),
            "the same on uvloop (pip install websocket-multiplex[uvloop])",
        ),
        Server(
            "ours-aiohttp-callbacks",
            (PY, "benchmarks/servers/ours_aiohttp.py", "--callbacks"),
            "the same, echo0 .. echo9 as task-free ChannelHandler services",
        ),
        Server(
            "ours-asgi",
            (PY, "benchmarks/servers/ours_asgi.py"),
            "ours under uvicorn[standard] (httptools, websockets, uvloop): "
            "SockJSASGI + MultiplexASGI",
        ),
        Server(
            "ours-asgi-pure",
            (PY, "benchmarks/servers/ours_asgi.py", "--pure"),
            "the same on uvicorn's pure-Python choices (h11, wsproto, asyncio)",
        ),
        Server(
            "aiohttp-echo",
            (PY, "benchmarks/servers/aiohttp_echo.py"),
            "a plain aiohttp WebSocket echo, no multiplexing",
        ),
    )
}


@dataclass(frozen=True)
class Target:
    """One row of the table: a server, the endpoint and framing used."""

    name: str
    server: str
    path: str
    framing: str  # "raw": one frame per text message; "sockjs": SockJS framing
    about: str
    deflate: bool = False  # the client offers permessage-deflate
    compressing: bool = False  # the server accepts it at this path
    memory: bool = True  # run M1
    original: str | None = None  # the original's row on the same carrier
    resume: bool = False  # the generator negotiates a resumable session


TARGETS = (
    Target(
        "ceiling",
        "trivial",
        "/echo",
        "raw",
        "load generator ceiling, raw framing (trivial echo)",
        memory=False,
    ),
    Target(
        "ceiling-sockjs",
        "trivial",
        "/multiplex",
        "sockjs",
        "load generator ceiling, SockJS framing (trivial echo)",
        memory=False,
    ),
    Target(
        "original",
        "original",
        "/multiplex",
        "sockjs",
        "original node server, SockJS websocket transport",
    ),
    Target(
        "original-raw",
        "original",
        "/multiplex/websocket",
        "raw",
        "original node server, raw endpoint <prefix>/websocket",
    ),
    Target(
        "ours-sockjs",
        "ours-aiohttp",
        "/multiplex",
        "sockjs",
        "ours, add_sockjs_endpoint, SockJS websocket transport; the client "
        "offers permessage-deflate (as browsers do), the default declines it",
        deflate=True,
        original="original",
    ),
    Target(
        "ours-sockjs+deflate",
        "ours-aiohttp",
        "/multiplex-deflate",
        "sockjs",
        "the same with compress=True: permessage-deflate accepted",
        deflate=True,
        compressing=True,
        original="original",
    ),
    Target(
        "ours-sockjs-uvloop",
        "ours-aiohttp-uvloop",
        "/multiplex",
        "sockjs",
        "ours-sockjs, the server running on uvloop",
        deflate=True,
        original="original",
    ),
    Target(
        "ours-sockjs-callbacks",
        "ours-aiohttp-callbacks",
        "/multiplex",
        "sockjs",
        "ours-sockjs with the echo as task-free ChannelHandler callbacks",
        deflate=True,
        original="original",
    ),
    Target(
        "ours-sockjs+resume",
        "ours-aiohttp",
        "/multiplex",
        "sockjs",
        "ours-sockjs, the generator speaking the resumable-session extension "
        "(a hello first, acks every 32 frames), as our clients do",
        deflate=True,
        original="original",
        resume=True,
    ),
    Target(
        "ours-raw+resume",
        "ours-aiohttp",
        "/multiplex/websocket",
        "raw",
        "ours-raw with the resumable-session extension",
        original="original-raw",
        resume=True,
    ),
    Target(
        "ours-raw",
        "ours-aiohttp",
        "/multiplex/websocket",
        "raw",
        "ours, add_sockjs_endpoint's raw endpoint <prefix>/websocket",
        original="original-raw",
    ),
    Target(
        "ours-raw-uvloop",
        "ours-aiohttp-uvloop",
        "/multiplex/websocket",
        "raw",
        "ours-raw, the server running on uvloop",
        original="original-raw",
    ),
    Target(
        "ours-raw-callbacks",
        "ours-aiohttp-callbacks",
        "/multiplex/websocket",
        "raw",
        "ours-raw with the echo as task-free ChannelHandler callbacks",
        original="original-raw",
    ),
    Target(
        "ours-ws",
        "ours-aiohttp",
        "/ws",
        "raw",
        "ours, add_websocket_route (plain aiohttp WebSocket)",
        original="original-raw",
    ),
    Target(
        "ours-asgi-sockjs",
        "ours-asgi",
        "/multiplex",
        "sockjs",
        "ours, SockJSASGI under uvicorn[standard], SockJS websocket transport",
        deflate=True,
        original="original",
    ),
    Target(
        "ours-asgi-sockjs-pure",
        "ours-asgi-pure",
        "/multiplex",
        "sockjs",
        "ours-asgi-sockjs on h11, wsproto and asyncio's loop",
        deflate=True,
        original="original",
    ),
    Target(
        "ours-asgi",
        "ours-asgi",
        "/ws",
        "raw",
        "ours, MultiplexASGI (plain WebSocket) under uvicorn[standard]",
        original="original-raw",
    ),
    Target(
        "ours-asgi-pure",
        "ours-asgi-pure",
        "/ws",
        "raw",
        "ours-asgi on h11, wsproto and asyncio's loop",
        original="original-raw",
    ),
    Target(
        "aiohttp-echo",
        "aiohttp-echo",
        "/echo",
        "raw",
        "plain aiohttp WebSocket echo (no multiplexer)",
    ),
)
REFERENCE = "aiohttp-echo"


@dataclass(frozen=True)
class Workload:
    name: str
    connections: int
    channels: int
    window: int
    mode: str  # "flood", "pingpong" or "idle"
    seconds: float
    generators: int = 1


@dataclass(frozen=True)
class Settings:
    repeat: int
    warmup: float
    workloads: tuple[Workload, ...]
    verify: bool
    smoke: bool
    max_noise: float = 0.15  # cores of other work tolerated during a window
    retries: int = 2  # extra runs allowed when there was more ...
    retry_budget: int = 15  # ... and in all, so that a busy machine cannot
    # make the benchmark run for ever (each retry costs about 2.5 s)


def full_settings(repeat: int, seconds: float, generators: int) -> Settings:
    return Settings(
        repeat=repeat,
        warmup=0.3,
        workloads=(
            Workload("M1", 2000, 10, 0, "idle", 0.0),
            Workload("W3", 1, 1, 1, "pingpong", seconds * 3 / 4),
            Workload("W1", 1, 3, 50, "flood", seconds),
            Workload("W2", 100, 5, 5, "flood", seconds, generators),
        ),
        verify=False,
        smoke=False,
    )


def smoke_settings() -> Settings:
    return Settings(
        repeat=1,
        warmup=0.1,
        workloads=(
            Workload("M1", 50, 10, 0, "idle", 0.0),
            Workload("W3", 1, 1, 1, "pingpong", 0.1),
            Workload("W1", 1, 3, 50, "flood", 0.1),
            Workload("W2", 100, 5, 5, "flood", 0.1, 2),
        ),
        verify=True,
        smoke=True,
        retries=0,
    )


SMOKE_PARALLEL = 3
"""Rows a smoke run serves at once: it checks answers, not speed."""


# -- processes ---------------------------------------------------------------


def pinned(cpus: set[int] | None) -> Any:
    """A preexec_fn pinning the child, and every thread it starts, to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Peer:
    """A child process that speaks JSON lines on stdout and obeys stdin."""

    def __init__(
        self, name: str, argv: Sequence[str], cpus: set[int] | None, log: TextIO
    ):
        self.name = name
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            preexec_fn=pinned(cpus),
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, key: str, timeout: float) -> dict[str, Any]:
        """The next line that has ``key``; a failure on an error or exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(f"{self}: no {key!r} in {timeout} s") from None
            if line is None:
                code = self.proc.wait()
                raise BenchmarkError(f"{self}: exited ({code}) before {key!r}")
            if "error" in line:
                raise BenchmarkError(f"{self}: {line['error']}")
            if key in line:
                return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __str__(self) -> str:
        return self.name


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS for pid {pid}")


def busy_ticks() -> int:
    """CPU ticks spent by everything on the machine, every core together."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def wait_idle(pid: int, limit: float = 5.0) -> None:
    """Until the server stops working off the last workload (or ``limit``)."""
    deadline = time.monotonic() + limit
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        before = cpu_ticks(pid)
        time.sleep(0.1)
        quiet = quiet + 1 if cpu_ticks(pid) - before <= 1 else 0


def sleep_until(instant_ns: int) -> None:
    time.sleep(max(0.0, (instant_ns - time.monotonic_ns()) / 1e9))


# -- measuring ---------------------------------------------------------------


@dataclass
class Bench:
    settings: Settings
    server_cpus: set[int] | None
    generator_cpus: list[int]
    logs: Path
    versions: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retries_used: int = 0

    def log(self, name: str) -> TextIO:
        return open(self.logs / f"{name}.log", "a")  # the child's stderr

    @contextlib.contextmanager
    def server(self, target: Target) -> Iterator[tuple[Peer, dict[str, Any]]]:
        spec = SERVERS[target.server]
        with self.log(target.name) as log:
            peer = Peer(target.server, spec.argv, self.server_cpus, log)
            try:
                yield peer, peer.expect("ready", 30)
            finally:
                peer.stop()

    def generators(
        self, target: Target, workload: Workload, port: int, server_pid: int
    ) -> list[Peer]:
        count = workload.generators
        shares = [workload.connections // count] * count
        shares[0] += workload.connections - sum(shares)
        peers = []
        scheme_url = f"ws://127.0.0.1:{port}{target.path}"
        with self.log(f"{target.name}.loadgen") as log:
            for i, share in enumerate(shares):
                config = {
                    "url": scheme_url,
                    "framing": target.framing,
                    "connections": share,
                    "channels": workload.channels,
                    "window": workload.window,
                    "mode": workload.mode,
                    "deflate": target.deflate,
                    "resume": target.resume,
                    "verify": self.settings.verify,
                    "serverPid": server_pid,
                }
                cpus = None
                if self.generator_cpus:
                    cpus = {self.generator_cpus[i % len(self.generator_cpus)]}
                argv = ["node", str(LOADGEN), json.dumps(config)]
                peers.append(Peer(f"loadgen {i}", argv, cpus, log))
        return peers

    def ready(self, target: Target, peers: list[Peer], timeout: float) -> None:
        for peer in peers:
            line = peer.expect("ready", timeout)
            negotiated = "permessage-deflate" in line["extensions"]
            if negotiated != (target.deflate and target.compressing):
                raise BenchmarkError(
                    f"{target.name}: extensions {line['extensions']!r} negotiated"
                )

    def settle(self, server: Peer) -> None:
        """Let the server finish the last workload's work (not when smoking)."""
        if not self.settings.smoke:
            wait_idle(server.pid)

    def throughput(
        self, target: Target, workload: Workload, server: Peer, port: int
    ) -> dict[str, Any]:
        self.settle(server)
        peers = self.generators(target, workload, port, server.pid)
        try:
            self.ready(target, peers, 60)
            start = time.monotonic_ns() + int(self.settings.warmup * 1e9)
            end = start + int(workload.seconds * 1e9)
            for peer in peers:
                peer.send(f"go {start} {end}")
            sleep_until(start)
            busy = busy_ticks()
            sleep_until(end)
            busy = busy_ticks() - busy
            done = [peer.expect("done", workload.seconds + 30) for peer in peers]
        finally:
            for peer in peers:
                peer.stop()
        return measured(workload, done, busy)

    def quietest(
        self, target: Target, workload: Workload, server: Peer, port: int
    ) -> dict[str, Any]:
        """A throughput run; again, up to ``retries`` times (and while the
        whole benchmark's ``retry_budget`` lasts), while other work on the
        machine took more than ``max_noise`` cores meanwhile."""
        results = []
        for attempt in range(1 + self.settings.retries):
            result = self.throughput(target, workload, server, port)
            results.append(result | {"attempt": attempt})
            if result.get("other_cores", 0.0) <= self.settings.max_noise:
                break
            if self.retries_used >= self.settings.retry_budget:
                break
            self.retries_used += 1
        return min(results, key=lambda r: r.get("other_cores", 0.0))

    def memory(
        self, target: Target, workload: Workload, server: Peer, port: int
    ) -> dict[str, Any]:
        before = self.settled_rss(server)
        peers = self.generators(target, workload, port, server.pid)
        try:
            self.ready(target, peers, 120)
            after = self.settled_rss(server)
            for peer in peers:
                peer.send("close")
                peer.expect("closed", 10)
        finally:
            for peer in peers:
                peer.stop()
        return {
            "connections": workload.connections,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": (after - before) / workload.connections,
        }

    def settled_rss(self, server: Peer) -> int:
        self.settle(server)
        server.send("gc")
        server.expect("gc", 30)
        self.settle(server)
        return rss_kib(server.pid)


def measured(
    workload: Workload, done: list[dict[str, Any]], busy: int
) -> dict[str, Any]:
    """One throughput run's figures, from every generator's report."""
    first = done[0]
    if first["serverTicks"] is None:
        raise BenchmarkError("the generator could not read the server's CPU time")
    if sum(d["total"] for d in done) == 0:
        raise BenchmarkError(f"{workload.name}: the server stopped answering")
    rate = sum(d["received"] / d["seconds"] for d in done)
    received = sum(d["received"] for d in done)
    if received == 0:  # only a smoke run's short window can be this slow
        return {"messages": 0, "mismatches": sum(d["mismatches"] for d in done)}
    seconds = first["seconds"]
    server_cpu = first["serverTicks"] / CLK_TCK
    generator_cpu = sum(d["cpuSeconds"] for d in done)
    result: dict[str, Any] = {
        "messages": received,
        "msgs_per_s": rate,
        "cpu_us_per_msg": server_cpu / (rate * seconds) * 1e6,
        "server_cores": server_cpu / seconds,
        "generator_cores": generator_cpu / seconds,
        # Everything else the machine did meanwhile: noise, if large.
        "other_cores": max(0.0, busy / CLK_TCK - server_cpu - generator_cpu) / seconds,
        "mismatches": sum(d["mismatches"] for d in done),
    }
    if first["latency"] is not None:
        result["p50_us"] = first["latency"]["p50_us"]
        result["p99_us"] = first["latency"]["p99_us"]
    return result


def run_target(bench: Bench, target: Target, repeat: int) -> list[dict[str, Any]]:
    """Every workload against one fresh server process."""
    runs = []
    with bench.server(target) as (server, ready):
        bench.versions[target.server] = {
            k: v for k, v in ready.items() if k not in ("ready", "port", "pid")
        }
        for workload in bench.settings.workloads:
            if workload.mode == "idle":
                if not target.memory:
                    continue
                result = bench.memory(target, workload, server, ready["port"])
            else:
                result = bench.quietest(target, workload, server, ready["port"])
            if result.get("mismatches"):
                wrong = result["mismatches"]
                raise BenchmarkError(f"{workload.name}: {wrong} replies differ")
            runs.append(
                {"target": target.name, "workload": workload.name, "repeat": repeat}
                | result
            )
    return runs


def run_all(bench: Bench, targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Every target, every workload, ``repeat`` times: the raw runs.

    One repetition runs every target before the next starts, so that all
    rows of one repetition share the machine's conditions. A smoke run
    serves several rows at once.
    """

    def attempt(target: Target, repeat: int) -> list[dict[str, Any]]:
        started = time.monotonic()
        try:
            runs = run_target(bench, target, repeat)
        except BenchmarkError as error:
            bench.failures.append(f"{target.name}: {error}")
            print(f"FAILED {target.name}: {error}", file=sys.stderr, flush=True)
            return []
        print(
            f"  run {repeat + 1}/{bench.settings.repeat} {target.name}: "
            f"{time.monotonic() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return runs

    runs: list[dict[str, Any]] = []
    if bench.settings.smoke:
        with ThreadPoolExecutor(SMOKE_PARALLEL) as pool:
            for found in pool.map(attempt, targets, [0] * len(targets)):
                runs += found
        return runs
    for repeat in range(bench.settings.repeat):
        for target in targets:
            runs += attempt(target, repeat)
    return runs


def ab_test(
    bench: Bench, pair: Sequence[Target], workloads: Sequence[Workload], pairs: int
) -> dict[str, Any]:
    """Two rows measured in alternation, each pair seconds apart: B / A.

    The machine's speed drifts over seconds (docs/PERFORMANCE.md), so two
    figures measured minutes apart differ by +-30% with nothing changed.
    Both servers stay up (idle while the other is measured) and each pair
    of windows runs back to back, in alternating order; the medians of the
    pairs' ratios are much steadier than ratios of medians.
    """
    first, second = pair
    found: dict[str, Any] = {}
    with (
        bench.server(first) as (server_a, ready_a),
        bench.server(second) as (
            server_b,
            ready_b,
        ),
    ):
        for workload in workloads:
            if workload.mode == "idle":
                continue
            ratios: dict[str, list[float]] = {m: [] for m in AB_METRICS}
            for i in range(pairs):
                # Alternate the order: neither goes first every time.
                if i % 2 == 0:
                    a = bench.throughput(first, workload, server_a, ready_a["port"])
                b = bench.throughput(second, workload, server_b, ready_b["port"])
                if i % 2 == 1:
                    a = bench.throughput(first, workload, server_a, ready_a["port"])
                for metric in AB_METRICS:
                    if a.get(metric) and b.get(metric):
                        ratios[metric].append(b[metric] / a[metric])
            found[workload.name] = {
                metric: statistics.quantiles(values, n=4) if len(values) > 1 else values
                for metric, values in ratios.items()
                if values
            }
    return found


AB_METRICS = ("msgs_per_s", "cpu_us_per_msg", "p50_us", "p99_us")


def print_ab(pair: Sequence[Target], found: dict[str, Any], pairs: int) -> None:
    first, second = pair
    print(
        f"{second.name} / {first.name}, {pairs} pairs of windows measured back "
        "to back: median ratio [quartiles]"
    )
    for workload, metrics in found.items():
        cells = []
        for metric, quartiles in metrics.items():
            if len(quartiles) == 3:
                low, median, high = quartiles
                cells.append(f"{metric} {median:.2f}x [{low:.2f}-{high:.2f}]")
            else:
                cells.append(f"{metric} {quartiles[0]:.2f}x")
        print(f"  {workload}: " + ", ".join(cells))


# -- reporting -------------------------------------------------------------------

METRICS = {
    "W1": ("msgs_per_s", "cpu_us_per_msg", "server_cores", "generator_cores"),
    "W2": ("msgs_per_s", "cpu_us_per_msg", "server_cores", "generator_cores"),
    "W3": ("p50_us", "p99_us", "msgs_per_s", "cpu_us_per_msg"),
    "M1": ("kib_per_connection",),
}


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """target -> workload -> metric -> median over the repetitions."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["target"], run["workload"]), []).append(run)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (target, workload), group in grouped.items():
        cells = table.setdefault(target, {})[workload] = {}
        for metric in (*METRICS[workload], "other_cores"):
            values = [run[metric] for run in group if metric in run]
            if values:
                cells[metric] = statistics.median(values)
    return table


def ratios(
    table: dict[str, dict[str, dict[str, float]]], targets: Sequence[Target]
) -> dict[str, dict[str, dict[str, float]]]:
    """ours -> reference -> "W1 msgs_per_s"... -> ours / reference."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for target in targets:
        if not target.name.startswith("ours") or target.name not in table:
            continue
        for reference in (target.original, REFERENCE):
            if reference is None or reference not in table:
                continue
            found.setdefault(target.name, {})[reference] = {
                f"{workload} {metric}": ours / theirs
                for workload, metrics in table[target.name].items()
                for metric, ours in metrics.items()
                if metric in RATIO_METRICS
                and (theirs := table[reference].get(workload, {}).get(metric))
            }
    return found


RATIO_METRICS = (
    "msgs_per_s",
    "cpu_us_per_msg",
    "p50_us",
    "p99_us",
    "kib_per_connection",
)
RATIO_COLUMNS = (
    ("W1 msgs_per_s", "W1 msg/s"),
    ("W1 cpu_us_per_msg", "W1 us/msg"),
    ("W2 msgs_per_s", "W2 msg/s"),
    ("W2 cpu_us_per_msg", "W2 us/msg"),
    ("W3 p50_us", "W3 p50"),
    ("W3 p99_us", "W3 p99"),
    ("M1 kib_per_connection", "M1 KiB"),
)


def rate(x: float | None) -> str:
    return "-" if x is None else f"{x / 1000:.1f}k"


def num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(
    table: dict[str, dict[str, dict[str, float]]], names: list[str]
) -> None:
    def get(name: str, workload: str, metric: str) -> float | None:
        return table.get(name, {}).get(workload, {}).get(metric)

    print(
        f"{'':22}{'W1: 1 conn x 3 ch, window 50':<30}"
        f"{'W2: 100 conns x 5 ch, window 5':<32}{'W3: ping-pong':<15}M1: idle"
    )
    print(
        f"{'server':22}"
        + f"{'msg/s':>8}{'us/msg':>8}{'srv':>6}{'gen':>6}  " * 2
        + f"{'p50 us':>7}{'p99 us':>8}  {'KiB/conn':>9}"
    )
    for name in names:
        cells = [f"{name:22}"]
        for workload in ("W1", "W2"):
            cells.append(
                f"{rate(get(name, workload, 'msgs_per_s')):>8}"
                f"{num(get(name, workload, 'cpu_us_per_msg'), 2):>8}"
                f"{num(get(name, workload, 'server_cores'), 2):>6}"
                f"{num(get(name, workload, 'generator_cores'), 2):>6}  "
            )
        cells.append(
            f"{num(get(name, 'W3', 'p50_us'), 0):>7}"
            f"{num(get(name, 'W3', 'p99_us'), 0):>8}"
            f"  {num(get(name, 'M1', 'kib_per_connection'), 1):>9}"
        )
        print("".join(cells))


def print_ratios(found: dict[str, dict[str, dict[str, float]]]) -> None:
    print(
        "\nRatios, ours / reference (medians). msg/s: higher is better; "
        "us/msg, latency, memory: lower is better."
    )
    print(f"{'':36}" + "".join(f"{title:>11}" for _, title in RATIO_COLUMNS))
    for ours, references in found.items():
        for reference, values in references.items():
            label = f"{ours} / {reference}"
            print(
                f"{label:36}"
                + "".join(
                    f"{values[key]:>10.2f}x" if key in values else f"{'-':>11}"
                    for key, _ in RATIO_COLUMNS
                )
            )


def changes(
    table: dict[str, dict[str, dict[str, float]]],
    old: dict[str, dict[str, dict[str, float]]],
) -> dict[str, dict[str, float]]:
    """row -> "W1 msgs_per_s"... -> this run's figure / the old run's."""
    found: dict[str, dict[str, float]] = {}
    for name, workloads in table.items():
        for key, _ in RATIO_COLUMNS:
            workload, metric = key.split()
            new_value = workloads.get(workload, {}).get(metric)
            old_value = old.get(name, {}).get(workload, {}).get(metric)
            if new_value is not None and old_value:
                found.setdefault(name, {})[key] = new_value / old_value
    return found


def print_comparison(
    table: dict[str, dict[str, dict[str, float]]], old_path: Path
) -> None:
    """This run against an earlier one, as is and corrected for drift.

    The machine's speed drifts between runs (see :func:`calibrate`); the
    reference row (a plain aiohttp echo) does not change with our code, so
    dividing every change by the reference's own change in the same cell
    removes most of the drift.
    """
    before = json.loads(old_path.read_text())
    found = changes(table, before["medians"])
    reference = found.get(REFERENCE, {})

    def show(title: str, correct: bool) -> None:
        print(title)
        print(f"{'':22}" + "".join(f"{name:>11}" for _, name in RATIO_COLUMNS))
        for name, values in found.items():
            cells = []
            for key, _ in RATIO_COLUMNS:
                value = values.get(key)
                if correct and value is not None:
                    value = value / reference[key] if key in reference else None
                cells.append(f"{'-':>11}" if value is None else f"{value:>10.2f}x")
            print(f"{name:22}" + "".join(cells))

    calibration = before["machine"].get("calibration_ms", 0)
    show(f"\nThis run / {old_path} (calibration then {calibration:.0f} ms):", False)
    if reference:
        show(f"The same, divided by {REFERENCE}'s own change (drift removed):", True)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)
    ws = json.loads((BENCHMARKS / "node/node_modules/ws/package.json").read_text())
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "node": node.stdout.strip(),
        "ws": ws["version"],
    }


CALIBRATION = """
import time
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    s = 0
    for i in range(1_000_000):
        s += i * i
    best = min(best, time.perf_counter() - t)
print(best * 1000)
"""


def calibrate(cpus: set[int] | None) -> float:
    """Milliseconds a fixed pure-Python loop takes on the server's core.

    A virtual machine's speed drifts with its neighbours' load (by 2x and
    more on the machine of docs/PERFORMANCE.md): compare absolute figures
    of two runs only when their calibrations agree. Ratios measured in one
    run do not depend on it.
    """
    done = subprocess.run(
        [sys.executable, "-c", CALIBRATION],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pinned(cpus),
    )
    return float(done.stdout)


# -- main ------------------------------------------------------------------------


def check_installed() -> None:
    missing = []
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs)")
    if not (BENCHMARKS / "node/node_modules/ws").is_dir():
        missing.append("the load generator's ws: npm ci --prefix benchmarks/node")
    if not (ROOT / "tests/node/node_modules/websocket-multiplex").is_dir():
        missing.append("the original server: npm ci --prefix tests/node")
    if missing:
        raise SystemExit("benchmarks/run.py needs " + "; ".join(missing))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every server answers every workload, briefly; no timing is asserted",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (median)")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="measuring window of W1 and W2"
    )
    parser.add_argument(
        "--generators",
        type=int,
        help="load generator processes for W2 (default: one per generator core)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated rows to run, e.g. ceiling,ours-raw,aiohttp-echo",
    )
    parser.add_argument("--workloads", help="comma-separated, e.g. W1,W2")
    parser.add_argument(
        "--ab",
        metavar="A,B",
        help="measure two rows in alternation and print B / A per pair of "
        "windows (steadier than separate runs; no M1)",
    )
    parser.add_argument(
        "--pairs", type=int, default=8, help="pairs of windows for --ab"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes")
    parser.add_argument("--output", type=Path, help="the JSON results file")
    parser.add_argument(
        "--compare", type=Path, help="a previous JSON results file: print this / that"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_installed()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    generator_cpus: list[int] = []
    if len(cpus) >= 2 and not args.no_pin:
        server_cpus, generator_cpus = {cpus[-1]}, cpus[:-1]
        os.sched_setaffinity(0, set(generator_cpus))  # this runner, too
    else:
        print("not pinning: server and generators share the cores", file=sys.stderr)
    generators = args.generators or max(1, len(generator_cpus))
    settings = (
        smoke_settings()
        if args.smoke
        else full_settings(args.repeat, args.seconds, generators)
    )
    if args.workloads:
        chosen = set(args.workloads.split(","))
        settings = replace(
            settings,
            workloads=tuple(w for w in settings.workloads if w.name in chosen),
        )
    targets = list(TARGETS)
    if args.ab:
        args.only = args.ab
    if args.only:
        chosen = set(args.only.split(","))
        unknown = chosen - {t.name for t in TARGETS}
        if unknown:
            raise SystemExit(f"unknown rows: {', '.join(sorted(unknown))}")
        targets = [t for t in TARGETS if t.name in chosen]

    logs = Path(tempfile.mkdtemp(prefix="websocket-multiplex-bench-"))
    bench = Bench(settings, server_cpus, generator_cpus, logs)
    about = machine()
    about["calibration_ms"] = calibrate(server_cpus)
    print(
        f"{about['cpu']}, {about['cpus']} cores, load {about['loadavg'][0]:.2f}, "
        f"calibration {about['calibration_ms']:.0f} ms; server on cores "
        f"{sorted(server_cpus or cpus)}, generators on {generator_cpus or cpus}; "
        f"logs in {logs}",
        file=sys.stderr,
        flush=True,
    )
    if args.ab:
        names = args.ab.split(",")
        if len(names) != 2 or len(targets) != 2:
            raise SystemExit("--ab needs two different rows: A,B")
        pair = sorted(targets, key=lambda t: names.index(t.name))
        found_ab = ab_test(bench, pair, settings.workloads, args.pairs)
        print_ab(pair, found_ab, args.pairs)
        output = args.output or RESULTS / "ab.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(
            json.dumps({"machine": about, "ab": [t.name for t in pair]} | found_ab)
            + "\n"
        )
        shutil.rmtree(logs, ignore_errors=True)
        return 0
    started = time.monotonic()
    runs = run_all(bench, targets)
    table = medians(runs)
    found = ratios(table, targets)
    elapsed = time.monotonic() - started
    about["calibration_after_ms"] = calibrate(server_cpus)

    if settings.smoke:
        print("Smoke run: every figure below is from a fraction of a second.")
    print_table(table, [t.name for t in targets])
    print_ratios(found)
    timed = [run for run in runs if "other_cores" in run]
    noisy = [run for run in timed if run["other_cores"] > settings.max_noise]
    print(
        f"\n{settings.repeat} run(s) of each, medians; {elapsed:.0f} s. "
        "srv / gen: cores busy in the server / the generators. Calibration "
        f"(a fixed Python loop on the server's core, lower is faster): "
        f"{about['calibration_ms']:.0f} ms before, "
        f"{about['calibration_after_ms']:.0f} ms after."
    )
    if noisy and not settings.smoke:
        worst = max(run["other_cores"] for run in noisy)
        print(
            f"WARNING: other work on the machine took more than "
            f"{settings.max_noise} cores (up to {worst:.2f}) during {len(noisy)} "
            f"of {len(timed)} runs, even after retries: those figures are unreliable."
        )
    if args.compare:
        print_comparison(table, args.compare)

    output = args.output or RESULTS / (
        "smoke.json" if settings.smoke else "latest.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    about["loadavg_after"] = os.getloadavg()
    output.write_text(
        json.dumps(
            {
                "machine": about,
                "pinning": {
                    "server": sorted(server_cpus or []),
                    "generators": generator_cpus,
                },
                "settings": asdict(settings),
                "targets": [asdict(t) for t in targets],
                "versions": bench.versions,
                "elapsed_s": elapsed,
                "medians": table,
                "ratios": found,
                "runs": runs,
                "failures": bench.failures,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results: {output}")
    if bench.failures:
        print(f"FAILED: {len(bench.failures)} (logs in {logs}):")
        for failure in bench.failures:
            print(f"  {failure}")
        return 1
    shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
