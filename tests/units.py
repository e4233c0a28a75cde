"""Socket-free parts for unit tests: a node on a real store with the memory cluster, and
connections whose frames land in a list (as Home Assistant's websocket tests do)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from appointease_realtime.auth import Identity
from appointease_realtime.broker import open_cluster
from appointease_realtime.config import Settings
from appointease_realtime.connection import Connection
from appointease_realtime.metrics import Metrics
from appointease_realtime.node import Node
from appointease_realtime.store import Store
from appointease_realtime.transport import Wire, payload_of

Frame = dict[str, Any]


class Listener:
    """A connection whose frames are decoded into ``frames``."""

    def __init__(self, client_id: str, identity: Identity | None = None) -> None:
        self.frames: list[Frame] = []
        self.conn = Connection(client_id, identity or Identity(), self._take)

    def _take(self, item: Wire) -> None:
        self.frames.append(json.loads(payload_of(item)))

    def of_type(self, type_: str) -> list[Frame]:
        """Frames of ``type_`` received so far."""
        return [frame for frame in self.frames if frame["type"] == type_]

    def take(self) -> list[Frame]:
        """The frames received so far, cleared."""
        frames, self.frames = self.frames, []
        return frames


@asynccontextmanager
async def memory_node(settings: Settings, store: Store) -> AsyncIterator[Node]:
    """A started node on ``store`` with the in-process cluster; stopped on the way out."""
    cluster = open_cluster(None)
    node = Node(settings, store, cluster, Metrics())
    await node.start()
    try:
        yield node
    finally:
        await node.locks.stop()
        await node.hold_clock.stop()
        await node.rooms.stop()
        await cluster.close()


async def settle(node: Node) -> None:
    """Let every scheduled room announcement run."""
    while node.rooms.tasks:
        tasks = tuple(node.rooms.tasks)
        for task in tasks:
            await task
