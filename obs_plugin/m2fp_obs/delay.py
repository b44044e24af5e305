"""The GPU side of frame sync: a ring of full-resolution texrenders and a pool of mask textures.

Allocated only while frame sync is on (``delay + 1`` frames of the source's size,
e.g. 3 × 3.7 MB at 1280×720 for a delay of 2) and released when it is turned off
or the filter is destroyed.  The bookkeeping (which slot, which mask) is
``sync.FrameSync``.  Runs on OBS's graphics thread with the graphics context entered.
"""
from __future__ import annotations

import ctypes
from typing import Callable, List, Optional, Tuple

from . import libobs as L
from .sync import FrameSync


class VideoDelay:
    def __init__(self, obs: L.LibObs, delay: int) -> None:
        self.obs = obs
        self.sync = FrameSync(delay)
        self.size: Tuple[int, int] = (0, 0)
        self.frames: List[Optional[int]] = [None] * self.sync.video_slots  # texrenders
        self.masks: List[Optional[int]] = [None] * self.sync.mask_slots  # R8 textures
        self.mask_size: Tuple[int, int] = (0, 0)

    @property
    def delay(self) -> int:
        return self.sync.delay

    def begin_frame(self, size: Tuple[int, int]) -> int:
        """A new OBS frame of the input at ``size``: returns its seq (render it with ``render_frame``)."""
        if size != self.size:
            self._destroy_frames()
            self.size = size
            self.sync.reset()  # old pictures have the old size: refill (seq stays monotonic)
        return self.sync.push()

    def render_frame(self, seq: int, draw: Callable[[], None]) -> bool:
        """Render the filter's input at full size into the ring slot of frame ``seq``."""
        o = self.obs
        size = self.size
        i = self.sync.slot_of(seq)
        if not self.frames[i]:
            self.frames[i] = o.gs_texrender_create(L.GS_RGBA, L.GS_ZS_NONE)
        tr = self.frames[i]
        o.gs_texrender_reset(tr)
        if not o.gs_texrender_begin(tr, size[0], size[1]):
            return False
        clear = L.vec4(0.0, 0.0, 0.0, 0.0)
        o.gs_clear(L.GS_CLEAR_COLOR, ctypes.byref(clear), 0.0, 0)
        o.gs_ortho(0.0, float(size[0]), 0.0, float(size[1]), -100.0, 100.0)
        o.gs_blend_state_push()
        o.gs_enable_blending(False)
        try:
            draw()
        finally:
            o.gs_blend_state_pop()
            o.gs_texrender_end(tr)
        return True

    def shown_texture(self) -> Tuple[Optional[int], Optional[int]]:
        """(texture, seq) of the frame to show now."""
        seq = self.sync.shown_seq()
        if seq is None:
            return None, None
        tr = self.frames[self.sync.slot_of(seq)]
        return (self.obs.gs_texrender_get_texture(tr) if tr else None), seq

    def upload_mask(self, frame_id: int, width: int, height: int, data: bytes) -> None:
        o = self.obs
        if (width, height) != self.mask_size:
            self._destroy_masks()
            self.sync.forget_masks()
            self.mask_size = (width, height)
        i = self.sync.add_mask(frame_id)
        if not self.masks[i]:
            self.masks[i] = o.gs_texture_create(width, height, L.GS_R8, 1, None, L.GS_DYNAMIC)
        o.gs_texture_set_image(self.masks[i], data, width, False)

    def mask_texture(self, seq: Optional[int]) -> Tuple[Optional[int], Optional[int]]:
        """(texture, seq of the frame it was made from) of the mask to apply to frame ``seq``."""
        i = self.sync.mask_for(seq)
        if i is None:
            return None, None
        return self.masks[i], self.sync.mask_seq(i)

    def _destroy_frames(self) -> None:
        for i, tr in enumerate(self.frames):
            if tr:
                self.obs.gs_texrender_destroy(tr)
            self.frames[i] = None
        self.size = (0, 0)

    def _destroy_masks(self) -> None:
        for i, t in enumerate(self.masks):
            if t:
                self.obs.gs_texture_destroy(t)
            self.masks[i] = None
        self.mask_size = (0, 0)

    def destroy(self) -> None:
        """Graphics context must be entered."""
        self._destroy_frames()
        self._destroy_masks()
