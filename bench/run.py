"""The benchmark: the daemon against the floors of its stack, measured in the same run.

    .venv/bin/python -m bench.run            # the full run (a few minutes)
    .venv/bin/python -m bench.run --quick    # a tiny load, seconds (tests/test_bench_smoke.py)

Needs MariaDB at 127.0.0.1:3306 (root, no password; a throw-away ``aert_bench_<random>``
database is created, ``init-db``-ed and dropped) and, for the cross-node figure, Redis at
127.0.0.1:6379; ``node`` and ``npm`` for the Node floor (without them that floor is null and
the output says why). Every daemon is the real console script in a subprocess; the load comes
from several generator processes (bench/loadgen.py) with many connections each. Each figure
is set beside a floor measured under the same load in the same run:

- ping: a bare aiohttp echo server (bench/echo_server.py) and a bare Node ``ws`` echo server
  (bench/ws_echo.js, ``ws`` installed from the npm registry into a temporary folder);
- fan-out: a bare aiohttp server holding the same watchers that writes one prebuilt frame to
  each (bench/fanout_floor.py), timed exactly like the daemon;
- locks: the daemon's own store (its statements, its pool size) driven by the same closed
  loop without the WebSocket and daemon layers (bench/lock_driver.py).

Writes a table to stdout, progress to stderr and everything to bench/results/latest.json
(or ``--out``): ``ratios`` (the headline ratios), ``figures`` (every number), ``machine``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiohttp
import pymysql

from appointease_realtime.config import table as config_table
from appointease_realtime.hooks import signed_request
from tests.processes import Daemon, Server, ServerFailed, cpu_times_of, raise_nofile

from .loadgen import Worker, frame, worker_main

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MYSQL: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
REDIS_URL = "redis://127.0.0.1:6379/13"
TOKEN_SECRET = "bench-token-secret-" + "x" * 32
HOOK_SECRET = "whsec_" + base64.b64encode(b"appointease-bench-hook-secret-32").decode()
DAY, DRIVER_DAY = "2031-03-04", "2031-03-05"
FANOUT_EMPLOYEE, HOOK_EMPLOYEE, CROSS_EMPLOYEE = 7001, 7002, 7003
LOCK_EMPLOYEE_BASE, DRIVER_EMPLOYEE_BASE, OPEN_EMPLOYEE_BASE = 10000, 20000, 200000
NOFILE_WANTED = 65536  # open files for 20,000 connections in one process, with room
WS_PACKAGE = "ws@8"  # the Node floor's WebSocket library, from the npm registry
CONFIG_KEYS = {entry.key for entry in config_table()}

# The headline numbers (result["ratios"]) and the figures every run must report.
REQUIRED_RATIOS = (
    "ping_50_vs_echo",
    "ping_500_vs_echo",
    "fanout_1000_vs_floor_p99",
    "fanout_5000_vs_floor_p99",
    "lock_saturation_vs_driver",
)
REQUIRED_FIGURES = (
    "lock_open_loop_p99_ms",
    "rss_per_conn_kb_10000",
    "max_connections_one_process",
)


@dataclass(frozen=True)
class Profile:
    """The sizes of one run."""

    workers: int = 4
    ping_conns: tuple[int, ...] = (50, 500)
    ping_workers: int = 2  # the daemon also as `serve --workers N` (needs Redis): pings only
    ping_seconds: float = 5.0
    ping_warmup: float = 1.0
    lock_single_samples: int = 400  # one client's lock round trips
    lock_clients: int = 100  # the closed loop that finds the saturation rate
    lock_seconds: float = 5.0
    lock_warmup: float = 1.0
    open_loop_share: float = 0.5  # of the daemon's saturation rate
    open_loop_seconds: float = 10.0
    fanout_watchers: tuple[int, ...] = (100, 1000, 5000)
    fanout_events: int = 40  # lock and unlock alternately
    hook_watchers: int = 1000
    hook_events: int = 10
    memory_conns: tuple[int, ...] = (1000, 10000)
    max_conns: int = 20000
    max_conns_step: int = 2500
    cross_watchers: int = 1000
    cross_events: int = 20
    event_timeout: float = 10.0


FULL = Profile()
QUICK = Profile(
    workers=2,
    ping_conns=(5, 20),
    ping_seconds=0.3,
    ping_warmup=0.1,
    lock_single_samples=8,
    lock_clients=20,
    lock_seconds=0.5,
    lock_warmup=0.2,
    open_loop_seconds=1.0,
    fanout_watchers=(5, 10, 20),
    fanout_events=4,
    hook_watchers=10,
    hook_events=2,
    memory_conns=(20, 50),
    max_conns=200,
    max_conns_step=100,
    cross_watchers=10,
    cross_events=2,
    event_timeout=5.0,
)

# Targets (docs/performance.md), one process unless the key says otherwise:
# key -> (comparison, bound). Ratios are daemon / floor of the same run.
TARGETS: dict[str, tuple[str, float]] = {
    "ping_50_vs_echo": (">=", 0.8),
    "ping_500_vs_echo": (">=", 0.8),
    "fanout_1000_vs_floor_p99": ("<=", 1.5),  # "all reached"
    "fanout_5000_vs_floor_p99": ("<=", 1.5),
    "lock_saturation_vs_driver": (">=", 0.6),
    "lock_open_loop_p99_ms": ("<", 10.0),
    "rss_per_conn_kb_10000": ("<=", 20.0),
    "max_connections_one_process": (">=", 20000),
    "cross_node_extra_p50_ms": ("<=", 2.0),
}

SIZED = ("ping_conns", "fanout_watchers", "memory_conns")


def nominal(attr: str, actual: int, profile: Profile) -> int:
    """The full run's size that ``actual`` stands for in key names (the quick run is scaled
    down; its keys keep the full run's names so every run reports the same keys)."""
    if attr in SIZED:
        return int(getattr(FULL, attr)[getattr(profile, attr).index(actual)])
    return int(getattr(FULL, attr))


def sizes(profile: Profile) -> dict[str, dict[str, int]]:
    """For each sized part: the size a key or label names (the full run's) -> the size
    ``profile`` uses."""
    out: dict[str, dict[str, int]] = {}
    for attr in SIZED:
        pairs = zip(getattr(FULL, attr), getattr(profile, attr))  # noqa: B905
        out[attr] = {str(n): actual for n, actual in pairs}
    for attr in ("hook_watchers", "cross_watchers", "lock_clients", "max_conns"):
        out[attr] = {str(getattr(FULL, attr)): getattr(profile, attr)}
    return out


def figure_keys() -> list[str]:
    """Every figure a run reports (a number, or null when its part could not be measured)."""
    keys: list[str] = []
    w = FULL.ping_workers
    for n in FULL.ping_conns:
        keys += [f"ping_rps_{n}", f"echo_rps_{n}", f"node_ws_rps_{n}"]
        keys += [f"ping_{n}_vs_echo", f"ping_{n}_vs_node_ws"]
        keys += [f"ping_rps_{n}_workers_{w}", f"ping_{n}_workers_{w}_vs_echo"]
        keys += [f"ping_cpu_us_{n}", f"echo_cpu_us_{n}", f"ping_{n}_vs_echo_cpu"]
    keys += ["lock_single_p50_ms", "lock_single_p99_ms"]
    keys += ["lock_saturation_per_s", "lock_closed_p50_ms", "lock_closed_p99_ms"]
    keys += ["lock_driver_per_s", "lock_driver_p50_ms", "lock_driver_p99_ms"]
    keys += ["lock_saturation_vs_driver"]
    keys += ["lock_open_loop_rate_per_s", "lock_open_loop_p50_ms", "lock_open_loop_p99_ms"]
    keys += ["lock_driver_open_loop_p50_ms", "lock_driver_open_loop_p99_ms"]
    keys += ["lock_open_loop_p50_vs_driver", "lock_open_loop_p99_vs_driver"]
    for n in FULL.fanout_watchers:
        for who in ("fanout", "floor_fanout"):
            keys += [f"{who}_p50_ms_{n}", f"{who}_p99_ms_{n}"]
            keys += [f"{who}_all_p50_ms_{n}", f"{who}_all_p99_ms_{n}"]
        keys += [f"fanout_{n}_vs_floor_p50", f"fanout_{n}_vs_floor_p99"]
    keys += [f"hook_p50_ms_{FULL.hook_watchers}", f"hook_p99_ms_{FULL.hook_watchers}"]
    keys += [f"rss_per_conn_kb_{n}" for n in FULL.memory_conns]
    keys += ["max_connections_one_process"]
    keys += [
        "cross_node_same_p50_ms",
        "cross_node_same_p99_ms",
        "cross_node_other_p50_ms",
        "cross_node_other_p99_ms",
        "cross_node_extra_p50_ms",
        "cross_node_extra_p99_ms",
    ]
    return keys


def redis_problem() -> str | None:
    """None when Redis answers at REDIS_URL, else why not."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis unreachable ({exc})"
    return None


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


LOAD_SETTINGS = {  # every benchmark daemon's: the abuse limits out of the way of the load
    "RATE_LIMIT_PER_SECOND": "10000",  # the most the configuration accepts
    "RATE_LIMIT_BURST": "100000",
    "MAX_CONNECTIONS_PER_IP": "100000",
    "LOG_LEVEL": "WARNING",
    "RECONCILE_INTERVAL_SECONDS": "3600",
}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def ratio(value: float | None, floor: float | None) -> float | None:
    """``value / floor``, or None when either is missing."""
    if value is None or floor is None or floor == 0:
        return None
    return round(value / floor, 3)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


# ---- processes: daemons, floors, py-spy, generators ----


class BenchDaemon(Daemon):
    """The daemon as the benchmark runs it: MySQL, ready at /readyz, no inherited settings."""

    ready_path = "/readyz"
    start_seconds = 20.0

    def __init__(self, workdir: Path, name: str, env: dict[str, str], command: list[str]) -> None:
        super().__init__(workdir, command=command)
        self.name = name
        self.env = env  # the whole environment, so no setting leaks in from the shell
        self.cwd = ROOT  # ``-m bench.variants`` must find the bench package
        self.log = workdir / f"{name}-{self.port}.log"


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


class WorkersDaemon(BenchDaemon):
    """``serve`` with ``WORKERS`` processes: the parent binds nothing, each worker is a node of
    its own on the same port (SO_REUSEPORT). Ready once every worker answers /readyz; CPU is
    the whole process tree's."""

    def __init__(self, *args: Any, workers: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers = workers
        self.nodes: set[str] = set()

    async def start(self) -> None:
        await super().start()
        deadline = time.monotonic() + self.start_seconds
        timeout = aiohttp.ClientTimeout(total=2)
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection (port) each
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while len(self.nodes) < self.workers and time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            self.nodes.add(str((await resp.json()).get("node")))
                await asyncio.sleep(0.02)
        if len(self.nodes) < self.workers:
            await self.close()
            raise ServerFailed(
                f"{self.name}: {len(self.nodes)} of {self.workers} workers answered;"
                f" its log:\n{self.log_tail()}"
            )

    def cpu_times(self) -> tuple[float, float]:
        user = system = 0.0
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                one_user, one_system = cpu_times_of(pid)
                user, system = user + one_user, system + one_system
        return user, system


class Spy:
    """Optional py-spy recording of a server for the length of one measurement."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def record(self, server: Server, name: str) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        argv = [str(spy), "record", "--pid", str(server.pid), "--rate", "200", "--format"]
        # blocking sampling (py-spy pauses the process for each sample, about 2% at 200 Hz):
        # --nonblocking reads stacks while they change and mixes up frames
        argv += ["raw", "-o", str(self.directory / f"{name}.txt")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)


class Generators:
    """The load-generator processes and their pipes."""

    def __init__(self, count: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def count(self) -> int:
        return len(self.pipes)

    def shares(self, n: int) -> list[int]:
        """``n`` split as evenly as possible over the generators."""
        return [n // self.count + (1 if i < n % self.count else 0) for i in range(self.count)]

    def send(self, name: str, kwargs: list[dict[str, Any]] | dict[str, Any]) -> None:
        for i, pipe in enumerate(self.pipes):
            pipe.send((name, kwargs[i] if isinstance(kwargs, list) else kwargs))

    async def replies(self) -> list[dict[str, Any]]:
        got = await asyncio.gather(*(asyncio.to_thread(p.recv) for p in self.pipes))
        for reply in got:
            if "error" in reply:
                raise RuntimeError(f"generator failed: {reply['error']}")
        return list(got)

    async def call(
        self, name: str, kwargs: list[dict[str, Any]] | dict[str, Any]
    ) -> list[dict[str, Any]]:
        self.send(name, kwargs)
        return await self.replies()

    def address_base(self, i: int) -> int:
        """Generator ``i``'s first client address (see ``loadgen.address_of``): each generator
        numbers its own addresses, 2**18 apart, so no two connections of a run share one."""
        return i << 18

    async def connect(self, ports: int | list[int], n: int, path: str = "/") -> None:
        """Open ``n`` connections spread over the generators (``ports`` per generator)."""
        each = ports if isinstance(ports, list) else [ports] * self.count
        shares = self.shares(n)
        got = await self.call(
            "connect",
            [
                {"port": each[i], "n": shares[i], "path": path}
                | {"address_base": self.address_base(i)}
                for i in range(self.count)
            ],
        )
        connected = sum(r["connected"] for r in got)
        if connected < n:
            failures = [f for r in got for f in r["failures"]]
            raise RuntimeError(f"only {connected} of {n} connections opened: {failures[:3]}")

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", {}))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


@dataclass
class NodeFloor:
    """Where the Node floor's ``ws`` is installed, or why there is no Node floor."""

    node_modules: Path | None
    why_not: str = ""
    node_version: str | None = None
    ws_version: str | None = None


def prepare_node(workdir: Path) -> NodeFloor:
    """Install ``ws`` from the npm registry into ``workdir`` (nothing global)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(t for t, path in (("node", node), ("npm", npm)) if path is None)
        return NodeFloor(None, f"{missing} not found")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    prefix = workdir / "node"
    argv = [npm, "install", "--prefix", str(prefix), WS_PACKAGE]
    argv += ["--no-audit", "--no-fund", "--no-save", "--loglevel=error"]
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=180)
    except subprocess.CalledProcessError as exc:
        return NodeFloor(None, f"npm install {WS_PACKAGE} failed: {exc.stderr.strip()[-300:]}")
    except subprocess.TimeoutExpired:
        return NodeFloor(None, f"npm install {WS_PACKAGE} took over 180 s")
    package = json.loads((prefix / "node_modules" / "ws" / "package.json").read_text())
    return NodeFloor(prefix / "node_modules", "", version, str(package["version"]))


# ---- the harness ----


@dataclass
class Bench:
    profile: Profile
    db_name: str
    gens: Generators
    spy: Spy
    workdir: Path
    node: NodeFloor
    variant: str = ""
    daemon_path: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # --set KEY=VALUE
    figures: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    strong_ids: int = 0

    # -- servers --

    def daemon_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_KEYS}
        env.update(
            DB_HOST=str(MYSQL["host"]),
            DB_PORT=str(MYSQL["port"]),
            DB_USER=str(MYSQL["user"]),
            DB_PASSWORD="",
            DB_NAME=self.db_name,
            TOKEN_SECRET=TOKEN_SECRET,
            HOOK_SECRET=HOOK_SECRET,
            **LOAD_SETTINGS,
            # the generators stand behind a loopback "proxy": X-Forwarded-For gives each
            # connection an address of its own (per-address limits count as for visitors)
            TRUSTED_PROXIES="127.0.0.1/32",
        )
        if self.daemon_path:  # another tree's daemon (e.g. an older commit), for comparison
            env["PYTHONPATH"] = self.daemon_path
        env.update(self.settings)
        env.update(extra)
        return env

    def daemon(self, name: str, workers: int = 1, **extra: str) -> BenchDaemon:
        if self.variant:  # the same console entry point, with bench/variants.py's patches
            command = [sys.executable, "-m", "bench.variants", self.variant]
        else:
            command = [str(Path(sys.executable).parent / "appointease-realtime")]
        if workers > 1:
            env = self.daemon_env(WORKERS=str(workers), REDIS_URL=REDIS_URL, **extra)
            return WorkersDaemon(self.workdir, name, env, command, workers=workers)
        return BenchDaemon(self.workdir, name, self.daemon_env(**extra), command)

    def python_server(self, name: str, module: str) -> Server:
        """A floor written in Python (``python -m bench.<module> --port N``)."""
        server = Server([], self.workdir / f"{name}.log", cwd=ROOT, name=name, ready_path="/readyz")
        server.argv = [sys.executable, "-m", f"bench.{module}", "--port", str(server.port)]
        return server

    def node_echo(self) -> Server | None:
        if self.node.node_modules is None:
            return None
        env = {**os.environ, "NODE_PATH": str(self.node.node_modules)}
        log = self.workdir / "node_ws.log"
        server = Server([], log, env=env, cwd=ROOT, name="node_ws", ready_path="/readyz")
        node = shutil.which("node") or "node"
        server.argv = [node, str(ROOT / "bench" / "ws_echo.js"), "--port", str(server.port)]
        return server

    # -- ping --

    async def ping(self, server: Server, n: int) -> tuple[float, float]:
        """Pongs a second over ``n`` connections that each ping, wait, ping again."""
        p = self.profile
        await self.gens.connect(server.port, n)
        if p.ping_warmup:
            await self.gens.call("ping", {"seconds": p.ping_warmup})
        (user0, system0), wall0, (busy0, _) = server.cpu_times(), time.monotonic(), machine_busy()
        with self.spy.record(server, f"ping_{server.name}_{n}"):
            got = await self.gens.call("ping", {"seconds": p.ping_seconds})
        wall = time.monotonic() - wall0
        user1, system1 = server.cpu_times()
        server_cpu = (user1 - user0 + system1 - system0) / wall
        machine_cpu = (machine_busy()[0] - busy0) / wall
        await self.gens.call("close", {})
        rate = float(sum(r["pongs"] / r["seconds"] for r in got))
        gen_cpu = sum(r["cpu"] / r["seconds"] for r in got)
        cpu_us = server_cpu / rate * 1e6 if rate else 0.0

        def per_pong(seconds: float) -> float:
            return seconds / wall / rate * 1e6 if rate else 0.0

        self.details[f"ping_{server.name}_{n}"] = {
            "pongs_per_second": round(rate),
            "server_cpu_share": round(server_cpu, 3),
            # the server's CPU time per round trip: what one ping costs it, however busy
            # the machine was (throughput depends on the CPU it got; this much less)
            "server_cpu_us_per_pong": round(cpu_us, 2),
            # split: the server's own code (user) against the kernel's work for it (system)
            "server_user_us_per_pong": round(per_pong(user1 - user0), 2),
            "server_system_us_per_pong": round(per_pong(system1 - system0), 2),
            "generators_cpu_share": round(gen_cpu, 3),
            # all cores together (2.0 = two cores busy): ours, the kernel's and anything else
            "machine_cpu_busy": round(machine_cpu, 3),
        }
        progress(
            f"ping {server.name} {n} conns: {rate:,.0f}/s"
            f" ({server.name} CPU {server_cpu:.0%}, {cpu_us:.1f} us a ping;"
            f" generators {gen_cpu:.0%} of one core,"
            f" machine {machine_cpu:.0%} of {os.cpu_count()} cores)"
        )
        return rate, cpu_us

    async def pings(self) -> None:
        """The daemon, the aiohttp echo and the Node ws echo, each size one after the other."""
        echo, node, daemon = self.python_server("echo", "echo_server"), self.node_echo(), None
        if node is None:
            self.notes.append(f"Node ws floor not measured (null): {self.node.why_not}")
            progress(f"Node ws floor: not measured ({self.node.why_not})")
        try:
            await echo.start()
            if node is not None:
                try:
                    await node.start()
                except ServerFailed as exc:
                    self.notes.append(f"Node ws floor not measured (null): {exc}")
                    node = None
            daemon = self.daemon("daemon")
            await daemon.start()
            workers = await self.workers_daemon()
            w = FULL.ping_workers
            for n in self.profile.ping_conns:
                key = nominal("ping_conns", n, self.profile)
                base, base_us = await self.ping(echo, n)
                other = (await self.ping(node, n))[0] if node is not None else None
                rate, rate_us = await self.ping(daemon, n)
                several = (await self.ping(workers, n))[0] if workers is not None else None
                self.figures[f"ping_cpu_us_{key}"] = round(rate_us, 2)
                self.figures[f"echo_cpu_us_{key}"] = round(base_us, 2)
                # echo's CPU per ping / the daemon's: the throughput ratio each would reach
                # with a core to itself
                self.figures[f"ping_{key}_vs_echo_cpu"] = ratio(base_us, rate_us)
                self.figures[f"echo_rps_{key}"] = round(base)
                self.figures[f"node_ws_rps_{key}"] = None if other is None else round(other)
                self.figures[f"ping_rps_{key}"] = round(rate)
                self.figures[f"ping_{key}_vs_echo"] = ratio(rate, base)
                self.figures[f"ping_{key}_vs_node_ws"] = ratio(rate, other)
                self.figures[f"ping_rps_{key}_workers_{w}"] = (
                    None if several is None else round(several)
                )
                self.figures[f"ping_{key}_workers_{w}_vs_echo"] = ratio(several, base)
        finally:
            for server in (echo, node, daemon, workers):
                if server is not None:
                    await server.close()

    async def workers_daemon(self) -> BenchDaemon | None:
        """The daemon as ``serve --workers N`` (N = profile.ping_workers; Redis carries the
        events between its nodes), started; None, with a note, where it cannot run."""
        w = self.profile.ping_workers
        why = redis_problem()
        if why is None:
            daemon = self.daemon(f"daemon-{w}-workers", workers=w)
            try:
                await daemon.start()
                return daemon
            except ServerFailed as exc:
                why = str(exc).splitlines()[0]
        self.notes.append(f"ping with --workers {w} not measured (null): {why}")
        progress(f"ping with {w} workers: not measured ({why})")
        return None

    # -- locks --

    def employee_bases(self, first: int, n: int) -> list[int]:
        """The first employee id of each generator's share of ``n`` clients."""
        bases = []
        for share in self.gens.shares(n):
            bases.append(first)
            first += share
        return bases

    async def lock_single(self, daemon: Server) -> None:
        """One client: lock, unlock, again; the lock round trip."""
        await self.gens.connect([daemon.port] * self.gens.count, 1)
        rounds = self.profile.lock_single_samples
        got = await self.gens.call(
            "lock", {"date": DAY, "employee_base": LOCK_EMPLOYEE_BASE, "rounds": rounds}
        )
        await self.gens.call("close", {})
        locks = [t for r in got for t in r["lock"]]
        self.figures["lock_single_p50_ms"] = ms(percentile(locks, 50))
        self.figures["lock_single_p99_ms"] = ms(percentile(locks, 99))
        progress(
            f"lock, 1 client: p50 {ms(percentile(locks, 50))} ms,"
            f" p99 {ms(percentile(locks, 99))} ms ({len(locks)} round trips)"
        )

    async def lock_loops(self, daemon: Server) -> None:
        """Saturation (closed loop), then an open loop at a share of it, on the same clients."""
        p, n = self.profile, self.profile.lock_clients
        await self.gens.connect(daemon.port, n)
        bases = self.employee_bases(LOCK_EMPLOYEE_BASE + 1000, n)
        cpu0, wall0, (busy0, _) = daemon.cpu_seconds(), time.monotonic(), machine_busy()
        with self.spy.record(daemon, "lock_saturation"):
            got = await self.gens.call(
                "lock",
                [
                    {"date": DAY, "employee_base": b, "seconds": p.lock_seconds}
                    | {"warmup": p.lock_warmup}
                    for b in bases
                ],
            )
        wall = time.monotonic() - wall0
        locks = [t for r in got for t in r["lock"]]
        rate = len(locks) / p.lock_seconds
        self.figures["lock_saturation_per_s"] = round(rate, 1)
        self.figures["lock_closed_p50_ms"] = ms(percentile(locks, 50))
        self.figures["lock_closed_p99_ms"] = ms(percentile(locks, 99))
        refused = sum(r["refused"] for r in got)
        if refused:
            self.notes.append(f"lock saturation: {refused} locks refused")
        daemon_cpu = daemon.cpu_seconds() - cpu0
        self.details["lock_saturation"] = {
            "clients": n,
            "seconds": p.lock_seconds,
            "locks": len(locks),
            "daemon_cpu_share": round(daemon_cpu / wall, 3),
            # CPU of one lock_slot + unlock_slot: the CPU share over the locks a second
            "daemon_cpu_us_per_lock": round(daemon_cpu / wall / rate * 1e6, 1) if rate else None,
            "machine_cpu_busy": round((machine_busy()[0] - busy0) / wall, 3),
        }
        progress(
            f"lock saturation, {n} clients: {rate:,.0f} locks/s,"
            f" p50 {self.figures['lock_closed_p50_ms']} ms,"
            f" p99 {self.figures['lock_closed_p99_ms']} ms"
        )

        target = rate * p.open_loop_share
        each = target / self.gens.count
        with self.spy.record(daemon, "lock_open_loop"):
            got = await self.gens.call(
                "lock_open",
                [
                    {"rate": each, "seconds": p.open_loop_seconds, "date": DAY, "seed": i}
                    | {"employee_base": OPEN_EMPLOYEE_BASE + i * 10000}
                    for i in range(self.gens.count)
                ],
            )
        await self.gens.call("close", {})
        locks = [t for r in got for t in r["lock"]]
        from_schedule = [t for r in got for t in r["from_schedule"]]
        late = [t for r in got for t in r["late"]]
        arrivals = sum(r["arrivals"] for r in got)
        refused = sum(r["refused"] for r in got)
        if refused:
            self.notes.append(f"lock open loop: {refused} locks refused")
        self.figures["lock_open_loop_rate_per_s"] = round(target, 1)
        self.figures["lock_open_loop_p50_ms"] = ms(percentile(locks, 50))
        self.figures["lock_open_loop_p99_ms"] = ms(percentile(locks, 99))
        self.details["lock_open_loop"] = {
            "share_of_saturation": p.open_loop_share,
            "arrivals": arrivals,
            "arrivals_per_second": round(arrivals / p.open_loop_seconds, 1),
            "arrival_process": "Poisson, per generator (summed: Poisson at the target rate)",
            "slots": "each lock on a slot never locked before (a real insert), then unlocked",
            # the round trip counted from the scheduled arrival: includes the generator's own
            # lateness and any wait for an idle client (there are lock_clients of them)
            "from_schedule_p99_ms": ms(percentile(from_schedule, 99)),
            "generator_late_p99_ms": ms(percentile(late, 99)),
            "max_ms": ms(max(locks)),
        }
        progress(
            f"lock open loop at {target:,.0f}/s ({arrivals / p.open_loop_seconds:,.0f}/s"
            f" arrived): p50 {self.figures['lock_open_loop_p50_ms']} ms,"
            f" p99 {self.figures['lock_open_loop_p99_ms']} ms"
        )

    async def run_driver(self, *options: str) -> dict[str, Any]:
        """``python -m bench.lock_driver`` with the daemon's environment; its JSON answer."""
        argv = [sys.executable, "-m", "bench.lock_driver", *options]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.daemon_env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"lock driver failed: {err.decode(errors='replace')[-2000:]}")
        got: dict[str, Any] = json.loads(out)
        return got

    async def lock_driver(self) -> None:
        """The same closed loop straight on the daemon's store (its statements, its pool), in a
        process of its own with the daemon's environment; then the same open loop."""
        p, n = self.profile, self.profile.lock_clients
        wall0, (busy0, _) = time.monotonic(), machine_busy()
        got = await self.run_driver(
            *("--clients", str(n), "--seconds", str(p.lock_seconds)),
            *("--warmup", str(p.lock_warmup), "--date", DRIVER_DAY),
            *("--employee-base", str(DRIVER_EMPLOYEE_BASE)),
        )
        wall = time.monotonic() - wall0
        locks = got["lock"]
        rate = len(locks) / p.lock_seconds
        self.figures["lock_driver_per_s"] = round(rate, 1)
        self.figures["lock_driver_p50_ms"] = ms(percentile(locks, 50))
        self.figures["lock_driver_p99_ms"] = ms(percentile(locks, 99))
        self.figures["lock_saturation_vs_driver"] = ratio(
            self.figures.get("lock_saturation_per_s"), rate
        )
        if got["refused"]:
            self.notes.append(f"lock driver loop: {got['refused']} locks refused")
        self.details["lock_driver"] = {
            "clients": n,
            "db_pool_size": got["db_pool_size"],
            "statements": "Store.acquire_lock + Store.release_lock (the daemon's own store)",
            "owner_per_client": got["owners"],
            "module": got["module"],
            "process_cpu_share": got["cpu_share"],
            "machine_cpu_busy": round((machine_busy()[0] - busy0) / wall, 3),
        }
        progress(
            f"lock driver loop, {n} tasks, pool {got['db_pool_size']}: {rate:,.0f} locks/s,"
            f" p50 {self.figures['lock_driver_p50_ms']} ms"
        )
        target = self.figures.get("lock_open_loop_rate_per_s")
        if not target:
            return
        got = await self.run_driver(
            *("--clients", str(n), "--rate", str(target), "--seconds", str(p.open_loop_seconds)),
            *("--date", DRIVER_DAY, "--employee-base", str(OPEN_EMPLOYEE_BASE + 50000)),
        )
        locks = got["lock"]
        for q, at in (("p50", 50), ("p99", 99)):
            self.figures[f"lock_driver_open_loop_{q}_ms"] = ms(percentile(locks, at))
            self.figures[f"lock_open_loop_{q}_vs_driver"] = ratio(
                self.figures.get(f"lock_open_loop_{q}_ms"), ms(percentile(locks, at))
            )
        if got["refused"]:
            self.notes.append(f"lock driver open loop: {got['refused']} locks refused")
        progress(
            f"lock driver open loop at {target:,.0f}/s: p50"
            f" {self.figures['lock_driver_open_loop_p50_ms']} ms,"
            f" p99 {self.figures['lock_driver_open_loop_p99_ms']} ms"
        )

    # -- room events --

    async def trigger_client(self, port: int) -> tuple[Worker, Any]:
        trigger = Worker(None)  # type: ignore[arg-type]
        await trigger.connect(port, 1, address_base=self.gens.address_base(self.gens.count))
        return trigger, trigger.clients[0]

    async def room_events(
        self, trigger_port: int, employee: int, events: int, name: str, server: Server
    ) -> tuple[list[float], list[float]]:
        """Lock/unlock a slot of the watched room ``events`` times: the latency of every
        delivery, and of the last watcher of each event (all reached)."""
        trigger, client = await self.trigger_client(trigger_port)
        latencies: list[float] = []
        reach_all: list[float] = []
        missing = 0
        with self.spy.record(server, name):
            for i in range(events):
                held = i % 2 == 0
                slot = {"date": DAY, "time": f"{9 + (i // 2) % 8:02d}:30", "employeeId": employee}
                self.gens.send(
                    "expect",
                    {
                        "kind": "availability",
                        "time_": slot["time"],
                        "held": held,
                        "wait_seconds": self.profile.event_timeout,
                    },
                )
                await self.gens.replies()  # armed
                reply = trigger.wait_for(client, b'"slot_locked"', b'"slot_unlocked"', b'"error"')
                began = time.monotonic()
                client.send(frame("lock_slot" if held else "unlock_slot", **slot))
                answer = await asyncio.wait_for(reply, 30)
                if b'"error"' in answer or b"failed" in answer:
                    raise RuntimeError(f"trigger refused: {answer[:200]!r}")
                got = await self.gens.replies()
                times = [t - began for r in got for t in r["received"]]
                missing += sum(r["missing"] for r in got)
                latencies += times
                if times:
                    reach_all.append(max(times))
                await asyncio.sleep(0.05)
        await trigger.close()
        if missing:
            self.notes.append(f"{name}: {missing} deliveries missing after the timeout")
        return latencies, reach_all

    async def fanout(self, server: Server, n: int, who: str) -> None:
        """One room event to all of ``n`` watchers; ``who`` names the figures."""
        key = nominal("fanout_watchers", n, self.profile)
        await self.gens.connect(server.port, n)
        await self.gens.call("watch", {"date": DAY, "employee": FANOUT_EMPLOYEE})
        latencies, reach_all = await self.room_events(
            server.port, FANOUT_EMPLOYEE, self.profile.fanout_events, f"{who}_{n}", server
        )
        await self.gens.call("close", {})
        self.figures[f"{who}_p50_ms_{key}"] = ms(percentile(latencies, 50))
        self.figures[f"{who}_p99_ms_{key}"] = ms(percentile(latencies, 99))
        self.figures[f"{who}_all_p50_ms_{key}"] = ms(percentile(reach_all, 50))
        self.figures[f"{who}_all_p99_ms_{key}"] = ms(percentile(reach_all, 99))
        self.details[f"{who}_{key}"] = {
            "watchers": n,
            "events": len(reach_all),
            "deliveries": len(latencies),
            "all_reached_max_ms": ms(max(reach_all)),
        }
        progress(
            f"{'daemon' if who == 'fanout' else 'floor'} fan-out to {n} watchers:"
            f" each p50 {ms(percentile(latencies, 50))} / p99 {ms(percentile(latencies, 99))} ms,"
            f" all reached p50 {ms(percentile(reach_all, 50))}"
            f" / p99 {ms(percentile(reach_all, 99))} ms"
        )

    async def fanouts(self, daemon: Server) -> None:
        """The daemon and the bare floor, one after the other at each size."""
        floor = self.python_server("fanout_floor", "fanout_floor")
        await floor.start()
        try:
            for n in self.profile.fanout_watchers:
                key = nominal("fanout_watchers", n, self.profile)
                await self.fanout(daemon, n, "fanout")
                await self.fanout(floor, n, "floor_fanout")
                for q in ("p50", "p99"):
                    self.figures[f"fanout_{key}_vs_floor_{q}"] = ratio(
                        self.figures[f"fanout_all_{q}_ms_{key}"],
                        self.figures[f"floor_fanout_all_{q}_ms_{key}"],
                    )
        finally:
            await floor.close()

    async def hooks(self, daemon: Server, n: int) -> None:
        """Insert a booking by SQL, POST its signed hook, time ``slot_taken`` at ``n`` watchers."""
        await self.gens.connect(daemon.port, n)
        await self.gens.call("watch", {"date": DAY, "employee": HOOK_EMPLOYEE})
        db = pymysql.connect(**MYSQL, database=self.db_name, autocommit=True)
        latencies: list[float] = []
        missing = 0
        url = f"{daemon.url}/hooks/booking"
        async with aiohttp.ClientSession() as session:
            with self.spy.record(daemon, f"hook_{n}"):
                for i in range(self.profile.hook_events):
                    time_ = f"{8 + i // 4:02d}:{(i % 4) * 15:02d}"
                    self.strong_ids += 1
                    strong_id = f"BENCH-{self.strong_ids:06d}"
                    with db.cursor() as cur:
                        cur.execute(
                            "INSERT INTO wp_appointments (name, email, appointment_date,"
                            " employee_id, status, strong_id) VALUES (%s, %s, %s, %s, %s, %s)",
                            (
                                "Bench",
                                "bench@example.com",
                                f"{DAY} {time_}:00",
                                HOOK_EMPLOYEE,
                                "confirmed",
                                strong_id,
                            ),
                        )
                    body, headers = signed_request(
                        HOOK_SECRET, "appointment.created", {"id": strong_id}
                    )
                    self.gens.send(
                        "expect",
                        {
                            "kind": "slot_taken",
                            "time_": time_,
                            "held": True,
                            "wait_seconds": self.profile.event_timeout,
                        },
                    )
                    await self.gens.replies()
                    began = time.monotonic()
                    async with session.post(url, data=body, headers=headers) as resp:
                        if resp.status != 200:
                            raise RuntimeError(f"hook answered {resp.status}: {await resp.text()}")
                    got = await self.gens.replies()
                    latencies += [t - began for r in got for t in r["received"]]
                    missing += sum(r["missing"] for r in got)
                    await asyncio.sleep(0.05)
        db.close()
        await self.gens.call("close", {})
        if missing:
            self.notes.append(f"hook to {n} watchers: {missing} slot_taken missing")
        key = FULL.hook_watchers
        self.figures[f"hook_p50_ms_{key}"] = ms(percentile(latencies, 50))
        self.figures[f"hook_p99_ms_{key}"] = ms(percentile(latencies, 99))
        progress(
            f"hook to {n} watchers: p50 {ms(percentile(latencies, 50))} ms,"
            f" p99 {ms(percentile(latencies, 99))} ms"
        )

    # -- connections --

    async def memory(self, n: int) -> None:
        """RSS growth of a fresh daemon per idle connection, over ``n`` connections."""
        key = nominal("memory_conns", n, self.profile)
        daemon = self.daemon(f"memory-{n}")
        await daemon.start()
        try:
            await self.gens.connect(daemon.port, min(n, 10))  # warm up the code paths
            await self.gens.call("close", {})
            await asyncio.sleep(1.0)
            before = daemon.rss_kb()
            began = time.monotonic()
            await self.gens.connect(daemon.port, n)
            opened = time.monotonic() - began
            await asyncio.sleep(2.0)
            after = daemon.rss_kb()
            await self.gens.call("close", {})
        finally:
            await daemon.close()
        per = (after - before) / n
        self.figures[f"rss_per_conn_kb_{key}"] = round(per, 2)
        self.details[f"memory_{key}"] = {
            "connections": n,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "connect_seconds": round(opened, 2),
        }
        progress(
            f"memory {n} idle connections: {per:.1f} KB each"
            f" (RSS {before / 1024:.0f} -> {after / 1024:.0f} MB, opened in {opened:.1f} s)"
        )

    async def max_connections(self) -> None:
        """How many connections one daemon process holds: open them in steps up to the target;
        at the first step with failures, stop and say why."""
        p = self.profile
        daemon = self.daemon("max-connections")
        await daemon.start()
        reached, why = 0, ""
        failures: list[str] = []
        began = time.monotonic()
        try:
            while reached < p.max_conns:
                shares = self.gens.shares(min(p.max_conns_step, p.max_conns - reached))
                got = await self.gens.call(
                    "connect",
                    [
                        {"port": daemon.port, "n": share, "wait_seconds": 5.0}
                        | {"give_up_after": 8, "address_base": self.gens.address_base(i)}
                        for i, share in enumerate(shares)
                    ],
                )
                reached = sum(r["connected"] for r in got)
                failures = [f for r in got for f in r["failures"]]
                if failures or not daemon.alive():
                    why = self.why_stopped(daemon, reached, failures)
                    break
            else:
                why = f"the target ({p.max_conns:,}) was reached; more was not tried"
            seconds = time.monotonic() - began
            held: dict[str, Any] = {
                "rss_kb": daemon.rss_kb() if daemon.alive() else None,
                "open_files": daemon.open_files() if daemon.alive() else None,
                "open_files_limit": daemon.open_files_limit() if daemon.alive() else None,
            }
            if daemon.alive() and reached:  # still serving at that size: every socket pings
                got = await self.gens.call("ping", {"seconds": 3.0})
                held["pings_per_second_then"] = round(sum(r["pongs"] / r["seconds"] for r in got))
            await self.gens.call("close", {})
        finally:
            await daemon.close(timeout=60)
        self.figures["max_connections_one_process"] = reached
        self.details["max_connections"] = {
            "target": p.max_conns,
            "reached": reached,
            "stopped_because": why,
            "seconds": round(seconds, 1),
            "generator_failures": failures[:3],
            **held,
        }
        self.notes.append(f"max connections of one process: {reached:,}; {why}")
        progress(f"max connections: {reached:,} in {seconds:.1f} s; {why}")

    @staticmethod
    def why_stopped(daemon: Server, reached: int, failures: list[str]) -> str:
        """A best guess, from the daemon's state and log, at why connections stopped."""
        parts = [f"connections failed past {reached:,}"]
        if failures:
            parts.append(f"the generator saw {failures[0]}")
        if not daemon.alive():
            parts.append(f"the daemon exited: {daemon.log_tail(5)}")
            return "; ".join(parts)
        files, limit = daemon.open_files(), daemon.open_files_limit()
        parts.append(f"the daemon holds {files:,} open files of its limit {limit:,}")
        log = daemon.log.read_text(errors="replace") if daemon.log.exists() else ""
        if "Too many open files" in log:
            parts.append("its log says 'Too many open files'")
        elif files >= limit - 16:
            parts.append("it is at its open-files limit")
        return "; ".join(parts)

    async def cross_node(self) -> None:
        """Two daemons on Redis: watchers on the other node vs on the trigger's node."""
        n, events = self.profile.cross_watchers, self.profile.cross_events
        keys = [k for k in figure_keys() if k.startswith("cross_node")]
        problem = redis_problem()
        if problem is not None:
            self.notes.append(f"cross-node not measured: {problem}")
            self.figures.update(dict.fromkeys(keys))
            progress("cross-node: not measured (Redis unreachable)")
            return
        a = self.daemon("node-a", REDIS_URL=REDIS_URL)
        b = self.daemon("node-b", REDIS_URL=REDIS_URL)
        results: dict[str, list[float]] = {}
        try:
            try:
                await a.start()
                await b.start()
            except ServerFailed as exc:
                self.notes.append(f"cross-node not measured: {exc}")
                self.figures.update(dict.fromkeys(keys))
                progress("cross-node: not measured (a daemon with REDIS_URL did not start)")
                return
            for where, server in (("other", b), ("same", a)):
                await self.gens.connect(server.port, n)
                await self.gens.call("watch", {"date": DAY, "employee": CROSS_EMPLOYEE})
                latencies, _ = await self.room_events(
                    a.port, CROSS_EMPLOYEE, events, f"cross_{where}", server
                )
                await self.gens.call("close", {})
                results[where] = latencies
        finally:
            await a.close()
            await b.close()
        for where, latencies in results.items():
            self.figures[f"cross_node_{where}_p50_ms"] = ms(percentile(latencies, 50))
            self.figures[f"cross_node_{where}_p99_ms"] = ms(percentile(latencies, 99))
        base50 = base99 = None
        if n in self.profile.fanout_watchers:  # the one-process fan-out to as many watchers
            key = nominal("fanout_watchers", n, self.profile)
            base50 = self.figures.get(f"fanout_p50_ms_{key}")
            base99 = self.figures.get(f"fanout_p99_ms_{key}")
            basis = f"one process, {n} watchers (fanout_*_ms_{key})"
        if base50 is None or base99 is None:
            base50 = self.figures["cross_node_same_p50_ms"]
            base99 = self.figures["cross_node_same_p99_ms"]
            basis = "watchers on the trigger's node"
        other50 = self.figures["cross_node_other_p50_ms"]
        other99 = self.figures["cross_node_other_p99_ms"]
        assert None not in (base50, base99, other50, other99)
        self.figures["cross_node_extra_p50_ms"] = round(other50 - base50, 3)  # type: ignore[operator]
        self.figures["cross_node_extra_p99_ms"] = round(other99 - base99, 3)  # type: ignore[operator]
        self.details["cross_node"] = {"watchers": n, "events": events, "extra_over": basis}
        progress(
            f"cross-node {n} watchers: other node p50 {other50} / p99 {other99} ms,"
            f" same node (via Redis) p50 {self.figures['cross_node_same_p50_ms']}"
            f" / p99 {self.figures['cross_node_same_p99_ms']} ms"
        )

    async def run(self, only: set[str]) -> None:
        p = self.profile
        if "ping" in only:
            await self.pings()
        if only & {"lock", "fanout", "hook"}:
            daemon = self.daemon("daemon")
            await daemon.start()
            try:
                if "lock" in only:
                    await self.lock_single(daemon)
                    await self.lock_loops(daemon)
                    await self.lock_driver()
                if "fanout" in only:
                    await self.fanouts(daemon)
                if "hook" in only:
                    await self.hooks(daemon, p.hook_watchers)
            finally:
                await daemon.close()
        if "memory" in only:
            for n in p.memory_conns:
                await self.memory(n)
        if "maxconn" in only:
            await self.max_connections()
        if "cross" in only:
            await self.cross_node()


# ---- machine, output ----


def machine(db_version: str, node: NodeFloor) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    busy0, total0 = machine_busy()
    time.sleep(1.0)
    busy1, total1 = machine_busy()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "node": node.node_version,
        "ws": node.ws_version,
        "mariadb": db_version,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # the machine's CPU use over one second before the run: others' load skews everything
        "busy_before_run": round((busy1 - busy0) / (total1 - total0), 3),
    }


def describe_machine(result: dict[str, Any]) -> str:
    m = result["machine"]
    why = result.get("node_floor_missing") or "not measured"
    node = f"node {m['node']} + ws {m['ws']}" if m.get("ws") else f"Node floor: {why}"
    return (
        f"machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Linux {m['kernel']};"
        f" Python {m['python']}, aiohttp {m['aiohttp']}, {node}, MariaDB {m['mariadb']};"
        f" load average {m['load_average'][0]}, {m['busy_before_run']:.0%} busy before the run"
    )


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table: each with its floor (same run) and the ratio."""
    figures: dict[str, float | None] = result["figures"]
    scaled: dict[str, dict[str, int]] = result["sizes"]
    lines = [
        "| figure | value | floor (same run) | ratio | target |",
        "| --- | --- | --- | --- | --- |",
    ]

    def shown(key: str, unit: str) -> str:
        value = figures.get(key)
        if value is None:
            return "not measured"
        if unit.endswith("/s"):
            return f"{value:,.0f}{unit}"
        return f"{value:,.2f} {unit}".strip() if unit else f"{value:,.0f}"

    def target(key: str) -> str:
        if key not in TARGETS or figures.get(key) is None:
            return ""
        op, bound = TARGETS[key]
        value = figures[key]
        ok = {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]  # type: ignore[operator]
        return f"{op} {bound:g}: {'met' if ok else '**not met**'}"

    def row(
        label: str,
        key: str,
        unit: str,
        floor: tuple[str, str] | None = None,
        ratio_key: str | None = None,
        target_key: str | None = None,
    ) -> None:
        if key not in figures:
            return
        floor_text, times = "", ""
        if floor is not None:
            name, floor_key = floor
            floor_text = f"{name} {shown(floor_key, unit)}"
            r = figures.get(ratio_key) if ratio_key else ratio(figures[key], figures[floor_key])
            times = "" if r is None else f"{r:.2f}x"
        lines.append(
            f"| {label} | {shown(key, unit)} | {floor_text} | {times}"
            f" | {target(target_key or ratio_key or key)} |"
        )

    def size(attr: str, n: int) -> str:
        actual = scaled.get(attr, {}).get(str(n), n)
        return f"{n:,}" if actual == n else f"{n:,} (quick: {actual})"

    for n in FULL.ping_conns:
        label = f"ping round trips/s, {size('ping_conns', n)} conns"
        row(label, f"ping_rps_{n}", "/s", ("aiohttp echo", f"echo_rps_{n}"), f"ping_{n}_vs_echo")
        if figures.get(f"node_ws_rps_{n}") is None and f"ping_rps_{n}" in figures:
            why = result.get("node_floor_missing") or "not measured"
            lines.append(f"| {label} | {shown(f'ping_rps_{n}', '/s')} | Node ws: {why} | | |")
        else:
            row(label, f"ping_rps_{n}", "/s", ("Node ws echo", f"node_ws_rps_{n}"))
        row(
            f"CPU per ping, {size('ping_conns', n)} conns",
            f"ping_cpu_us_{n}",
            "us",
            ("aiohttp echo", f"echo_cpu_us_{n}"),
        )
        w = FULL.ping_workers
        row(
            f"ping round trips/s, {size('ping_conns', n)} conns, `--workers {w}`",
            f"ping_rps_{n}_workers_{w}",
            "/s",
            ("aiohttp echo", f"echo_rps_{n}"),
            f"ping_{n}_workers_{w}_vs_echo",
        )
    clients = size("lock_clients", FULL.lock_clients)
    pool = result["details"].get("lock_driver", {}).get("db_pool_size", "?")
    driver = f"store loop (pool {pool})"
    row(
        f"lock saturation, {clients} clients, closed loop",
        "lock_saturation_per_s",
        " locks/s",
        (driver, "lock_driver_per_s"),
        "lock_saturation_vs_driver",
    )
    for q in ("p50", "p99"):
        row(
            f"lock round trip {q}, {clients} clients, closed loop",
            f"lock_closed_{q}_ms",
            "ms",
            (driver, f"lock_driver_{q}_ms"),
        )
    rate = figures.get("lock_open_loop_rate_per_s")
    at = f"{rate:,.0f}/s" if rate is not None else "?"
    share = result["profile"]["open_loop_share"]
    for q in ("p50", "p99"):
        row(
            f"lock round trip {q}, open loop at {at} ({share:.0%} of saturation)",
            f"lock_open_loop_{q}_ms",
            "ms",
            ("store open loop, same rate", f"lock_driver_open_loop_{q}_ms"),
            f"lock_open_loop_{q}_vs_driver",
        )
    for q in ("p50", "p99"):
        row(f"lock round trip {q}, 1 client", f"lock_single_{q}_ms", "ms")
    for n in FULL.fanout_watchers:
        for q in ("p50", "p99"):
            row(
                f"room event, all {size('fanout_watchers', n)} watchers reached, {q}",
                f"fanout_all_{q}_ms_{n}",
                "ms",
                ("bare aiohttp", f"floor_fanout_all_{q}_ms_{n}"),
                f"fanout_{n}_vs_floor_{q}",
            )
        for q in ("p50", "p99"):
            row(
                f"room event to {size('fanout_watchers', n)} watchers, each delivery {q}",
                f"fanout_{q}_ms_{n}",
                "ms",
                ("bare aiohttp", f"floor_fanout_{q}_ms_{n}"),
            )
    n = FULL.hook_watchers
    for q in ("p50", "p99"):
        label = f"hook to slot_taken, {size('hook_watchers', n)} watchers, {q}"
        row(label, f"hook_{q}_ms_{n}", "ms")
    for n in FULL.memory_conns:
        label = f"RSS per idle connection, {size('memory_conns', n)} conns"
        row(label, f"rss_per_conn_kb_{n}", "KB")
    tried = size("max_conns", FULL.max_conns)
    row(f"connections one process holds (tried {tried})", "max_connections_one_process", "")
    cross = size("cross_watchers", FULL.cross_watchers)
    for key, label in (
        ("cross_node_other_p50_ms", f"cross-node event, {cross} watchers on the other node, p50"),
        ("cross_node_other_p99_ms", f"cross-node event, {cross} watchers on the other node, p99"),
        ("cross_node_same_p50_ms", "same setup, watchers on the trigger's node, p50"),
        ("cross_node_same_p99_ms", "same setup, watchers on the trigger's node, p99"),
        ("cross_node_extra_p50_ms", "extra latency of cross-node fan-out, p50"),
        ("cross_node_extra_p99_ms", "extra latency of cross-node fan-out, p99"),
    ):
        row(label, key, "ms")
    return "\n".join(lines)


def mysql_admin(statement: str) -> str:
    conn = pymysql.connect(**MYSQL, autocommit=True, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            row = cur.fetchone()
            return str(row[0]) if row else ""
    finally:
        conn.close()


def daemon_module(env: dict[str, str]) -> str:
    """The ``appointease_realtime`` package the daemons import with ``env`` (same interpreter
    as the console script, same environment)."""
    probe = "import appointease_realtime as m; print(m.__file__)"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True
    )
    return run.stdout.strip() or run.stderr.strip()[-300:]


def init_db(env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "appointease-realtime"
    subprocess.run(
        [str(script), "--env-file", os.devnull, "init-db"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


PARTS = ("ping", "lock", "fanout", "hook", "memory", "maxconn", "cross")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    profile = QUICK if args.quick else FULL
    if args.workers:
        profile = replace(profile, workers=args.workers)
    only = set(args.only.split(",")) if args.only else set(PARTS)
    unknown = only - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    settings = dict(item.split("=", 1) for item in args.set)
    if set(settings) - CONFIG_KEYS:
        raise SystemExit(
            f"--set: unknown setting(s) {', '.join(sorted(set(settings) - CONFIG_KEYS))}"
        )
    nofile = raise_nofile(NOFILE_WANTED)  # inherited by daemons, floors and generators
    workdir = Path(tempfile.mkdtemp(prefix="aert-bench-"))
    db_name = f"aert_bench_{secrets.token_hex(4)}"
    node = prepare_node(workdir) if "ping" in only else NodeFloor(None, "ping not run")
    host = machine(mysql_admin("SELECT VERSION()"), node)
    mysql_admin(f"CREATE DATABASE {db_name}")
    gens = Generators(profile.workers)
    spy = Spy(Path(args.py_spy) if args.py_spy else None)
    bench = Bench(
        profile,
        db_name,
        gens,
        spy,
        workdir,
        node,
        variant=args.variant or "",
        daemon_path=args.daemon_path or "",
        settings=settings,
    )
    module = daemon_module(bench.daemon_env())
    progress(f"daemon code: {module}")
    if nofile < NOFILE_WANTED:
        bench.notes.append(
            f"open-files limit {nofile:,}: the hard limit could not be raised to"
            f" {NOFILE_WANTED:,} (that needs root with CAP_SYS_RESOURCE, or a higher"
            " `ulimit -Hn` before the run); every process of the run has at most that many"
        )
    began = time.time()
    try:
        init_db(bench.daemon_env())
        progress(
            f"{'quick' if args.quick else 'full'} run, {profile.workers} generator processes,"
            f" database {db_name}{', variant ' + bench.variant if bench.variant else ''}"
        )
        await bench.run(only)
    finally:
        gens.stop()
        mysql_admin(f"DROP DATABASE IF EXISTS {db_name}")
        shutil.rmtree(workdir, ignore_errors=True)
    figures = {k: bench.figures[k] for k in figure_keys() if k in bench.figures}
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "seconds": round(time.time() - began, 1),
        "command": " ".join([".venv/bin/python -m bench.run", *sys.argv[1:]]),
        "variant": bench.variant or None,
        "settings": bench.settings,
        # where the daemons' code came from (``--daemon-path`` measures another tree's)
        "daemon_module": module,
        "machine": host,
        "profile": asdict(profile),
        # the size each figure's key names (the full run's) -> the size this run used
        "sizes": sizes(profile),
        "ratios": {k: bench.figures.get(k) for k in REQUIRED_RATIOS},
        "figures": figures,
        "floors": {
            "echo": "bench/echo_server.py: bare aiohttp WebSocket echo, same load as the daemon",
            "node_ws": f"bench/ws_echo.js on Node's {WS_PACKAGE} (npm registry), same load",
            "floor_fanout": "bench/fanout_floor.py: bare aiohttp, one prebuilt frame per watcher",
            "lock_driver": "bench/lock_driver.py: the daemon's Store, same pool, no socket layer",
        },
        "node_floor_missing": node.why_not or None,
        "targets": {k: f"{op} {bound:g}" for k, (op, bound) in TARGETS.items()},
        "details": bench.details,
        "notes": bench.notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny load (the smoke test)")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="the JSON file")
    parser.add_argument("--workers", type=int, help="generator processes")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--py-spy", help="record the daemon with py-spy into this directory")
    parser.add_argument(
        "--variant", help="run the daemon through bench/variants.py with these patches"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a daemon setting for this run (e.g. --set DB_POOL_SIZE=20); the lock driver"
        " reads it too",
    )
    parser.add_argument(
        "--daemon-path",
        help="PYTHONPATH for the daemons and the lock driver only: measure another tree's"
        " daemon (e.g. a worktree of an older commit: --daemon-path /work/before/daemon)",
    )
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(describe_machine(result))
    if args.quick:
        print("quick run: a tiny load, sizes scaled down (in parentheses); not a measurement")
    print()
    print(table(result))
    print()
    for note in result["notes"]:
        print(f"note: {note}")
    progress(f"wrote {out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
