"""How a client paces frames and picks masks: one copy for the OBS filter and for ``replay``.

``replay`` measures what the filter's viewer sees; it is only a measurement of the
filter if both follow these very rules, so neither side writes its own.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

#: frames a client leaves unanswered at once: one being processed, one waiting (the server keeps
#: only the newest waiting frame and answers DROPPED for the one it replaces)
MAX_INFLIGHT = 2

#: ticks between rendering a frame and sending it: the GPU readback is mapped one frame later
READBACK_DELAY = 1

#: frames between capture and display when masks are shown as they arrive: the readback, then the reply
DISPLAY_LAG_FRAMES = READBACK_DELAY + 1

#: frame sync: 0 = off, else the video is delayed by this many frames (a mask is never back within 1)
SYNC_MIN, SYNC_MAX = 2, 4


def may_send(unanswered: int, limit: int = MAX_INFLIGHT) -> bool:
    """A frame goes out only while fewer than ``limit`` are unanswered; otherwise it is dropped at the client."""
    return unanswered < limit


def predict_frames(sync_frames: int, readback_delay: int = READBACK_DELAY) -> float:
    """Frames the server moves a mask ahead: the display lag without sync; with sync each frame waits
    for its own mask, so nothing."""
    return 0.0 if sync_frames > 0 else float(readback_delay + 1)


def clamp_sync(v: object) -> int:
    """0 stays off; 1 (which can never be in time) becomes the smallest useful delay."""
    try:
        n = int(v)  # type: ignore[call-overload]  # any settings value; bad ones mean off
    except (TypeError, ValueError):
        return 0
    return 0 if n <= 0 else min(SYNC_MAX, max(SYNC_MIN, n))


def choose_mask(shown: Optional[int], held: Sequence[Tuple[int, int]]) -> Optional[int]:
    """Which held mask goes with the frame ``shown`` (None: not known): an index into ``held``.

    Each held mask is (frame it was computed from, -1 if unknown; arrival order).  Its own
    mask if here, else the newest mask of an earlier frame, else (never wait) the oldest held.
    """
    if not held:
        return None
    order = range(len(held))
    if shown is not None:
        earlier = [i for i in order if 0 <= held[i][0] <= shown]
        if earlier:
            return max(earlier, key=held.__getitem__)
    return min(order, key=held.__getitem__)
