"""Keys remembered cluster-wide in Redis: ``SET <namespace>:seen:<key> 1 NX PX <ttl>``."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from .redis_selections import ms


class RedisDeduper:
    """The Deduper on Redis; raises a Redis error when detached or when Redis fails."""

    def __init__(self, namespace: str = "appointease") -> None:
        self.ns = namespace
        self.redis: Redis | None = None

    async def attach(self, redis: Redis) -> None:
        """Use ``redis`` from now on."""
        self.redis = redis

    async def detach(self) -> None:
        """Stop using the client."""
        self.redis = None

    async def recovered(self) -> None:
        """Nothing to catch up: the failover wrapper hands over what was kept meanwhile."""

    def _client(self) -> Redis:
        """The attached client, or the error a lost connection raises."""
        if self.redis is None:
            raise RedisConnectionError("not connected to redis")
        return self.redis

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds, cluster-wide; True when it was new."""
        return bool(await self._client().set(f"{self.ns}:seen:{key}", "1", nx=True, px=ms(ttl)))

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key`` (a hook that failed to apply may come again)."""
        await self._client().delete(f"{self.ns}:seen:{key}")
