"""Keep credentials out of logs, whatever the log level.

websockets logs every handshake header at DEBUG, including `Authorization` and the browser
`bearer.` subprotocol carrier. The server logs through a logger carrying this filter instead.
"""

from __future__ import annotations

import logging
import re

from bridge.protocol.negotiation import BEARER_SUBPROTOCOL_PREFIX

SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-proxy-token"})
# The whole entry up to the next comma: a malformed carrier (standard base64 with '+', '/' or '=', a
# space) is still a credential, and is exactly what a buggy client sends.
_BEARER_ENTRY = re.compile(re.escape(BEARER_SUBPROTOCOL_PREFIX) + "[^,]*", re.IGNORECASE)
_REDACTED_BEARER = BEARER_SUBPROTOCOL_PREFIX + "[redacted]"


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[0], str):
            name = args[0].lower()
            if name in SENSITIVE_HEADERS:
                record.args = (args[0], "[redacted]", *args[2:])
            elif name == "sec-websocket-protocol":
                record.args = (args[0], _BEARER_ENTRY.sub(_REDACTED_BEARER, str(args[1])), *args[2:])
        return True


def websockets_logger() -> logging.Logger:
    logger = logging.getLogger("bridge.websockets")
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())
    return logger
