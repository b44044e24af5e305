"""Test helper loaded into OBS as a second script: reloads the m2fp script on request.

OBS's Tools → Scripts → Reload calls the script's ``script_unload``, re-imports
the module and calls ``script_load``; this does the same inside the OBS process
(same interpreter, same module object) when the test creates ``$M2FP_OBS_STATS.reload``,
and answers with ``….reload.done``.  Only the tests load it.
"""
import importlib
import os
import sys

import obspython as obs

_FLAG = os.environ.get("M2FP_OBS_STATS", "") + ".reload"


def _check():
    if not os.path.exists(_FLAG):
        return
    os.remove(_FLAG)
    try:
        mod = sys.modules["m2fp_obs_filter"]
        mod.script_unload()
        mod = importlib.reload(mod)
        mod.script_load(None)
        result = "ok"
    except Exception as exc:  # reported to the test through the answer file
        result = f"{type(exc).__name__}: {exc}"
    with open(_FLAG + ".done", "w") as f:
        f.write(result)


def script_description():
    return "m2fp test helper: reloads the m2fp script on request (tests only)"


def script_load(settings):
    if os.environ.get("M2FP_OBS_STATS"):
        obs.timer_add(_check, 100)


def script_unload():
    obs.timer_remove(_check)
