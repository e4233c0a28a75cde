"""Command line: ``appointease-realtime serve | check | init-db | seed-demo | send-hook``."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta

import aiohttp
from aiohttp import web

from .app import create_app
from .config import ConfigError, Settings, load_settings
from .hooks import EVENT_TYPES, signed_request
from .logs import AccessLogger, setup_logging
from .store import StoreUnavailable, open_store
from .systemd import ready

DEMO_EMAIL = "demo@example.com"
DEMO_TIMES = ("09:00", "10:30", "14:00", "16:30")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appointease-realtime", description="Real-time companion of AppointEase."
    )
    parser.add_argument("--env-file", default=".env", help="dotenv file read under the environment")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--host", help="address to bind (HOST)")
    serve.add_argument("--port", type=int, help="port to bind (PORT)")
    sub.add_parser("check", help="check configuration, database and tables")
    sub.add_parser("init-db", help="create the two tables where missing (never alters one)")
    hook = sub.add_parser("send-hook", help="sign and send one booking hook to a daemon")
    hook.add_argument("type", choices=EVENT_TYPES, help="event type")
    hook.add_argument("id", help="appointment id or strong_id (ignored for test.ping)")
    hook.add_argument("--url", help="hook URL (default http://127.0.0.1:PORT/hooks/booking)")
    hook.add_argument("--previous-date", help="a move's former appointment_date, Y-m-d H:i:s")
    hook.add_argument("--previous-employee", type=int, help="a move's former employee id")
    seed = sub.add_parser("seed-demo", help="put demo appointments into the embedded database")
    seed.add_argument("--days", type=int, default=7, help="how many days from today")
    return parser


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Serve wss:// directly when TLS_CERT_FILE and TLS_KEY_FILE are set."""
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


async def _check(settings: Settings) -> int:
    where = (
        f"MySQL {settings.db_user}@{settings.db_socket or f'{settings.db_host}:{settings.db_port}'}"
        f"/{settings.db_name}"
        if settings.uses_mysql
        else f"SQLite {settings.sqlite_path}"
    )
    print(f"config: ok (database {where}, prefix {settings.table_prefix})")
    store = await open_store(settings, create_embedded=False)
    try:
        await store.ping()
        print("database: answers")
        problems = await store.schema_problems()
    finally:
        await store.close()
    for problem in problems:
        print(f"schema: {problem}")
    if problems:
        print("schema: run `appointease-realtime init-db` to create missing tables")
        return 1
    print("schema: ok (both tables, unique key on date, time, employee_id)")
    return 0


async def _init_db(settings: Settings) -> int:
    store = await open_store(settings, create_embedded=False)
    try:
        created = await store.create_schema()
        problems = await store.schema_problems()
    finally:
        await store.close()
    print(f"created: {', '.join(created)}" if created else "tables already exist; nothing altered")
    for problem in problems:
        print(f"schema: {problem}")
    return 1 if problems else 0


async def _seed_demo(settings: Settings, days: int) -> int:
    if settings.uses_mysql:
        print(
            "seed-demo writes only to the embedded SQLite database; unset DB_HOST", file=sys.stderr
        )
        return 2
    store = await open_store(settings, create_embedded=True)
    added = 0
    try:
        for offset in range(days):
            day = date.today() + timedelta(days=offset)
            for employee_id in (1, 2, 3):
                for index, time in enumerate(DEMO_TIMES[employee_id - 1 :: 2]):
                    strong_id = f"DEMO-{day:%Y%m%d}-{employee_id}{index}"
                    if await store.appointment(strong_id) is not None:
                        continue
                    await store.insert_appointment(
                        {
                            "name": f"Demo Customer {employee_id}",
                            "email": DEMO_EMAIL,
                            "appointment_date": f"{day} {time}:00",
                            "employee_id": employee_id,
                            "service_id": 1,
                            "status": "confirmed",
                            "strong_id": strong_id,
                        }
                    )
                    added += 1
    finally:
        await store.close()
    print(f"demo data: {added} appointment(s) added to {settings.sqlite_path} ({DEMO_EMAIL})")
    return 0


async def _send_hook(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.hook_secret:
        print("HOOK_SECRET is not set: nothing to sign with", file=sys.stderr)
        return 2
    data: dict[str, object] = {} if args.type == "test.ping" else {"id": args.id}
    if args.previous_date or args.previous_employee:
        data["previous"] = {
            "appointment_date": args.previous_date,
            "employee_id": args.previous_employee,
        }
    body, headers = signed_request(settings.hook_secret, args.type, data)
    url = args.url or f"http://127.0.0.1:{settings.port}/hooks/booking"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(10)
            ) as resp:
                print(f"{resp.status} {await resp.text()}")
                return 0 if resp.status < 300 else 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"could not reach {url}: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
        if args.command == "serve":
            settings = replace(
                settings, host=args.host or settings.host, port=args.port or settings.port
            )
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    try:
        if args.command == "serve":
            web.run_app(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                ssl_context=_tls_context(settings),
                access_log_class=AccessLogger,
                shutdown_timeout=settings.shutdown_timeout_seconds,
                print=ready,  # called once every site listens: READY=1 to systemd
            )
            return 0
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "init-db":
            return asyncio.run(_init_db(settings))
        if args.command == "send-hook":
            return asyncio.run(_send_hook(settings, args))
        return asyncio.run(_seed_demo(settings, args.days))
    except StoreUnavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # found at start-up, e.g. QA_MODE against real appointments
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
