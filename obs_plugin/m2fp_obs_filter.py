"""M2FP Background — OBS script (Tools → Scripts → +) adding the video filter "M2FP Background".

The filter sends a small copy of each frame to an m2fp-server (ZeroMQ) and
composites the masks it gets back on the GPU.  It never waits for the server.
Needs OBS 29+ with Python 3.8–3.12 and pyzmq in the Python OBS uses
(install_scripts/ and `m2fp doctor` check that).

Only the thin ``script_*`` functions live here; everything else is in ``m2fp_obs/``.
"""
import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (os.path.join(os.path.dirname(_HERE), "shared"), _HERE):  # m2fp_protocol, m2fp_obs
    if _p not in sys.path:
        sys.path.insert(0, _p)

import obspython as obs  # noqa: E402  (provided by OBS)

_state = {"plugin": None, "error": ""}

# Reloaded on every script load so edited code takes effect; `registration` (which holds the C
# callbacks OBS keeps calling) and `libobs` (whose types it uses) are never reloaded.
_RELOADABLE = ("m2fp_protocol.messages", "m2fp_protocol.errors", "m2fp_protocol.classes", "m2fp_protocol.config",
               "m2fp_protocol.codec", "m2fp_protocol", "m2fp_obs.log", "m2fp_obs.policy", "m2fp_obs.transport",
               "m2fp_obs.settings", "m2fp_obs.stats", "m2fp_obs.texrender", "m2fp_obs.capture", "m2fp_obs.render",
               "m2fp_obs.sync", "m2fp_obs.delay", "m2fp_obs.filter", "m2fp_obs.properties", "m2fp_obs.plugin")
_STATS_PERIOD_MS = 200  # the report tests and `m2fp obs-bench` read ($M2FP_OBS_STATS)


def script_description():
    text = ("<b>M2FP Background</b><br>Adds the video filter <i>M2FP Background</i>: live background "
            "removal and replacement by an m2fp-server (human parsing).")
    if _state["error"]:
        text += "<br><b style='color:#c00'>Not active: " + _state["error"] + "</b>"
    return text


def script_load(settings):
    try:
        for name in _RELOADABLE:
            if name in sys.modules:
                importlib.reload(sys.modules[name])
        from m2fp_obs import log, plugin, registration
        log.set_sink(obs.script_log)
        reg = registration.get()
        p = plugin.FilterPlugin(reg)
        reg.install(p)
        _state["plugin"], _state["error"] = p, ""
        if p.stats is not None:
            obs.timer_add(_write_stats, _STATS_PERIOD_MS)
    except ImportError as exc:
        _state["error"] = f"{exc} - install pyzmq for the Python OBS uses (see install_scripts/, `m2fp doctor`)"
        obs.script_log(obs.LOG_ERROR, "m2fp: " + _state["error"])
    except OSError as exc:
        _state["error"] = f"cannot use libobs: {exc}"
        obs.script_log(obs.LOG_ERROR, "m2fp: " + _state["error"])


def _write_stats():
    p = _state["plugin"]
    if p is not None:
        try:
            p.write_stats()
        except Exception as exc:  # a report that cannot be written must not stop the timer's caller
            obs.script_log(obs.LOG_WARNING, f"m2fp: stats report: {type(exc).__name__}: {exc}")


def script_unload():
    obs.timer_remove(_write_stats)
    if _state["plugin"] is None:
        return
    from m2fp_obs import log, registration
    registration.get().uninstall()
    log.set_sink(None)
    _state["plugin"] = None
