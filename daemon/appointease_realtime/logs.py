"""Logging: one line per event, text or JSON (LOG_FORMAT), and an access log that never
records a connection token, a resume token or an e-mail address."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from .config import Settings

_TOKEN_PATH = re.compile(r"^/ws/[^/?]+")
_SECRET_QUERY = re.compile(r"([?&](?:token|resume|email)=)[^&]*", re.IGNORECASE)


def redact(path_qs: str) -> str:
    """A request target with tokens and e-mails replaced by ``[redacted]``."""
    return _SECRET_QUERY.sub(r"\1[redacted]", _TOKEN_PATH.sub("/ws/[redacted]", path_qs))


class AccessLogger(AbstractAccessLogger):
    """``remote "METHOD target" status bytes seconds`` with the target redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write one access line."""
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time,
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the error, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    """Configure the root logger once, from LOG_LEVEL and LOG_FORMAT."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
