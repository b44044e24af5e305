"""Which connection each client's messages came from, so a disconnect can be tied to client ids.

A ROUTER never says that a peer left (``ROUTER_NOTIFY`` is a draft option, absent from
the released libzmq), but its monitor reports ``EVENT_DISCONNECTED`` with the socket's
file descriptor, and every received message carries the descriptor it came from
(``ZMQ_SRCFD``).  The server uses the two to drop a gone peer's parked frame and state
at once, instead of running the frame and keeping the state for ``idle_s``.
"""
from __future__ import annotations

from typing import Any

import zmq

SRCFD = getattr(zmq, "SRCFD", 2)


class PeerTracker:
    def __init__(self) -> None:
        self._fd_of: dict[bytes, int] = {}
        self._ids_on: dict[int, set[bytes]] = {}

    def seen(self, identity: bytes, frame: Any) -> int | None:
        """Note the connection ``identity``'s latest message (a zmq.Frame) came from; returns its fd."""
        try:
            fd = int(frame.get(SRCFD))
        except (zmq.ZMQError, AttributeError, TypeError, ValueError):
            return None
        old = self._fd_of.get(identity)
        if old == fd:
            return fd
        if old is not None:
            self._ids_on.get(old, set()).discard(identity)
        self._fd_of[identity] = fd
        self._ids_on.setdefault(fd, set()).add(identity)
        return fd

    def disconnected(self, fd: int) -> list[bytes]:
        """The client ids whose connection ``fd`` just closed (forgotten here)."""
        ids = self._ids_on.pop(fd, set())
        for identity in ids:
            self._fd_of.pop(identity, None)
        return sorted(ids)

    def __len__(self) -> int:
        return len(self._fd_of)
