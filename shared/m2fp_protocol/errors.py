"""Protocol exceptions.

    ProtocolError            anything wrong with bytes received from the wire
      └─ carries an ErrorCode, so the server can answer with the same code
"""
from __future__ import annotations

from .messages import ErrorCode


class ProtocolError(ValueError):
    """A message that cannot be accepted; ``code`` says why in machine terms."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"
