"""Soft selections in Redis, visible to every node.

Per room a sorted set of ``time client`` scored by expiry (plus a hash of when each began),
per client a sorted set of its slots, and one set of the rooms that have any. The Lua scripts
keep each change atomic across nodes. Every method raises a Redis error when detached or when
Redis fails; failover.py decides what to do then.
"""

from __future__ import annotations

import time
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

from ..protocol import Room, Slot
from .base import Selection

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


def ms(seconds: float) -> int:
    """Whole milliseconds, at least one (Redis refuses a zero expiry)."""
    return max(1, int(seconds * 1000))


def room_id(room: Room) -> str:
    """``date:employee``, the suffix of a room's keys and its member in the rooms set."""
    return f"{room.date}:{room.employee_id}"


def room_of(name: str) -> Room:
    """The room named by :func:`room_id`."""
    date, employee = name.rsplit(":", 1)
    return Room(date, int(employee))


def slot_member(slot: Slot) -> str:
    """A slot as a member of a client's sorted set."""
    return f"{slot.date} {slot.time} {slot.employee_id}"


def slot_of(member: str) -> Slot:
    """The slot named by :func:`slot_member`."""
    date, time_, employee = member.split(" ")
    return Slot(date, time_, int(employee))


class RedisSelections:
    """The SelectionStore on Redis, under ``<namespace>:sel|since|client|rooms``."""

    def __init__(self, namespace: str = "appointease") -> None:
        self.ns = namespace
        self.redis: Redis | None = None
        self.scripts: dict[str, AsyncScript] = {}

    async def attach(self, redis: Redis) -> None:
        """Use ``redis`` from now on."""
        self.redis = redis
        self.scripts = {
            name: redis.register_script(source)
            for name, source in (("select", SELECT), ("deselect", DESELECT), ("expire", EXPIRE))
        }

    async def detach(self) -> None:
        """Stop using the client."""
        self.redis, self.scripts = None, {}

    async def recovered(self) -> None:
        """Nothing to catch up: the failover wrapper hands over what was kept meanwhile."""

    def _client(self) -> Redis:
        """The attached client, or the error a lost connection raises."""
        if self.redis is None:
            raise RedisConnectionError("not connected to redis")
        return self.redis

    def _keys(self, slot: Slot, client_id: str) -> list[str]:
        """The room's zset and "since" hash, the client's zset, the rooms set."""
        return [*self._room_keys(slot.room), f"{self.ns}:client:{client_id}", self._rooms_key]

    def _room_keys(self, room: Room) -> tuple[str, str]:
        """The room's sorted set of selections and its hash of when each began."""
        name = room_id(room)
        return f"{self.ns}:sel:{name}", f"{self.ns}:since:{name}"

    @property
    def _rooms_key(self) -> str:
        """The set of rooms that have selections."""
        return f"{self.ns}:rooms"

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh, keeping when it began) a selection; return the client's count."""
        redis, now = self._client(), time.time()
        args: list[str | int] = [
            f"{slot.time} {client_id}",
            slot_member(slot),
            repr(now),
            repr(now + ttl),
            ms(ttl),
            room_id(slot.room),
        ]
        return int(await self.scripts["select"](self._keys(slot, client_id), args, client=redis))

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""
        redis = self._client()
        args = [f"{slot.time} {client_id}", slot_member(slot), room_id(slot.room)]
        return bool(await self.scripts["deselect"](self._keys(slot, client_id), args, client=redis))

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""
        redis = self._client()
        members = await redis.zrange(f"{self.ns}:client:{client_id}", 0, -1)
        rooms = set()
        for member in cast("list[str]", members):
            slot = slot_of(member)
            if await self.deselect(slot, client_id):
                rooms.add(slot.room)
        return rooms

    async def client_selections(self, client_id: str) -> list[Slot]:
        """The live selections of ``client_id``, the least recently selected first (the
        client's sorted set is scored by expiry, and every select sets the same TTL)."""
        live = f"({time.time()!r}"
        key = f"{self.ns}:client:{client_id}"
        members = await self._client().zrangebyscore(key, live, "+inf")
        return [slot_of(member) for member in cast("list[str]", members)]

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""
        live = f"({time.time()!r}"
        members = await self._client().zrangebyscore(self._room_keys(room)[0], live, "+inf")
        return sorted({member.split(" ", 1)[0] for member in cast("list[str]", members)})

    async def all_selections(self) -> list[Selection]:
        """Every live selection in the cluster."""
        redis, now = self._client(), time.time()
        rooms = sorted(cast("set[str]", await redis.smembers(self._rooms_key)))
        pipe = redis.pipeline(transaction=False)
        for name in rooms:
            room_key, since_key = self._room_keys(room_of(name))
            pipe.zrangebyscore(room_key, f"({now!r}", "+inf", withscores=True)
            pipe.hgetall(since_key)
        replies: list[Any] = await pipe.execute()
        selections = []
        for i, name in enumerate(rooms):
            room = room_of(name)
            marks: list[tuple[str, float]] = replies[2 * i]
            since: dict[str, str] = replies[2 * i + 1]
            for member, expires in marks:
                time_, client_id = member.split(" ", 1)
                slot = Slot(room.date, time_, room.employee_id)
                began = float(since.get(member, now))
                selections.append(Selection(slot, client_id, began, expires))
        return selections

    async def expire(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed (each to one node)."""
        redis, now = self._client(), repr(time.time())
        script, changed = self.scripts["expire"], set()
        for name in cast("set[str]", await redis.smembers(self._rooms_key)):
            room = room_of(name)
            keys = [*self._room_keys(room), self._rooms_key]
            if await script(keys, [now, name], client=redis):
                changed.add(room)
        return changed
