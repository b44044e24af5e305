"""How a client paces frames and picks masks: one copy for the OBS filter and for ``replay``.

``replay`` measures what the filter's viewer sees; it is only a measurement of the
filter if both follow these very rules, so neither side writes its own.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from .messages import MOTION_SCALE

#: frames a client leaves unanswered at once: one being processed, one waiting (the server keeps
#: only the newest waiting frame and answers DROPPED for the one it replaces)
MAX_INFLIGHT = 2

#: ticks between rendering a frame and sending it: the GPU readback is mapped one frame later
READBACK_DELAY = 1

#: frames between capture and display when masks are shown as they arrive: the readback, then the reply
DISPLAY_LAG_FRAMES = READBACK_DELAY + 1

#: frame sync: 0 = off, else the video is delayed by this many frames.  A mask is never back within
#: one frame, so with 1 each frame is shown with the mask of the frame before, moved one frame ahead
#: (``predict_frames``); from ``DISPLAY_LAG_FRAMES`` on, each frame can wait for its own mask.
SYNC_MIN, SYNC_MAX = 1, 4

#: the filter's default: two frames of video delay give each frame its own mask, so the server predicts
#: nothing; predicting is where fast full bodies lost most, and on a slow machine its cost made masks
#: late (docs/evaluation.md, docs/obs-filter.md "Frame sync")
DEFAULT_SYNC_FRAMES = 2


def may_send(unanswered: int, limit: int = MAX_INFLIGHT) -> bool:
    """A frame goes out only while fewer than ``limit`` are unanswered; otherwise it is dropped at the client."""
    return unanswered < limit


def predict_frames(sync_frames: int, readback_delay: int = READBACK_DELAY) -> float:
    """Frames the server moves a mask ahead: the display lag the video delay does not cover.

    Without sync a mask is shown ``readback_delay + 1`` frames after its frame; each frame of delay
    takes one off, down to nothing (each frame waits for its own mask)."""
    return float(max(0, readback_delay + 1 - max(0, sync_frames)))


def clamp_sync(v: object) -> int:
    """0 stays off; anything else becomes a delay the filter offers."""
    try:
        n = int(v)  # type: ignore[call-overload]  # any settings value; bad ones mean off
    except (TypeError, ValueError):
        return 0
    return 0 if n <= 0 else min(SYNC_MAX, max(SYNC_MIN, n))


def choose_mask(shown: Optional[int], held: Sequence[Tuple[int, int]]) -> Optional[int]:
    """Which held mask goes with the frame ``shown`` (None: not known): an index into ``held``.

    Each held mask is (frame it was made for, -1 if unknown; arrival order): the frame it was
    computed from plus the frames the server moved it ahead (``predict_frames``).  Its own mask if
    here, else the newest mask made for an earlier frame, else (never wait) the oldest held.
    """
    if not held:
        return None
    order = range(len(held))
    if shown is not None:
        earlier = [i for i in order if 0 <= held[i][0] <= shown]
        if earlier:
            return max(earlier, key=held.__getitem__)
    return min(order, key=held.__getitem__)


#: a mask shown with a later frame than the one it was made for is moved on by its motion for at most this
#: many frames: further on, a person's speed has changed too much for a straight line
MAX_CARRY_FRAMES = 3

#: motion beyond this fraction of the mask's size per frame is not a person's (a broken or hostile sender):
#: the mask is shown where it is
MAX_MOTION = 0.25


def carry_offset(shown: Optional[int], made_for: int, motion_x: int, motion_y: int) -> Tuple[float, float]:
    """How far to move a mask made for frame ``made_for`` that is shown with frame ``shown``, as fractions
    of the frame's width and height (the mask's MASK header gives ``motion_x``/``motion_y``).

    A frame sync that waits two frames still shows some masks with a later frame when the server answered
    late (a slow host, a frame that waited); unmoved, such a mask trails a walking person by a whole
    frame's motion.  Nothing moves for a mask of this frame or a later one, an unknown frame, or an
    implausible motion.
    """
    frames = carry_frames(shown, made_for)
    mx, my = motion_x / MOTION_SCALE, motion_y / MOTION_SCALE
    if not frames or not (abs(mx) <= MAX_MOTION and abs(my) <= MAX_MOTION):
        return (0.0, 0.0)
    return (frames * mx, frames * my)


def carry_frames(shown: Optional[int], made_for: int) -> int:
    """Frames a mask made for frame ``made_for`` is moved on by when shown with frame ``shown``: how late it
    is, at most ``MAX_CARRY_FRAMES``; 0 for a mask of this frame or a later one, or an unknown frame."""
    if shown is None or made_for < 0 or shown <= made_for:
        return 0
    return min(MAX_CARRY_FRAMES, shown - made_for)
