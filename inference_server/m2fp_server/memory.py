"""Give freed frame buffers back to the operating system.

A 4K RGBA frame is about 33 MB, allocated by libzmq while it arrives and freed when the server
drops or finishes it.  glibc's malloc serves such a block from its own mapping at first, but
raises its mmap threshold to the size of the first one freed: from then on every frame comes
from the heap, and the heap keeps freed frames, so the process's resident memory stays at its
highest point long after the frames are gone and the memory budget is only true on paper.  A
fixed threshold (which also turns that adjustment off) keeps every large block in a mapping of
its own, unmapped on free.
"""
from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_BLOCK = 1 << 20


def return_large_blocks_to_the_os(threshold: int = LARGE_BLOCK) -> bool:
    """Make glibc map every block of ``threshold`` bytes or more on its own (Linux/glibc; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused: freed frames may stay resident")
    return ok
