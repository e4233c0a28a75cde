"""Real Redis for tests: the shared server, per-test namespaces, and a private redis-server
a test may kill and start again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.processes import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


async def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``check`` until it holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def drop_namespace(url: str, namespace: str) -> None:
    """Delete every key of ``namespace``."""
    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


class ThrowawayRedis:
    """A private redis-server on its own port that a test may kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            redis = Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                await redis.ping()
                return
            except RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                await asyncio.sleep(0.05)
            finally:
                await redis.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None
