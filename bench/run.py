"""The benchmark: how many booking pages one process holds, how fast a booking reaches them.

    .venv/bin/python -m bench.run            # the full run (about 5 minutes)
    .venv/bin/python -m bench.run --quick    # a tiny load, seconds (tests/test_bench_smoke.py)

Needs MariaDB at 127.0.0.1:3306 (root, no password; a throw-away ``aert_bench_<random>``
database is created, ``init-db``-ed and dropped) and, for the cross-node figure, Redis at
127.0.0.1:6379. Every daemon is the real console script in a subprocess; the load comes from
several generator processes (bench/loadgen.py) with many connections each. A bare aiohttp
echo server (bench/echo_server.py) under the same load is the baseline of the throughput
figures. Writes a table to stdout, progress to stderr and everything to
bench/results/latest.json (or ``--out``).
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
import secrets
import signal
import socket
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

from appointease_realtime.hooks import signed_request

from .loadgen import Worker, frame, raise_nofile, worker_main

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
REDIS_URL = "redis://127.0.0.1:6379/13"
TOKEN_SECRET = "bench-token-secret-" + "x" * 32
HOOK_SECRET = "whsec_" + base64.b64encode(b"appointease-bench-hook-secret-32").decode()
DAY = "2031-03-04"
FANOUT_EMPLOYEE, HOOK_EMPLOYEE, CROSS_EMPLOYEE, LOCK_EMPLOYEE_BASE = 7001, 7002, 7003, 10000
CONFIG_KEYS = (
    "HOST PORT DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME DB_SOCKET DB_POOL_SIZE TABLE_PREFIX "
    "SQLITE_PATH LOCK_TTL_SECONDS HOLD_LIMIT LOCK_RELEASE_GRACE_SECONDS "
    "LOCK_SWEEP_INTERVAL_SECONDS SELECTION_TTL_SECONDS MAX_SELECTIONS_PER_CLIENT RESUME_SECRET "
    "HOOK_SECRET RECONCILE_INTERVAL_SECONDS REDIS_URL TOKEN_SECRET ALLOW_UNSIGNED_EMAIL "
    "DEBUG_TOKEN SITE_URL ALLOWED_ORIGINS RATE_LIMIT_PER_SECOND RATE_LIMIT_BURST "
    "MAX_CONNECTIONS_PER_IP TRUSTED_PROXIES TLS_CERT_FILE TLS_KEY_FILE SHUTDOWN_TIMEOUT_SECONDS "
    "QA_MODE QA_FORCE LOG_LEVEL LOG_FORMAT"
).split()


@dataclass(frozen=True)
class Profile:
    """The sizes of one run."""

    workers: int = 4
    ping_conns: tuple[int, ...] = (50, 500)
    ping_seconds: float = 5.0
    ping_warmup: float = 1.0
    lock_clients: tuple[int, ...] = (1, 100)
    lock_samples: int = 400  # lock round trips per client count (spread over the clients)
    fanout_watchers: tuple[int, ...] = (100, 1000, 5000)
    fanout_events: int = 20  # lock and unlock alternately
    hook_watchers: int = 1000
    hook_events: int = 10
    memory_conns: tuple[int, ...] = (1000, 10000)
    cross_watchers: int = 1000
    cross_events: int = 20
    event_timeout: float = 10.0


FULL = Profile()
QUICK = Profile(
    workers=2,
    ping_conns=(4, 8),
    ping_seconds=0.3,
    ping_warmup=0.1,
    lock_clients=(1, 4),
    lock_samples=8,
    fanout_watchers=(5, 10, 20),
    fanout_events=2,
    hook_watchers=10,
    hook_events=2,
    memory_conns=(20, 50),
    cross_watchers=10,
    cross_events=2,
    event_timeout=5.0,
)

# Targets of one process (docs/performance.md): key -> (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "ping_ratio_50": (">=", 0.8),
    "ping_ratio_500": (">=", 0.8),
    "lock_p99_ms_100": ("<", 5.0),
    "fanout_p99_ms_1000": ("<", 25.0),
    "fanout_p99_ms_5000": ("<", 100.0),
    "mem_kb_per_conn_10000": ("<=", 40.0),
}


def figure_keys(profile: Profile) -> list[str]:
    """Every figure a run of ``profile`` reports (each a number in the JSON)."""
    keys: list[str] = []
    for n in profile.ping_conns:
        keys += [f"ping_rps_{n}", f"echo_rps_{n}", f"ping_ratio_{n}"]
    for n in profile.lock_clients:
        keys += [f"lock_p50_ms_{n}", f"lock_p99_ms_{n}"]
    for n in profile.fanout_watchers:
        keys += [f"fanout_p50_ms_{n}", f"fanout_p99_ms_{n}"]
    keys += [f"hook_p50_ms_{profile.hook_watchers}", f"hook_p99_ms_{profile.hook_watchers}"]
    keys += [f"mem_kb_per_conn_{n}" for n in profile.memory_conns]
    keys += [
        "cross_node_same_p50_ms",
        "cross_node_same_p99_ms",
        "cross_node_other_p50_ms",
        "cross_node_other_p99_ms",
        "cross_node_extra_p50_ms",
        "cross_node_extra_p99_ms",
    ]
    return keys


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- processes: daemons, the echo server, py-spy, generators ----


class ServerFailed(RuntimeError):
    """A server under test did not come up."""


class Server:
    """One server under test in a subprocess, with its pid's CPU time and RSS."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log = Path(tempfile.mkstemp(prefix=f"aert-bench-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile,
            )

    async def start(self, wait_seconds: float = 20.0) -> None:
        """Start the server and wait until ``/readyz`` answers 200."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + wait_seconds
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-1500:]
        self.stop()
        raise ServerFailed(f"{self.name} did not become ready: {tail.strip()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Spy:
    """Optional py-spy recording of a server for the length of one measurement."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def record(self, server: Server, name: str) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        argv = [str(spy), "record", "--pid", str(server.pid), "--rate", "200", "--format"]
        argv += ["raw", "-o", str(self.directory / f"{name}.txt"), "--nonblocking"]
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

    async def connect(self, ports: int | list[int], n: int, path: str = "/") -> None:
        """Open ``n`` connections spread over the generators (``ports`` per generator)."""
        shares = [n // self.count + (1 if i < n % self.count else 0) for i in range(self.count)]
        each = ports if isinstance(ports, list) else [ports] * self.count
        got = await self.call(
            "connect", [{"port": each[i], "n": shares[i], "path": path} for i in range(self.count)]
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


# ---- the harness ----


@dataclass
class Bench:
    profile: Profile
    db_name: str
    gens: Generators
    spy: Spy
    variant: str = ""
    figures: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    strong_ids: int = 0

    # -- servers --

    def daemon_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_KEYS}
        env.update(
            DB_HOST=MYSQL["host"],
            DB_PORT=str(MYSQL["port"]),
            DB_USER=MYSQL["user"],
            DB_PASSWORD="",
            DB_NAME=self.db_name,
            TOKEN_SECRET=TOKEN_SECRET,
            HOOK_SECRET=HOOK_SECRET,
            RATE_LIMIT_PER_SECOND="10000",  # the most the configuration accepts
            RATE_LIMIT_BURST="100000",
            MAX_CONNECTIONS_PER_IP="100000",
            LOG_LEVEL="WARNING",
            RECONCILE_INTERVAL_SECONDS="3600",
        )
        env.update(extra)
        return env

    def daemon(self, name: str, **extra: str) -> Server:
        port = free_port()
        serve = ["--env-file", "/dev/null", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if self.variant:  # the same console entry point, with bench/variants.py's patches
            argv = [sys.executable, "-m", "bench.variants", self.variant, *serve]
        else:
            argv = [str(Path(sys.executable).parent / "appointease-realtime"), *serve]
        return Server(name, argv, self.daemon_env(**extra), port)

    def echo(self) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
        return Server("echo", argv, dict(os.environ), port)

    # -- scenarios --

    async def ping(self, server: Server, n: int) -> float:
        """Pongs a second over ``n`` connections that each ping, wait, ping again."""
        p = self.profile
        await self.gens.connect(server.port, n)
        if p.ping_warmup:
            await self.gens.call("ping", {"seconds": p.ping_warmup})
        cpu0, wall0, (busy0, _) = server.cpu_seconds(), time.monotonic(), machine_busy()
        with self.spy.record(server, f"ping_{server.name}_{n}"):
            got = await self.gens.call("ping", {"seconds": p.ping_seconds})
        wall = time.monotonic() - wall0
        server_cpu = (server.cpu_seconds() - cpu0) / wall
        machine_cpu = (machine_busy()[0] - busy0) / wall
        await self.gens.call("close", {})
        rate = sum(r["pongs"] / r["seconds"] for r in got)
        gen_cpu = sum(r["cpu"] / r["seconds"] for r in got)
        self.details[f"ping_{server.name}_{n}"] = {
            "pongs_per_second": round(rate),
            "server_cpu_share": round(server_cpu, 3),
            "generators_cpu_share": round(gen_cpu, 3),
            # all cores together (2.0 = two cores busy): ours, the kernel's and anything else
            "machine_cpu_busy": round(machine_cpu, 3),
        }
        progress(
            f"ping {server.name} {n} conns: {rate:,.0f}/s"
            f" ({server.name} CPU {server_cpu:.0%}, generators {gen_cpu:.0%} of one core,"
            f" machine {machine_cpu:.0%} of {os.cpu_count()} cores)"
        )
        return rate

    async def locks(self, daemon: Server, n: int) -> None:
        """Lock round trips (``lock_slot`` -> ``slot_locked``) with ``n`` concurrent clients."""
        rounds = max(1, self.profile.lock_samples // n)
        await self.gens.connect(daemon.port, n)
        count = self.gens.count
        shares = [n // count + (1 if i < n % count else 0) for i in range(count)]
        bases, base = [], LOCK_EMPLOYEE_BASE + n * 10
        for share in shares:
            bases.append(base)
            base += share
        with self.spy.record(daemon, f"lock_{n}"):
            got = await self.gens.call(
                "lock",
                [{"rounds": rounds, "date": DAY, "employee_base": b} for b in bases],
            )
        await self.gens.call("close", {})
        locks = [t for r in got for t in r["lock"]]
        unlocks = [t for r in got for t in r["unlock"]]
        refused = sum(r["refused"] for r in got)
        if refused:
            self.notes.append(f"lock with {n} clients: {refused} locks refused")
        self.figures[f"lock_p50_ms_{n}"] = ms(percentile(locks, 50))
        self.figures[f"lock_p99_ms_{n}"] = ms(percentile(locks, 99))
        self.details[f"lock_{n}"] = {
            "samples": len(locks),
            "unlock_p50_ms": ms(percentile(unlocks, 50)),
            "unlock_p99_ms": ms(percentile(unlocks, 99)),
            "max_ms": ms(max(locks)),
        }
        progress(
            f"lock {n} clients: p50 {ms(percentile(locks, 50))} ms,"
            f" p99 {ms(percentile(locks, 99))} ms ({len(locks)} round trips)"
        )

    async def trigger_client(self, port: int) -> tuple[Worker, Any]:
        trigger = Worker(None)  # type: ignore[arg-type]
        await trigger.connect(port, 1)
        return trigger, trigger.clients[0]

    async def room_events(
        self, trigger_port: int, employee: int, events: int, name: str, server: Server
    ) -> tuple[list[float], list[float]]:
        """Lock/unlock a slot of the watched room ``events`` times; per-watcher latencies."""
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

    async def fanout(self, daemon: Server, n: int) -> None:
        """One room event to all of ``n`` watchers."""
        await self.gens.connect(daemon.port, n)
        await self.gens.call("watch", {"date": DAY, "employee": FANOUT_EMPLOYEE})
        latencies, reach_all = await self.room_events(
            daemon.port, FANOUT_EMPLOYEE, self.profile.fanout_events, f"fanout_{n}", daemon
        )
        await self.gens.call("close", {})
        self.figures[f"fanout_p50_ms_{n}"] = ms(percentile(latencies, 50))
        self.figures[f"fanout_p99_ms_{n}"] = ms(percentile(latencies, 99))
        self.details[f"fanout_{n}"] = {
            "deliveries": len(latencies),
            "last_watcher_p50_ms": ms(percentile(reach_all, 50)),
            "last_watcher_max_ms": ms(max(reach_all)),
        }
        progress(
            f"fan-out to {n} watchers: p50 {ms(percentile(latencies, 50))} ms,"
            f" p99 {ms(percentile(latencies, 99))} ms,"
            f" all reached (median event) {ms(percentile(reach_all, 50))} ms"
        )

    async def hooks(self, daemon: Server, n: int) -> None:
        """Insert a booking by SQL, POST its signed hook, time ``slot_taken`` at ``n`` watchers."""
        await self.gens.connect(daemon.port, n)
        await self.gens.call("watch", {"date": DAY, "employee": HOOK_EMPLOYEE})
        db = pymysql.connect(**MYSQL, database=self.db_name, autocommit=True)  # type: ignore[arg-type]
        latencies: list[float] = []
        missing = 0
        url = f"http://127.0.0.1:{daemon.port}/hooks/booking"
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
        self.figures[f"hook_p50_ms_{n}"] = ms(percentile(latencies, 50))
        self.figures[f"hook_p99_ms_{n}"] = ms(percentile(latencies, 99))
        progress(
            f"hook to {n} watchers: p50 {ms(percentile(latencies, 50))} ms,"
            f" p99 {ms(percentile(latencies, 99))} ms"
        )

    async def memory(self, n: int) -> None:
        """RSS growth of a fresh daemon per idle connection, over ``n`` connections."""
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
            daemon.stop()
        per = (after - before) / n
        self.figures[f"mem_kb_per_conn_{n}"] = round(per, 2)
        self.details[f"memory_{n}"] = {
            "rss_before_kb": before,
            "rss_after_kb": after,
            "connect_seconds": round(opened, 2),
        }
        progress(
            f"memory {n} idle connections: {per:.1f} KB each"
            f" (RSS {before / 1024:.0f} -> {after / 1024:.0f} MB, opened in {opened:.1f} s)"
        )

    async def cross_node(self) -> None:
        """Two daemons on Redis: watchers on the other node vs on the trigger's node."""
        n, events = self.profile.cross_watchers, self.profile.cross_events
        keys = [k for k in figure_keys(self.profile) if k.startswith("cross_node")]
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
            client.ping()
            client.close()
        except Exception as exc:
            self.notes.append(f"cross-node not measured: Redis unreachable ({exc})")
            self.figures.update(dict.fromkeys(keys))
            progress("cross-node: not measured (Redis unreachable)")
            return
        a = self.daemon("node-a", REDIS_URL=REDIS_URL)
        b = self.daemon("node-b", REDIS_URL=REDIS_URL)
        try:
            await a.start()
            await b.start()
        except ServerFailed as exc:
            a.stop()
            b.stop()
            self.notes.append(f"cross-node not measured: {exc}")
            self.figures.update(dict.fromkeys(keys))
            progress("cross-node: not measured (a daemon with REDIS_URL did not start)")
            return
        results: dict[str, list[float]] = {}
        try:
            for where, server in (("other", b), ("same", a)):
                await self.gens.connect(server.port, n)
                await self.gens.call("watch", {"date": DAY, "employee": CROSS_EMPLOYEE})
                latencies, _ = await self.room_events(
                    a.port, CROSS_EMPLOYEE, events, f"cross_{where}", server
                )
                await self.gens.call("close", {})
                results[where] = latencies
        finally:
            a.stop()
            b.stop()
        for where, latencies in results.items():
            self.figures[f"cross_node_{where}_p50_ms"] = ms(percentile(latencies, 50))
            self.figures[f"cross_node_{where}_p99_ms"] = ms(percentile(latencies, 99))
        single = self.profile.fanout_watchers
        if n in single:  # the extra over one process with the in-memory broker, same watchers
            base50, base99 = self.figures[f"fanout_p50_ms_{n}"], self.figures[f"fanout_p99_ms_{n}"]
            basis = f"one process, {n} watchers (fanout_*_{n})"
        else:
            base50 = self.figures["cross_node_same_p50_ms"]
            base99 = self.figures["cross_node_same_p99_ms"]
            basis = "watchers on the trigger's node"
        other50, other99 = (
            self.figures["cross_node_other_p50_ms"],
            self.figures["cross_node_other_p99_ms"],
        )
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
            echo = self.echo()
            daemon = self.daemon("daemon")
            await echo.start()
            await daemon.start()
            try:
                for n in p.ping_conns:
                    base = await self.ping(echo, n)
                    rate = await self.ping(daemon, n)
                    self.figures[f"echo_rps_{n}"] = round(base)
                    self.figures[f"ping_rps_{n}"] = round(rate)
                    self.figures[f"ping_ratio_{n}"] = round(rate / base, 3)
            finally:
                echo.stop()
                daemon.stop()
        if only & {"lock", "fanout", "hook"}:
            daemon = self.daemon("daemon")
            await daemon.start()
            try:
                if "lock" in only:
                    for n in p.lock_clients:
                        await self.locks(daemon, n)
                if "fanout" in only:
                    for n in p.fanout_watchers:
                        await self.fanout(daemon, n)
                if "hook" in only:
                    await self.hooks(daemon, p.hook_watchers)
            finally:
                daemon.stop()
        if "memory" in only:
            for n in p.memory_conns:
                await self.memory(n)
        if "cross" in only:
            await self.cross_node()


# ---- machine, output ----


def machine(db_version: str) -> dict[str, Any]:
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
        "mariadb": db_version,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # the machine's CPU use over one second before the run: others' load skews everything
        "busy_before_run": round((busy1 - busy0) / (total1 - total0), 3),
    }


def table(result: dict[str, Any]) -> str:
    figures = result["figures"]
    lines = ["| figure | value | vs. bare echo / target | met |", "| --- | --- | --- | --- |"]

    def verdict(key: str) -> tuple[str, str]:
        if key not in TARGETS or figures.get(key) is None:
            return "", ""
        op, bound = TARGETS[key]
        value = figures[key]
        ok = {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]
        return f"target {op} {bound:g}", "yes" if ok else "**no**"

    def row(label: str, key: str, unit: str, extra: str = "") -> None:
        value = figures.get(key)
        shown = "not measured" if value is None else f"{value:,.2f} {unit}".strip()
        target, met = verdict(key)
        lines.append(f"| {label} | {shown} | {' '.join(x for x in (extra, target) if x)} | {met} |")

    profile = Profile(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in result["profile"].items()}
    )
    for n in profile.ping_conns:
        if figures.get(f"ping_rps_{n}") is not None:
            target, met = verdict(f"ping_ratio_{n}")
            lines.append(
                f"| ping round trips/s, {n} conns | {figures[f'ping_rps_{n}']:,.0f}/s"
                f" | {figures[f'ping_ratio_{n}']:.2f}x echo ({figures[f'echo_rps_{n}']:,.0f}/s)"
                f"{'; ' + target if target else ''} | {met} |"
            )
    for n in profile.lock_clients:
        for q in ("p50", "p99"):
            if f"lock_{q}_ms_{n}" in figures:
                row(f"lock round trip {q}, {n} client(s)", f"lock_{q}_ms_{n}", "ms")
    for n in profile.fanout_watchers:
        for q in ("p50", "p99"):
            if f"fanout_{q}_ms_{n}" in figures:
                row(f"room event to {n:,} watchers, {q}", f"fanout_{q}_ms_{n}", "ms")
    n = profile.hook_watchers
    for q in ("p50", "p99"):
        if f"hook_{q}_ms_{n}" in figures:
            row(f"hook to slot_taken, {n:,} watchers, {q}", f"hook_{q}_ms_{n}", "ms")
    for n in profile.memory_conns:
        if f"mem_kb_per_conn_{n}" in figures:
            row(f"RSS per idle connection, {n:,} conns", f"mem_kb_per_conn_{n}", "KB")
    for key, label in (
        ("cross_node_other_p50_ms", "cross-node event, watchers on the other node, p50"),
        ("cross_node_other_p99_ms", "cross-node event, watchers on the other node, p99"),
        ("cross_node_same_p50_ms", "same setup, watchers on the trigger's node, p50"),
        ("cross_node_same_p99_ms", "same setup, watchers on the trigger's node, p99"),
        ("cross_node_extra_p50_ms", "extra latency of cross-node fan-out, p50"),
        ("cross_node_extra_p99_ms", "extra latency of cross-node fan-out, p99"),
    ):
        if key in figures:
            row(label, key, "ms")
    return "\n".join(lines)


def mysql_admin(statement: str) -> str:
    conn = pymysql.connect(**MYSQL, autocommit=True, connect_timeout=3)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            row = cur.fetchone()
            return str(row[0]) if row else ""
    finally:
        conn.close()


def init_db(db_name: str, env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "appointease-realtime"
    subprocess.run(
        [str(script), "--env-file", "/dev/null", "init-db"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    profile = QUICK if args.quick else FULL
    if args.workers:
        profile = replace(profile, workers=args.workers)
    only = (
        set(args.only.split(","))
        if args.only
        else {"ping", "lock", "fanout", "hook", "memory", "cross"}
    )
    raise_nofile()
    db_name = f"aert_bench_{secrets.token_hex(4)}"
    db_version = mysql_admin("SELECT VERSION()")
    host = machine(db_version)
    mysql_admin(f"CREATE DATABASE {db_name}")
    gens = Generators(profile.workers)
    bench = Bench(profile, db_name, gens, Spy(Path(args.py_spy) if args.py_spy else None))
    bench.variant = args.variant or ""
    began = time.time()
    try:
        init_db(db_name, bench.daemon_env())
        progress(
            f"{'quick' if args.quick else 'full'} run, {profile.workers} generator processes,"
            f" database {db_name}{', variant ' + bench.variant if bench.variant else ''}"
        )
        await bench.run(only)
    finally:
        gens.stop()
        mysql_admin(f"DROP DATABASE IF EXISTS {db_name}")
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "seconds": round(time.time() - began, 1),
        "command": " ".join([".venv/bin/python -m bench.run", *sys.argv[1:]]),
        "variant": bench.variant or None,
        "machine": host,
        "profile": asdict(profile),
        "figures": bench.figures,
        "targets": {k: f"{op} {bound:g}" for k, (op, bound) in TARGETS.items()},
        "details": bench.details,
        "notes": bench.notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny load (the smoke test)")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="the JSON file")
    parser.add_argument("--workers", type=int, help="generator processes")
    parser.add_argument(
        "--only", help="comma-separated subset of ping,lock,fanout,hook,memory,cross"
    )
    parser.add_argument("--py-spy", help="record the daemon with py-spy into this directory")
    parser.add_argument(
        "--variant", help="run the daemon through bench/variants.py with these patches"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    for note in result["notes"]:
        print(f"note: {note}")
    progress(f"wrote {out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
