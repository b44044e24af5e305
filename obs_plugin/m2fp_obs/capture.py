"""Frame capture on the GPU: the full-size frame → a small texrender → a ring of stage surfaces.

Only the model-sized image ever leaves the GPU (a full-size readback costs many
times a model-sized one: docs/obs-filter.md).  A surface is
mapped one frame after it was staged: mapping the surface staged this frame
would stall until the GPU finished it.

Runs on OBS's graphics thread with the graphics context entered.
"""
from __future__ import annotations

import ctypes
from typing import Callable, List, Optional, Tuple

from . import libobs as L
from .texrender import TexRender


class FrameCapture:
    def __init__(self, obs: L.LibObs, ring: int = 2) -> None:
        self.obs = obs
        self.ring_size = max(2, ring)
        self.size: Tuple[int, int] = (0, 0)
        self.small = TexRender(obs)
        self.ring: List[int] = []
        self._next = 0
        self._staged: Optional[int] = None  # ring index staged on the previous frame

    def _ensure(self, size: Tuple[int, int]) -> None:
        if size == self.size and self.ring:
            return
        self.destroy()
        o = self.obs
        self.ring = [o.gs_stagesurface_create(size[0], size[1], L.GS_RGBA)
                     for _ in range(self.ring_size)]
        self.size = size
        self._next = 0
        self._staged = None

    def draw_small(self, draw: Callable[[], None], full: Tuple[int, int], size: Tuple[int, int]) -> bool:
        """Scale the frame already rendered at full size down into the small texrender (sent, and the blur).

        ``draw`` draws that full-size texture at full coordinates (the source is not
        rendered again); the texrender's size does the scaling on the GPU.
        """
        self._ensure(size)
        return self.small.render(size, full, draw)

    @property
    def small_texture(self) -> Optional[int]:
        return self.small.texture

    def stage(self) -> None:
        tex = self.small_texture
        if not tex:
            return
        i = self._next
        self.obs.gs_stage_texture(self.ring[i], tex)
        self._staged = i
        self._next = (i + 1) % self.ring_size

    def has_staged(self) -> bool:
        return self._staged is not None

    def discard_staged(self) -> None:
        self._staged = None

    def read_staged(self) -> Optional[Tuple[bytes, int, int, int]]:
        """(RGBA bytes, width, height, stride) of the surface staged on the previous frame."""
        i, self._staged = self._staged, None
        if i is None:
            return None
        o = self.obs
        data = ctypes.POINTER(ctypes.c_uint8)()
        linesize = ctypes.c_uint32(0)
        if not o.gs_stagesurface_map(self.ring[i], ctypes.byref(data), ctypes.byref(linesize)):
            return None
        try:
            w, h = self.size
            stride = int(linesize.value)
            n = stride * (h - 1) + w * 4
            buf = ctypes.string_at(data, n)
        finally:
            o.gs_stagesurface_unmap(self.ring[i])
        return buf, w, h, stride

    def destroy(self) -> None:
        """Graphics context must be entered."""
        o = self.obs
        for s in self.ring:
            if s:
                o.gs_stagesurface_destroy(s)
        self.ring = []
        self.small.destroy()
        self.size = (0, 0)
        self._staged = None
