"""The implementation behind the registered filter type: one object per script load.

``Registration`` (never reloaded) forwards OBS's callbacks here by handle.  On
``shutdown`` (script unload) every filter's textures, stage surfaces and socket
are released; a reloaded script re-attaches the filters that still exist.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any, Dict, List, Optional

from . import libobs as L
from . import log, properties
from .filter import FilterInstance
from .settings import FilterSettings
from .stats import STATS_ENV, StatsWriter


class FilterPlugin:
    def __init__(self, reg: Any) -> None:
        self.reg = reg
        self.obs: L.LibObs = reg.obs
        self.instances: Dict[int, FilterInstance] = {}
        path = os.environ.get(STATS_ENV)
        self.stats = StatsWriter(path) if path else None
        self.servers: List[subprocess.Popen] = []

    # ------------------------------------------------------------------ settings
    def read_settings(self, data: int, class_names: Optional[List[str]] = None) -> FilterSettings:
        o = self.obs

        def get_str(k: str) -> str:
            return L.s(o.obs_data_get_string(data, L.c(k)))

        return FilterSettings.read(get_str, lambda k: o.obs_data_get_int(data, L.c(k)),
                                   lambda k: o.obs_data_get_double(data, L.c(k)),
                                   lambda k: o.obs_data_get_bool(data, L.c(k)), class_names or [])

    def get_defaults(self, data: int) -> None:
        o = self.obs
        setters = {"str": lambda k, v: o.obs_data_set_default_string(data, k, L.c(v)),
                   "int": lambda k, v: o.obs_data_set_default_int(data, k, v),
                   "float": lambda k, v: o.obs_data_set_default_double(data, k, v),
                   "bool": lambda k, v: o.obs_data_set_default_bool(data, k, v)}
        for key, kind, value in FilterSettings.defaults():
            setters[kind](L.c(key), value)

    # ------------------------------------------------------------------ lifecycle
    def create(self, handle: int, source: int, settings: int) -> None:
        self.instances[handle] = FilterInstance(self.obs, source, self.read_settings(settings))
        log.info(f"m2fp filter created on '{L.s(self.obs.obs_source_get_name(source))}'")

    def attach(self, handle: int, source: int) -> None:
        data = self.obs.obs_source_get_settings(source)
        try:
            self.instances[handle] = FilterInstance(self.obs, source, self.read_settings(data))
        finally:
            self.obs.obs_data_release(data)

    def destroy(self, handle: int) -> None:
        inst = self.instances.pop(handle, None)
        if inst is not None:
            inst.destroy()

    def filter_remove(self, handle: int) -> None:
        pass

    def update(self, handle: int, settings: int) -> None:
        inst = self.instances.get(handle)
        if inst is not None:
            inst.update(self.read_settings(settings, inst.class_names))

    def shutdown(self) -> None:
        for handle in list(self.instances):
            self.destroy(handle)
        for p in self.servers:  # only servers this script started
            if p.poll() is None:
                p.terminate()
        self.servers.clear()

    # ------------------------------------------------------------------ per frame
    def video_render(self, handle: int, _effect: int) -> bool:
        inst = self.instances.get(handle)
        return inst.video_render() if inst is not None else False

    def video_tick(self, handle: int, _seconds: float) -> None:
        inst = self.instances.get(handle)
        if inst is not None:
            inst.video_tick()

    # ------------------------------------------------------------------ report (tests, obs-bench)
    def write_stats(self) -> None:
        """Script timer (a few times a second, only with ``$M2FP_OBS_STATS`` set): the report file, a
        timing reset when the bench asks for one, and the properties dialog as libobs builds it."""
        if self.stats is None:
            return
        reset = self.stats.reset_requested()
        for inst in list(self.instances.values()):
            if reset:
                inst.reset_timings()
            if inst.class_names and inst.property_names is None:
                inst.property_names = properties.list_names(self.obs, inst.source)  # dialog self-check
        self.stats.write([inst.stats() for inst in list(self.instances.values())])

    # ------------------------------------------------------------------ properties
    def get_properties(self, handle: int) -> int:
        inst = self.instances.get(handle)
        if inst is not None:
            properties.set_status(self.obs, inst.source, inst.status_line())
        return properties.build(self.obs, self.reg, inst)

    def on_button(self, name: str, handle: int) -> bool:
        inst = self.instances.get(handle)
        if inst is None:
            return False
        if name == "refresh_status":
            properties.set_status(self.obs, inst.source, inst.status_line())
            return True
        if name in ("parts_all", "parts_none"):
            properties.set_parts(self.obs, inst.source, inst.class_names, name == "parts_all")
            return True
        if name == "start_server":
            try:
                self.servers.append(properties.start_server(inst.settings.server_address))
                msg = f"starting m2fp-server on {inst.settings.server_address}"
            except (OSError, ValueError) as exc:
                msg = f"cannot start m2fp-server: {exc}"
            log.info(msg)
            properties.set_status(self.obs, inst.source, msg)
            return True
        return False
