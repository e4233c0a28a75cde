"""Command line: ``appointease-realtime serve [--workers N] | check | init-db | genconfig |
seed-demo | send-hook``, and ``--version``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from . import __version__, admin, workers
from .app import create_app
from .config import ConfigError, Settings, load_settings, read_env_file
from .hooks import EVENT_TYPES
from .keys import NODE
from .logs import AccessLogger, setup_logging
from .store import StoreUnavailable
from .systemd import ready

log = logging.getLogger("appointease_realtime")


def _parser() -> argparse.ArgumentParser:
    env_file = argparse.ArgumentParser(add_help=False)
    env_file.add_argument(
        "--env-file",
        default=argparse.SUPPRESS,
        help="dotenv file read under the environment (default .env)",
    )
    parser = argparse.ArgumentParser(
        prog="appointease-realtime",
        description="Real-time companion of AppointEase.",
        parents=[env_file],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon", parents=[env_file])
    serve.add_argument("--host", help="address to bind (HOST)")
    serve.add_argument("--port", type=int, help="port to bind (PORT)")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="processes serving the port together (SO_REUSEPORT); more than 1 needs REDIS_URL",
    )
    # A worker started by `serve --workers N`: the parent's pid (internal, not for people).
    serve.add_argument("--worker-of", type=int, help=argparse.SUPPRESS)
    sub.add_parser("check", help="check configuration, database and tables", parents=[env_file])
    sub.add_parser(
        "init-db", help="create the two tables where missing (never alters one)", parents=[env_file]
    )
    gen = sub.add_parser(
        "genconfig", help="write a complete .env with fresh secrets", parents=[env_file]
    )
    gen.add_argument("--output", default=".env", help="file to write, or - for stdout")
    gen.add_argument("--force", action="store_true", help="replace an existing file")
    hook = sub.add_parser(
        "send-hook", help="sign and send one booking hook to a daemon", parents=[env_file]
    )
    hook.add_argument("type", choices=EVENT_TYPES, help="event type")
    hook.add_argument("id", help="appointment id or strong_id (ignored for test.ping)")
    hook.add_argument("--url", help="hook URL (default http://127.0.0.1:PORT/hooks/booking)")
    hook.add_argument("--previous-date", help="a move's former appointment_date, Y-m-d H:i:s")
    hook.add_argument("--previous-employee", type=int, help="a move's former employee id")
    seed = sub.add_parser(
        "seed-demo", help="put demo appointments into the embedded database", parents=[env_file]
    )
    seed.add_argument("--days", type=int, default=7, help="how many days from today")
    return parser


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Serve wss:// directly when TLS_CERT_FILE and TLS_KEY_FILE are set."""
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def _serve(settings: Settings, reuse_port: bool = False) -> int:
    """Run the daemon until SIGTERM/SIGINT; one line when it listens, one when it stopped.

    ``reuse_port``: a worker of ``serve --workers N``, binding the port beside its siblings;
    its READY=1 goes to the parent (``workers.py``), which tells systemd.
    """
    app = create_app(settings)
    scheme = "https" if settings.tls_cert_file else "http"

    def listening(*_: object) -> None:
        log.info("start-up heap frozen: %d objects out of the collector's walks", freeze_heap())
        node = app[NODE]
        broker = "redis" if node.broker.shared else "memory"
        log.info(
            "listening on %s://%s:%d (store %s, broker %s, node %s)",
            scheme,
            settings.host,
            settings.port,
            node.store.kind,
            broker,
            node.id,
        )
        ready()

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=_tls_context(settings),
        access_log_class=AccessLogger,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        print=listening,  # called once every site listens: READY=1 to systemd
        reuse_port=reuse_port or None,
    )
    log.info("stopped")
    return 0


def freeze_heap() -> int:
    """Leave every object alive now (modules, functions, classes, the started app) out of the
    garbage collector's full collections, which then walk only what clients brought: at 100
    connections a full collection took 51-60 ms before, 12 ms after (docs/performance.md).
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def raise_open_files_limit() -> None:
    """Raise the soft open-files limit to the hard one (each WebSocket is one open file).

    Never fails: where ``resource`` is missing nothing happens, and a refused raise keeps the
    soft limit. One log line says the limit in effect.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    if soft == hard:
        log.info("open files: limit %s", limit)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.info("open files: limit %d (raising it to %s failed: %s)", soft, limit, exc)
        return
    log.info("open files: limit %s (raised from %d)", limit, soft)


def _run(args: argparse.Namespace, settings: Settings, env_file: str) -> int:
    if args.command == "serve":
        raise_open_files_limit()  # here, so that every worker of --workers N does it too
        if args.worker_of is not None:
            if not workers.adopt(args.worker_of):
                return 0  # the parent is already gone
            return _serve(settings, reuse_port=True)
        count = _worker_count(args, settings)
        if count > 1:
            return workers.supervise(settings, count, env_file)
        return _serve(settings)
    if args.command == "check":
        return asyncio.run(admin.check(settings, read_env_file(env_file)))
    if args.command == "init-db":
        return asyncio.run(admin.init_db(settings))
    if args.command == "genconfig":
        return admin.genconfig(args.output, args.force, settings.port)
    if args.command == "send-hook":
        previous = None
        if args.previous_date or args.previous_employee:
            previous = {
                "appointment_date": args.previous_date,
                "employee_id": args.previous_employee,
            }
        return asyncio.run(admin.send_hook(settings, args.type, args.id, args.url, previous))
    return asyncio.run(admin.seed_demo(settings, args.days))


def _worker_count(args: argparse.Namespace, settings: Settings) -> int:
    """``--workers``, else the WORKERS setting."""
    return int(args.workers) if args.workers is not None else settings.workers


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    env_file = getattr(args, "env_file", ".env")
    try:
        if args.command == "genconfig":
            settings = Settings()
        else:
            settings = load_settings(env_file)
        if args.command == "serve":
            settings = replace(
                settings, host=args.host or settings.host, port=args.port or settings.port
            )
            if args.worker_of is None:
                workers.check(settings, _worker_count(args, settings))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    try:
        return _run(args, settings, env_file)
    except StoreUnavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # found at start-up, e.g. QA_MODE against real appointments
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
