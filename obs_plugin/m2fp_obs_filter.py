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
LOG_FLUSH_MS = 100

# Reloaded on every script load so edited code takes effect; `registration` (which holds the C
# callbacks OBS keeps calling), `libobs` (whose types it uses) and `launcher` (which owns the
# servers it started) are never reloaded.
# Each module comes after the ones it imports (tests/obs/test_obs_reload_list.py checks both).
_RELOADABLE = ("m2fp_protocol.messages", "m2fp_protocol.errors", "m2fp_protocol.validation", "m2fp_protocol.classes",
               "m2fp_protocol.config", "m2fp_protocol.defaults", "m2fp_protocol.rules", "m2fp_protocol.people",
               "m2fp_protocol.codec", "m2fp_protocol.sizing", "m2fp_protocol", "m2fp_obs.log", "m2fp_obs.policy",
               "m2fp_obs.transport",
               "m2fp_obs.settings", "m2fp_obs.stats", "m2fp_obs.texrender", "m2fp_obs.capture", "m2fp_obs.render",
               "m2fp_obs.blur", "m2fp_obs.sync", "m2fp_obs.delay", "m2fp_obs.pacing", "m2fp_obs.filter",
               "m2fp_obs.properties", "m2fp_obs.plugin")
_STATS_PERIOD_MS = 200  # the report tests and `m2fp obs-bench` read ($M2FP_OBS_STATS)


def script_description():
    text = ("<b>M2FP Background</b><br>Adds the video filter <i>M2FP Background</i>: live background "
            "removal and replacement by an m2fp-server (human parsing).<br><br>"
            "<b>Next step:</b> right-click a camera source → <i>Filters</i> → <b>+</b> → <i>M2FP Background</i>. "
            "The filter starts a local m2fp-server by itself; its settings are in the Filters dialog.")
    if _state["error"]:
        text += "<br><b style='color:#c00'>Not active: " + _state["error"] + "</b>"
    return text


def script_load(settings):
    try:
        for name in _RELOADABLE:
            if name in sys.modules:
                importlib.reload(sys.modules[name])
        from m2fp_obs import log, plugin, registration
        # queued, then written from this script's timer: there OBS names the script (see m2fp_obs/log.py)
        log.set_sink(obs.script_log, deferred=True)
        obs.timer_add(_flush_log, LOG_FLUSH_MS)
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


def script_properties():
    """The Scripts dialog: no settings here, only where to go next."""
    props = obs.obs_properties_create()
    text = ("Settings live on each filter: right-click a source → Filters → + → M2FP Background."
            if not _state["error"] else "Not active: " + _state["error"])
    obs.obs_properties_add_text(props, "next_step", text, obs.OBS_TEXT_INFO)
    return props


def _flush_log():
    from m2fp_obs import log
    log.flush()


def _write_stats():
    p = _state["plugin"]
    if p is not None:
        try:
            p.write_stats()
        except Exception as exc:  # a report that cannot be written must not stop the timer's caller
            obs.script_log(obs.LOG_WARNING, f"m2fp: stats report: {type(exc).__name__}: {exc}")


def script_unload():
    obs.timer_remove(_flush_log)
    obs.timer_remove(_write_stats)
    if _state["plugin"] is None:
        return
    from m2fp_obs import log, registration
    registration.get().uninstall()
    log.flush()
    # after unload (OBS exiting, no timer): straight to OBS's log, named here
    log.set_sink(lambda level, text, _blog=registration.get().obs.blog: _blog(level, "[m2fp_obs_filter.py] " + text))
    _state["plugin"] = None
