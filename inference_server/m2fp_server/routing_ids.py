"""Make libzmq's automatic routing ids unpredictable, so a client cannot claim them in advance.

libzmq gives a peer without ``ZMQ_ROUTING_ID`` the id ``0x00`` + a 32-bit counter that
starts at the C library's ``rand()``; unseeded, that is 0x6b8b4567 in every process.
A client that first claims ``b"\\x00" + (0x6b8b4567 + k)`` for k = 0..199 makes libzmq
abort the whole server (``Assertion failed: ok (src/socket_base.cpp:2113)``) when the
next default client connects: the automatic id collides with a claimed one.  No ROUTER
option changes this (``ROUTER_HANDOVER`` covers only client-chosen ids), so the counter's
start is made secret instead: ``srand()`` with 32 random bits just before the ROUTER is
created (libzmq reads ``rand()`` in the ROUTER's constructor).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import secrets

log = logging.getLogger(__name__)


def seed_automatic_ids() -> bool:
    """Seed the C library's ``rand()`` from the OS's random source; False where that is not possible."""
    for name in (None, ctypes.util.find_library("c"), "msvcrt"):
        try:
            libc = ctypes.CDLL(name)
            srand = libc.srand
        except (OSError, AttributeError, TypeError):
            continue
        srand.argtypes = [ctypes.c_uint]
        srand(secrets.randbits(32))
        return True
    log.warning("could not seed libzmq's routing-id counter: a client could predict the automatic ids")
    return False
