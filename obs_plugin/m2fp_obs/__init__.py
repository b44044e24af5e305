"""The OBS side of m2fp-obs, loaded by ``obs_plugin/m2fp_obs_filter.py``.

Reading order follows one frame: ``libobs`` (the only ctypes bindings),
``registration`` (the filter type, kept across script reloads), ``filter``
(per-source state; render never waits), ``capture`` (texrender → stage ring →
bytes), ``transport`` (DEALER, never blocks), ``policy`` (what to draw while the
server is away), ``render`` (mask upload and the composite effect).

Only ``transport``, ``policy`` and ``settings`` are free of OBS: they run in tests
with stdlib + pyzmq.  Nothing here needs numpy (OBS's Python usually lacks it).
"""
