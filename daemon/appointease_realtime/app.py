"""The aiohttp application: routes, and one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from .broker import open_cluster
from .config import Settings
from .hooks import routes as hook_routes
from .keys import NODE, SETTINGS
from .metrics import Metrics
from .node import Node
from .qa import check_qa_database, page_routes, qa_routes
from .reconcile import background_jobs
from .refusals import refusal_middleware
from .store import open_store
from .systemd import systemd_context
from .views import origin_guard, routes

log = logging.getLogger(__name__)


async def _node_context(app: web.Application) -> AsyncIterator[None]:
    """Open the store and broker, start the node and its loops; undo it all on the way out."""
    settings = app[SETTINGS]
    metrics = Metrics()
    store = await open_store(settings, observe=metrics.observe_query)
    try:
        await check_qa_database(store, settings)
    except BaseException:
        await store.close()
        raise
    cluster = open_cluster(settings.redis_url, settings.redis_namespace)
    node = Node(settings, store, cluster, metrics)
    await node.start()
    app[NODE] = node
    tasks = [asyncio.create_task(job) for job in background_jobs(node)]
    log.info("serving on %s store, node %s", store.kind, node.id)
    if settings.allow_unsigned_email:
        log.warning("ALLOW_UNSIGNED_EMAIL is on: anyone can claim any e-mail with ?email= (unsafe)")
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await node.locks.stop()
        await node.hold_clock.stop()
        await node.rooms.stop()
        await cluster.close()
        await store.close()


async def _close_sockets(app: web.Application) -> None:
    """On shutdown close every socket with 1001 so clients reconnect."""
    await app[NODE].close_all(WSCloseCode.GOING_AWAY, "server shutting down")


def create_app(settings: Settings) -> web.Application:
    """Build the daemon's application for ``settings``."""
    app = web.Application(middlewares=[origin_guard, refusal_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_node_context)
    app.cleanup_ctx.append(systemd_context)  # after the node: it waits for the store to answer
    app.on_shutdown.append(_close_sockets)
    app.add_routes(routes)
    app.add_routes(hook_routes)
    app.add_routes(page_routes)
    if settings.qa_mode:
        app.add_routes(qa_routes)
    return app
