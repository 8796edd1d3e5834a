"""The one shape of a failure that has a contract code: RTVBP error codes and the AMQP reply codes."""

from __future__ import annotations


class CodedError(Exception):
    """A failure with a numeric code (the contract's: 400, 404, 409, 413, 503, ...) and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
