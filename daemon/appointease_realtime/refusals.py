"""The one HTTP error envelope: ``{"error": message, "code": code, "field"?}`` with a status.

Views, hooks and the QA endpoint raise :class:`Refusal`; :func:`refusal_middleware` answers it.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler


class Refusal(Exception):
    """An HTTP request the daemon refuses, with its status and machine-readable code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        """The JSON answer for this refusal."""
        body = {"error": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        return web.json_response(body, status=self.status)


@web.middleware
async def refusal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a raised :class:`Refusal` with its envelope."""
    try:
        return await handler(request)
    except Refusal as refusal:
        return refusal.response()
