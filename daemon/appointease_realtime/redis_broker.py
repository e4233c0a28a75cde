"""The cluster broker: room events, soft selections and seen hook ids shared through Redis.

Every node publishes to one channel and hears every event (its own too). Selections live in
Redis so every node sees them: per room a sorted set ``time client`` scored by expiry (plus a
hash of when each began), per client a sorted set of its slots, and a set of rooms that have
any. Lua scripts keep each change atomic across nodes.

When Redis cannot be reached, at start or later, the node falls back to a private
:class:`MemoryBroker` (it keeps serving its own clients), reports itself degraded through
:meth:`RedisBroker.status`, and reconnects with capped, jittered exponential backoff. Once
back it moves what it kept meanwhile into Redis and calls ``on_reconnect`` so the node can
re-read the rooms it watches (events published while it was away never reached it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .broker import Event, EventHandler, MemoryBroker, Selection
from .protocol import Room, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")

# KEYS: room zset, room "since" hash, client zset, rooms set.
# ARGV: room member, client member, now, expires, ttl in ms, room id.
SELECT = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[6])
for i = 1, 3 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[5]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[5])
  end
end
return redis.call('ZCARD', KEYS[3])
"""

# KEYS: room zset, room "since" hash, client zset, rooms set.
# ARGV: room member, client member, room id.
DESELECT = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[3])
  redis.call('DEL', KEYS[2])
end
return removed
"""

# KEYS: room zset, room "since" hash, rooms set.  ARGV: now, room id.
EXPIRE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, member in ipairs(stale) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[2])
end
return #stale
"""


def _room_id(room: Room) -> str:
    """``date:employee``, the suffix of a room's keys and its member in the rooms set."""
    return f"{room.date}:{room.employee_id}"


def _room_of(room_id: str) -> Room:
    """The room named by ``_room_id``."""
    date, employee = room_id.rsplit(":", 1)
    return Room(date, int(employee))


def _slot_member(slot: Slot) -> str:
    """A slot as a member of a client's sorted set."""
    return f"{slot.date} {slot.time} {slot.employee_id}"


def _slot_of(member: str) -> Slot:
    """The slot named by ``_slot_member``."""
    date, time_, employee = member.split(" ")
    return Slot(date, time_, int(employee))


def _reason(exc: BaseException) -> str:
    """The degraded status for a connection failure."""
    return f"redis unavailable: {str(exc) or type(exc).__name__}"


def _ms(seconds: float) -> int:
    """Whole milliseconds, at least one (Redis refuses a zero expiry)."""
    return max(1, int(seconds * 1000))


class RedisBroker:
    """Many nodes act as one through Redis; alone on a private memory broker while it is away."""

    shared = True

    def __init__(
        self,
        url: str,
        namespace: str = "appointease",
        *,
        timeout: float = 3.0,
        probe_interval: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self.url = url
        self.ns = namespace
        self.channel = f"{namespace}:events"
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self.handler: EventHandler | None = None
        self.local = MemoryBroker()
        self.redis: Redis | None = None
        self.pubsub: PubSub | None = None
        self.scripts: dict[str, AsyncScript] = {}
        self.problem: str | None = None
        self.listener: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.reconnecting = False
        self.closed = False

    # ---- keys ----

    def _room_keys(self, room: Room) -> tuple[str, str]:
        """The room's sorted set of selections and its hash of when each began."""
        room_id = _room_id(room)
        return f"{self.ns}:sel:{room_id}", f"{self.ns}:since:{room_id}"

    def _client_key(self, client_id: str) -> str:
        """The client's sorted set of selected slots."""
        return f"{self.ns}:client:{client_id}"

    @property
    def _rooms_key(self) -> str:
        """The set of rooms that have selections."""
        return f"{self.ns}:rooms"

    # ---- connection ----

    async def start(self, handler: EventHandler) -> None:
        """Deliver every event to ``handler``; connect now, or keep trying in the background."""
        self.handler = handler
        await self.local.start(handler)
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            self._lose(exc)

    async def _connect(self) -> None:
        """Open a client and a subscription, and start listening."""
        redis = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            await redis.ping()
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(self.channel)
        except BaseException:
            await redis.aclose()
            raise
        self.redis, self.pubsub = redis, pubsub
        self.scripts = {
            name: redis.register_script(source)
            for name, source in (("select", SELECT), ("deselect", DESELECT), ("expire", EXPIRE))
        }
        self.listener = asyncio.create_task(self._listen(redis, pubsub))

    async def _listen(self, redis: Redis, pubsub: PubSub) -> None:
        """Hand every message to the handler; when idle, ping so a silent loss is noticed."""
        try:
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.probe_interval
                )
                if message is None:
                    await redis.ping()
                elif message["type"] == "message":
                    self._deliver(message["data"])
        except (RedisError, OSError) as exc:
            self._lose(exc)

    def _deliver(self, data: str) -> None:
        """Decode one event and hand it over; a bad event is logged, never fatal."""
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("dropped an undecodable cluster event: %r", data[:200])
            return
        if self.handler is None:
            return
        try:
            self.handler(event)
        except Exception:
            log.exception("event handler failed on %r", event)

    def _lose(self, exc: BaseException) -> None:
        """Serve locally from now on and start reconnecting."""
        if self.closed:
            return
        if self.problem is None:
            log.warning("redis unavailable, serving this node's clients only: %s", exc)
        self.problem = _reason(exc)
        if not self.reconnecting:
            self.reconnecting = True
            task = asyncio.create_task(self._reconnect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _disconnect(self) -> None:
        """Stop listening and close the connections (the current task is never cancelled)."""
        listener, pubsub, redis = self.listener, self.pubsub, self.redis
        self.listener, self.pubsub, self.redis, self.scripts = None, None, None, {}
        if listener is not None and listener is not asyncio.current_task():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        with contextlib.suppress(RedisError, OSError):
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if redis is not None:
                await redis.aclose()

    async def _reconnect(self) -> None:
        """Retry with capped, jittered exponential backoff until Redis answers; then catch up."""
        attempt = 0
        while self.problem is not None:
            await self._disconnect()
            delay = min(self.backoff_cap, self.backoff_base * 2**attempt)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            attempt += 1
            try:
                await self._connect()
            except (RedisError, OSError) as exc:
                self.problem = _reason(exc)
                log.debug("redis reconnect attempt %d failed: %s", attempt, exc)
                continue
            self.problem = None
            await self._hand_over()
        self.reconnecting = False
        log.info("redis is back after %d attempt(s)", attempt)
        if self.on_reconnect is not None:
            try:
                await self.on_reconnect()
            except Exception:
                log.exception("on_reconnect failed")

    async def _hand_over(self) -> None:
        """Move what was kept locally while Redis was away into Redis."""
        kept, self.local = self.local, MemoryBroker()
        if self.handler is not None:
            await self.local.start(self.handler)
        now = time.time()
        for selection in await kept.all_selections():
            await self.select(selection.slot, selection.client_id, selection.expires - now)
        for key, until in kept.seen.items():
            if until > now:
                await self.remember(key, until - now)

    async def _shared(
        self,
        remote: Callable[[Redis], Awaitable[T]],
        local: Callable[[], Awaitable[T]],
    ) -> T:
        """Run ``remote`` on Redis while it answers; otherwise (or when it fails) ``local``."""
        if self.redis is not None and self.problem is None:
            try:
                return await remote(self.redis)
            except (RedisError, OSError) as exc:
                self._lose(exc)
        return await local()

    # ---- the Broker protocol ----

    async def publish(self, event: Event) -> None:
        """Send ``event`` to every node (to this node alone while Redis is away)."""
        text = json.dumps(event, separators=(",", ":"))

        async def remote(redis: Redis) -> None:
            await redis.publish(self.channel, text)

        await self._shared(remote, lambda: self.local.publish(event))

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh) a selection; return how many ``client_id`` now has."""

        async def remote(redis: Redis) -> int:
            now = time.time()
            room_key, since_key = self._room_keys(slot.room)
            keys = [room_key, since_key, self._client_key(client_id), self._rooms_key]
            args: list[str | int] = [
                f"{slot.time} {client_id}",
                _slot_member(slot),
                repr(now),
                repr(now + ttl),
                _ms(ttl),
                _room_id(slot.room),
            ]
            return int(await self.scripts["select"](keys, args, client=redis))

        return await self._shared(remote, lambda: self.local.select(slot, client_id, ttl))

    async def _deselect(self, redis: Redis, slot: Slot, client_id: str) -> bool:
        """Remove one selection from Redis; True when there was one."""
        room_key, since_key = self._room_keys(slot.room)
        keys = [room_key, since_key, self._client_key(client_id), self._rooms_key]
        args = [f"{slot.time} {client_id}", _slot_member(slot), _room_id(slot.room)]
        return bool(await self.scripts["deselect"](keys, args, client=redis))

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""
        return await self._shared(
            lambda redis: self._deselect(redis, slot, client_id),
            lambda: self.local.deselect(slot, client_id),
        )

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""

        async def remote(redis: Redis) -> set[Room]:
            rooms = set()
            members = cast("list[str]", await redis.zrange(self._client_key(client_id), 0, -1))
            for member in members:
                slot = _slot_of(member)
                if await self._deselect(redis, slot, client_id):
                    rooms.add(slot.room)
            return rooms

        return await self._shared(remote, lambda: self.local.drop_client(client_id))

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""

        async def remote(redis: Redis) -> list[str]:
            live = f"({time.time()!r}"
            members = await redis.zrangebyscore(self._room_keys(room)[0], live, "+inf")
            return sorted({member.split(" ", 1)[0] for member in cast("list[str]", members)})

        return await self._shared(remote, lambda: self.local.room_selections(room))

    async def all_selections(self) -> list[Selection]:
        """Every live selection in the cluster."""

        async def remote(redis: Redis) -> list[Selection]:
            now = time.time()
            rooms = sorted(cast("set[str]", await redis.smembers(self._rooms_key)))
            pipe = redis.pipeline(transaction=False)
            for room_id in rooms:
                room_key, since_key = self._room_keys(_room_of(room_id))
                pipe.zrangebyscore(room_key, f"({now!r}", "+inf", withscores=True)
                pipe.hgetall(since_key)
            replies: list[Any] = await pipe.execute()
            selections = []
            for i, room_id in enumerate(rooms):
                room = _room_of(room_id)
                marks: list[tuple[str, float]] = replies[2 * i]
                since: dict[str, str] = replies[2 * i + 1]
                for member, expires in marks:
                    time_, client_id = member.split(" ", 1)
                    slot = Slot(room.date, time_, room.employee_id)
                    began = float(since.get(member, now))
                    selections.append(Selection(slot, client_id, began, expires))
            return selections

        return await self._shared(remote, self.local.all_selections)

    async def expire_selections(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed (each to one node)."""

        async def remote(redis: Redis) -> set[Room]:
            now = repr(time.time())
            changed = set()
            for room_id in cast("set[str]", await redis.smembers(self._rooms_key)):
                room = _room_of(room_id)
                keys = [*self._room_keys(room), self._rooms_key]
                if await self.scripts["expire"](keys, [now, room_id], client=redis):
                    changed.add(room)
            return changed

        return await self._shared(remote, self.local.expire_selections)

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds, cluster-wide; True when it was new."""

        async def remote(redis: Redis) -> bool:
            return bool(await redis.set(f"{self.ns}:seen:{key}", "1", nx=True, px=_ms(ttl)))

        return await self._shared(remote, lambda: self.local.remember(key, ttl))

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key`` (a hook that failed to apply may come again)."""

        async def remote(redis: Redis) -> None:
            await redis.delete(f"{self.ns}:seen:{key}")

        await self._shared(remote, lambda: self.local.forget(key))

    def status(self) -> str | None:
        """None when Redis answers; otherwise why this node serves only its own clients."""
        return self.problem

    async def close(self) -> None:
        """Stop reconnecting and delivering, and close the connections; safe to call twice."""
        self.closed = True
        for task in tuple(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()
        await self.local.close()
        self.handler = None
