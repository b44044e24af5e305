"""The implementation behind the registered filter type: one object per script load.

``Registration`` (never reloaded) forwards OBS's callbacks here by handle.  On
``shutdown`` (script unload) every filter's textures, stage surfaces and socket
are released; a reloaded script re-attaches the filters that still exist.

Each filter with a local address gets a server from ``launcher`` when nothing
listens there; the properties dialog is told to refresh itself
(``obs_source_update_properties``) whenever the status changes state.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple

from . import launcher
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
        self.launcher = launcher.get()
        self._launch_key: Dict[int, Tuple[str, str]] = {}  # handle -> (address, server program) acquired
        self._status_key: Dict[int, Any] = {}
        self._log_dir = ""

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
        self.obs.obs_data_unset_user_value(settings, b"status")  # saved by older versions: status is live
        inst = FilterInstance(self.obs, source, self.read_settings(settings))
        self.instances[handle] = inst
        log.debug(f"filter created (handle {handle})")
        self._ensure_server(handle, inst, inst.settings)

    def attach(self, handle: int, source: int) -> None:
        data = self.obs.obs_source_get_settings(source)
        try:
            inst = FilterInstance(self.obs, source, self.read_settings(data))
        finally:
            self.obs.obs_data_release(data)
        self.instances[handle] = inst
        self._ensure_server(handle, inst, inst.settings)

    def destroy(self, handle: int) -> None:
        inst = self.instances.pop(handle, None)
        if inst is not None:
            inst.destroy()
        self._launch_key.pop(handle, None)
        self._status_key.pop(handle, None)
        self.launcher.release(handle)

    def _ensure_server(self, handle: int, inst: FilterInstance, s: FilterSettings) -> None:
        """Start (or share) a local server for this filter's address when nothing listens there (UI thread)."""
        key = (s.server_address, s.server_path)
        if self._launch_key.get(handle) == key:
            return
        self._launch_key[handle] = key
        if not self._log_dir:
            self._log_dir = self.obs.config_path("obs-studio/logs") or os.path.expanduser("~")
        launch = self.launcher.acquire(handle, s.server_address, s.server_path, self._log_dir)
        inst.launch = launch
        inst.launch_child = self.launcher.state(s.server_address) if launch.phase == "started" else None
        if launch.phase == "started":
            log.info(f"no server was listening on {s.server_address}: {launch.message}; its log: {launch.log_path}")
        elif launch.phase == "failed":
            log.warning(f"no server listens on {s.server_address} and none could be started: {launch.message}")

    def filter_remove(self, handle: int) -> None:
        pass

    def update(self, handle: int, settings: int) -> None:
        inst = self.instances.get(handle)
        if inst is not None:
            s = self.read_settings(settings, inst.class_names)
            inst.update(s)
            self._ensure_server(handle, inst, s)

    def shutdown(self) -> None:
        """Script unload (reload or OBS exiting): servers outlive it by ``launcher.GRACE_S``, so a reload
        keeps them; at OBS's exit the launcher stops them when the interpreter finishes."""
        for handle in list(self.instances):
            self.destroy(handle)

    # ------------------------------------------------------------------ per frame
    def video_render(self, handle: int, _effect: int) -> bool:
        inst = self.instances.get(handle)
        return inst.video_render() if inst is not None else False

    def video_tick(self, handle: int, _seconds: float) -> None:
        inst = self.instances.get(handle)
        if inst is not None:
            inst.video_tick()
            key = inst.status_key()
            if key != self._status_key.get(handle):  # the dialog (if open) reloads and asks for the status
                self._status_key[handle] = key
                inst.events.append((time.monotonic(), "status: " + inst.status_line()))
                self.obs.obs_source_update_properties(inst.source)

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
                inst.dialog_rows = properties.dialog_rows(self.obs, inst.source)
        self.stats.write([inst.stats() for inst in list(self.instances.values())])

    # ------------------------------------------------------------------ properties
    def get_properties(self, handle: int) -> int:
        inst = self.instances.get(handle)
        if inst is not None:
            properties.set_status(self.obs, inst.source, inst.status_line())
        return properties.build(self.obs, self.reg, inst)

    def on_modified(self, name: str, props: int, settings: int) -> bool:
        """A setting that shows or hides others changed (or the dialog opened): True makes OBS redraw."""
        if name != "visibility" or not props or not settings:
            return False
        properties.apply_visibility(self.obs, props, self.read_settings(settings))
        return True

    def on_button(self, name: str, handle: int) -> bool:
        inst = self.instances.get(handle)
        if inst is None:
            return False
        if name in ("parts_all", "parts_none"):
            properties.set_parts(self.obs, inst.source, inst.class_names, name == "parts_all")
            return True
        if name == "restart_server":
            self._launch_key.pop(handle, None)
            self._ensure_server(handle, inst, inst.settings)
            return True
        return False
