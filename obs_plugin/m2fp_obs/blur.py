"""The blurred background: a separable Gaussian on the GPU over the small copy of the frame.

The small copy (the image sent to the server, ~256 px wide) is blurred across,
then down, into two texrenders of its own size (effects/m2fp_blur.effect, through the
one render-into-texrender helper, ``texrender.TexRender``); the
composite samples the result, upscaled bilinearly.  The radius is a fraction of
the frame's width, so the same strength looks the same at 720p and 4K: at
strength 1 sigma is ``SIGMA_AT_FULL`` of the width.  Runs on the graphics thread.
"""
from __future__ import annotations

import ctypes
import os
from typing import Dict, List, Optional, Tuple

from . import libobs as L
from . import log
from .texrender import TexRender

EFFECT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "effects", "m2fp_blur.effect")
SIGMA_AT_FULL = 0.03  # sigma as a fraction of the width at strength 1.0 (38 px on a 1280-wide source)
TAPS_PER_SIDE = 12  # the effect's loop: 2 * 12 + 1 taps, covering +-3 sigma


class BackgroundBlur:
    def __init__(self, obs: L.LibObs) -> None:
        self.obs = obs
        self.effect: Optional[int] = None
        self.params: Dict[str, int] = {}
        self.targets: List[TexRender] = []
        self.failed = False

    def _load(self) -> bool:
        if self.effect or self.failed:
            return bool(self.effect)
        eff, self.params, err = L.create_effect(self.obs, EFFECT_FILE, ("image", "texel_step", "tap_sigma"))
        if not eff:
            self.failed = True
            log.error(f"cannot load {EFFECT_FILE}: {err}")
            return False
        self.effect = eff
        self.targets = [TexRender(self.obs), TexRender(self.obs)]
        return True

    def run(self, tex: Optional[int], size: Tuple[int, int], strength: float) -> Optional[int]:
        """``tex`` (``size``) blurred for ``strength`` 0..1; the input itself at 0 or when anything fails."""
        w, h = size
        sigma = strength * SIGMA_AT_FULL * w  # in pixels of the small texture
        if not tex or w <= 0 or h <= 0 or sigma < 0.5 or not self._load():
            return tex
        spacing = max(1.0, 3.0 * sigma / TAPS_PER_SIDE)
        tap_sigma = sigma / spacing
        across = self._pass(self.targets[0], tex, size, (spacing / w, 0.0), tap_sigma)
        if not across:
            return tex
        down = self._pass(self.targets[1], across, size, (0.0, spacing / h), tap_sigma)
        return down or tex

    def _pass(self, target: TexRender, tex: int, size: Tuple[int, int], step: Tuple[float, float],
              tap_sigma: float) -> Optional[int]:
        o, p = self.obs, self.params

        def draw() -> None:
            o.gs_effect_set_texture(p["image"], tex)
            o.gs_effect_set_vec2(p["texel_step"], ctypes.byref(L.vec2(*step)))
            o.gs_effect_set_float(p["tap_sigma"], tap_sigma)
            tech = o.gs_effect_get_technique(self.effect, b"Gauss")
            n = o.gs_technique_begin(tech)
            for i in range(n):
                if o.gs_technique_begin_pass(tech, i):
                    o.gs_draw_sprite(tex, 0, size[0], size[1])
                    o.gs_technique_end_pass(tech)
            o.gs_technique_end(tech)

        return target.texture if target.render(size, size, draw) else None

    def destroy(self) -> None:
        """Graphics context must be entered."""
        for t in self.targets:
            t.destroy()
        self.targets = []
        if self.effect:
            self.obs.gs_effect_destroy(self.effect)
        self.effect = None
