"""The deployment of docs/operations.md, built for real on loopback ports.

``deployment`` (one per module) is:

- a private ``redis-server`` (:class:`tests.redis_support.ThrowawayRedis`);
- a throw-away WordPress with the bridge installed from the release zip
  (``tests/wordpress/wp_harness.py``) on its own MariaDB database; its daemon URL is nginx's
  internal door, its public URL ``wss://127.0.0.1:<nginx>/realtime``;
- an env file made by ``appointease-realtime genconfig`` (fresh secrets, the same for
  WordPress), edited as the docs say, passed by ``check``, and two daemons started from it as
  systemd would (``appointease-realtime --env-file <file> serve``, the installed console script,
  an almost empty process environment), each on its own port;
- Debian's nginx running ``nginx/appointease-realtime.conf`` as shipped but for the lines marked
  EDIT (ports, certificate) and its log paths, with TLS from a certificate made here by
  ``openssl req -x509``;
- Debian's Chromium (``--ignore-certificate-errors``) driven by Playwright.

Without nginx, Chromium, Playwright, redis-server, PHP/WordPress or MariaDB the tests skip
locally and fail with ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from appointease_realtime.auth import mint_token
from tests.browser.conftest import CHROMIUM
from tests.browser.conftest import CHROMIUM_ARGS as BROWSER_ARGS
from tests.conftest import need
from tests.processes import Server, free_port, self_signed_certificate
from tests.redis_support import ThrowawayRedis
from tests.wordpress.wp_harness import (
    WordPressSite,
    WordPressUnavailable,
    build_bridge_zip,
    check_requirements,
    start_wordpress,
)

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED_CONF = ROOT / "nginx" / "appointease-realtime.conf"
SCRIPT = Path(sys.executable).parent / "appointease-realtime"
CHROMIUM_ARGS = [*BROWSER_ARGS, "--ignore-certificate-errors"]  # the test's own certificate
# The one switch of the shipped file a test flips: refuse WebSocket upgrades.
POLLING_SWITCH = "# if ($http_upgrade) { return 403; }"


def nginx_binary() -> str | None:
    """Debian's nginx, or None."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    return found


def filled(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced; every key must occur, so the shipped file is what runs."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped nginx file"
        text = text.replace(old, new)
    return text


def set_keys(env_text: str, values: dict[str, str]) -> str:
    """An env file with ``values`` set: each key's ``# KEY=...`` or ``KEY=...`` line replaced."""
    for key, value in values.items():
        line = f"{key}={value}"
        pattern = re.compile(rf"^(# )?{key}=.*$", re.MULTILINE)
        if pattern.search(env_text):
            env_text = pattern.sub(lambda _: line, env_text, count=1)  # noqa: B023
        else:
            env_text += f"\n{line}\n"
    return env_text


def env_value(env_text: str, key: str) -> str:
    """The value of an uncommented ``KEY=value`` line."""
    match = re.search(rf"^{key}=(.*)$", env_text, re.MULTILINE)
    assert match, f"{key} not in the env file"
    return match.group(1).strip()


class DeployedDaemon(Server):
    """``appointease-realtime --env-file <file> serve`` as systemd runs it (no settings from
    the test's environment)."""

    def __init__(self, workdir: Path, index: int, env_file: Path, port: int) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        super().__init__(
            [str(SCRIPT), "--env-file", str(env_file), "serve"],
            workdir / f"daemon{index}.log",
            port=port,
            env=env,
            cwd=workdir,
            name=f"daemon {index}",
        )
        self.index = index


class Nginx(Server):
    """nginx in the foreground with the shipped file (filled in) under ``workdir``."""

    ready_path = "/healthz"  # through the internal door: a daemon answers

    def __init__(self, workdir: Path, site_conf: str, https_port: int, internal_port: int) -> None:
        self.workdir = workdir
        self.site_conf = site_conf
        self.conf_path = workdir / "conf.d" / "appointease-realtime.conf"
        self.main_conf = workdir / "nginx.conf"
        self.https_port = https_port
        self.error_log = workdir / "logs" / "error.log"
        self.access_log = workdir / "logs" / "appointease-realtime.access.log"
        self.internal_log = workdir / "logs" / "appointease-realtime.internal.log"
        for sub in ("conf.d", "logs", "tmp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self._write(polling_only=False)
        user = "user root;\n" if os.geteuid() == 0 else ""
        tmp = workdir / "tmp"
        self.main_conf.write_text(
            f"{user}worker_processes 2;\nworker_rlimit_nofile 8192;\n"
            f"pid {workdir}/nginx.pid;\nerror_log {self.error_log} notice;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            "    default_type application/octet-stream;\n"
            f"    client_body_temp_path {tmp}/body;\n    proxy_temp_path {tmp}/proxy;\n"
            f"    fastcgi_temp_path {tmp}/fastcgi;\n    uwsgi_temp_path {tmp}/uwsgi;\n"
            f"    scgi_temp_path {tmp}/scgi;\n"
            f"    include {self.conf_path};\n"
            "}\n"
        )
        binary = nginx_binary() or "nginx"
        self.base = [
            binary,
            "-p",
            str(workdir),
            "-c",
            str(self.main_conf),
            "-e",
            str(self.error_log),
        ]
        super().__init__(
            [*self.base, "-g", "daemon off;"],
            workdir / "nginx.out",
            port=internal_port,
            name="nginx",
        )
        self.polling_only = False

    def _write(self, polling_only: bool) -> None:
        text = self.site_conf
        if polling_only:
            text = filled(text, {POLLING_SWITCH: POLLING_SWITCH.removeprefix("# ")})
        self.conf_path.write_text(text)

    def check(self) -> str:
        """``nginx -t`` on the current files; its output (fails on an error or a warning)."""
        result = subprocess.run([*self.base, "-t"], capture_output=True, text=True, timeout=30)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "[warn]" not in out and "[emerg]" not in out, out
        return out

    async def set_polling_only(self, on: bool, tls: ssl.SSLContext) -> None:
        """Flip the shipped switch that refuses upgrades, reload, wait until it is in force."""
        self._write(on)
        self.check()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        want = 403 if on else 101
        deadline = time.monotonic() + 15
        async with aiohttp.ClientSession() as session:
            while True:
                status = await upgrade_status(
                    session, f"wss://127.0.0.1:{self.https_port}/realtime", tls
                )
                if status == want:
                    break
                assert time.monotonic() < deadline, f"upgrade still answers {status}"
                await asyncio.sleep(0.1)
        self.polling_only = on


async def upgrade_status(session: aiohttp.ClientSession, url: str, tls: ssl.SSLContext) -> int:
    """101 when a WebSocket opens at ``url``, else the refusal's HTTP status."""
    try:
        async with session.ws_connect(url, ssl=tls, timeout=aiohttp.ClientWSTimeout(ws_close=2)):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


class Deployment:
    """Everything of one deployment, and the helpers the tests share."""

    def __init__(
        self,
        workdir: Path,
        site: WordPressSite,
        daemons: list[DeployedDaemon],
        nginx: Nginx,
        browser: Any,
        tls: ssl.SSLContext,
        env_text: str,
        internal_port: int,
    ) -> None:
        self.workdir = workdir
        self.site = site
        self.daemons = daemons
        self.nginx = nginx
        self.browser = browser
        self.tls = tls
        self.env_text = env_text
        self.debug_token = env_value(env_text, "DEBUG_TOKEN")
        self.public = f"https://127.0.0.1:{nginx.https_port}/realtime"
        self.internal = f"http://127.0.0.1:{internal_port}"
        self.tokens: list[str] = []  # every connection token a page was given

    async def debug(self, daemon: DeployedDaemon) -> dict[str, Any]:
        """``/debug`` of one daemon, straight from its port."""
        headers = {"Authorization": f"Bearer {self.debug_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{daemon.url}/debug", headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def nudge(self) -> None:
        """One request through nginx to a daemon (moves the round robin on by one)."""
        url = f"{self.public}/api/availability?date=2030-01-01&employeeId=1"
        async with aiohttp.ClientSession() as session, session.get(url, ssl=self.tls) as resp:
            assert resp.status == 200, await resp.text()

    async def where(self, client_id: str) -> int | None:
        """Index (0, 1) of the daemon ``client_id`` is connected to, or None."""
        for index, daemon in enumerate(self.daemons):
            if daemon.alive() and any(
                c["id"] == client_id for c in (await self.debug(daemon))["clients"]
            ):
                return index
        return None

    async def lock_rows(self, date: str) -> dict[str, str]:
        """``"<time> <employee>" -> client_id`` of the live holds of ``date`` (database clock)."""
        rows = await asyncio.to_thread(
            self.site.sql,
            f"SELECT time, employee_id, client_id FROM `{self.site.locks_table}`"
            " WHERE date = %s AND expires_at > NOW()",
            (date,),
        )
        return {f"{str(r['time'])[:-3].zfill(5)} {r['employee_id']}": r["client_id"] for r in rows}

    def token_url(self, email: str) -> str:
        """A socket URL for customer ``email`` with a token minted as the bridge mints it."""
        token = mint_token(
            env_value(self.env_text, "TOKEN_SECRET"), f"test:{email}", email, "customer"
        )
        self.tokens.append(token)
        return f"wss://127.0.0.1:{self.nginx.https_port}/realtime/ws/{token}"

    async def open_page(
        self,
        clients: int = 1,
        customer: str | None = None,
        options: dict[str, Any] | None = None,
        urls: list[str] | None = None,
    ) -> Page:
        """A WordPress page (signed in as ``customer`` if given) with ``clients`` instances of
        realtime-client.js, loaded through nginx, on ``bookingAPI.wsUrl`` (or on ``urls``, one
        per client); not connected yet."""
        context = await self.browser.new_context(ignore_https_errors=True)
        if customer:
            await context.add_cookies(
                [
                    {
                        "name": "aert_standin_customer",
                        "value": customer.replace("@", "%40"),
                        "url": self.site.base_url + "/",
                    }
                ]
            )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(self.site.base_url + "/", wait_until="load")
        ws_url = await page.evaluate(
            PAGE_SETUP, [f"{self.public}/assets/realtime-client.js", clients, options or {}, urls]
        )
        match = re.search(r"/ws/([^/?#]+)", ws_url)
        if match:
            self.tokens.append(match.group(1))
        return Page(context, page, str(ws_url), errors)

    def logs(self) -> dict[str, str]:
        """Every access log of the deployment: nginx's two, and WordPress's (php -S, debug.log)."""
        paths = {
            "nginx access": self.nginx.access_log,
            "nginx internal": self.nginx.internal_log,
            "php -S": self.site.server_log_path,
            "wp debug.log": self.site.debug_log_path,
        }
        return {
            name: path.read_text(errors="replace") if path.exists() else ""
            for name, path in paths.items()
        }


# Runs in a page of the site: load the client through nginx, make `count` clients on the
# wsUrl the bridge handed the page, each logging its frames, closes, opens and modes.
PAGE_SETUP = """
async ([clientUrl, count, options, urls]) => {
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = clientUrl;
    s.onload = resolve;
    s.onerror = () => reject(new Error('cannot load ' + clientUrl));
    document.head.appendChild(s);
  });
  window.clients = [];
  for (let i = 0; i < count; i++) {
    const log = { frames: [], closes: [], opens: [], modes: [] };
    const url = urls ? urls[i] : window.bookingAPI.wsUrl;
    const rt = new AppointEaseRealtime(Object.assign({ url: url }, options));
    rt.on('message', (f) => log.frames.push(Object.assign({ at: Date.now() }, f)));
    rt.on('close', (c) => log.closes.push(c.code));
    rt.on('open', (h) => log.opens.push(
      { at: Date.now(), clientId: h.clientId, resumed: !!h.resumed }));
    rt.on('mode', (m) => log.modes.push(m));
    rt.log = log;
    window.clients.push(rt);
  }
  return window.bookingAPI.wsUrl;
}
"""


class Page:
    """One browser context on a page of the site, holding some clients."""

    def __init__(self, context: Any, page: Any, ws_url: str, errors: list[str]) -> None:
        self.context = context
        self.page = page
        self.ws_url = ws_url
        self.errors = errors

    async def js(self, expression: str, arg: Any = None) -> Any:
        """Evaluate ``expression`` (a function of ``arg``) in the page."""
        return await self.page.evaluate(expression, arg)

    async def connect(self) -> list[dict[str, Any]]:
        """Connect every client; their ``connection`` frames."""
        hellos = await self.js("() => Promise.all(window.clients.map((c) => c.connect()))")
        return list(hellos)

    async def call(self, index: int, method: str, *args: Any) -> Any:
        """``clients[index][method](...args)``, awaited."""
        return await self.js(
            "([i, m, a]) => window.clients[i][m](...a)", [index, method, list(args)]
        )

    async def state(self) -> list[dict[str, Any]]:
        """Per client: clientId, mode, connected, closes, opens, polls."""
        return list(
            await self.js(
                """() => window.clients.map((c) => ({clientId: c.clientId, mode: c.mode,
                  connected: c.connected, closes: c.log.closes, opens: c.log.opens,
                  polls: c.stats.polls}))"""
            )
        )

    async def frames(self, index: int = 0, type_: str | None = None) -> list[dict[str, Any]]:
        frames = await self.js("(i) => window.clients[i].log.frames", index)
        return [f for f in frames if type_ is None or f["type"] == type_]

    async def wait_frame(
        self, index: int, type_: str, timeout: float, **match: Any
    ) -> dict[str, Any]:
        """The first frame of ``type_`` whose fields contain ``match`` (lists: the item)."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in await self.frames(index, type_):
                if all(
                    (v in frame.get(k, [])) if isinstance(frame.get(k), list) else frame.get(k) == v
                    for k, v in match.items()
                ):
                    return frame
            assert time.monotonic() < deadline, f"no {type_} {match} within {timeout}s"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.js("() => window.clients.forEach((c) => c.close())")
        with contextlib.suppress(Exception):
            await self.context.close()


def _cli(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--env-file", str(env_file), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _requirements() -> None:
    if nginx_binary() is None:
        need("nginx", "apt-get install nginx")
    if not Path(CHROMIUM).is_file():
        need("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    if shutil.which("redis-server") is None:
        need("redis-server", "apt-get install redis-server")
    if shutil.which("openssl") is None:
        need("openssl", "apt-get install openssl")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        need("Playwright for Python", str(exc))
    try:
        check_requirements()
    except WordPressUnavailable as exc:
        need("WordPress", str(exc))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """The whole deployment, once per module (tests leave it running as they found it)."""
    _requirements()
    from playwright.async_api import async_playwright

    workdir = tmp_path_factory.mktemp("deploy")
    ports = [free_port() for _ in range(4)]
    daemon_ports, https_port, internal_port = ports[:2], ports[2], ports[3]
    cert, key = self_signed_certificate(workdir)
    tls = ssl.create_default_context(cafile=str(cert))
    redis = ThrowawayRedis()
    servers: list[Server] = []
    with ExitStack() as stack:
        try:
            await redis.start()
            # The documented path: genconfig, edit, check.
            generated = workdir / "genconfig.env"
            made = _cli(generated, "genconfig", "--output", str(generated))
            assert made.returncode == 0, made.stderr
            env_text = generated.read_text()
            site = stack.enter_context(
                start_wordpress(
                    workdir / "wordpress",
                    rt_url=f"http://127.0.0.1:{internal_port}",
                    hook_secret=env_value(env_text, "HOOK_SECRET"),
                    token_secret=env_value(env_text, "TOKEN_SECRET"),
                    public_url=f"wss://127.0.0.1:{https_port}/realtime",
                    plugin_zip=build_bridge_zip(workdir / "dist"),
                )
            )
            env_text = set_keys(
                env_text,
                {
                    "HOST": "127.0.0.1",
                    "DB_HOST": site.mysql.host,
                    "DB_PORT": str(site.mysql.port),
                    "DB_USER": site.mysql.user,
                    "DB_PASSWORD": site.mysql.password,
                    "DB_NAME": site.db_name,
                    "TABLE_PREFIX": site.table_prefix,
                    "REDIS_URL": redis.url,
                    "TRUSTED_PROXIES": "127.0.0.1",
                    "SITE_URL": site.base_url,
                    "MAX_CONNECTIONS_PER_IP": "1000",
                },
            )
            daemons = []
            for index, port in enumerate(daemon_ports, start=1):
                env_file = workdir / f"env{index}"
                env_file.write_text(set_keys(env_text, {"PORT": str(port)}))
                env_file.chmod(0o640)
                checked = _cli(env_file, "check")
                assert checked.returncode == 0, checked.stdout + checked.stderr
                daemons.append(DeployedDaemon(workdir, index, env_file, port))
            servers.extend(daemons)
            for daemon in daemons:
                await daemon.start()

            site_conf = filled(
                SHIPPED_CONF.read_text(),
                {
                    "server 127.0.0.1:8080 ": f"server 127.0.0.1:{daemon_ports[0]} ",
                    "server 127.0.0.1:8081 ": f"server 127.0.0.1:{daemon_ports[1]} ",
                    "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
                    "listen 127.0.0.1:8079;": f"listen 127.0.0.1:{internal_port};",
                    "/etc/letsencrypt/live/example.com/fullchain.pem": str(cert),
                    "/etc/letsencrypt/live/example.com/privkey.pem": str(key),
                    "/var/log/nginx/": f"{workdir / 'nginx' / 'logs'}/",
                },
            )
            nginx = Nginx(workdir / "nginx", site_conf, https_port, internal_port)
            servers.append(nginx)
            nginx.check()
            await nginx.start()
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    yield Deployment(
                        workdir, site, daemons, nginx, browser, tls, env_text, internal_port
                    )
                finally:
                    await browser.close()
            problems = site.php_problems()
            assert problems == [], problems
        finally:
            for server in reversed(servers):
                await server.close()
            await redis.stop()


def print_json(label: str, value: Any) -> None:
    """A measured number, visible with ``pytest -s`` (and in CI's log on failure)."""
    print(f"\n{label}: {json.dumps(value)}")
