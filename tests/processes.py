"""Real processes for tests and the benchmark: servers on loopback ports (the daemon as admins
run it, and the benchmark's floors), and a private MariaDB server that a test may stop and
start without disturbing the shared one.

The one place that finds free ports, starts servers, waits until they answer, stops them, and
reads what a server costs (CPU seconds, RSS, open files) from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_times_of(pid: int) -> tuple[float, float]:
    """User and system CPU seconds process ``pid`` has used so far (``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(stat[11]) / ticks, int(stat[12]) / ticks


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (``cert.pem``, ``key.pem`` in
    ``directory``), made with openssl; raises CalledProcessError if openssl fails."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def raise_nofile(want: int = 0) -> int:
    """Raise this process's open-files limit (inherited by its children); return the new soft
    limit. The soft limit goes up to the hard one, and past it to ``want`` when the process
    may raise the hard limit (root); otherwise the hard limit stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return max(soft, hard)


class ServerFailed(AssertionError):
    """A server did not come up; the message ends with the end of its log."""


class Server:
    """A server in a subprocess on a loopback port, ready once ``ready_path`` answers 200.

    ``argv`` runs it; its output (stdout and stderr) is appended to ``log``. ``tls`` is a
    client context trusting its certificate (https/wss URLs).
    """

    ready_path = "/healthz"
    start_seconds = 15.0

    def __init__(
        self,
        argv: list[str],
        log: Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        tls: ssl.SSLContext | None = None,
        name: str = "server",
        ready_path: str | None = None,
    ) -> None:
        self.argv = argv
        self.ready_path = ready_path or self.ready_path
        self.log = log
        self.port = port or free_port()
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.tls = tls
        self.name = name
        secure = "s" if tls else ""
        self.url = f"http{secure}://127.0.0.1:{self.port}"
        self.ws_url = f"ws{secure}://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    def command_line(self) -> list[str]:
        """What runs the server (read at each start)."""
        return self.argv

    async def start(self) -> None:
        """Start and wait until ``ready_path`` answers 200; ServerFailed if it does not."""
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command_line(),
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + self.start_seconds
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline and self.proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    url = f"{self.url}{self.ready_path}"
                    tls = True if self.tls is None else self.tls
                    async with session.get(url, ssl=tls) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        await self.close()
        raise ServerFailed(f"{self.name} did not start; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.returncode is None

    async def kill9(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def close(self, timeout: float = 15) -> None:
        """Stop if running (SIGTERM, then SIGKILL after ``timeout``); never raises."""
        if not self.alive():
            return
        try:
            await self.stop(timeout=timeout)
        except TimeoutError:
            await self.kill9()

    # ---- what it costs, from /proc ----

    @property
    def pid(self) -> int:
        """The process id (started servers only)."""
        assert self.proc is not None
        return self.proc.pid

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU seconds the process has used so far."""
        return cpu_times_of(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the process has used so far."""
        return sum(self.cpu_times())

    def rss_kb(self) -> int:
        """Resident memory (VmRSS) in KB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def open_files(self) -> int:
        """How many file descriptors the process holds (sockets included)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def open_files_limit(self) -> int:
        """The process's soft limit on open files."""
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise RuntimeError(f"no open-files limit for pid {self.pid}")


class Daemon(Server):
    """``appointease-realtime serve`` in a subprocess, on a fixed port across restarts."""

    def __init__(
        self,
        workdir: Path,
        tls: ssl.SSLContext | None = None,
        command: list[str] | None = None,
        **env: str,
    ) -> None:
        """``tls``: a client context trusting the daemon's certificate (https/wss);
        ``command``: how to run the CLI (default: ``python -m appointease_realtime``);
        ``env``: settings over the inherited environment (the embedded SQLite file in
        ``workdir`` unless they name a database)."""
        port = free_port()
        super().__init__(
            [],
            workdir / f"daemon-{port}.log",
            port=port,
            env={**os.environ, "DB_HOST": "", "SQLITE_PATH": str(workdir / "db.sqlite3"), **env},
            cwd=workdir,
            tls=tls,
            name="daemon",
        )
        self.command = command or [sys.executable, "-m", "appointease_realtime"]
        self.workdir = workdir

    def command_line(self) -> list[str]:
        """The CLI's ``serve`` on this port, with no .env file."""
        serve = ["--env-file", os.devnull, "serve", "--host", "127.0.0.1", "--port"]
        return [*self.command, *serve, str(self.port)]


class PrivateMariaDB:
    """A MariaDB server of the test's own (same binaries as the shared one), on its own port."""

    def __init__(self, workdir: Path) -> None:
        self.datadir = workdir / "mariadb"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """None when the server binaries exist, else why not."""
        for tool in ("mariadbd", "mariadb-install-db"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                return f"{tool} not found"
        return None

    def install(self) -> None:
        """Create the data directory (root, no password, on 127.0.0.1)."""
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = (self.datadir.parent / "mariadb.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir.parent / 'mariadb.sock'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("private MariaDB did not start")

    def stop(self) -> None:
        """Shut the server down cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
