"""What nodes share that may be lost: the event bus, soft selections, seen keys.

:func:`open_cluster` builds the three for one node: in memory when there is no Redis URL;
otherwise on one :class:`RedisLink`, the selections and deduper behind failover wrappers that
serve from memory while Redis is away. ``await cluster.broker.start(handler)`` connects (or,
when Redis is down, keeps trying in the background while the node serves alone);
``await cluster.close()`` releases everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Broker, Deduper, Selection, SelectionStore
from .failover import Failover, FailoverDeduper, FailoverSelections
from .memory import MemoryBroker, MemoryDeduper, MemorySelections
from .redis_broker import RedisBroker
from .redis_deduper import RedisDeduper
from .redis_link import LinkPart, RedisLink
from .redis_selections import RedisSelections

__all__ = [
    "Broker",
    "Cluster",
    "Deduper",
    "Failover",
    "FailoverDeduper",
    "FailoverSelections",
    "LinkPart",
    "MemoryBroker",
    "MemoryDeduper",
    "MemorySelections",
    "RedisBroker",
    "RedisDeduper",
    "RedisLink",
    "RedisSelections",
    "Selection",
    "SelectionStore",
    "open_cluster",
]


@dataclass
class Cluster:
    """One node's view of what the cluster shares."""

    broker: Broker
    selections: SelectionStore
    deduper: Deduper
    link: RedisLink | None = None  # None in memory mode

    async def close(self) -> None:
        """Stop delivering events and release the connection; safe to call twice."""
        await self.broker.close()
        if self.link is not None:
            await self.link.close()


def open_cluster(
    redis_url: str | None, namespace: str = "appointease", **link_options: Any
) -> Cluster:
    """The node's broker, selections and deduper: memory without ``redis_url``, else Redis.

    ``link_options`` go to :class:`RedisLink` (timeout, probe_interval, backoff_base,
    backoff_cap). After Redis comes back the failovers hand over what memory kept, in that
    order, before the handler hears ``on_resync``.
    """
    if not redis_url:
        return Cluster(MemoryBroker(), MemorySelections(), MemoryDeduper())
    link = RedisLink(redis_url, **link_options)
    redis_selections, redis_deduper = RedisSelections(namespace), RedisDeduper(namespace)
    selections = FailoverSelections(link, redis_selections)
    deduper = FailoverDeduper(link, redis_deduper)
    broker = RedisBroker(link, namespace)
    for part in (
        redis_selections,
        redis_deduper,
        selections.failover,
        deduper.failover,
        broker,  # last: its recovered() asks the node to resync after the hand-overs
    ):
        link.add(part)
    return Cluster(broker, selections, deduper, link)
