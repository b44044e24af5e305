"""Test/bench helper loaded into OBS as a script: the filter type "m2fp_test_probe".

Placed beneath the M2FP filter (closest to the source), every render of the
source that goes through the filter chain calls the probe's ``video_render``
once, so the number of calls between two ``video_tick``s is how often the
source was rendered in that OBS frame.  With ``copy_passes`` = 2 the probe
itself does two full-size copy passes per render (the source into OBS's filter
texture, that texture into a second full-size texrender) and draws the copy,
timing the first pass, both passes and the draw separately, as the M2FP filter
times its input render, capture and draw: the yardstick `m2fp obs-bench`
measures the filter against, in the same OBS run.  The draw belongs in it:
under llvmpipe the graphics thread waits there for the second pass to be
rasterised (docs/obs-filter.md, "Benchmark").

Counts and timings go to ``$M2FP_OBS_STATS.probe.json`` a few times a second.
Only the tests and the bench load it.
"""
import collections
import ctypes
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
_PLUGIN = os.path.join(_REPO, "obs_plugin")
for _p in (os.path.join(_REPO, "shared"), _PLUGIN):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from m2fp_obs import libobs as L  # noqa: E402
from m2fp_obs.texrender import TexRender  # noqa: E402

PROBE_ID = "m2fp_test_probe"
_OUT = os.environ.get("M2FP_OBS_STATS", "") + ".probe.json"


class Probe:
    def __init__(self, lib: L.LibObs, source: int, copy_passes: int) -> None:
        self.obs = lib
        self.source = source
        self.copy_passes = copy_passes
        self.renders = 0  # renders since the last video_tick
        self.per_frame: collections.Counter = collections.Counter()  # renders in one OBS frame -> frames
        self.copy_ms: collections.deque = collections.deque(maxlen=1800)
        self.pass1_ms: collections.deque = collections.deque(maxlen=1800)
        self.draw_ms: collections.deque = collections.deque(maxlen=1800)  # the final draw of the copy
        self.copy = TexRender(lib)
        self.target_is_parent = False

    def video_render(self) -> None:
        o = self.obs
        self.renders += 1
        target = o.obs_filter_get_target(self.source)
        self.target_is_parent = bool(target) and target == o.obs_filter_get_parent(self.source)
        w = o.obs_source_get_base_width(target) if target else 0
        h = o.obs_source_get_base_height(target) if target else 0
        if not self.copy_passes or not w or not h:
            o.obs_source_skip_video_filter(self.source)
            return
        base = o.obs_get_base_effect(L.OBS_EFFECT_DEFAULT)
        t0 = time.perf_counter()
        if not o.obs_source_process_filter_begin(self.source, L.GS_RGBA, L.OBS_NO_DIRECT_RENDERING):  # pass 1
            return
        self.pass1_ms.append((time.perf_counter() - t0) * 1000.0)
        self.copy.render((w, h), (w, h), lambda: o.obs_source_process_filter_tech_end(  # pass 2
            self.source, base, w, h, b"Draw"))
        t1 = time.perf_counter()
        self.copy_ms.append((t1 - t0) * 1000.0)
        tex = self.copy.texture
        if tex:
            o.gs_effect_set_texture(o.gs_effect_get_param_by_name(base, b"image"), tex)
            tech = o.gs_effect_get_technique(base, b"Draw")
            for i in range(o.gs_technique_begin(tech)):
                if o.gs_technique_begin_pass(tech, i):
                    o.gs_draw_sprite(tex, 0, w, h)
                    o.gs_technique_end_pass(tech)
            o.gs_technique_end(tech)
        self.draw_ms.append((time.perf_counter() - t1) * 1000.0)

    def video_tick(self) -> None:
        self.per_frame[self.renders] += 1
        self.renders = 0

    def report(self) -> dict:
        return {"name": L.s(self.obs.obs_source_get_name(self.source)), "target_is_parent": self.target_is_parent,
                "copy_passes": self.copy_passes, "renders_per_frame": {str(k): v for k, v in self.per_frame.items()},
                "copy_ms": list(self.copy_ms), "pass1_ms": list(self.pass1_ms),
                "draw_ms": list(self.draw_ms)}


class _Registration:
    """Registered once; callbacks and the struct live as long as OBS (the script is never reloaded)."""

    def __init__(self) -> None:
        self.obs = L.LibObs()
        self.probes: dict = {}
        self.next = 1
        self.last_write = 0.0
        self.name = ctypes.create_string_buffer(b"m2fp test probe")
        info = L.obs_source_info()
        self.ident = ctypes.create_string_buffer(PROBE_ID.encode())
        info.id = ctypes.cast(self.ident, ctypes.c_char_p)
        info.type = L.OBS_SOURCE_TYPE_FILTER
        info.output_flags = L.OBS_SOURCE_VIDEO
        self.callbacks = [L.get_name_t(lambda _d: ctypes.addressof(self.name)), L.create_t(self._create),
                          L.destroy_t(self._destroy), L.video_tick_t(self._tick), L.video_render_t(self._render)]
        info.get_name, info.create, info.destroy, info.video_tick, info.video_render = self.callbacks
        self.info = info
        self.obs.obs_register_source_s(ctypes.byref(info), ctypes.sizeof(info))

    def _create(self, settings: int, source: int) -> int:
        handle, self.next = self.next, self.next + 1
        passes = int(self.obs.obs_data_get_int(settings, b"copy_passes"))
        self.probes[handle] = Probe(self.obs, source, passes)
        return handle

    def _destroy(self, data: int) -> None:
        p = self.probes.pop(int(data or 0), None)
        if p is not None:
            self.obs.obs_enter_graphics()
            p.copy.destroy()
            self.obs.obs_leave_graphics()

    def _render(self, data: int, _effect: int) -> None:
        p = self.probes.get(int(data or 0))
        if p is not None:
            p.video_render()

    def _tick(self, data: int, _seconds: float) -> None:
        p = self.probes.get(int(data or 0))
        if p is not None:
            p.video_tick()
        now = time.monotonic()
        if now - self.last_write >= 0.2:
            self.last_write = now
            tmp = _OUT + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"time": now, "probes": [q.report() for q in self.probes.values()]}, f)
            os.replace(tmp, _OUT)


_REG: list = []  # the registration, once per OBS process


def script_description():
    return "m2fp test helper: a filter that counts renders per frame and times two copy passes (tests only)"


def script_load(settings):
    if os.environ.get("M2FP_OBS_STATS") and not _REG:
        _REG.append(_Registration())
