"""Process logging: one handler on stderr, text or JSON lines, credentials kept out.

Shared by the `serve` command and each `BRIDGE_WORKERS` worker process, which sets its logging up anew.
"""

from __future__ import annotations

import json
import logging
import sys

from bridge.telemetry import LogContext


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the call's session id when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("session_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(session_id)s] %(message)s")
        )
    handler.addFilter(LogContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs raw request headers (Authorization included) at DEBUG: never let it.
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLevelName(level)))
    # The server's own websockets logger (credentials redacted) says "connection open/closed" and
    # "HTTP response sent" for every probe and call at INFO: keep that for DEBUG.
    if level != "DEBUG":
        logging.getLogger("bridge.websockets").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
