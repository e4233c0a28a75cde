"""``serve --workers N``: N daemon processes on one port (``SO_REUSEPORT``) under one parent.

The parent binds nothing. It starts every worker as ``python -m appointease_realtime serve
--worker-of <parent pid>`` (the same env file, host and port) with ``NOTIFY_SOCKET`` naming a
datagram socket of the parent's own, so a worker speaks the ordinary ``sd_notify`` protocol
(``systemd.py``) to its parent, never to systemd. The parent:

- sends systemd ``READY=1`` once, when every worker has said ``READY=1`` (its port is bound and
  its database answered), and passes a starting worker's ``STATUS=`` lines on;
- feeds systemd's watchdog while every ready worker feeds its own (a worker silent for a whole
  ``WatchdogSec`` is killed and started again);
- on SIGTERM/SIGINT says ``STOPPING=1`` and sends SIGTERM to every worker (each stops accepting,
  closes its sockets with 1001 and exits 0); it exits 0 when all did, 1 otherwise;
- starts a worker that died after it was ready again (at most ``RESTART_BURST`` times in
  ``RESTART_WINDOW`` seconds, then it stops them all and exits 1); a worker that dies before it
  was ever ready stops them all, and the parent exits with that worker's status, as one process
  would (2: configuration, 1: database).

Every worker is a node of its own (its own id in ``/debug``), so more than one needs
``REDIS_URL``, and MySQL/MariaDB: the embedded SQLite file is for one process. Workers run in
a session of their own (a terminal's Ctrl-C or supervisor's group signal reaches the parent
only, which forwards it once) and get SIGTERM from the kernel if the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .config import ConfigError, Settings
from .systemd import notify, watchdog_interval

log = logging.getLogger(__name__)

RESTART_BURST = 5  # restarts of workers allowed within RESTART_WINDOW
RESTART_WINDOW = 60.0
RESTART_DELAY = 1.0  # seconds before a dead worker is started again
STOP_GRACE = 10.0  # seconds past SHUTDOWN_TIMEOUT_SECONDS before a worker gets SIGKILL
_PR_SET_PDEATHSIG = 1


def check(settings: Settings, workers: int) -> None:
    """Raise :class:`ConfigError` when ``workers`` processes cannot share ``settings``."""
    if workers <= 1:
        return
    if not settings.redis_url:
        raise ConfigError(
            f"WORKERS: {workers} workers need REDIS_URL (each worker is a node of its own;"
            " Redis carries events between them)"
        )
    if not settings.uses_mysql:
        raise ConfigError(
            f"WORKERS: {workers} workers need MySQL/MariaDB (DB_HOST or DB_SOCKET);"
            " the embedded SQLite file is for one process"
        )
    if settings.port == 0:
        raise ConfigError("WORKERS: workers share one port; PORT 0 would give each its own")


def adopt(parent_pid: int) -> bool:
    """In a worker: get SIGTERM when the parent dies; False if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == parent_pid


@dataclass
class Worker:
    """One worker process and what the parent knows of it."""

    index: int
    sock: socket.socket  # where it sends its sd_notify datagrams
    address: str  # that socket as NOTIFY_SOCKET names it (abstract: "@...")
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    ever_ready: bool = False
    seen: float = field(default_factory=time.monotonic)  # last datagram


class Supervisor:
    """Starts, watches and stops the workers; :meth:`run` returns the parent's exit status."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        shutdown_timeout: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.count = count
        self.stop_timeout = shutdown_timeout + STOP_GRACE
        self.environ = dict(os.environ if environ is None else environ)
        self.workers: list[Worker] = []
        self.stopping = False
        self.status: int | None = None  # set by a fatal failure
        self.announced = False
        self.restarts: list[float] = []
        self._done: asyncio.Event | None = None

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT or a fatal failure; the exit status."""
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        tag = f"appointease-realtime.{os.getpid()}.{secrets.token_hex(4)}"
        for index in range(1, self.count + 1):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.bind(f"\0{tag}.{index}")
            sock.setblocking(False)
            worker = Worker(index, sock, f"@{tag}.{index}")
            loop.add_reader(sock, self._on_datagram, worker)
            self.workers.append(worker)
        interval = watchdog_interval(self.environ)
        watchdog = asyncio.create_task(self._watchdog(interval)) if interval else None
        keepers = [asyncio.create_task(self._keep(worker)) for worker in self.workers]
        try:
            await self._done.wait()
            await self._stop_all(keepers)
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            for worker in self.workers:
                loop.remove_reader(worker.sock)
                worker.sock.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if self.status is not None:
            return self.status
        codes = [w.proc.returncode if w.proc else 0 for w in self.workers]
        log.info("all workers stopped (exit statuses %s)", codes)
        return 0 if all(code == 0 for code in codes) else 1

    def stop(self, status: int | None = None) -> None:
        """Begin the drain: SIGTERM to every worker (idempotent)."""
        if status is not None and self.status is None:
            self.status = status
        if self.stopping:
            return
        self.stopping = True
        notify("STOPPING=1", self.environ)
        log.info("stopping %d workers", self.count)
        for worker in self.workers:
            self._signal(worker, signal.SIGTERM)
        if self._done is not None:
            self._done.set()

    # ---- one worker ----

    def _env(self, worker: Worker) -> dict[str, str]:
        env = dict(self.environ, NOTIFY_SOCKET=worker.address)
        env.pop("WATCHDOG_PID", None)  # the worker pings its parent, at the parent's pace
        return env

    async def _keep(self, worker: Worker) -> None:
        """Run one worker; start it again after a crash, or stop everything."""
        try:
            await self._run_worker(worker)
        except Exception:  # e.g. the interpreter cannot be started: no point in going on
            log.exception("worker %d could not be run: stopping", worker.index)
            self.stop(1)

    async def _run_worker(self, worker: Worker) -> None:
        while not self.stopping:
            worker.ready = False
            worker.seen = time.monotonic()
            worker.proc = await asyncio.create_subprocess_exec(
                *self.command, env=self._env(worker), start_new_session=True
            )
            log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)
            if self.stopping:  # the drain began while it was being started
                self._signal(worker, signal.SIGTERM)
            code = await worker.proc.wait()
            was_ready, worker.ready = worker.ready, False
            if self.stopping:
                log.info("worker %d (pid %d) exited %d", worker.index, worker.proc.pid, code)
                return
            if not worker.ever_ready:
                log.error("worker %d exited %d before it was ready: stopping", worker.index, code)
                self.stop(code if code > 0 else 1)
                return
            log.error("worker %d (pid %d) exited %d", worker.index, worker.proc.pid, code)
            if was_ready and self.announced:
                serving = sum(w.ready for w in self.workers)
                notify(f"STATUS=serving with {serving} of {self.count} workers", self.environ)
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW]
            if len(self.restarts) >= RESTART_BURST:
                log.error(
                    "%d worker restarts within %.0f s: stopping", RESTART_BURST, RESTART_WINDOW
                )
                self.stop(1)
                return
            self.restarts.append(now)
            await asyncio.sleep(RESTART_DELAY)

    def _on_datagram(self, worker: Worker) -> None:
        """A worker's sd_notify message: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1."""
        try:
            data = worker.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        worker.seen = time.monotonic()
        for line in data.decode(errors="replace").splitlines():
            if line == "READY=1" and not worker.ready:
                worker.ready = worker.ever_ready = True
                log.info("worker %d ready", worker.index)
                self._all_ready()
            elif line.startswith("STATUS=") and not worker.ready and not self.stopping:
                notify(f"STATUS=worker {worker.index}: {line[7:]}", self.environ)

    def _all_ready(self) -> None:
        if self.stopping or not all(w.ready for w in self.workers):
            return
        if not self.announced:
            self.announced = True
            log.info("all %d workers ready", self.count)
            notify(f"READY=1\nSTATUS=serving with {self.count} workers", self.environ)
        else:
            notify(f"STATUS=serving with {self.count} workers", self.environ)

    async def _watchdog(self, interval: float) -> None:
        """Feed systemd's watchdog; kill a ready worker that stopped feeding ours."""
        while True:
            now = time.monotonic()
            for worker in self.workers:
                if worker.ready and now - worker.seen > 2 * interval:
                    log.error("worker %d missed its watchdog: killing it", worker.index)
                    worker.ready = False
                    self._signal(worker, signal.SIGKILL)
            notify("WATCHDOG=1", self.environ)
            await asyncio.sleep(interval)

    def _signal(self, worker: Worker, sig: int) -> None:
        if worker.proc is not None and worker.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(sig)

    async def _stop_all(self, keepers: list[asyncio.Task[None]]) -> None:
        """Wait for every worker to exit; SIGKILL what is left after the stop timeout."""
        _, pending = await asyncio.wait(keepers, timeout=self.stop_timeout)
        if pending:
            log.error("workers still running after %.0f s: killing them", self.stop_timeout)
            for worker in self.workers:
                self._signal(worker, signal.SIGKILL)
            await asyncio.wait(pending)


def worker_command(env_file: str, host: str, port: int) -> list[str]:
    """The command line of one worker: this interpreter, this package, this configuration."""
    return [
        sys.executable,
        "-m",
        "appointease_realtime",
        "--env-file",
        env_file,
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--worker-of",
        str(os.getpid()),
    ]


def supervise(settings: Settings, count: int, env_file: str) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT; the parent's exit status."""
    supervisor = Supervisor(
        worker_command(env_file, settings.host, settings.port),
        count,
        settings.shutdown_timeout_seconds,
    )
    log.info("starting %d workers on %s:%d (SO_REUSEPORT)", count, settings.host, settings.port)
    return asyncio.run(supervisor.run())
