"""Mask upload and the composite draw (effects/m2fp_composite.effect, one technique per mode).

The server's mask arrives at the small size that was sent; it is uploaded to an
R8 texture as is and upsampled bilinearly by the shader at full resolution, so
Python never touches a full-size buffer.  Runs on the graphics thread.
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from m2fp_protocol import Carry

from . import libobs as L
from . import log

EFFECT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "effects", "m2fp_composite.effect")
_PARAMS = ("image", "mask_tex", "mask_offset", "parsing_tex", "palette_tex", "small_tex", "bg_tex", "bg_color",
           "threshold", "feather", "people", "box0", "box1", "box2", "box3", "off0", "off1", "off2", "off3")
#: people the shader moves one by one (``m2fp_protocol.MAX_PEOPLE``): box0..3 and off0..3 in the effect
SHADER_PEOPLE = 4
#: each person's box and how far to move and turn what lies in it (``m2fp_protocol.Carry``)
People = List[Carry]
TECHNIQUES = {"transparent": "Transparent", "color": "Color", "image": "Image", "blur": "Blur"}


def choose_technique(view_mode: str, background_mode: str, *, bg_image: bool, small: bool, parsing: bool) -> str:
    """The one place that maps the view and background modes to an effect technique, given which
    textures exist now (a missing one falls back: no image file or no blurred copy yet → transparent, never a
    colour the user did not choose; no parsing map → alpha view)."""
    if view_mode == "alpha":
        return "Alpha"
    if view_mode == "parsing":
        return "Parsing" if parsing else "Alpha"
    technique = TECHNIQUES.get(background_mode, "Transparent")
    if (technique == "Image" and not bg_image) or (technique == "Blur" and not small):
        return "Transparent"
    return technique


class _R8Texture:
    """Dynamic single-channel textures, two in turn: the one updated was last drawn two frames ago.

    Updating a texture that queued GPU work still reads forces the driver to finish
    that work first (a full flush under software OpenGL); alternating avoids it.
    """

    def __init__(self, obs: L.LibObs, count: int = 2) -> None:
        self.obs = obs
        self.texs: List[Optional[int]] = [None] * count
        self.size = (0, 0)
        self.current = 0
        self.tex: Optional[int] = None  # the texture holding the newest upload

    def upload(self, width: int, height: int, data: bytes) -> None:
        o = self.obs
        if (width, height) != self.size:
            self.destroy()
            self.size = (width, height)
        i = (self.current + 1) % len(self.texs)
        if not self.texs[i]:
            self.texs[i] = o.gs_texture_create(width, height, L.GS_R8, 1, None, L.GS_DYNAMIC)
        o.gs_texture_set_image(self.texs[i], data, width, False)
        self.current = i
        self.tex = self.texs[i]

    def destroy(self) -> None:
        for t in self.texs:
            if t:
                self.obs.gs_texture_destroy(t)
        self.texs = [None] * len(self.texs)
        self.tex = None
        self.size = (0, 0)


class Compositor:
    def __init__(self, obs: L.LibObs) -> None:
        self.obs = obs
        self.effect: Optional[int] = None
        self.params: Dict[str, int] = {}
        self.mask = _R8Texture(obs)
        self.parsing = _R8Texture(obs)
        self.palette: Optional[int] = None
        self.palette_key: Tuple = ()
        self.bg_image: Optional[int] = None
        self.bg_path = ""
        self.failed = False

    # ------------------------------------------------------------------ resources
    def load(self) -> bool:
        if self.effect or self.failed:
            return bool(self.effect)
        eff, self.params, err = L.create_effect(self.obs, EFFECT_FILE, _PARAMS)
        if not eff:
            self.failed = True
            log.error(f"cannot load {EFFECT_FILE}: {err}")
            return False
        self.effect = eff
        return True

    def set_palette(self, colors: Sequence[Tuple[int, int, int]]) -> None:
        """A 256×1 RGBA lookup texture: class id → colour."""
        key = tuple(colors)
        if key == self.palette_key and self.palette:
            return
        row = bytearray(256 * 4)
        for i, (r, g, b) in enumerate(colors[:256]):
            row[i * 4: i * 4 + 4] = bytes((r & 255, g & 255, b & 255, 255))
        if not self.palette:
            self.palette = self.obs.gs_texture_create(256, 1, L.GS_RGBA, 1, None, L.GS_DYNAMIC)
        self.obs.gs_texture_set_image(self.palette, bytes(row), 256 * 4, False)
        self.palette_key = key

    def set_background_image(self, path: str) -> None:
        if path == self.bg_path:
            return
        if self.bg_image:
            self.obs.gs_texture_destroy(self.bg_image)
            self.bg_image = None
        self.bg_path = path
        if path:
            self.bg_image = self.obs.gs_texture_create_from_file(path.encode()) or None
            if not self.bg_image:
                log.warning(f"background image {path!r} could not be loaded: the background stays transparent")

    def destroy(self) -> None:
        """Graphics context must be entered."""
        self.mask.destroy()
        self.parsing.destroy()
        for attr in ("palette", "bg_image"):
            tex = getattr(self, attr)
            if tex:
                self.obs.gs_texture_destroy(tex)
            setattr(self, attr, None)
        self.palette_key = ()
        self.bg_path = ""
        if self.effect:
            self.obs.gs_effect_destroy(self.effect)
        self.effect = None

    # ------------------------------------------------------------------ per frame
    def technique(self, view_mode: str, background_mode: str, small: Optional[int]) -> str:
        """``choose_technique`` with what this compositor holds now."""
        return choose_technique(view_mode, background_mode, bg_image=bool(self.bg_image), small=bool(small),
                                parsing=bool(self.parsing.tex and self.palette))

    def prepare(self, technique: str, *, threshold: float = 0.5, feather: float = 0.1,
                color: Tuple[float, float, float, float] = (0, 0, 0, 1), small: Optional[int] = None,
                small_size: Tuple[int, int] = (1, 1), blur: float = 0.5, mask: Optional[int] = None,
                mask_offset: Tuple[float, float] = (0.0, 0.0), people: Optional[People] = None) -> None:
        """Set the parameters of ``technique`` (from ``technique()``).  ``image`` is left to whoever draws
        (OBS's process_filter_tech_end, or ``draw``).  ``mask`` replaces the newest mask (frame sync applies
        the mask of the frame shown), moved by ``mask_offset`` (fractions of the frame), or, given ``people``,
        what lies in each person's box by their own offset and the rest where it is."""
        o, p = self.obs, self.params
        if technique != "Draw":
            o.gs_effect_set_texture(p["mask_tex"], mask or self.mask.tex)
            o.gs_effect_set_vec2(p["mask_offset"], ctypes.byref(L.vec2(*mask_offset)))
            moving = (people or [])[:SHADER_PEOPLE]
            o.gs_effect_set_float(p["people"], float(len(moving)))
            for k in range(SHADER_PEOPLE):
                c = moving[k] if k < len(moving) else Carry((0.0, 0.0, 0.0, 0.0), (0.0, 0.0), 0.0, 1.0)
                o.gs_effect_set_vec4(p[f"box{k}"], ctypes.byref(L.vec4(*c.box)))
                o.gs_effect_set_vec4(p[f"off{k}"], ctypes.byref(L.vec4(*c.offset, c.turn, c.aspect)))
            o.gs_effect_set_float(p["threshold"], threshold)
            o.gs_effect_set_float(p["feather"], feather)
        if technique == "Color":
            o.gs_effect_set_vec4(p["bg_color"], ctypes.byref(L.vec4(*color)))
        elif technique == "Image":
            o.gs_effect_set_texture(p["bg_tex"], self.bg_image)
        elif technique == "Blur":
            o.gs_effect_set_texture(p["small_tex"], small)  # already blurred (blur.py)
        elif technique == "Parsing":
            o.gs_effect_set_texture(p["parsing_tex"], self.parsing.tex)
            o.gs_effect_set_texture(p["palette_tex"], self.palette)

    def draw(self, technique: str, image: int, size: Tuple[int, int]) -> None:
        """Draw ``image`` at ``size`` with ``technique`` (what process_filter_tech_end does with its own texture)."""
        self.obs.gs_effect_set_texture(self.params["image"], image)
        self.run(technique, lambda: self.obs.gs_draw_sprite(image, 0, size[0], size[1]))

    def run(self, technique: str, draw: Callable[[], None]) -> None:
        """Run ``draw`` (which issues the draw calls) inside every pass of ``technique``."""
        o = self.obs
        tech = o.gs_effect_get_technique(self.effect, technique.encode())
        n = o.gs_technique_begin(tech)
        try:
            for i in range(n):
                if o.gs_technique_begin_pass(tech, i):
                    draw()
                    o.gs_technique_end_pass(tech)
        finally:
            o.gs_technique_end(tech)
