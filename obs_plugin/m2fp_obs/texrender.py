"""The one "render into a texrender" helper: every off-screen pass of the filter goes through it.

The small copy sent to the server and the frame-sync ring both draw in the
source's full-size coordinates into a texrender of their own size, cleared to
transparent, with blending off (the pass copies pixels, alpha included).  The
texrender's size does any scaling, so a small target only shades small-size
fragments.  Runs on OBS's graphics thread with the graphics context entered.
"""
from __future__ import annotations

import ctypes
from typing import Callable, Optional, Tuple

from . import libobs as L


class TexRender:
    """One lazily created ``gs_texrender_t`` and the size it was last rendered at."""

    def __init__(self, obs: L.LibObs) -> None:
        self.obs = obs
        self.handle: Optional[int] = None
        self.size: Tuple[int, int] = (0, 0)

    def render(self, size: Tuple[int, int], view: Tuple[int, int], draw: Callable[[], None]) -> bool:
        """Run ``draw`` (draw calls in ``view`` coordinates, e.g. the source's size) into this texture at ``size``."""
        o = self.obs
        if not self.handle:
            self.handle = o.gs_texrender_create(L.GS_RGBA, L.GS_ZS_NONE)
        o.gs_texrender_reset(self.handle)
        if not o.gs_texrender_begin(self.handle, size[0], size[1]):
            return False
        try:
            clear = L.vec4(0.0, 0.0, 0.0, 0.0)
            o.gs_clear(L.GS_CLEAR_COLOR, ctypes.byref(clear), 0.0, 0)
            o.gs_ortho(0.0, float(view[0]), 0.0, float(view[1]), -100.0, 100.0)
            o.gs_blend_state_push()
            o.gs_enable_blending(False)
            try:
                draw()
            finally:
                o.gs_blend_state_pop()
        finally:
            o.gs_texrender_end(self.handle)
        self.size = size
        return True

    @property
    def texture(self) -> Optional[int]:
        return self.obs.gs_texrender_get_texture(self.handle) if self.handle else None

    def destroy(self) -> None:
        """Graphics context must be entered."""
        if self.handle:
            self.obs.gs_texrender_destroy(self.handle)
        self.handle = None
        self.size = (0, 0)
