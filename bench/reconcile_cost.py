"""What one reconciliation tick costs: booked_times() over 1, 100 and 1,000 watched rooms.

Runs against a throw-away MariaDB database filled with a busy site's appointments and
prints the median time of the single query, and its ratio to the one-room query.

    .venv/bin/python bench/reconcile_cost.py [--employees 50] [--days 30] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from datetime import date, timedelta
from typing import Any

import pymysql

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Room
from appointease_realtime.store import open_store

ROOT: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


async def measure(settings: Settings, args: argparse.Namespace) -> None:
    store = await open_store(settings)
    await store.create_schema()
    start = date(2030, 1, 1)
    rows = [
        (f"C{e}", f"c{e}@example.com", f"{start + timedelta(days=d)} {9 + h}:00:00", e)
        for e in range(1, args.employees + 1)
        for d in range(args.days)
        for h in range(0, 8, 2)
    ]
    db = pymysql.connect(**ROOT, database=settings.db_name, autocommit=True)
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO wp_appointments (name, email, appointment_date, employee_id)"
            " VALUES (%s, %s, %s, %s)",
            rows,
        )
    db.close()
    print(f"{len(rows)} appointments, {args.employees} employees, {args.days} days")
    all_rooms = [
        Room(str(start + timedelta(days=d)), e)
        for d in range(args.days)
        for e in range(1, args.employees + 1)
    ]
    baseline = None
    for count in (1, 100, 1000):
        rooms = all_rooms[:count]
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            await store.booked_times(rooms)
            times.append(time.perf_counter() - began)
        median = statistics.median(times)
        baseline = baseline or median
        ratio = median / baseline
        print(f"{count:>5} rooms: median {median * 1000:7.2f} ms  ({ratio:5.1f}x one room)")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    name = f"aert_bench_{secrets.token_hex(4)}"
    root = pymysql.connect(**ROOT, autocommit=True)
    root.cursor().execute(f"CREATE DATABASE {name}")
    try:
        asyncio.run(measure(Settings(db_host="127.0.0.1", db_name=name, db_pool_size=2), args))
    finally:
        root.cursor().execute(f"DROP DATABASE {name}")
        root.close()


if __name__ == "__main__":
    main()
