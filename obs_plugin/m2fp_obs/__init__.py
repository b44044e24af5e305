"""The OBS side of m2fp-obs, loaded by ``obs_plugin/m2fp_obs_filter.py``.

Reading order follows one frame: ``libobs`` (the only ctypes bindings),
``registration`` (the filter type, registered once and kept across script
reloads), ``plugin`` (the implementation it forwards to), ``filter`` (per-source
state; render never waits), ``delay`` (the full-size frame the source is rendered
into once per frame, directly or through the frame-sync ring; ``sync`` is its
bookkeeping), ``capture`` (that frame scaled into a small texrender → stage ring →
bytes), ``texrender`` (the one off-screen render helper), ``pacing`` (when the
frame read back is sent, and how old the mask shown is), ``transport`` (DEALER,
never blocks), ``policy`` (what to draw while the server is away), ``render`` (mask
upload, the technique chooser and the composite effect in ``effects/``),
``settings`` and ``properties`` (the filter's settings and its dialog), ``stats``
(timing counters and the report for tests and the bench), ``log``.

``transport``, ``policy`` and ``settings`` are free of OBS: they run in tests
with stdlib + pyzmq.  Nothing here needs numpy (OBS's Python usually lacks it).
"""
