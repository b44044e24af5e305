"""The only ctypes in the repository: libobs functions, constants and ``obs_source_info``.

obspython cannot register sources (OBS's SWIG file ignores ``obs_register_source``)
and cannot map stage surfaces (``uint8_t**`` out-parameter), so the filter talks to
libobs directly.  libobs is already loaded in the OBS process: the loaded module is
opened first, then the file names of each OS / OBS version (see
shared/notes/install.md).  The struct is the OBS 29 layout (400 bytes); later
versions only appended fields and zero-fill what a plugin does not pass, so one
registration works on 29–32.

ctypes releases the GIL during every call, which matters: OBS's graphics thread
takes the GIL in our callbacks while the UI thread may be waiting in
``obs_enter_graphics``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int, c_longlong,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import Any, Dict, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------- constants (libobs enums)
GS_R8 = 2
GS_RGBA = 3
GS_ZS_NONE = 0
GS_DYNAMIC = 1 << 1
GS_CLEAR_COLOR = 1 << 0
GS_BLEND_ZERO = 0
GS_BLEND_ONE = 1
GS_BLEND_SRCALPHA = 4
GS_BLEND_INVSRCALPHA = 5
OBS_NO_DIRECT_RENDERING = 0
OBS_EFFECT_DEFAULT = 0
OBS_SOURCE_TYPE_FILTER = 1
OBS_SOURCE_VIDEO = 1 << 0
OBS_TEXT_DEFAULT = 0
OBS_TEXT_PASSWORD = 1
OBS_TEXT_INFO = 3
OBS_TEXT_INFO_NORMAL, OBS_TEXT_INFO_WARNING = 0, 1
OBS_COMBO_FORMAT_INT = 1
OBS_GROUP_CHECKABLE = 2
OBS_COMBO_TYPE_LIST = 2
OBS_COMBO_FORMAT_STRING = 3
OBS_PATH_FILE = 0
OBS_GROUP_NORMAL = 1
LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG = 100, 200, 300, 400

# --------------------------------------------------------------------------- structs and callbacks
get_name_t = CFUNCTYPE(c_void_p, c_void_p)
create_t = CFUNCTYPE(c_void_p, c_void_p, c_void_p)
destroy_t = CFUNCTYPE(None, c_void_p)
get_size_t = CFUNCTYPE(c_uint32, c_void_p)
get_defaults_t = CFUNCTYPE(None, c_void_p)
get_properties_t = CFUNCTYPE(c_void_p, c_void_p)
update_t = CFUNCTYPE(None, c_void_p, c_void_p)
video_tick_t = CFUNCTYPE(None, c_void_p, c_float)
video_render_t = CFUNCTYPE(None, c_void_p, c_void_p)
filter_remove_t = CFUNCTYPE(None, c_void_p, c_void_p)
button_clicked_t = CFUNCTYPE(c_bool, c_void_p, c_void_p, c_void_p)
property_modified_t = CFUNCTYPE(c_bool, c_void_p, c_void_p, c_void_p)  # (props, property, settings)


class obs_source_info(Structure):
    """``struct obs_source_info`` as in OBS 29.0 (obs-source.h); callbacks we do not use stay NULL."""

    _fields_ = [
        ("id", c_char_p),
        ("type", c_int),
        ("output_flags", c_uint32),
        ("get_name", get_name_t),
        ("create", create_t),
        ("destroy", destroy_t),
        ("get_width", get_size_t),
        ("get_height", get_size_t),
        ("get_defaults", get_defaults_t),
        ("get_properties", get_properties_t),
        ("update", update_t),
        ("activate", c_void_p),
        ("deactivate", c_void_p),
        ("show", c_void_p),
        ("hide", c_void_p),
        ("video_tick", video_tick_t),
        ("video_render", video_render_t),
        ("filter_video", c_void_p),
        ("filter_audio", c_void_p),
        ("enum_active_sources", c_void_p),
        ("save", c_void_p),
        ("load", c_void_p),
        ("mouse_click", c_void_p),
        ("mouse_move", c_void_p),
        ("mouse_wheel", c_void_p),
        ("focus", c_void_p),
        ("key_click", c_void_p),
        ("filter_remove", filter_remove_t),
        ("type_data", c_void_p),
        ("free_type_data", c_void_p),
        ("audio_render", c_void_p),
        ("enum_all_sources", c_void_p),
        ("transition_start", c_void_p),
        ("transition_stop", c_void_p),
        ("get_defaults2", c_void_p),
        ("get_properties2", c_void_p),
        ("audio_mix", c_void_p),
        ("icon_type", c_int),
        ("media_play_pause", c_void_p),
        ("media_restart", c_void_p),
        ("media_stop", c_void_p),
        ("media_next", c_void_p),
        ("media_previous", c_void_p),
        ("media_get_duration", c_void_p),
        ("media_get_time", c_void_p),
        ("media_set_time", c_void_p),
        ("media_get_state", c_void_p),
        ("version", c_uint32),
        ("unversioned_id", c_char_p),
        ("missing_files", c_void_p),
        ("video_get_color_space", c_void_p),
    ]


class vec4(Structure):
    _fields_ = [("x", c_float), ("y", c_float), ("z", c_float), ("w", c_float)]


class vec2(Structure):
    _fields_ = [("x", c_float), ("y", c_float)]


# --------------------------------------------------------------------------- loading
def _candidates() -> List[Optional[str]]:
    if sys.platform.startswith("win"):
        return ["obs", "obs.dll"]
    if sys.platform == "darwin":
        return [None, "@rpath/libobs.framework/Versions/A/libobs", "libobs.framework/libobs",
                "/Applications/OBS.app/Contents/Frameworks/libobs.framework/Versions/A/libobs"]
    return [None, "libobs.so.0", "libobs.so.30", "libobs.so.31", "libobs.so.32", "libobs.so",
            "/app/lib/libobs.so.30", "/app/lib/libobs.so.0"]


def load_libobs() -> ctypes.CDLL:
    """Open the libobs this process already runs; raise OSError naming what was tried."""
    tried = []
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
            lib.obs_register_source_s  # noqa: B018 - the loaded module must be libobs (or link it)
            return lib
        except (OSError, AttributeError) as exc:
            tried.append(f"{name or '<this process>'}: {exc}")
    raise OSError("libobs not found; tried " + "; ".join(tried))


_SIGNATURES = {
    # core
    "obs_register_source_s": (None, [POINTER(obs_source_info), c_size_t]),
    "obs_get_version": (c_uint32, []),
    "obs_get_version_string": (c_char_p, []),
    "obs_get_video_frame_time": (c_uint64, []),
    "obs_enter_graphics": (None, []),
    "obs_leave_graphics": (None, []),
    "obs_get_base_effect": (c_void_p, [c_int]),
    "bfree": (None, [c_void_p]),
    # sources and filters
    "obs_source_process_filter_begin": (c_bool, [c_void_p, c_int, c_int]),
    "obs_source_process_filter_end": (None, [c_void_p, c_void_p, c_uint32, c_uint32]),
    "obs_source_process_filter_tech_end": (None, [c_void_p, c_void_p, c_uint32, c_uint32, c_char_p]),
    "obs_source_skip_video_filter": (None, [c_void_p]),
    "obs_source_video_render": (None, [c_void_p]),
    "obs_filter_get_target": (c_void_p, [c_void_p]),
    "obs_filter_get_parent": (c_void_p, [c_void_p]),
    "obs_source_get_base_width": (c_uint32, [c_void_p]),
    "obs_source_get_base_height": (c_uint32, [c_void_p]),
    "obs_source_get_name": (c_char_p, [c_void_p]),
    "obs_source_get_settings": (c_void_p, [c_void_p]),
    "obs_source_update": (None, [c_void_p, c_void_p]),
    "obs_source_update_properties": (None, [c_void_p]),
    "os_get_config_path": (c_int, [c_char_p, c_size_t, c_char_p]),
    # settings
    "obs_data_release": (None, [c_void_p]),
    "obs_data_get_string": (c_char_p, [c_void_p, c_char_p]),
    "obs_data_get_int": (c_longlong, [c_void_p, c_char_p]),
    "obs_data_get_double": (c_double, [c_void_p, c_char_p]),
    "obs_data_get_bool": (c_bool, [c_void_p, c_char_p]),
    "obs_data_set_string": (None, [c_void_p, c_char_p, c_char_p]),
    "obs_data_set_bool": (None, [c_void_p, c_char_p, c_bool]),
    "obs_data_set_default_string": (None, [c_void_p, c_char_p, c_char_p]),
    "obs_data_unset_user_value": (None, [c_void_p, c_char_p]),
    "obs_data_set_default_int": (None, [c_void_p, c_char_p, c_longlong]),
    "obs_data_set_default_double": (None, [c_void_p, c_char_p, c_double]),
    "obs_data_set_default_bool": (None, [c_void_p, c_char_p, c_bool]),
    # properties
    "obs_properties_create": (c_void_p, []),
    "obs_properties_add_text": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int]),
    "obs_properties_add_list": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_int]),
    "obs_property_list_add_string": (c_size_t, [c_void_p, c_char_p, c_char_p]),
    "obs_properties_add_color": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "obs_properties_add_path": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_char_p, c_char_p]),
    "obs_properties_add_float_slider": (c_void_p, [c_void_p, c_char_p, c_char_p, c_double, c_double, c_double]),
    "obs_properties_add_int": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_int, c_int]),
    "obs_properties_add_bool": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "obs_properties_add_button": (c_void_p, [c_void_p, c_char_p, c_char_p, button_clicked_t]),
    "obs_properties_add_group": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_void_p]),
    "obs_property_set_long_description": (None, [c_void_p, c_char_p]),
    "obs_property_set_visible": (None, [c_void_p, c_bool]),
    "obs_property_visible": (c_bool, [c_void_p]),
    "obs_property_set_modified_callback": (None, [c_void_p, property_modified_t]),
    "obs_property_text_set_info_type": (None, [c_void_p, c_int]),
    "obs_property_list_add_int": (c_size_t, [c_void_p, c_char_p, c_longlong]),
    "obs_properties_get": (c_void_p, [c_void_p, c_char_p]),
    "obs_properties_apply_settings": (None, [c_void_p, c_void_p]),
    "obs_source_properties": (c_void_p, [c_void_p]),
    "obs_properties_first": (c_void_p, [c_void_p]),
    "obs_property_next": (c_bool, [POINTER(c_void_p)]),
    "obs_property_name": (c_char_p, [c_void_p]),
    "obs_property_group_content": (c_void_p, [c_void_p]),
    "obs_properties_destroy": (None, [c_void_p]),
    # graphics
    "gs_texrender_create": (c_void_p, [c_int, c_int]),
    "gs_texrender_destroy": (None, [c_void_p]),
    "gs_texrender_reset": (None, [c_void_p]),
    "gs_texrender_begin": (c_bool, [c_void_p, c_uint32, c_uint32]),
    "gs_texrender_end": (None, [c_void_p]),
    "gs_texrender_get_texture": (c_void_p, [c_void_p]),
    "gs_stagesurface_create": (c_void_p, [c_uint32, c_uint32, c_int]),
    "gs_stagesurface_destroy": (None, [c_void_p]),
    "gs_stage_texture": (None, [c_void_p, c_void_p]),
    "gs_stagesurface_map": (c_bool, [c_void_p, POINTER(POINTER(c_uint8)), POINTER(c_uint32)]),
    "gs_stagesurface_unmap": (None, [c_void_p]),
    "gs_texture_create": (c_void_p, [c_uint32, c_uint32, c_int, c_uint32, c_void_p, c_uint32]),
    "gs_texture_create_from_file": (c_void_p, [c_char_p]),
    "gs_texture_destroy": (None, [c_void_p]),
    "gs_texture_set_image": (None, [c_void_p, c_char_p, c_uint32, c_bool]),
    "gs_texture_get_width": (c_uint32, [c_void_p]),
    "gs_texture_get_height": (c_uint32, [c_void_p]),
    "gs_effect_create_from_file": (c_void_p, [c_char_p, POINTER(c_char_p)]),
    "gs_effect_destroy": (None, [c_void_p]),
    "gs_effect_get_param_by_name": (c_void_p, [c_void_p, c_char_p]),
    "gs_effect_get_technique": (c_void_p, [c_void_p, c_char_p]),
    "gs_effect_get_val": (c_void_p, [c_void_p]),
    "gs_effect_set_texture": (None, [c_void_p, c_void_p]),
    "gs_effect_set_float": (None, [c_void_p, c_float]),
    "gs_effect_set_vec2": (None, [c_void_p, POINTER(vec2)]),
    "gs_effect_set_vec4": (None, [c_void_p, POINTER(vec4)]),
    "gs_technique_begin": (c_size_t, [c_void_p]),
    "gs_technique_begin_pass": (c_bool, [c_void_p, c_size_t]),
    "gs_technique_end_pass": (None, [c_void_p]),
    "gs_technique_end": (None, [c_void_p]),
    "gs_draw_sprite": (None, [c_void_p, c_uint32, c_uint32, c_uint32]),
    "gs_ortho": (None, [c_float, c_float, c_float, c_float, c_float, c_float]),
    "gs_clear": (None, [c_uint32, POINTER(vec4), c_float, c_uint8]),
    "gs_blend_state_push": (None, []),
    "gs_blend_state_pop": (None, []),
    "gs_enable_blending": (None, [c_bool]),
    "gs_blend_function": (None, [c_int, c_int]),
}


class LibObs:
    """Typed access to the libobs functions the filter uses (``lib.<name>(...)``)."""

    def __init__(self, lib: Optional[ctypes.CDLL] = None) -> None:
        self.lib = lib or load_libobs()
        missing = []
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(self.lib, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if missing:
            raise OSError("libobs lacks " + ", ".join(missing))

    def __getattr__(self, name: str) -> Any:  # for type checkers: functions are set in __init__
        raise AttributeError(f"libobs function {name} is not bound (add it to _SIGNATURES)")

    def blog(self, level: int, text: str) -> None:
        """OBS's log (variadic in C: the message goes through "%s", never as the format)."""
        self.lib.blog(c_int(level), b"%s", c_char_p(text.encode("utf-8", "replace")))

    def config_path(self, name: str) -> str:
        """A path under OBS's configuration folder (e.g. "obs-studio/logs"), as OBS itself builds it."""
        buf = ctypes.create_string_buffer(4096)
        n = self.os_get_config_path(buf, len(buf), name.encode("utf-8"))
        return buf.value.decode("utf-8", "replace") if n > 0 else ""

    def version(self) -> tuple:
        v = int(self.obs_get_version())
        return (v >> 24, (v >> 16) & 0xFF, v & 0xFFFF)


def c(text: str) -> bytes:
    """A Python string as a C string argument."""
    return text.encode("utf-8")


def s(value: Any) -> str:
    """A ``const char*`` result (bytes or None) as a Python string."""
    return value.decode("utf-8", "replace") if value else ""


def create_effect(obs: Any, path: str, params: Sequence[str]) -> Tuple[Optional[int], Dict[str, int], str]:
    """Compile an ``.effect`` file (graphics context entered): (effect, its parameters by name, error text).

    The error text is libobs's own (the shader compiler's message), freed here after copying it.
    """
    err = ctypes.c_char_p()
    eff = obs.gs_effect_create_from_file(path.encode(), ctypes.byref(err))
    if not eff:
        text = s(err.value) or "unknown error"
        if err.value:
            obs.bfree(ctypes.cast(err, ctypes.c_void_p))
        return None, {}, text
    return eff, {n: obs.gs_effect_get_param_by_name(eff, n.encode()) for n in params}, ""
