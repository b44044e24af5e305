"""The filter type, registered once per OBS process, forwarding to a replaceable implementation.

OBS refuses a second registration of the same id, and the C side keeps calling
the first callbacks for as long as the process lives.  So this module is never
reloaded: it owns the ``obs_source_info`` struct, the callback objects and the
map handle → source, and forwards every call to ``Registration.impl`` — the
object the (re)loaded script installs.  Without an implementation (between
``script_unload`` and the next ``script_load``) frames pass through untouched.

``data`` given to OBS is a small integer handle, not a Python object pointer, so a
stale pointer can never reach Python.
"""
from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any, Callable, Dict, List, Optional

from . import libobs as L
from . import log

FILTER_ID = "m2fp_obs_filter"
DISPLAY_NAME = "M2FP Background"


class Registration:
    def __init__(self, obs: L.LibObs) -> None:
        self.obs = obs
        self.impl: Optional[Any] = None
        self.sources: Dict[int, int] = {}  # handle -> obs_source_t*
        self.registered = False
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._keep: List[Any] = []  # every object C may still point at
        self._buttons: Dict[str, Any] = {}
        self._modified: Dict[str, Any] = {}
        self._name = ctypes.create_string_buffer(DISPLAY_NAME.encode())
        self._failed_once: Dict[str, bool] = {}

    # ------------------------------------------------------------------ registration
    def register(self) -> None:
        if self.registered:
            return
        info = L.obs_source_info()
        ident = ctypes.create_string_buffer(FILTER_ID.encode())
        info.id = ctypes.cast(ident, ctypes.c_char_p)
        info.type = L.OBS_SOURCE_TYPE_FILTER
        info.output_flags = L.OBS_SOURCE_VIDEO
        callbacks = {
            "get_name": L.get_name_t(self._get_name),
            "create": L.create_t(self._create),
            "destroy": L.destroy_t(self._destroy),
            "get_defaults": L.get_defaults_t(self._get_defaults),
            "get_properties": L.get_properties_t(self._get_properties),
            "update": L.update_t(self._update),
            "video_tick": L.video_tick_t(self._video_tick),
            "video_render": L.video_render_t(self._video_render),
            "filter_remove": L.filter_remove_t(self._filter_remove),
        }
        for field, cb in callbacks.items():
            setattr(info, field, cb)
        self._keep += [info, ident, callbacks]
        self.obs.obs_register_source_s(ctypes.byref(info), ctypes.sizeof(info))
        self.registered = True
        log.debug(f"registered filter '{FILTER_ID}' ({ctypes.sizeof(info)}-byte obs_source_info, "
                 f"libobs {'.'.join(map(str, self.obs.version()))})")

    def button(self, name: str) -> Any:
        """A button callback that outlives reloads and forwards to ``impl.on_button(name, handle)``."""
        return self._forwarder(self._buttons, name, L.button_clicked_t,
                               lambda impl, _props, data: impl.on_button(name, int(data or 0)))

    def modified(self, name: str) -> Any:
        """A property-modified callback that outlives reloads: ``impl.on_modified(name, props, settings)``."""
        return self._forwarder(self._modified, name, L.property_modified_t,
                               lambda impl, props, settings: impl.on_modified(name, int(props or 0),
                                                                              int(settings or 0)))

    def _forwarder(self, cache: Dict[str, Any], name: str, c_type: Any, call: Callable[[Any, int, int], Any]) -> Any:
        """One C callback per name, made once and kept alive (libobs keeps the pointer); it calls the current
        implementation, and an exception never crosses into C (logged, False returned)."""
        cb = cache.get(name)
        if cb is None:
            def forward(first: int, _prop: int, data: int) -> bool:
                impl = self.impl
                if impl is None:
                    return False
                try:
                    return bool(call(impl, first, data))
                except Exception as exc:  # never let an exception cross into C
                    log.error(f"{name}: {type(exc).__name__}: {exc}")
                    return False
            cb = c_type(forward)
            cache[name] = cb
        return cb

    # ------------------------------------------------------------------ implementation swap
    def install(self, impl: Any) -> None:
        """Attach a freshly loaded implementation to every existing filter."""
        self.impl = impl
        for handle, source in list(self.sources.items()):
            self._guard("attach", impl.attach, handle, source)

    def uninstall(self) -> None:
        impl, self.impl = self.impl, None
        if impl is not None:
            self._guard("shutdown", impl.shutdown)

    # ------------------------------------------------------------------ trampolines
    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            if not self._failed_once.get(what):
                self._failed_once[what] = True
                import traceback
                log.error(f"{what} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return None

    def _get_name(self, _type_data: int) -> int:
        return ctypes.addressof(self._name)

    def _create(self, settings: int, source: int) -> int:
        with self._lock:
            handle = next(self._ids)
            self.sources[handle] = source
        impl = self.impl
        if impl is not None:
            self._guard("create", impl.create, handle, source, settings)
        return handle

    def _destroy(self, data: int) -> None:
        handle = int(data or 0)
        impl = self.impl
        if impl is not None:
            self._guard("destroy", impl.destroy, handle)
        with self._lock:
            self.sources.pop(handle, None)

    def _get_defaults(self, settings: int) -> None:
        impl = self.impl
        if impl is not None:
            self._guard("get_defaults", impl.get_defaults, settings)

    def _get_properties(self, data: int) -> int:
        impl = self.impl
        if impl is not None:
            props = self._guard("get_properties", impl.get_properties, int(data or 0))
            if props:
                return props
        props = self.obs.obs_properties_create()
        self.obs.obs_properties_add_text(props, b"unloaded", b"The m2fp script is not loaded (Tools > Scripts)",
                                         L.OBS_TEXT_INFO)
        return props

    def _update(self, data: int, settings: int) -> None:
        impl = self.impl
        if impl is not None:
            self._guard("update", impl.update, int(data or 0), settings)

    def _video_tick(self, data: int, seconds: float) -> None:
        impl = self.impl
        if impl is not None:
            self._guard("video_tick", impl.video_tick, int(data or 0), seconds)

    def _video_render(self, data: int, effect: int) -> None:
        handle = int(data or 0)
        impl = self.impl
        if impl is not None:
            done = self._guard("video_render", impl.video_render, handle, effect)
            if done:
                return
        source = self.sources.get(handle)
        if source:
            self.obs.obs_source_skip_video_filter(source)

    def _filter_remove(self, data: int, _parent: int) -> None:
        impl = self.impl
        if impl is not None:
            self._guard("filter_remove", impl.filter_remove, int(data or 0))


_REGISTRATION: Optional[Registration] = None


def get() -> Registration:
    """The process-wide registration (created and registered on first use)."""
    global _REGISTRATION
    if _REGISTRATION is None:
        _REGISTRATION = Registration(L.LibObs())
    _REGISTRATION.register()
    return _REGISTRATION
