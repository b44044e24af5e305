"""The filter's properties dialog, built through libobs (obspython objects cannot be returned to C).

What a streamer sees first is short: status, address, background, the three mask
sliders, stray-blob removal, what happens when the server stops, and two switches
that open the body-part checkboxes and the "Advanced" group.  Settings that do
not apply are hidden by modified callbacks (``visibility``), which OBS also runs
when it opens the dialog.  Every setting has a one-line tooltip.

The status line is an info text whose value is the settings' *default* for
``status``: OBS shows it, but defaults are never written to the scene collection.
Buttons and modified callbacks go through ``Registration`` so their C callbacks
outlive script reloads.
"""
from __future__ import annotations

import ctypes
from typing import Any, Dict, List, Optional, Tuple

from m2fp_protocol import DEFAULT_SYNC_FRAMES

from . import libobs as L
from .settings import BACKGROUND_MODES, SYNC_CHOICES, VIEW_MODES, FilterSettings, is_background, keep_key

_MODE_LABELS = {"transparent": "Transparent", "color": "Color", "image": "Image", "blur": "Blurred background"}
_VIEW_LABELS = {"composite": "Composite (normal)", "alpha": "Mask only (debugging)",
                "parsing": "Body parts, color-coded (debugging)"}

SYNC_HELP = ("Delays the video so each frame gets its own mask (1: the mask is predicted one frame). "
             "Delay the audio as much: Sync Offset 33 ms per frame at 30 fps.")


def sync_label(frames: int) -> str:
    """The Frame sync choice as the dialog lists it."""
    text = "Off" if frames == 0 else f"Delay video by {frames} frame{'s' if frames > 1 else ''}"
    return text + (" (default)" if frames == DEFAULT_SYNC_FRAMES else "")

#: one-line tooltips (long descriptions), one per setting the dialog shows
TIPS: Dict[str, str] = {
    "status": "What the filter is doing now; it updates itself when the server comes or goes.",
    "restart_server": "Starts the server OBS started again, with the same address and program.",
    "server_address": "Where the m2fp-server listens; on this machine (127.0.0.1) the filter starts one itself.",
    "background_mode": "What replaces the background: nothing (transparent), a color, an image or a blur.",
    "background_color": "The color shown behind the person.",
    "background_image": "The picture shown behind the person (stretched to the source's size).",
    "blur_strength": "How strongly the background is blurred; the radius follows the source's size.",
    "threshold": "How sure the model must be that a pixel is a person; higher cuts more away.",
    "feather": "Softness of the mask's edge; higher gives a wider, smoother transition.",
    "smoothing": "Steadies the mask over time; higher flickers less but follows fast motion later.",
    "remove_islands": "Drops small stray blobs of mask that touch no larger part (never a whole person).",
    "after_hold": "What the stream shows once the server has been gone for longer than the hold time.",
    "choose_parts": "Keep only the ticked body parts (for example, hide the hands); off keeps the whole person.",
    "parts_all": "Tick every body part.",
    "parts_none": "Untick every body part.",
    "advanced": "Hold time, frame sync, debugging views, the server program and CURVE keys.",
    "hold_ms": "How long the last mask is kept after the server stops before the fallback above applies.",
    "sync_frames": SYNC_HELP,
    "view_mode": "Debugging views: the mask itself, or each body part in its own color.",
    "server_path": "The m2fp-server program to start for a local address (empty: where the installer put it).",
    "curve_server_key": "For a server on another machine: the server's public key from `m2fp keys`.",
    "curve_public_key": "For a server on another machine: this client's public key from `m2fp keys`.",
    "curve_secret_key": "For a server on another machine: this client's secret key from `m2fp keys`.",
}

#: settings inside the "Advanced" group (shown only while it is ticked open)
ADVANCED = ("hold_ms", "sync_frames", "view_mode", "server_path", "curve_server_key", "curve_public_key",
            "curve_secret_key")
#: settings whose change can show or hide others
_DRIVERS = ("background_mode", "background_image", "after_hold", "choose_parts", "advanced")


def visibility(s: FilterSettings) -> Dict[str, bool]:
    """Which optional rows apply to these settings (every other row is always shown)."""
    vis = {
        "background_color": s.background_mode == "color",
        "background_image": s.background_mode == "image",
        "image_note": s.background_mode == "image" and not s.background_image,
        "blur_strength": s.background_mode == "blur",
        "pass_warning": s.after_hold == "pass",
        "grp_parts": s.choose_parts,
    }
    vis.update({k: s.advanced for k in ADVANCED})
    return vis


def set_status(obs: L.LibObs, source: int, text: str) -> None:
    """Show ``text`` as the status: the settings' default, so it is never saved with the scene."""
    data = obs.obs_source_get_settings(source)
    if data:
        obs.obs_data_unset_user_value(data, b"status")  # a value saved by an older version
        obs.obs_data_set_default_string(data, b"status", text.encode("utf-8"))
        obs.obs_data_release(data)


def apply_visibility(obs: L.LibObs, props: int, s: FilterSettings) -> None:
    for name, shown in visibility(s).items():
        prop = obs.obs_properties_get(props, name.encode())
        if prop:
            obs.obs_property_set_visible(prop, shown)


def build(obs: L.LibObs, reg: Any, inst: Optional[Any]) -> int:
    c = L.c
    props = obs.obs_properties_create()
    modified = reg.modified("visibility")

    def tip(prop: int, name: str) -> int:
        if prop:
            obs.obs_property_set_long_description(prop, TIPS[name].encode("utf-8"))
            if name in _DRIVERS:
                obs.obs_property_set_modified_callback(prop, modified)
        return prop

    def info(ps: int, name: str, text: str, warning: bool = False) -> None:
        """A note spanning the row (no tooltip: OBS 29 would show it as a second column)."""
        prop = obs.obs_properties_add_text(ps, c(name), c(text), L.OBS_TEXT_INFO)
        if warning:
            obs.obs_property_text_set_info_type(prop, L.OBS_TEXT_INFO_WARNING)

    tip(obs.obs_properties_add_text(props, b"status", b"Status", L.OBS_TEXT_INFO), "status")
    child = inst.launch_child if inst is not None else None
    if child is not None and child.exit_code() is not None:  # only while the server OBS started is down
        tip(obs.obs_properties_add_button(props, b"restart_server", b"Start the server again",
                                          reg.button("restart_server")), "restart_server")
    tip(obs.obs_properties_add_text(props, b"server_address", b"Server address", L.OBS_TEXT_DEFAULT),
        "server_address")

    mode = tip(obs.obs_properties_add_list(props, b"background_mode", b"Background", L.OBS_COMBO_TYPE_LIST,
                                           L.OBS_COMBO_FORMAT_STRING), "background_mode")
    for m in BACKGROUND_MODES:
        obs.obs_property_list_add_string(mode, c(_MODE_LABELS[m]), c(m))
    tip(obs.obs_properties_add_color(props, b"background_color", b"Color"), "background_color")
    tip(obs.obs_properties_add_path(props, b"background_image", b"Image file", L.OBS_PATH_FILE,
                                    b"Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp)", None), "background_image")
    info(props, "image_note", "No image file chosen yet: the background stays transparent.", warning=True)
    tip(obs.obs_properties_add_float_slider(props, b"blur_strength", b"Blur strength", 0.0, 1.0, 0.05),
        "blur_strength")

    tip(obs.obs_properties_add_float_slider(props, b"threshold", b"Threshold", 0.0, 1.0, 0.01), "threshold")
    tip(obs.obs_properties_add_float_slider(props, b"feather", b"Feather", 0.0, 0.5, 0.01), "feather")
    tip(obs.obs_properties_add_float_slider(props, b"smoothing", b"Smoothing", 0.0, 0.99, 0.01), "smoothing")
    tip(obs.obs_properties_add_bool(props, b"remove_islands", b"Remove small stray blobs"), "remove_islands")

    after = tip(obs.obs_properties_add_list(props, b"after_hold", b"If the server stops", L.OBS_COMBO_TYPE_LIST,
                                            L.OBS_COMBO_FORMAT_STRING), "after_hold")
    obs.obs_property_list_add_string(after, b"Hide the source", b"hide")
    obs.obs_property_list_add_string(after, b"Show the frame unmasked", b"pass")
    info(props, "pass_warning", "Warning: your real background goes on stream while the server is away.",
         warning=True)

    tip(obs.obs_properties_add_bool(props, b"choose_parts", b"Keep only some body parts"), "choose_parts")
    parts = obs.obs_properties_create()
    names = list(inst.class_names) if inst is not None else []
    fg = [n for n in names if not is_background(n)]
    if fg:
        tip(obs.obs_properties_add_button(parts, b"parts_all", b"All", reg.button("parts_all")), "parts_all")
        tip(obs.obs_properties_add_button(parts, b"parts_none", b"None", reg.button("parts_none")), "parts_none")
        for n in fg:
            prop = obs.obs_properties_add_bool(parts, c(keep_key(n)), c(n))
            obs.obs_property_set_long_description(prop, c(f"Keep the {n.lower()} in the picture."))
    else:
        info(parts, "parts_note", "The parts appear once the server has answered.")
    obs.obs_properties_add_group(props, b"grp_parts", b"Body parts to keep", L.OBS_GROUP_NORMAL, parts)

    adv = obs.obs_properties_create()
    tip(obs.obs_properties_add_int(adv, b"hold_ms", b"Hold the last mask (ms)", 0, 60000, 50), "hold_ms")
    sync = tip(obs.obs_properties_add_list(adv, b"sync_frames", b"Frame sync", L.OBS_COMBO_TYPE_LIST,
                                           L.OBS_COMBO_FORMAT_INT), "sync_frames")
    for n in SYNC_CHOICES:
        obs.obs_property_list_add_int(sync, c(sync_label(n)), n)
    view = tip(obs.obs_properties_add_list(adv, b"view_mode", b"View", L.OBS_COMBO_TYPE_LIST,
                                           L.OBS_COMBO_FORMAT_STRING), "view_mode")
    for v in VIEW_MODES:
        obs.obs_property_list_add_string(view, c(_VIEW_LABELS[v]), c(v))
    tip(obs.obs_properties_add_path(adv, b"server_path", b"Server program", L.OBS_PATH_FILE, b"", None),
        "server_path")
    tip(obs.obs_properties_add_text(adv, b"curve_server_key", b"Server public key", L.OBS_TEXT_DEFAULT),
        "curve_server_key")
    tip(obs.obs_properties_add_text(adv, b"curve_public_key", b"Client public key", L.OBS_TEXT_DEFAULT),
        "curve_public_key")
    tip(obs.obs_properties_add_text(adv, b"curve_secret_key", b"Client secret key", L.OBS_TEXT_PASSWORD),
        "curve_secret_key")
    tip(obs.obs_properties_add_group(props, b"advanced", b"Advanced", L.OBS_GROUP_CHECKABLE, adv), "advanced")
    return props


def walk(obs: L.LibObs, props: int, visible_only: bool) -> List[Tuple[str, int]]:
    """(name, depth) of every property, groups flattened; ``visible_only`` skips hidden rows and their content."""
    out: List[Tuple[str, int]] = []

    def go(ps: int, depth: int) -> None:
        prop = ctypes.c_void_p(obs.obs_properties_first(ps))
        while prop.value:
            if not visible_only or obs.obs_property_visible(prop):
                out.append((L.s(obs.obs_property_name(prop)), depth))
                inner = obs.obs_property_group_content(prop)
                if inner:
                    go(inner, depth + 1)
            if not obs.obs_property_next(ctypes.byref(prop)):
                break

    go(props, 0)
    return out


def list_names(obs: L.LibObs, source: int) -> list:
    """Names of every property OBS's dialog would show for this filter (groups flattened).

    Built through libobs exactly as the dialog builds it; the tests read the list
    from the stats file to check the dialog's content in a real OBS.
    """
    props = obs.obs_source_properties(source)
    if not props:
        return []
    try:
        return [n for n, _ in walk(obs, props, visible_only=False)]
    finally:
        obs.obs_properties_destroy(props)


def dialog_rows(obs: L.LibObs, source: int) -> List[str]:
    """The rows OBS's dialog shows now: properties built, the source's settings applied (OBS runs the
    modified callbacks then, as the dialog does when it opens), hidden rows left out."""
    props = obs.obs_source_properties(source)
    if not props:
        return []
    data = obs.obs_source_get_settings(source)
    try:
        if data:
            obs.obs_properties_apply_settings(props, data)
        return [n for n, _ in walk(obs, props, visible_only=True)]
    finally:
        if data:
            obs.obs_data_release(data)
        obs.obs_properties_destroy(props)


def set_parts(obs: L.LibObs, source: int, names: list, on: bool) -> None:
    data = obs.obs_source_get_settings(source)
    if not data:
        return
    for n in names:
        if not is_background(n):
            obs.obs_data_set_bool(data, L.c(keep_key(n)), on)
    obs.obs_source_update(source, data)
    obs.obs_data_release(data)
