"""WebSocket subprotocol (RTVBP profile) negotiation, per the upstream negotiation vectors.

The server picks the first entry of *its own* preference list that the client offered. A client that
sends no `Sec-WebSocket-Protocol` header at all gets `rtvbp.v1` and no header back (legacy rtvbp-go
voices send none). `bearer.<token>` entries are the browser credential carrier, never a profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DEFAULT_PROFILE = "rtvbp.v1"
SUPPORTED_PROFILES: tuple[str, ...] = (DEFAULT_PROFILE,)
BEARER_SUBPROTOCOL_PREFIX = "bearer."  # the browser credential carrier: `bearer.<base64url token>`

NegotiationFailure = Literal["unsupported-profile", "invalid-token"]


class NegotiationError(ValueError):
    def __init__(self, cause: NegotiationFailure, message: str) -> None:
        super().__init__(message)
        self.cause: NegotiationFailure = cause


@dataclass(frozen=True, slots=True)
class Selection:
    token: str | None  # what to echo in Sec-WebSocket-Protocol (None: send no header)
    profile: str  # the effective profile of the session


def select_profile(offered: Sequence[str], supported: Sequence[str] = SUPPORTED_PROFILES) -> Selection:
    """Choose the session profile from the client's offered tokens (header order preserved)."""
    if not offered:
        return Selection(token=None, profile=DEFAULT_PROFILE)
    tokens = [t.strip() for t in offered]
    if any(not t for t in tokens):
        raise NegotiationError("invalid-token", "empty WebSocket subprotocol token offered")
    profiles = [t for t in tokens if not t.startswith(BEARER_SUBPROTOCOL_PREFIX)]
    for candidate in supported:
        if candidate in profiles:
            return Selection(token=candidate, profile=candidate)
    raise NegotiationError(
        "unsupported-profile",
        f"unsupported WebSocket subprotocol: offered {', '.join(profiles) or 'none'}; "
        f"supported {', '.join(supported)}",
    )
