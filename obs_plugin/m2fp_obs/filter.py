"""Per-source state and the per-frame path.  Render never waits.

On OBS's graphics thread, each frame:

* ``video_render``: poll the transport (non-blocking) and upload the newest mask /
  parsing map; let OBS render the input (process_filter_begin); render the
  filter's target once more straight into the small texrender (the image sent
  to the server, and the blur background); draw at full size with the composite
  technique, or pass through / hide while the server is away (``policy``);
* ``video_tick`` of the next frame: stage and map the small texture and send it,
  if fewer than ``max_inflight`` frames are unanswered (otherwise skip it).

With "Frame sync" on (``sync_frames`` = N), ``video_render`` instead renders the
input into a ring of N + 1 full-size textures (``delay.VideoDelay``) and draws the
one of N frames ago with the mask computed from that frame, or the newest mask of
an earlier frame when its own is late (``sync.FrameSync``).  OBS may render a
source more than once per frame (screenshots, projectors): the ring advances only
on the first render after a ``video_tick``.

Settings arrive on the UI thread and are applied at the start of the next frame
(the socket belongs to the graphics thread).
"""
from __future__ import annotations

import collections
import json
import os
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from m2fp_protocol import PixelFormat, color_for

from . import libobs as L
from . import log
from .blur import BackgroundBlur
from .capture import FrameCapture
from .delay import VideoDelay
from .launcher import Child, Launch
from .policy import Action
from .render import TECHNIQUES, Compositor
from .settings import FilterSettings
from .transport import MaskTransport, State, Status, fit_inside

#: per-frame timings (ms): render = poll_upload + capture + draw (graphics thread, in video_render);
#: readback and send happen in the next video_tick, when the GPU has finished the small render
PHASES = ("poll_upload", "capture", "draw", "render", "readback", "send")
STATS_ENV = "M2FP_OBS_STATS"  # tests and `m2fp obs-bench`: write stats JSON to this path


class FilterInstance:
    def __init__(self, obs: L.LibObs, source: int, settings: FilterSettings) -> None:
        self.obs = obs
        self.source = source
        self.settings = settings
        self._pending: Optional[FilterSettings] = None
        self.transport: Optional[MaskTransport] = None
        self.transport_error = ""
        self.capture = FrameCapture(obs)
        self.compositor = Compositor(obs)
        self.blur = BackgroundBlur(obs)
        self.launch: Optional[Launch] = None  # set by the plugin: did OBS start this filter's server?
        self.launch_child: Optional[Child] = None
        self._blurred: Optional[int] = None  # this frame's blurred background (blur mode)
        self._fallback_on = False  # the fallback was announced in the log
        self.class_names: List[str] = []
        self.have_mask = False
        self.have_parsing = False
        self.action: Optional[Action] = None
        self.events: Deque[Tuple[float, str]] = collections.deque(maxlen=200)
        self.timings: Dict[str, Deque[float]] = {p: collections.deque(maxlen=1800) for p in PHASES}
        self.frames = 0
        self._want_readback = False
        self._seen_info: Optional[Dict[str, Any]] = None
        self.property_names: Optional[List[str]] = None  # filled when stats are written (tests)
        self.dialog_rows: Optional[List[str]] = None  # the rows the dialog shows (tests)
        self.delay: Optional[VideoDelay] = VideoDelay(obs, settings.sync_frames) if settings.sync_frames else None
        self._ticks = 0  # video_tick count: a render after a new tick is a new frame
        self._frame_tick = -1  # tick of the frame pushed into the delay ring
        self._seq: Optional[int] = None  # that frame's seq in the ring
        self._capture_seq: Optional[int] = None  # seq of the frame in the small capture (sent next tick)
        self._counted_tick = -1
        self.sync_counts: Dict[str, int] = collections.Counter()  # frames shown with their own mask / another
        self.sync_age: Deque[float] = collections.deque(maxlen=1800)  # frames between shown frame and its mask
        self._open_transport()

    # ------------------------------------------------------------------ settings (UI thread → render)
    def update(self, settings: FilterSettings) -> None:
        self._pending = settings

    def _open_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.have_mask = self.have_parsing = False
        if self.delay is not None:
            self.delay.sync.forget_ids()  # a new socket numbers frames from 1 again
        try:
            self.transport = MaskTransport(self.settings.transport_settings(),
                                           self.settings.server_config(self.class_names))
            self.transport_error = ""
        except Exception as exc:  # bad CURVE keys, bad address: say so, pass frames through
            self.transport_error = f"{type(exc).__name__}: {exc}"
            log.warning(f"cannot connect to {self.settings.server_address}: {self.transport_error} "
                        "(check the address and the CURVE keys)")

    def _apply_pending(self) -> None:
        new, self._pending = self._pending, None
        if new is None:
            return
        old, self.settings = self.settings, new
        if new.sync_frames != old.sync_frames:
            self._set_delay(new.sync_frames)
        if new.connection_key() != old.connection_key():
            self._open_transport()
        elif self.transport is not None:
            self.transport.set_want_parsing(new.view_mode == "parsing")
            cfg = new.server_config(self.class_names)
            if cfg != self.transport.config:
                self.transport.configure(cfg)
        self.compositor.set_background_image(new.background_image if new.background_mode == "image" else "")

    def _set_delay(self, frames: int) -> None:
        """Graphics thread, context entered (video_render): the ring exists only while sync is on."""
        if self.delay is not None:
            self.delay.destroy()
            self.delay = None
        if frames:
            self.delay = VideoDelay(self.obs, frames)
        self._frame_tick = -1
        self._seq = self._capture_seq = None
        self.sync_counts.clear()
        self.sync_age.clear()
        self.events.append((time.monotonic(), f"frame sync {frames}"))

    def _on_info(self, tr: MaskTransport) -> None:
        if tr.info is self._seen_info:  # same INFO object: nothing new (checked every frame)
            return
        self._seen_info = tr.info
        classes = tr.info.get("classes") if tr.info else None
        if not isinstance(classes, list):
            return
        names = [str(c.get("name", "")) for c in classes if isinstance(c, dict)]
        if names == self.class_names:
            return
        self.class_names = names
        colors: List[Tuple[int, int, int]] = []
        for i, c in enumerate(classes):
            col = c.get("color") if isinstance(c, dict) else None
            try:
                r, g, b = (int(v) & 255 for v in col)  # type: ignore[union-attr]
                colors.append((r, g, b))
            except (TypeError, ValueError):  # missing or malformed: a stable colour of our own
                colors.append(color_for(i))
        self.compositor.set_palette(colors + [color_for(i) for i in range(len(colors), 256)])
        cfg = self.settings.server_config(names)
        if cfg != tr.config:
            tr.configure(cfg)

    # ------------------------------------------------------------------ per frame
    def video_render(self) -> bool:
        """Returns False when nothing was drawn (the caller then passes the frame through)."""
        o = self.obs
        t0 = time.perf_counter()
        self._apply_pending()
        s = self.settings
        target = o.obs_filter_get_target(self.source)
        w = o.obs_source_get_base_width(target) if target else 0
        h = o.obs_source_get_base_height(target) if target else 0
        if not w or not h or not self.compositor.load():
            return False
        tr = self.transport
        if tr is not None:
            tr.poll()
            if tr.info:
                self._on_info(tr)
            m = tr.take_mask()
            if m is not None:
                self.compositor.mask.upload(m.width, m.height, m.data)  # the newest (also sync's fallback)
                if self.delay is not None:
                    self.delay.upload_mask(m.frame_id, m.width, m.height, m.data)
                self.have_mask = True
            p = tr.take_parsing()
            if p is not None:
                self.compositor.parsing.upload(p.width, p.height, p.data)
                self.have_parsing = True
        t1 = time.perf_counter()
        now = time.monotonic()
        alive = tr.server_alive if tr is not None else False
        away = tr.away_since if tr is not None else now
        action = s.fallback().decide(now, self.have_mask, alive, away)
        if action is not self.action:
            self._announce(self.action, action, tr)
            self.action = action
            self.events.append((now, f"action {action.value}"))
        send_size = tr.send_size((w, h)) if tr is not None and tr.state is State.READY else None
        send = send_size is not None and tr is not None and tr.can_send()
        self._want_readback = False
        if action in (Action.PASS, Action.HIDE) and not send:
            # nothing to composite and nothing to send (server away): cost nothing
            if self.delay is not None:
                self.delay.sync.reset()  # the ring stops here: refill it when masks are back
            self._record(t0, t1, t1, time.perf_counter())
            return action is Action.HIDE  # False: the caller passes the frame through untouched
        delay = self.delay
        if delay is not None:
            new_frame = self._frame_tick != self._ticks
            if new_frame or self._seq is None:
                self._frame_tick = self._ticks
                self._seq = delay.begin_frame((w, h))
                delay.render_frame(self._seq, lambda: self.compositor.run(
                    "Draw", lambda: o.obs_source_video_render(target)))
        elif not o.obs_source_process_filter_begin(self.source, L.GS_RGBA, L.OBS_NO_DIRECT_RENDERING):
            return False
        if send_size is not None:
            small_size = send_size
        elif self.capture.size != (0, 0):
            small_size = self.capture.size
        else:
            small_size = fit_inside((w, h), (256, 256))
        comp = self.compositor
        blur = s.background_mode == "blur" and s.view_mode == "composite"
        if send or blur:
            self.capture.draw_small(lambda: comp.run("Draw", lambda: o.obs_source_video_render(target)), (w, h),
                                    small_size)
        self._blurred = self.blur.run(self.capture.small_texture, self.capture.size, s.blur_strength) if blur else None
        self._want_readback = send
        if send:
            self._capture_seq = self._seq if delay is not None else None
        t2 = time.perf_counter()
        if delay is not None:
            self._draw_synced(delay, action, w, h)
            self._record(t0, t1, t2, time.perf_counter())
            return True
        if action in (Action.COMPOSITE, Action.HOLD):
            tech = self._technique()
            tech = comp.prepare(tech, threshold=s.threshold, feather=s.feather, color=s.color_rgba(),
                                small=self._blurred, small_size=self.capture.size, blur=s.blur_strength)
            o.obs_source_process_filter_tech_end(self.source, comp.effect, w, h, tech.encode())
        elif action is Action.PASS:
            o.obs_source_process_filter_tech_end(self.source, comp.effect, w, h, b"Draw")
        # Action.HIDE: draw nothing
        self._record(t0, t1, t2, time.perf_counter())
        return True

    def _technique(self) -> str:
        """The effect technique for the view and background modes (one per mode in the .effect file)."""
        s = self.settings
        if s.view_mode == "alpha":
            return "Alpha"
        if s.view_mode == "parsing":
            return "Parsing"
        if s.background_mode == "image" and not self.compositor.bg_image:
            return "Transparent"  # no file (or unreadable): never a colour the user did not choose
        return TECHNIQUES.get(s.background_mode, "Transparent")

    def _announce(self, old: Optional[Action], new: Action, tr: Optional[MaskTransport]) -> None:
        """Say in OBS's log when the fallback starts and ends: what goes on stream is the user's concern."""
        name = L.s(self.obs.obs_source_get_name(self.obs.obs_filter_get_parent(self.source)))
        if new in (Action.HIDE, Action.PASS) and old in (Action.COMPOSITE, Action.HOLD):
            self._fallback_on = True
            shown = "hidden until masks are back" if new is Action.HIDE else \
                "shown UNMASKED (the fallback chosen in the filter)"
            log.warning(f"server away for {self.settings.hold_ms} ms: '{name}' is {shown}")
        elif new is Action.COMPOSITE and self._fallback_on:
            self._fallback_on = False
            log.info(f"masks are back: '{name}' is masked again")

    def _draw_synced(self, delay: VideoDelay, action: Action, w: int, h: int) -> None:
        """Draw the frame of ``delay`` frames ago with the mask made from it (or the best one held)."""
        s, comp = self.settings, self.compositor
        image, seq = delay.shown_texture()
        if not image:
            return
        if action in (Action.COMPOSITE, Action.HOLD):
            mask, mask_seq = delay.mask_texture(seq)
            if seq is not None and mask_seq is not None and self._counted_tick != self._ticks:
                self._counted_tick = self._ticks  # once per OBS frame, not per render
                self.sync_counts["own_mask" if mask_seq == seq else "other_mask"] += 1
                self.sync_age.append(float(seq - mask_seq))
            tech = self._technique()
            tech = comp.prepare(tech, threshold=s.threshold, feather=s.feather, color=s.color_rgba(),
                                small=self._blurred, small_size=self.capture.size, blur=s.blur_strength,
                                mask=mask)
            comp.draw(tech, image, (w, h))
        elif action is Action.PASS:
            comp.draw("Draw", image, (w, h))

    def _record(self, t0: float, t1: float, t2: float, t3: float) -> None:
        self.frames += 1
        for phase, dt in (("poll_upload", t1 - t0), ("capture", t2 - t1), ("draw", t3 - t2), ("render", t3 - t0)):
            self.timings[phase].append(dt * 1000.0)

    def video_tick(self) -> None:
        """Read back the small frame drawn on the previous render and send it.

        Staging inside video_render forces the GPU to finish all queued work right
        there (58 ms/frame measured under llvmpipe); by the next tick that frame's
        rendering is done and the copy is cheap.  Sent one frame after capture,
        as ``m2fp replay`` models (readback_delay=1).
        """
        self._ticks += 1
        if not self._want_readback:
            return
        self._want_readback = False
        tr = self.transport
        if tr is None or not tr.can_send():
            return
        t0 = time.perf_counter()
        self.obs.obs_enter_graphics()
        try:
            self.capture.stage()
            frame = self.capture.read_staged()
        finally:
            self.obs.obs_leave_graphics()
        t1 = time.perf_counter()
        if frame is not None:
            buf, sw, sh, stride = frame
            fid = tr.send_frame(buf, sw, sh, stride, PixelFormat.RGBA)
            if fid is not None and self.delay is not None and self._capture_seq is not None:
                self.delay.sync.sent(self._capture_seq, fid)
        t2 = time.perf_counter()
        self.timings["readback"].append((t1 - t0) * 1000.0)
        self.timings["send"].append((t2 - t1) * 1000.0)

    # ------------------------------------------------------------------ status
    def status(self) -> Optional[Status]:
        return self.transport.status() if self.transport is not None else None

    def status_line(self) -> str:
        if self.transport is None:
            return f"not connected: {self.transport_error or 'no transport'}"
        launch, child = self.launch, self.launch_child
        if launch is not None and launch.phase == "failed" and not self.have_mask:
            return f"cannot start the server: {launch.message}"
        if child is not None and child.exit_code() is not None and not self.transport.server_alive:
            return (f"the server OBS started has stopped (exit code {child.exit_code()}); its log: "
                    f"{os.path.basename(child.log_path)} in OBS's log folder")
        if launch is not None and launch.phase == "started" and not self.have_mask:
            return "starting server…"
        line = self.transport.status().line()
        if self.action is Action.HOLD:
            line += " · holding the last mask"
        elif self.action is Action.HIDE and self.transport.away_since is not None:
            line += " · source hidden"
        elif self.action is Action.PASS and self.transport.away_since is not None:
            line += " · passing frames through"
        return line

    def status_key(self) -> Tuple[Any, ...]:
        """What, when it changes, makes the dialog's status worth refreshing (not the per-second figures)."""
        tr = self.transport
        info = tr.info if tr is not None else None
        engine = info.get("engine") if isinstance(info, dict) else None
        child = self.launch_child
        return (tr.state if tr is not None else None, tr.server_alive if tr is not None else None, engine,
                self.action, self.have_mask, self.launch.phase if self.launch else None,
                child.exit_code() if child is not None else None, self.transport_error)

    def stats(self) -> Dict[str, Any]:
        st = self.status()
        out: Dict[str, Any] = {
            "source": L.s(self.obs.obs_source_get_name(self.source)),
            "status": self.status_line(),
            "action": self.action.value if self.action else None,
            "frames": self.frames,
            "properties": self.property_names,
            "dialog_rows": self.dialog_rows,
            "server_started": ({"pid": self.launch_child.proc.pid, "log": self.launch_child.log_path,
                                "exit_code": self.launch_child.exit_code()} if self.launch_child else None),
            "events": sorted(list(self.events) + (list(self.transport.events) if self.transport else [])),
            "timings_ms": {p: _percentiles(list(d)) for p, d in self.timings.items()},
            "sync_frames": self.delay.delay if self.delay is not None else 0,
            "sync": {"own_mask": self.sync_counts["own_mask"], "other_mask": self.sync_counts["other_mask"],
                     "mask_age_frames": _percentiles(list(self.sync_age))},
            "server_config": self.transport.acked_config if self.transport is not None else None,
        }
        if st is not None:
            out.update(state=st.state.value, alive=st.server_alive, away_since=st.away_since, sent=st.sent,
                       masks=st.masks, lost=st.lost, bad_replies=st.bad_replies, reconnects=st.reconnects,
                       dropped_here=st.dropped_here, dropped_by_server=st.dropped_by_server,
                       mask_rate=st.mask_rate, latency_ms=st.latency_ms if st.latency_ms == st.latency_ms else None)
        return out

    def reset_timings(self) -> None:
        for d in self.timings.values():
            d.clear()
        self.sync_counts.clear()
        self.sync_age.clear()

    # ------------------------------------------------------------------ teardown
    def destroy(self) -> None:
        """Release textures, stage surfaces and the socket (enters the graphics context itself)."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.obs.obs_enter_graphics()
        try:
            self.capture.destroy()
            self.compositor.destroy()
            self.blur.destroy()
            if self.delay is not None:
                self.delay.destroy()
                self.delay = None
        finally:
            self.obs.obs_leave_graphics()


def _percentiles(values: List[float]) -> Dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {"n": len(v), "p50": v[len(v) // 2], "p95": v[min(len(v) - 1, int(len(v) * 0.95))],
            "max": v[-1], "mean": sum(v) / len(v)}


class StatsWriter:
    """Writes every instance's stats as JSON to ``$M2FP_OBS_STATS`` a few times a second (tests, bench)."""

    def __init__(self, path: str, period_s: float = 0.2) -> None:
        self.path = path
        self.period_s = period_s
        self._last = 0.0

    def maybe_write(self, instances: Dict[int, FilterInstance]) -> None:
        now = time.monotonic()
        if now - self._last < self.period_s:
            return
        self._last = now
        data = {"time": now, "pid": os.getpid(), "instances": [i.stats() for i in instances.values()]}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def reset_requested(self) -> bool:
        """A bench asks to restart the timing window by creating ``<path>.reset``."""
        flag = self.path + ".reset"
        if os.path.exists(flag):
            try:
                os.remove(flag)
            except OSError:
                return False
            return True
        return False
