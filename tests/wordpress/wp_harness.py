"""A real, throw-away WordPress with the bridge plugin, for tests.

``start_wordpress()`` builds one site from Debian's ``wordpress`` package
(``/usr/share/wordpress``, copied into a temporary docroot with its own
``wp-config.php``; nothing under ``/etc/wordpress`` is read or written), a
throw-away MariaDB/MySQL database ``aert_wp_<random>``, and ``php -S`` on a
free port. It installs WordPress with ``wp_install()`` from a PHP script (no
WP-CLI), creates AppointEase's two tables exactly as in booking-block.md and
switches to the minimal theme of ``theme/aert-test-theme`` (the package only
*recommends* themes: a fresh ``--no-install-recommends`` machine has none).
The bridge is installed the way a site owner does it: ``scripts/bridge-zip.sh``
builds the release zip, WordPress's own ``Plugin_Upgrader::install()`` (the code
behind Plugins > Add New > Upload Plugin) unpacks it, then it is activated
(``php/install-plugin.php``). A test-only mu-plugin stands in for AppointEase
(``php/appointease-standin.php``):

* ``POST   /appointease/v1/appointments`` inserts a row (strong_id
  ``APT-<year>-<id:06d>``) after ``appointease_realtime_can_book()`` and fires
  ``appointease_appointment_created`` (or ``appointease_new_appointment``);
* ``DELETE /appointease/v1/appointments/<id>`` cancels, ``PUT`` reschedules
  (body ``new_date``); both only ``$wpdb->update`` the row, like AppointEase;
* every front-end page enqueues a booking-block script with
  ``bookingAPI = {root, nonce, wsUrl}`` localized, as AppointEase does;
* a customer session: the cookie ``aert_standin_customer=<email>`` answers the
  bridge's ``appointease_rt_current_customer_email`` filter
  (:meth:`WordPressSite.customer_session`).

Logged-in users: :meth:`WordPressSite.create_user` then
:meth:`WordPressSite.user_session` (real wp-login.php login plus a ``wp_rest``
nonce), whose ``rest()``/``get()`` send the cookies and ``X-WP-Nonce``.

WP-Cron is never spawned by page loads (``DISABLE_WP_CRON``); tests run it on
purpose with :meth:`WordPressSite.run_cron`. Outgoing HTTP is limited to
localhost and the daemon's host (``WP_HTTP_BLOCK_EXTERNAL``).

Database connection: env ``TEST_MYSQL_HOST`` or ``MYSQL_HOST`` (127.0.0.1), ``MYSQL_PORT`` (3306),
``MYSQL_USER`` (root), ``MYSQL_PASSWORD`` (empty).

The HTTP helpers are blocking. From an ``async`` test whose daemon runs in the
same event loop, use the ``a``-prefixed twins (``await site.acreate_booking()``,
``await site.arun_cron()``...), which run in a worker thread: WordPress posts
its hook to the daemon before the booking request finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PLUGIN_DIR = REPO / "wp-bridge" / "appointease-realtime-bridge"
PLUGIN_SLUG = "appointease-realtime-bridge/appointease-realtime-bridge.php"
BRIDGE_ZIP_SCRIPT = REPO / "scripts" / "bridge-zip.sh"
TEST_THEME_DIR = HERE / "theme" / "aert-test-theme"
WORDPRESS_SRC = Path(os.environ.get("AERT_WORDPRESS_DIR", "/usr/share/wordpress"))
CRON_HOOK = "appointease_rt_flush_outbox"
CRON_SCHEDULE = "appointease_rt_every_minute"
# The throw-away site's administrator (user "admin"), set by php/install.php.
ADMIN_PASSWORD = "admin-password"
# Password of users made with WordPressSite.create_user() unless one is given.
USER_PASSWORD = "user-password"
# A valid Standard Webhooks secret for tests (34 bytes, base64).
DEFAULT_HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqrTw=="
# A connection-token (JWT HS256) secret for tests: APPOINTEASE_RT_TOKEN_SECRET / TOKEN_SECRET.
DEFAULT_TOKEN_SECRET = "test-token-secret-5b0c7e2a9f3d4e1b8a6c0d2f4e6a8b0c"
# The REST route that hands out connection tokens, and the stand-in's customer-session cookie.
TOKEN_ROUTE = "/appointease-realtime/v1/token"
CUSTOMER_COOKIE = "aert_standin_customer"


class WordPressUnavailable(RuntimeError):
    """PHP, the wordpress package or the database server is missing."""


def build_bridge_zip(outdir: Path) -> Path:
    """Run ``scripts/bridge-zip.sh outdir``; returns the zip it wrote."""
    result = subprocess.run(
        ["bash", str(BRIDGE_ZIP_SCRIPT), str(outdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bridge-zip.sh failed ({result.returncode}):\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    if not path.is_file():
        raise RuntimeError(f"bridge-zip.sh wrote no zip: {result.stdout}")
    return path


@dataclass(frozen=True)
class MySQLParams:
    """How to reach the MariaDB/MySQL server (the daemon can use the same)."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""

    @classmethod
    def from_env(cls) -> MySQLParams:
        """Read ``(TEST_)MYSQL_HOST``, ``MYSQL_PORT``, ``MYSQL_USER``, ``MYSQL_PASSWORD``."""
        return cls(
            host=os.environ.get("TEST_MYSQL_HOST") or os.environ.get("MYSQL_HOST", "127.0.0.1"),
            port=int(os.environ.get("MYSQL_PORT", "3306")),
            user=os.environ.get("MYSQL_USER", "root"),
            password=os.environ.get("MYSQL_PASSWORD", ""),
        )

    def connect(self, database: str | None = None) -> Any:
        """A PyMySQL connection (autocommit, dict rows)."""
        import pymysql
        import pymysql.cursors

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            autocommit=True,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
            connect_timeout=5,
        )


@dataclass
class RestResponse:
    """One HTTP answer: status, parsed JSON (or None), raw text, seconds taken."""

    status: int
    json: Any
    text: str
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects every <form> (by id) with its action and named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, HtmlForm] = {}
        self._current: HtmlForm | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = HtmlForm(action=a.get("action", ""), fields={}, disabled=set())
            self.forms[a.get("id", f"form{len(self.forms)}")] = self._current
        elif self._current is not None and tag in ("input", "textarea", "button") and "name" in a:
            if "disabled" in a:
                self._current.disabled.add(a["name"])
            elif tag == "textarea":
                self._textarea = a["name"]
                self._current.fields[a["name"]] = ""
            elif a.get("type") not in ("submit", "button", "checkbox", "radio") or "checked" in a:
                self._current.fields[a["name"]] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._current is not None and self._textarea is not None:
            self._current.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "textarea":
            self._textarea = None


@dataclass
class HtmlForm:
    """One form of a page: ``action``, the ``fields`` a browser would submit, ``disabled`` names."""

    action: str
    fields: dict[str, str]
    disabled: set[str]


def html_forms(page: str) -> dict[str, HtmlForm]:
    """The forms of an HTML page by ``id`` (``form<n>`` when it has none)."""
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


def reserve_port() -> socket.socket:
    """A socket bound (not listening) to a free port of 127.0.0.1, holding it.

    While it is bound, no outgoing connection (to MariaDB, say) gets this port as
    its local port and leaves it in TIME_WAIT, which would make ``php -S`` fail
    with "Address already in use". Close it right before the server binds.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def check_requirements(mysql: MySQLParams | None = None) -> None:
    """Raise WordPressUnavailable naming what is missing."""
    if shutil.which("php") is None:
        raise WordPressUnavailable("the php CLI is not installed (apt-get install php-cli)")
    if not (WORDPRESS_SRC / "wp-settings.php").is_file():
        raise WordPressUnavailable(f"no WordPress at {WORDPRESS_SRC} (apt-get install wordpress)")
    probe = subprocess.run(
        ["php", "-r", "exit(extension_loaded('mysqli') ? 0 : 1);"], check=False, timeout=30
    )
    if probe.returncode != 0:
        raise WordPressUnavailable("PHP has no mysqli extension (apt-get install php-mysql)")
    try:
        import pymysql  # noqa: F401
    except ImportError as exc:
        raise WordPressUnavailable("PyMySQL is not installed") from exc
    params = mysql or MySQLParams.from_env()
    try:
        params.connect().close()
    except Exception as exc:
        raise WordPressUnavailable(
            f"no MariaDB/MySQL at {params.host}:{params.port}: {exc}"
        ) from exc


@dataclass
class UserSession:
    """A logged-in WordPress user: cookies (``opener``) and a ``wp_rest`` ``nonce``."""

    site: WordPressSite
    user: str
    opener: urllib.request.OpenerDirector
    nonce: str

    def rest(
        self,
        method: str,
        route: str,
        payload: dict[str, Any] | None = None,
        *,
        with_nonce: bool = True,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> RestResponse:
        """A REST call with this user's cookies (and ``X-WP-Nonce`` unless ``with_nonce=False``)."""
        all_headers = {"X-WP-Nonce": self.nonce} if with_nonce else {}
        all_headers.update(headers or {})
        return self.site.rest(
            method, route, payload, headers=all_headers, query=query, opener=self.opener
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> RestResponse:
        """GET a page (``path`` starts with ``/``) with this user's cookies."""
        return self.site.request("GET", path, headers=headers, opener=self.opener)


class WordPressSite:
    """A running throw-away WordPress. Build it with :func:`start_wordpress`.

    Attributes: ``base_url`` (``http://127.0.0.1:<port>``), ``db_name``,
    ``table_prefix``, ``mysql`` (:class:`MySQLParams`), ``docroot``, ``workdir``.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        port: int,
        db_name: str,
        table_prefix: str,
        mysql: MySQLParams,
        rt_url: str | None,
        hook_secret: str | None,
        public_url: str | None,
        extra_php: str,
        token_secret: str | None = None,
        plugin_zip: Path | None = None,
        multisite: bool = False,
    ) -> None:
        self.workdir = workdir
        self.docroot = workdir / "docroot"
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.db_name = db_name
        self.table_prefix = table_prefix
        self.mysql = mysql
        self.rt_url = rt_url
        self.hook_secret = hook_secret
        self.public_url = public_url
        self.token_secret = token_secret
        self.extra_php = extra_php
        self.plugin_zip = plugin_zip
        self.multisite = multisite
        # MULTISITE is defined only once the network tables exist (see _build).
        self._network_ready = False
        # Fixed per site, so logins and nonces survive configure().
        self._salts = {
            key: secrets.token_hex(32)
            for key in (
                "AUTH_KEY",
                "SECURE_AUTH_KEY",
                "LOGGED_IN_KEY",
                "NONCE_KEY",
                "AUTH_SALT",
                "SECURE_AUTH_SALT",
                "LOGGED_IN_SALT",
                "NONCE_SALT",
            )
        }
        self.server_log_path = workdir / "php-server.log"
        self.debug_log_path = workdir / "wp-debug.log"
        self._server: subprocess.Popen[bytes] | None = None
        self._port_reservation: socket.socket | None = None
        # What php/install-plugin.php reported (plugin file, version, upgrader messages...).
        self.plugin_install: dict[str, Any] = {}
        self._db: Any = None

    # ---- tables -----------------------------------------------------------------

    @property
    def appointments_table(self) -> str:
        """``{prefix}appointments``."""
        return f"{self.table_prefix}appointments"

    @property
    def locks_table(self) -> str:
        """``{prefix}appointease_slot_locks``."""
        return f"{self.table_prefix}appointease_slot_locks"

    @property
    def outbox_table(self) -> str:
        """``{prefix}appointease_rt_outbox`` (the bridge's own table)."""
        return f"{self.table_prefix}appointease_rt_outbox"

    # ---- configuration ------------------------------------------------------------

    def configure(
        self,
        *,
        rt_url: str | None = None,
        hook_secret: str | None = None,
        public_url: str | None = None,
        token_secret: str | None = None,
    ) -> None:
        """Rewrite the APPOINTEASE_RT_* constants; later requests use the new values.

        Pass only what changes; ``""`` removes a constant (to test a missing one).
        """
        if rt_url is not None:
            self.rt_url = rt_url or None
        if hook_secret is not None:
            self.hook_secret = hook_secret or None
        if public_url is not None:
            self.public_url = public_url or None
        if token_secret is not None:
            self.token_secret = token_secret or None
        self._write_config()

    def _write_config(self) -> None:
        def php_str(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        hosts = ["127.0.0.1", "localhost"]
        if self.rt_url:
            host = urllib.parse.urlsplit(self.rt_url).hostname
            if host:
                hosts.append(host)
        m = self.mysql
        lines = [
            "<?php",
            "// Generated by tests/wordpress/wp_harness.py for a throw-away test site.",
            f"define( 'DB_NAME', {php_str(self.db_name)} );",
            f"define( 'DB_USER', {php_str(m.user)} );",
            f"define( 'DB_PASSWORD', {php_str(m.password)} );",
            f"define( 'DB_HOST', {php_str(f'{m.host}:{m.port}')} );",
            "define( 'DB_CHARSET', 'utf8mb4' );",
            "define( 'DB_COLLATE', '' );",
        ]
        for key, salt in self._salts.items():
            lines.append(f"define( '{key}', '{salt}' );")
        lines += [
            f"$table_prefix = {php_str(self.table_prefix)};",
            f"define( 'WP_HOME', {php_str(self.base_url)} );",
            f"define( 'WP_SITEURL', {php_str(self.base_url)} );",
            "define( 'WP_CONTENT_DIR', __DIR__ . '/wp-content' );",
            f"define( 'WP_CONTENT_URL', {php_str(self.base_url + '/wp-content')} );",
            "define( 'DISABLE_WP_CRON', true );",
            "define( 'DISALLOW_FILE_MODS', true );",
            "define( 'FS_METHOD', 'direct' );",
            f"define( 'WP_DEFAULT_THEME', {php_str(TEST_THEME_DIR.name)} );",
            "define( 'AUTOMATIC_UPDATER_DISABLED', true );",
            "define( 'WP_AUTO_UPDATE_CORE', false );",
            "define( 'WP_HTTP_BLOCK_EXTERNAL', true );",
            f"define( 'WP_ACCESSIBLE_HOSTS', {php_str(','.join(hosts))} );",
            "define( 'WP_DEBUG', true );",
            f"define( 'WP_DEBUG_LOG', {php_str(str(self.debug_log_path))} );",
            "define( 'WP_DEBUG_DISPLAY', false );",
            "define( 'WP_ENVIRONMENT_TYPE', 'local' );",
        ]
        if self.multisite and self._network_ready:
            netloc = urllib.parse.urlsplit(self.base_url).netloc
            lines += [
                "define( 'MULTISITE', true );",
                "define( 'SUBDOMAIN_INSTALL', false );",
                f"define( 'DOMAIN_CURRENT_SITE', {php_str(netloc)} );",
                "define( 'PATH_CURRENT_SITE', '/' );",
                "define( 'SITE_ID_CURRENT_SITE', 1 );",
                "define( 'BLOG_ID_CURRENT_SITE', 1 );",
            ]
        if self.rt_url:
            lines.append(f"define( 'APPOINTEASE_RT_URL', {php_str(self.rt_url)} );")
        if self.public_url:
            lines.append(f"define( 'APPOINTEASE_RT_PUBLIC_URL', {php_str(self.public_url)} );")
        if self.hook_secret:
            lines.append(f"define( 'APPOINTEASE_RT_HOOK_SECRET', {php_str(self.hook_secret)} );")
        if self.token_secret:
            lines.append(f"define( 'APPOINTEASE_RT_TOKEN_SECRET', {php_str(self.token_secret)} );")
        if self.extra_php:
            lines.append(self.extra_php)
        lines += [
            "if ( ! defined( 'ABSPATH' ) ) {",
            "\tdefine( 'ABSPATH', __DIR__ . '/' );",
            "}",
            "require_once ABSPATH . 'wp-settings.php';",
            "",
        ]
        target = self.docroot / "wp-config.php"
        tmp = target.with_suffix(".php.tmp")
        tmp.write_text("\n".join(lines), encoding="utf-8")
        tmp.replace(target)  # atomic: a request never sees half a file

    # ---- lifecycle ---------------------------------------------------------------------

    def _build(self) -> None:
        """Copy WordPress and the test theme, create the database, install, add the bridge."""

        def ignore(directory: str, names: list[str]) -> set[str]:
            if Path(directory) == WORDPRESS_SRC:
                return {"wp-config.php", ".htaccess"} & set(names)
            return set()

        shutil.copytree(WORDPRESS_SRC, self.docroot, symlinks=True, ignore=ignore)
        content = self.docroot / "wp-content"
        (content / "mu-plugins").mkdir(parents=True, exist_ok=True)
        (content / "uploads").mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "php" / "appointease-standin.php", content / "mu-plugins")
        # Only what this repository ships: no theme from a Recommends of the package.
        shutil.copytree(TEST_THEME_DIR, content / "themes" / TEST_THEME_DIR.name)

        with contextlib.closing(self.mysql.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4")
        self._write_config()
        install = ["php", str(HERE / "php" / "install.php"), str(self.docroot), self.base_url]
        if self.multisite:
            install.append("--multisite")
        self._run_php_script(install, "installed", "WordPress install")
        if self.multisite:
            self._network_ready = True
            self._write_config()
        zip_path = self.plugin_zip or build_bridge_zip(self.workdir / "dist")
        self.plugin_install = self._run_php_script(
            [
                "php",
                str(HERE / "php" / "install-plugin.php"),
                str(self.docroot),
                self.base_url,
                str(zip_path),
            ],
            "activated",
            "bridge install from the zip",
        )

    def _run_php_script(self, command: list[str], marker: str, what: str) -> dict[str, Any]:
        """Run one of php/*.php; its last stdout line is JSON holding ``marker``."""
        result = subprocess.run(
            command,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        lines = result.stdout.strip().splitlines()
        try:
            answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        except ValueError:
            answer = {}
        if result.returncode != 0 or not answer.get(marker):
            raise RuntimeError(
                f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return answer

    def _start_server(self) -> None:
        if self._port_reservation is not None:
            self._port_reservation.close()
            self._port_reservation = None
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="4")
        log = self.server_log_path.open("ab")
        self._server = subprocess.Popen(
            # opcache would serve a wp-config.php that configure() rewrote moments ago from
            # its cache (it checks mtimes in whole seconds, every 2 s): a stale daemon URL.
            [
                "php",
                "-d",
                "opcache.enable=0",
                "-S",
                f"127.0.0.1:{self.port}",
                "-t",
                str(self.docroot),
            ],
            cwd=self.docroot,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"php -S exited:\n{self.server_log()}")
            try:
                if self.rest("GET", "/", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"php -S did not answer in 20 s:\n{self.server_log()}")

    def close(self) -> None:
        """Stop the server and drop the database (idempotent)."""
        if self._port_reservation is not None:
            self._port_reservation.close()
            self._port_reservation = None
        if self._server is not None:
            self._server.terminate()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait(timeout=10)
            self._server = None
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        with contextlib.suppress(Exception), contextlib.closing(self.mysql.connect()) as conn:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.db_name}`")

    def php_problems(self, fragment: str = "plugins/appointease-realtime-bridge/") -> list[str]:
        """PHP errors, warnings, notices, deprecations logged for paths containing ``fragment``."""
        levels = ("PHP Fatal", "PHP Warning", "PHP Notice", "PHP Deprecated", "PHP Parse")
        return [
            line
            for line in self.server_log().splitlines()
            if fragment in line and any(level in line for level in levels)
        ]

    def server_log(self) -> str:
        """Output of ``php -S`` plus WordPress's debug.log (for failure messages)."""
        parts = []
        for path in (self.server_log_path, self.debug_log_path):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    # ---- HTTP ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> RestResponse:
        """Any HTTP request to the site (``path`` starts with ``/``).

        ``opener`` (e.g. :attr:`UserSession.opener`) sends its cookies with the request.
        """
        req = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<port>
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        open_ = urllib.request.urlopen if opener is None else opener.open
        started = time.monotonic()
        try:
            with open_(req, timeout=timeout) as resp:
                status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            status, raw, hdrs = err.code, err.read(), dict(err.headers)
        elapsed = time.monotonic() - started
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return RestResponse(status, parsed, text, elapsed, hdrs)

    def rest(
        self,
        method: str,
        route: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = 30,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> RestResponse:
        """Call a REST route through ``?rest_route=`` (no pretty permalinks needed).

        ``query`` adds query parameters, ``headers`` request headers; ``opener`` sends
        its cookies (see :meth:`user_session`).
        """
        path = "/?rest_route=" + urllib.parse.quote(route, safe="/")
        if query:
            path += "&" + urllib.parse.urlencode(query)
        body = None if payload is None else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json"} if payload is not None else {}
        all_headers.update(headers or {})
        return self.request(
            method, path, body=body, headers=all_headers, timeout=timeout, opener=opener
        )

    def create_booking(
        self,
        date: str,
        time_: str,
        employee_id: int,
        *,
        client_id: str = "",
        email: str = "customer@example.org",
        name: str = "Test Customer",
        service_id: int = 1,
        hook: str = "appointment_created",
        timeout: float = 30,
    ) -> RestResponse:
        """POST /appointease/v1/appointments. 201 with id/strong_id, 409 if held or taken.

        ``time_`` is ``HH:MM``; ``hook="new_appointment"`` fires
        ``appointease_new_appointment`` instead of ``appointease_appointment_created``.
        """
        return self.rest(
            "POST",
            "/appointease/v1/appointments",
            {
                "date": date,
                "time": time_,
                "employee_id": employee_id,
                "client_id": client_id,
                "email": email,
                "name": name,
                "service_id": service_id,
                "hook": hook,
            },
            timeout=timeout,
        )

    def cancel_booking(self, appointment_id: int | str, *, timeout: float = 30) -> RestResponse:
        """DELETE /appointease/v1/appointments/<id> (numeric id or strong_id)."""
        return self.rest(
            "DELETE", f"/appointease/v1/appointments/{appointment_id}", timeout=timeout
        )

    def reschedule_booking(
        self, appointment_id: int | str, new_date: str, *, timeout: float = 30
    ) -> RestResponse:
        """PUT /appointease/v1/appointments/<id> with ``new_date`` (``Y-m-d H:i:s``)."""
        return self.rest(
            "PUT",
            f"/appointease/v1/appointments/{appointment_id}",
            {"new_date": new_date},
            timeout=timeout,
        )

    def admin_session(
        self, user: str = "admin", password: str = ADMIN_PASSWORD
    ) -> urllib.request.OpenerDirector:
        """Log in through wp-login.php; returns an opener carrying the auth cookies.

        Use it with full URLs (``site.base_url + "/wp-admin/..."``); it follows redirects.
        """
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login = self.base_url + "/wp-login.php"
        opener.open(login, timeout=30).read()  # sets wordpress_test_cookie
        form = urllib.parse.urlencode(
            {"log": user, "pwd": password, "testcookie": "1", "redirect_to": "/wp-admin/"}
        ).encode()
        opener.open(login, data=form, timeout=30).read()
        if not any(c.name.startswith("wordpress_logged_in_") for c in jar):
            raise RuntimeError(f"login as {user!r} failed:\n{self.server_log()}")
        return opener

    def create_user(
        self,
        login: str,
        role: str = "subscriber",
        *,
        email: str | None = None,
        password: str = USER_PASSWORD,
    ) -> int:
        """Create a WordPress user (``wp_insert_user``) with ``role``; returns its id."""
        out = self.php(
            "$id = wp_insert_user(['user_login' => $args[0], 'user_pass' => $args[1],"
            " 'user_email' => $args[2], 'role' => $args[3]]);"
            "if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }"
            "echo $id;",
            login,
            password,
            email or f"{login}@example.org",
            role,
        )
        return int(out.strip().splitlines()[-1])

    def user_session(self, user: str, password: str = USER_PASSWORD) -> UserSession:
        """Log ``user`` in through wp-login.php and fetch a ``wp_rest`` nonce for it.

        The nonce comes from ``admin-ajax.php?action=rest-nonce`` (what the block
        editor uses to renew it), so it belongs to this login's session token.
        """
        opener = self.admin_session(user, password)
        response = self.request("GET", "/wp-admin/admin-ajax.php?action=rest-nonce", opener=opener)
        nonce = response.text.strip()
        if response.status != 200 or not nonce.isalnum():
            raise RuntimeError(f"no REST nonce for {user!r}: {response.status} {response.text}")
        return UserSession(site=self, user=user, opener=opener, nonce=nonce)

    def customer_session(self, email: str) -> urllib.request.OpenerDirector:
        """An opener carrying the stand-in's customer-session cookie for ``email``.

        The test-only mu-plugin answers ``appointease_rt_current_customer_email``
        from that cookie, as AppointEase would from its own e-mail + code session.
        """
        jar = http.cookiejar.CookieJar()
        jar.set_cookie(
            http.cookiejar.Cookie(
                version=0,
                name=CUSTOMER_COOKIE,
                value=urllib.parse.quote(email),
                port=None,
                port_specified=False,
                domain="127.0.0.1",
                domain_specified=False,
                domain_initial_dot=False,
                path="/",
                path_specified=True,
                secure=False,
                expires=None,
                discard=True,
                comment=None,
                comment_url=None,
                rest={},
            )
        )
        return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    # ---- database ----------------------------------------------------------------------

    def sql(
        self, query: str, args: tuple[Any, ...] | list[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run one statement on the site's database; returns the rows (dicts)."""
        if self._db is None:
            self._db = self.mysql.connect(self.db_name)
        self._db.ping()
        with self._db.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())

    def outbox_rows(self) -> list[dict[str, Any]]:
        """The bridge's pending events, oldest first; ``payload`` is also parsed as ``event``."""
        rows = self.sql(f"SELECT * FROM `{self.outbox_table}` ORDER BY id")
        for row in rows:
            row["event"] = json.loads(row["payload"])
        return rows

    def make_outbox_due(self) -> None:
        """Let every pending event be retried now (skip the backoff)."""
        self.sql(f"UPDATE `{self.outbox_table}` SET next_attempt_at = 0, claimed_until = 0")

    def insert_lock(
        self, date: str, time_: str, employee_id: int, client_id: str, seconds: int = 600
    ) -> None:
        """Hold a slot like the daemon does: ``expires_at = NOW() + seconds`` (database clock)."""
        self.sql(
            f"INSERT INTO `{self.locks_table}` (date, time, employee_id, client_id, expires_at) "
            "VALUES (%s, %s, %s, %s, NOW() + INTERVAL %s SECOND)",
            (date, time_, employee_id, client_id, seconds),
        )

    def appointments(self) -> list[dict[str, Any]]:
        """All rows of ``{prefix}appointments``."""
        return self.sql(f"SELECT * FROM `{self.appointments_table}` ORDER BY id")

    # ---- PHP inside WordPress ----------------------------------------------------------------

    def php(self, code: str, *args: Any, timeout: float = 60) -> str:
        """Run PHP code inside this WordPress (CLI, all plugins loaded); returns stdout.

        Positional ``args`` are JSON-encoded and available as ``$args`` (a list).
        """
        parts = urllib.parse.urlsplit(self.base_url)
        script = (
            "<?php\n"
            f"$_SERVER['HTTP_HOST'] = '{parts.netloc}';\n"
            "$_SERVER['SERVER_NAME'] = '127.0.0.1';\n"
            f"$_SERVER['SERVER_PORT'] = '{parts.port}';\n"
            "$_SERVER['REQUEST_URI'] = '/';\n"
            "$args = json_decode($argv[1], true);\n"
            f"require {json.dumps(str(self.docroot / 'wp-load.php'))};\n"
            f"{code}\n"
        )
        path = self.workdir / f"eval-{secrets.token_hex(4)}.php"
        path.write_text(script, encoding="utf-8")
        try:
            result = subprocess.run(
                ["php", str(path), json.dumps(list(args))],
                cwd=self.docroot,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            path.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"PHP failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def can_book(self, date: str, time_: str, employee_id: int, client_id: str) -> bool:
        """``appointease_realtime_can_book()`` as WordPress answers it."""
        out = self.php(
            "echo json_encode(appointease_realtime_can_book(...$args));",
            date,
            time_,
            employee_id,
            client_id,
        )
        return bool(json.loads(out.strip().splitlines()[-1]))

    def run_cron(self, *, make_due: bool = True, timeout: float = 60) -> RestResponse:
        """Run the outbox retry through the real WP-Cron path.

        With ``make_due`` the pending events skip their backoff and the bridge's
        cron event is rescheduled to the past; then ``GET /wp-cron.php`` runs
        every due event and returns when it is done (``php -S`` has no
        ``fastcgi_finish_request``).
        """
        if make_due:
            self.make_outbox_due()
            self.php(
                f"$t = wp_next_scheduled('{CRON_HOOK}');"
                f"if ($t) {{ wp_unschedule_event($t, '{CRON_HOOK}'); }}"
                f"wp_schedule_event(time() - 1, '{CRON_SCHEDULE}', '{CRON_HOOK}');"
                "delete_transient('doing_cron');"
            )
        return self.request("GET", "/wp-cron.php", timeout=timeout)

    # ---- async twins (run the blocking helpers in a worker thread) -----------------------------

    async def arest(self, *args: Any, **kwargs: Any) -> RestResponse:
        """Async :meth:`rest`."""
        return await asyncio.to_thread(self.rest, *args, **kwargs)

    async def acreate_booking(self, *args: Any, **kwargs: Any) -> RestResponse:
        """Async :meth:`create_booking`."""
        return await asyncio.to_thread(self.create_booking, *args, **kwargs)

    async def acancel_booking(self, *args: Any, **kwargs: Any) -> RestResponse:
        """Async :meth:`cancel_booking`."""
        return await asyncio.to_thread(self.cancel_booking, *args, **kwargs)

    async def areschedule_booking(self, *args: Any, **kwargs: Any) -> RestResponse:
        """Async :meth:`reschedule_booking`."""
        return await asyncio.to_thread(self.reschedule_booking, *args, **kwargs)

    async def arun_cron(self, **kwargs: Any) -> RestResponse:
        """Async :meth:`run_cron`."""
        return await asyncio.to_thread(self.run_cron, **kwargs)

    async def aphp(self, code: str, *args: Any, **kwargs: Any) -> str:
        """Async :meth:`php`."""
        return await asyncio.to_thread(self.php, code, *args, **kwargs)


class HookReceiver:
    """Records signed hooks like the daemon's POST /hooks/booking (verify, then 200).

    ``events`` holds ``(headers, payload)`` of every verified hook; a bad
    signature gets 401 and is not recorded. ``secret`` may be changed at any time.
    """

    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.secret = secret
        self.events: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError as exc:
                    receiver.refused += 1
                    self._answer(401, {"error": str(exc), "code": "bad_signature"})
                    return
                if self.path != "/hooks/booking":
                    self._answer(404, {"error": "not found", "code": "not_found"})
                    return
                receiver.events.append((headers, payload))
                self._answer(200, {"ok": True})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def start_wordpress(
    workdir: Path,
    *,
    rt_url: str | None,
    hook_secret: str | None,
    public_url: str | None = None,
    table_prefix: str = "wp_",
    mysql: MySQLParams | None = None,
    extra_php: str = "",
    token_secret: str | None = None,
    plugin_zip: Path | None = None,
    multisite: bool = False,
) -> Iterator[WordPressSite]:
    """Build, install and serve a throw-away WordPress; tear it all down on exit.

    ``rt_url``/``hook_secret``/``public_url``/``token_secret`` become
    APPOINTEASE_RT_URL, APPOINTEASE_RT_HOOK_SECRET, APPOINTEASE_RT_PUBLIC_URL and
    APPOINTEASE_RT_TOKEN_SECRET (None: not defined). ``extra_php`` is appended to
    wp-config.php (before wp-settings). ``plugin_zip`` is the bridge's release zip
    (default: built with ``scripts/bridge-zip.sh`` into the site's workdir); it is
    installed through ``Plugin_Upgrader`` and activated on the (main) site.
    ``multisite`` makes a sub-directory network whose main site is ``base_url``.
    Raises :class:`WordPressUnavailable` when PHP/WordPress/the database is missing.
    """
    params = mysql or MySQLParams.from_env()
    check_requirements(params)
    workdir.mkdir(parents=True, exist_ok=True)
    reservation = reserve_port()
    site = WordPressSite(
        workdir=workdir.resolve(),
        port=reservation.getsockname()[1],
        db_name=f"aert_wp_{secrets.token_hex(5)}",
        table_prefix=table_prefix,
        mysql=params,
        rt_url=rt_url,
        hook_secret=hook_secret,
        public_url=public_url,
        extra_php=extra_php,
        token_secret=token_secret,
        plugin_zip=plugin_zip,
        multisite=multisite,
    )
    site._port_reservation = reservation
    try:
        site._build()
        site._start_server()
        yield site
    finally:
        site.close()
