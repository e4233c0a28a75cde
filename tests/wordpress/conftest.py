"""Fixtures for tests that need a real WordPress with the bridge plugin.

``wordpress_factory`` -- call it to start a site (any number per test)::

    def test_x(wordpress_factory):
        site = wordpress_factory(rt_url="http://127.0.0.1:8080", hook_secret=SECRET)
        response = site.create_booking("2026-03-02", "10:00", 3)
        site.run_cron()

    keyword arguments: ``rt_url``, ``hook_secret``, ``public_url``, ``token_secret``
    (the APPOINTEASE_RT_* constants, None = undefined), ``table_prefix`` ("wp_"),
    ``extra_php`` (appended to wp-config.php), ``multisite`` (a sub-directory
    network). Sites are torn down (server stopped, database ``aert_wp_*``
    dropped) at the end of the test.

``bridge_zip`` -- the release zip, built once per session with
``scripts/bridge-zip.sh``; every site installs the bridge from it through
WordPress's ``Plugin_Upgrader`` (Plugins > Add New > Upload Plugin), so the
tests run against the installed copy, not the checkout.

``receiver`` -- a :class:`wp_harness.HookReceiver` (a stand-in daemon that
verifies the Standard Webhooks signature and records the hooks).

``wordpress_site`` -- one site whose daemon URL is a closed port (every hook
delivery fails fast), whose secret is :data:`wp_harness.DEFAULT_HOOK_SECRET`,
public URL ``ws://127.0.0.1:8080`` and token secret
:data:`wp_harness.DEFAULT_TOKEN_SECRET` (connection tokens are issued).

The returned :class:`wp_harness.WordPressSite` has ``base_url``, ``db_name``,
``table_prefix``, ``mysql``, and helpers: ``rest()``, ``create_booking()``,
``cancel_booking()``, ``reschedule_booking()``, ``run_cron()``,
``outbox_rows()``, ``make_outbox_due()``, ``insert_lock()``, ``appointments()``,
``sql()``, ``php()``, ``can_book()``, ``admin_session()`` (logged-in urllib opener),
``create_user()``, ``user_session()`` (cookies + wp_rest nonce; ``.rest()``, ``.get()``),
``customer_session()`` (opener with the stand-in's customer-session cookie),
``configure()`` (change the constants of a running site), ``server_log()``,
``php_problems()`` (PHP warnings logged from the bridge's files), and async twins ``arest()``,
``acreate_booking()``, ``acancel_booking()``, ``areschedule_booking()``,
``arun_cron()``, ``aphp()`` for tests whose daemon runs in the event loop.

Without php, /usr/share/wordpress or a database server the tests are skipped;
with ``CI=true`` they fail instead. Put daemon end-to-end tests in this
directory to get these fixtures, or import ``wp_harness`` directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wp_harness import (
    DEFAULT_HOOK_SECRET,
    DEFAULT_TOKEN_SECRET,
    HookReceiver,
    WordPressSite,
    WordPressUnavailable,
    build_bridge_zip,
    check_requirements,
    start_wordpress,
)

from tests.processes import free_port

HOOK_SECRET = DEFAULT_HOOK_SECRET


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"WordPress test environment missing (required when CI=true): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bridge_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``appointease-realtime-bridge-<version>.zip`` from ``scripts/bridge-zip.sh``."""
    return build_bridge_zip(tmp_path_factory.mktemp("bridge-zip"))


@pytest.fixture
def wordpress_factory(tmp_path: Path, bridge_zip: Path) -> Iterator[Callable[..., WordPressSite]]:
    """Start throw-away WordPress sites; all are torn down after the test."""
    try:
        check_requirements()
    except WordPressUnavailable as exc:
        _unavailable(str(exc))
    with ExitStack() as stack:
        count = 0

        def factory(**kwargs: Any) -> WordPressSite:
            nonlocal count
            count += 1
            kwargs.setdefault("rt_url", None)
            kwargs.setdefault("hook_secret", None)
            kwargs.setdefault("plugin_zip", bridge_zip)
            return stack.enter_context(start_wordpress(tmp_path / f"wp{count}", **kwargs))

        yield factory


@pytest.fixture
def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def wordpress_site(
    wordpress_factory: Callable[..., WordPressSite], closed_port_url: str
) -> WordPressSite:
    """One site whose daemon is unreachable, secret :data:`wp_harness.DEFAULT_HOOK_SECRET`."""
    return wordpress_factory(
        rt_url=closed_port_url,
        hook_secret=HOOK_SECRET,
        public_url="ws://127.0.0.1:8080",
        token_secret=DEFAULT_TOKEN_SECRET,
    )


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    """A stand-in daemon that verifies hooks with :data:`wp_harness.DEFAULT_HOOK_SECRET`."""
    rec = HookReceiver(DEFAULT_HOOK_SECRET)
    try:
        yield rec
    finally:
        rec.close()
