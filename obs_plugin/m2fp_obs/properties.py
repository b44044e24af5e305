"""The filter's properties dialog, built through libobs (obspython objects cannot be returned to C).

Body-part checkboxes come from the server's class list (INFO); before a server
has answered, a note says so.  Buttons go through ``Registration.button`` so
their C callbacks outlive script reloads.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from typing import Any, Optional

from . import libobs as L
from .settings import BACKGROUND_MODES, SYNC_MAX, SYNC_MIN, VIEW_MODES, is_background, keep_key

_MODE_LABELS = {"transparent": "Transparent", "color": "Colour", "image": "Image", "blur": "Blurred background"}
_VIEW_LABELS = {"composite": "Composite", "alpha": "Mask (alpha)", "parsing": "Parsing (colour-coded parts)"}


SYNC_HELP = (f"0 = off: masks are shown as they arrive and the server moves them ahead along the motion. "
             f"{SYNC_MIN}-{SYNC_MAX}: the video is delayed by N frames so each frame gets the mask made from it "
             f"(1 counts as {SYNC_MIN}: a mask is never back within one frame). Offset the audio by the same "
             f"delay, N x frame time: Advanced Audio Properties -> Sync Offset (67 ms for 2 frames at 30 fps, "
             f"100 ms for 3).")


def set_status(obs: L.LibObs, source: int, text: str) -> None:
    """The status line is a read-only text property showing the setting ``status``."""
    data = obs.obs_source_get_settings(source)
    if data:
        obs.obs_data_set_string(data, b"status", text.encode("utf-8"))
        obs.obs_data_release(data)


def build(obs: L.LibObs, reg: Any, inst: Optional[Any]) -> int:
    c = L.c
    props = obs.obs_properties_create()

    server = obs.obs_properties_create()
    obs.obs_properties_add_text(server, b"server_address", b"Server address", L.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(server, b"status", b"Status", L.OBS_TEXT_INFO)
    obs.obs_properties_add_button(server, b"refresh_status", b"Refresh status", reg.button("refresh_status"))
    obs.obs_properties_add_button(server, b"start_server", b"Start a local m2fp-server", reg.button("start_server"))
    obs.obs_properties_add_group(props, b"grp_server", b"Server", L.OBS_GROUP_NORMAL, server)

    security = obs.obs_properties_create()  # what `m2fp keys` prints
    obs.obs_properties_add_text(security, b"curve_server_key", b"Server public key", L.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(security, b"curve_public_key", b"Client public key", L.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(security, b"curve_secret_key", b"Client secret key", L.OBS_TEXT_PASSWORD)
    obs.obs_properties_add_group(props, b"grp_security", b"Security (CURVE keys, for a server on another machine)",
                                 L.OBS_GROUP_NORMAL, security)

    bg = obs.obs_properties_create()
    mode = obs.obs_properties_add_list(bg, b"background_mode", b"Background", L.OBS_COMBO_TYPE_LIST,
                                       L.OBS_COMBO_FORMAT_STRING)
    for m in BACKGROUND_MODES:
        obs.obs_property_list_add_string(mode, c(_MODE_LABELS[m]), c(m))
    obs.obs_properties_add_color(bg, b"background_color", b"Background colour")
    obs.obs_properties_add_path(bg, b"background_image", b"Background image", L.OBS_PATH_FILE,
                                b"Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp)", None)
    obs.obs_properties_add_float_slider(bg, b"blur_strength", b"Blur strength", 0.0, 1.0, 0.05)
    obs.obs_properties_add_group(props, b"grp_background", b"Background", L.OBS_GROUP_NORMAL, bg)

    mask = obs.obs_properties_create()
    view = obs.obs_properties_add_list(mask, b"view_mode", b"View", L.OBS_COMBO_TYPE_LIST, L.OBS_COMBO_FORMAT_STRING)
    for v in VIEW_MODES:
        obs.obs_property_list_add_string(view, c(_VIEW_LABELS[v]), c(v))
    obs.obs_properties_add_float_slider(mask, b"threshold", b"Threshold", 0.0, 1.0, 0.01)
    obs.obs_properties_add_float_slider(mask, b"feather", b"Feather", 0.0, 0.5, 0.01)
    obs.obs_properties_add_float_slider(mask, b"smoothing", b"Temporal smoothing", 0.0, 0.99, 0.01)
    obs.obs_properties_add_group(props, b"grp_mask", b"Mask", L.OBS_GROUP_NORMAL, mask)

    parts = obs.obs_properties_create()
    names = list(inst.class_names) if inst is not None else []
    fg = [n for n in names if not is_background(n)]
    if fg:
        obs.obs_properties_add_button(parts, b"parts_all", b"All", reg.button("parts_all"))
        obs.obs_properties_add_button(parts, b"parts_none", b"None", reg.button("parts_none"))
        for n in fg:
            obs.obs_properties_add_bool(parts, c(keep_key(n)), c(n))
    else:
        obs.obs_properties_add_text(parts, b"parts_note",
                                    b"The parts appear once the server has answered (Refresh status).",
                                    L.OBS_TEXT_INFO)
    obs.obs_properties_add_group(props, b"grp_parts", b"Body parts to keep", L.OBS_GROUP_NORMAL, parts)

    away = obs.obs_properties_create()
    obs.obs_properties_add_int(away, b"hold_ms", b"Hold the last mask (ms)", 0, 60000, 50)
    after = obs.obs_properties_add_list(away, b"after_hold", b"Then", L.OBS_COMBO_TYPE_LIST,
                                        L.OBS_COMBO_FORMAT_STRING)
    obs.obs_property_list_add_string(after, b"Show the frame unmasked", b"pass")
    obs.obs_property_list_add_string(after, b"Hide the source", b"hide")
    obs.obs_properties_add_group(props, b"grp_away", b"While the server is away", L.OBS_GROUP_NORMAL, away)

    sync = obs.obs_properties_create()
    prop = obs.obs_properties_add_int(sync, b"sync_frames", b"Frame sync (delay video by N frames, 0 = off)",
                                      0, SYNC_MAX, 1)
    obs.obs_property_set_long_description(prop, SYNC_HELP.encode("utf-8"))
    obs.obs_properties_add_text(sync, b"sync_note", SYNC_HELP.encode("utf-8"), L.OBS_TEXT_INFO)
    obs.obs_properties_add_group(props, b"grp_sync", b"Frame sync", L.OBS_GROUP_NORMAL, sync)
    return props


def list_names(obs: L.LibObs, source: int) -> list:
    """Names of every property OBS's dialog would show for this filter (groups flattened).

    Built through libobs exactly as the dialog builds it; the tests read the list
    from the stats file to check the dialog's content in a real OBS.
    """
    props = obs.obs_source_properties(source)
    names: list = []

    def walk(ps: int) -> None:
        prop = ctypes.c_void_p(obs.obs_properties_first(ps))
        while prop.value:
            names.append(L.s(obs.obs_property_name(prop)))
            inner = obs.obs_property_group_content(prop)
            if inner:
                walk(inner)
            if not obs.obs_property_next(ctypes.byref(prop)):
                break

    if props:
        try:
            walk(props)
        finally:
            obs.obs_properties_destroy(props)
    return names


def set_parts(obs: L.LibObs, source: int, names: list, on: bool) -> None:
    data = obs.obs_source_get_settings(source)
    if not data:
        return
    for n in names:
        if not is_background(n):
            obs.obs_data_set_bool(data, L.c(keep_key(n)), on)
    obs.obs_source_update(source, data)
    obs.obs_data_release(data)


def find_server_command() -> Optional[str]:
    """``m2fp-server`` on PATH, or in the venv the install scripts create (same places as they use)."""
    found = shutil.which("m2fp-server")
    if found:
        return found
    if os.environ.get("M2FP_HOME"):
        home = os.environ["M2FP_HOME"]
    elif sys.platform.startswith("win"):
        home = os.path.join(os.environ.get("LOCALAPPDATA", ""), "m2fp-obs")
    elif sys.platform == "darwin":
        home = os.path.join(os.path.expanduser("~"), "Library", "Application Support", "m2fp-obs")
    else:
        home = os.path.join(os.path.expanduser("~"), ".local", "share", "m2fp-obs")
    sub = ("Scripts", "m2fp-server.exe") if sys.platform.startswith("win") else ("bin", "m2fp-server")
    path = os.path.join(home, "venv", *sub)
    return path if os.path.exists(path) else None


def start_server(address: str) -> "subprocess.Popen[bytes]":
    cmd = find_server_command()
    if cmd is None:
        raise FileNotFoundError("m2fp-server not found: run install_scripts/install.sh (or install.ps1)")
    return subprocess.Popen([cmd, "--address", address], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
