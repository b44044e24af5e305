"""Defaults both sides of the wire must agree on, written once.

The filter, the server and the replay client all fall back to these; a second
copy on either side would drift the first time one of them changes.
"""
from __future__ import annotations

from typing import Tuple

#: Where the server listens and the filter connects unless told otherwise (loopback: no keys needed).
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"

#: The input box (width, height) a client scales frames into before the server's INFO names the
#: engine's own ``preferred_input``; also the engines' default.
DEFAULT_INPUT_BOX: Tuple[int, int] = (256, 256)
