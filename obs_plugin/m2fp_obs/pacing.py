"""When the small frame read back at the tick goes to the server, and how old its mask is when it is shown.

Under software OpenGL the rasteriser runs on the same CPU cores as the server's inference. A frame sent
at the tick is processed while OBS renders the next frame, and each slows the other
(docs/obs-filter.md, "Benchmark"). Sent at the end of the filter's render instead, the server works
while OBS waits for its next frame. That send is later by the length of the render, so the mask can
miss the render it was meant for and be shown a frame older than the server predicted.

The pacer therefore sends after the render as long as at most ``late_share`` of the masks judged come
back later than ``DISPLAY_LAG`` frames. Otherwise it sends at the tick, the earliest moment, for
``retry_ticks`` frames, then tries again. On a GPU the render is short and both moments are nearly the same.

Ages are counted in OBS frames (video ticks): a frame captured in the render after tick *c* is read
back at tick *c* + 1; its mask is in time when it is there for the render after tick *c* + 2.
No OBS here: the filter calls it from the graphics thread.
"""
from __future__ import annotations

import collections
from typing import Any, Deque, Dict, Optional

from m2fp_protocol import DISPLAY_LAG_FRAMES as DISPLAY_LAG  # capture → the render that shows its mask
_TRACKED = 64  # sent frames remembered (one unanswered frame is forgotten after this many sends)


class Pacer:
    def __init__(self, late_share: float = 0.2, window: int = 60, retry_ticks: int = 300) -> None:
        self.late_share = late_share
        self.window = window
        self.retry_ticks = retry_ticks
        self.ticks = 0
        self.after_render = True
        self.fallbacks = 0  # times the pacer went back to sending at the tick
        self._retry_at = 0
        self._sent: "collections.OrderedDict[int, tuple[int, bool]]" = collections.OrderedDict()
        self._judged: Deque[bool] = collections.deque(maxlen=window)  # True: that mask came late
        self._mask_capture: Optional[int] = None  # capture tick of the newest mask
        self.shown_ages: Deque[int] = collections.deque(maxlen=1800)

    def tick(self) -> None:
        self.ticks += 1
        if not self.after_render and self.ticks >= self._retry_at:
            self.after_render = True
            self._judged.clear()

    def sent(self, frame_id: Optional[int], capture_tick: int) -> None:
        """The frame captured at ``capture_tick`` went out now, as ``frame_id`` (None: not sent)."""
        if frame_id is None:
            return
        self._sent[frame_id] = (capture_tick, self.after_render)
        while len(self._sent) > _TRACKED:
            self._sent.popitem(last=False)

    def mask_arrived(self, frame_id: int) -> Optional[int]:
        """Age in frames of the mask just taken (None: its frame was not tracked); judges it if it was
        sent after a render."""
        entry = self._sent.pop(frame_id, None)
        if entry is None:
            return None
        capture, after_render = entry
        self._mask_capture = capture
        age = self.ticks - capture
        if after_render and self.after_render:
            self._judged.append(age > DISPLAY_LAG)
            if len(self._judged) >= self.window and sum(self._judged) > self.late_share * len(self._judged):
                self.after_render = False
                self.fallbacks += 1
                self._retry_at = self.ticks + self.retry_ticks
        return age

    def shown(self) -> None:
        """A frame is composited now: count the age of the newest mask (the one drawn without frame sync;
        with it, the one that decides whether a frame's mask was back in time)."""
        if self._mask_capture is not None:
            self.shown_ages.append(self.ticks - self._mask_capture)

    def forget(self) -> None:
        """A new connection numbers frames from 1 again."""
        self._sent.clear()
        self._mask_capture = None

    def reset_counts(self) -> None:
        self.shown_ages.clear()

    def stats(self) -> Dict[str, Any]:
        ages = collections.Counter(self.shown_ages)
        return {"send": "after render" if self.after_render else "at tick", "fallbacks": self.fallbacks,
                "shown_mask_age_frames": {str(a): ages[a] for a in sorted(ages)}}
