"""Every typed key of the aiohttp application state, in one place."""

from __future__ import annotations

from aiohttp import web

from .config import Settings
from .node import Node

SETTINGS = web.AppKey("settings", Settings)
NODE = web.AppKey("node", Node)
