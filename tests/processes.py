"""Real processes for fault tests: the daemon as admins run it, and a private MariaDB server
that a test may stop and start without disturbing the shared one."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """``appointease-realtime serve`` in a subprocess, on a fixed port across restarts."""

    def __init__(
        self,
        workdir: Path,
        tls: ssl.SSLContext | None = None,
        command: list[str] | None = None,
        **env: str,
    ) -> None:
        """``tls``: a client context trusting the daemon's certificate (https/wss);
        ``command``: how to run the CLI (default: ``python -m appointease_realtime``)."""
        self.command = command or [sys.executable, "-m", "appointease_realtime"]
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        secure = "s" if tls else ""
        self.url = f"http{secure}://127.0.0.1:{self.port}"
        self.ws_url = f"ws{secure}://127.0.0.1:{self.port}"
        self.log = workdir / f"daemon-{self.port}.log"
        self.env = {**os.environ, "DB_HOST": "", "SQLITE_PATH": str(workdir / "db.sqlite3"), **env}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start and wait until /healthz answers."""
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                "--env-file",
                os.devnull,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=log,
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(150):
                try:
                    async with session.get(f"{self.url}/healthz", ssl=self.tls) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        raise AssertionError(f"daemon did not start; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the daemon's output."""
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
