"""The admin's commands besides ``serve``: check, init-db, genconfig, seed-demo, send-hook.

Each takes the loaded settings, prints what an admin needs to read, and returns an exit code.
"""

from __future__ import annotations

import base64
import secrets
import sys
from datetime import date, timedelta
from pathlib import Path

import aiohttp

from . import __version__
from .config import Settings, env_text, table, unknown_keys
from .hooks import signed_request
from .store import open_store

DEMO_EMAIL = "demo@example.com"
DEMO_TIMES = ("09:00", "10:30", "14:00", "16:30")

# What stays off while a secret is unset, as ``check`` warns about it.
SECRET_WARNINGS = {
    "HOOK_SECRET": "/hooks/booking answers 503; bookings reach pages only by reconciliation",
    "TOKEN_SECRET": "no signed connection tokens: every visitor is anonymous, dashboards stay off",
    "RESUME_SECRET": "a random one per start: clients cannot resume their holds after a restart"
    " or on another daemon",
    "DEBUG_TOKEN": "/debug and /metrics answer only to loopback",
}


def new_secrets() -> dict[str, str]:
    """Fresh random values for every secret ``genconfig`` writes."""
    return {
        "RESUME_SECRET": secrets.token_urlsafe(32),
        "HOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "TOKEN_SECRET": secrets.token_urlsafe(48),
        "DEBUG_TOKEN": secrets.token_urlsafe(32),
    }


def env_file_text(values: dict[str, str]) -> str:
    """A complete .env: ``values`` set, every other key at its default, commented."""
    lines = [
        f"# appointease-realtime {__version__} configuration (made by `genconfig`).",
        "# The environment wins over this file. Leave DB_HOST empty for the embedded SQLite file.",
        "",
    ]
    for entry in table():
        lines.append(f"# {entry.doc} (default: {entry.shown.strip('()')})")
        if entry.key in values:
            lines.append(f"{entry.key}={values[entry.key]}")
        else:
            lines.append(f"# {entry.key}={env_text(entry)}")
        lines.append("")
    return "\n".join(lines)


def wp_config_lines(values: dict[str, str], port: int) -> list[str]:
    """The wp-config.php lines that match the daemon's secrets."""
    return [
        f"define( 'APPOINTEASE_RT_URL', 'http://127.0.0.1:{port}' );",
        f"define( 'APPOINTEASE_RT_HOOK_SECRET', '{values['HOOK_SECRET']}' );",
        f"define( 'APPOINTEASE_RT_TOKEN_SECRET', '{values['TOKEN_SECRET']}' );",
    ]


def genconfig(output: str, force: bool, port: int) -> int:
    """Write a complete .env with fresh secrets; print the matching wp-config.php lines."""
    values = new_secrets()
    text = env_file_text(values)
    to_stdout = output == "-"
    if to_stdout:
        sys.stdout.write(text)
    else:
        path = Path(output)
        if path.exists() and not force:
            print(f"{path} exists; not overwritten (add --force to replace it)", file=sys.stderr)
            return 1
        try:
            path.write_text(text)
            path.chmod(0o600)
        except OSError as exc:
            print(f"cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {path} (mode 600) with fresh secrets")
    out = sys.stderr if to_stdout else sys.stdout
    print("\nPaste into wp-config.php (or the bridge's settings page):", file=out)
    for line in wp_config_lines(values, port):
        print(line, file=out)
    return 0


def _where(settings: Settings) -> str:
    if settings.uses_mysql:
        place = settings.db_socket or f"{settings.db_host}:{settings.db_port}"
        return f"MySQL {settings.db_user}@{place}/{settings.db_name}"
    return f"SQLite {settings.sqlite_path}"


def _sqlite_state(settings: Settings) -> tuple[str | None, bool]:
    """Why the embedded file cannot be used (or None), and whether it exists yet.

    ``check`` looks without opening: opening would create the file.
    """
    path = Path(settings.sqlite_path)
    if path.exists():
        return (None if path.is_file() else f"{path} is not a file"), True
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist", False
    return None, False


async def check(settings: Settings, env_values: dict[str, str]) -> int:
    """Print what is wrong with the configuration, database or tables; 1 if anything."""
    failed = False
    print(f"config: ok (database {_where(settings)}, prefix {settings.table_prefix})")
    for note in unknown_keys(env_values):
        print(f"config: {note}")
        failed = True
    for key, effect in SECRET_WARNINGS.items():
        if not getattr(settings, key.lower()):
            print(f"warning: {key} is not set: {effect}")
    if not settings.uses_mysql:
        problem, exists = _sqlite_state(settings)
        if problem is not None:
            print(f"database: cannot use SQLite file: {problem}")
            return 1
        if not exists:
            print(f"database: {settings.sqlite_path} does not exist yet; `serve` creates it")
            return 1 if failed else 0
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
    return 1 if failed else 0


async def init_db(settings: Settings) -> int:
    """Create the tables that are missing, as the plugin does; never alter one."""
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


async def seed_demo(settings: Settings, days: int) -> int:
    """Demo appointments (employees 1-3) in the embedded database, once per slot."""
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


async def send_hook(
    settings: Settings,
    event_type: str,
    ref: str,
    url: str | None,
    previous: dict[str, object] | None,
) -> int:
    """Sign one booking hook with HOOK_SECRET and send it; print the answer."""
    if not settings.hook_secret:
        print("HOOK_SECRET is not set: nothing to sign with", file=sys.stderr)
        return 2
    data: dict[str, object] = {} if event_type == "test.ping" else {"id": ref}
    if previous:
        data["previous"] = previous
    body, headers = signed_request(settings.hook_secret, event_type, data)
    target = url or f"http://127.0.0.1:{settings.port}/hooks/booking"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                target, data=body, headers=headers, timeout=aiohttp.ClientTimeout(10)
            ) as resp:
                print(f"{resp.status} {await resp.text()}")
                return 0 if resp.status < 300 else 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"could not reach {target}: {exc}", file=sys.stderr)
        return 1
