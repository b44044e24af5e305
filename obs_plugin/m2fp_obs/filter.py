"""Per-source state and the per-frame path.  Render never waits.

On OBS's graphics thread, each frame:

* ``video_render``: poll the transport (non-blocking) and upload the newest mask /
  parsing map; render the filter's input once, at full size (``delay``: OBS's
  filter texture, or the frame-sync ring); scale that texture down into the small
  texrender (the image sent to the server, and the blur background); draw it at
  full size with the technique ``render.choose_technique`` picks, or pass through /
  hide while the server is away (``policy``);
* ``video_tick`` of the next frame: stage and map the small texture; it is sent at
  the end of that frame's ``video_render`` (or at once: ``pacing``), if fewer than
  ``max_inflight`` frames are unanswered (otherwise skipped).

With "Frame sync" on (``sync_frames`` = N), the frame lives in a ring of N + 1
full-size textures (``delay.VideoDelay``) and the one of N frames ago is drawn
with the mask computed from that frame, or the newest mask of an earlier frame
when its own is late (``sync.FrameSync``).

Settings arrive on the UI thread and are applied at the start of the next frame
(the socket belongs to the graphics thread).
"""
from __future__ import annotations

import collections
import os
import time
from typing import Any, Deque, Dict, List, Optional, Tuple, Union

from m2fp_protocol import DEFAULT_INPUT_BOX, PixelFormat, color_for

from . import libobs as L
from . import log
from .blur import BackgroundBlur
from .capture import FrameCapture
from .delay import DirectFrame, VideoDelay
from .launcher import Child, Launch
from .pacing import Pacer
from .policy import Action
from .render import Compositor
from .settings import FilterSettings
from .stats import Timings, percentiles
from .transport import MaskTransport, State, Status, fit_inside


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
        self.timings = Timings()
        self._want_readback = False
        self._seen_info: Optional[Dict[str, Any]] = None
        self.property_names: Optional[List[str]] = None  # filled when stats are written (tests)
        self.dialog_rows: Optional[List[str]] = None  # the rows the dialog shows (tests)
        self.frame: Union[DirectFrame, VideoDelay] = self._new_frame(settings.sync_frames)
        self._capture_seq: Optional[int] = None  # seq of the frame in the small capture (read back at the next tick)
        self._capture_tick = 0
        self._capture_time: Optional[float] = None  # OBS's video frame time of that frame (seconds)
        self.pacer = Pacer()
        #: read back at the tick, sent at the end of that frame's render: (pixels, seq, capture tick, capture time)
        self._read: Optional[Tuple[Tuple[bytes, int, int, int], Optional[int], int, Optional[float]]] = None
        self._open_transport()

    # ------------------------------------------------------------------ settings (UI thread → render)
    def update(self, settings: FilterSettings) -> None:
        self._pending = settings

    def _open_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.have_mask = self.have_parsing = False
        self.pacer.forget()
        self._read = None
        if isinstance(self.frame, VideoDelay):
            self.frame.sync.forget_ids()  # a new socket numbers frames from 1 again
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

    def _new_frame(self, sync_frames: int) -> Union[DirectFrame, VideoDelay]:
        if sync_frames:
            return VideoDelay(self.obs, self.compositor, sync_frames)
        return DirectFrame(self.obs, self.compositor, self.source)

    def _set_delay(self, frames: int) -> None:
        """Graphics thread, context entered (video_render): the ring exists only while sync is on."""
        self.frame.destroy()
        self.frame = self._new_frame(frames)
        self._capture_seq = None
        self._read = None  # its seq numbers a frame of the old ring
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
        drawn = self._render()
        self._send_read()  # after the draw: the server works while OBS waits for its next frame (``pacing``)
        return drawn

    def _render(self) -> bool:
        t0 = time.perf_counter()
        self._apply_pending()
        target = self.obs.obs_filter_get_target(self.source)
        w = self.obs.obs_source_get_base_width(target) if target else 0
        h = self.obs.obs_source_get_base_height(target) if target else 0
        if not w or not h or not self.compositor.load():
            return False
        self._take_replies()
        t1 = time.perf_counter()
        action = self._decide()
        tr = self.transport
        send_size = tr.send_size((w, h)) if tr is not None and tr.state is State.READY else None
        send = send_size is not None and tr is not None and tr.can_send()
        self._want_readback = False
        frame = self.frame
        if action in (Action.PASS, Action.HIDE) and not send:
            # nothing to composite and nothing to send (server away): cost nothing
            if isinstance(frame, VideoDelay):
                frame.restart()
            self.timings.render(t0, t1, t1, time.perf_counter())
            return action is Action.HIDE  # False: the caller passes the frame through untouched
        if not frame.begin(target, (w, h)):  # the one render of the source in this frame
            return False
        t_input = time.perf_counter()
        s = self.settings
        blur = s.background_mode == "blur" and s.view_mode == "composite"
        if send or blur:
            small = send_size or (self.capture.size if self.capture.size != (0, 0)
                                  else fit_inside((w, h), DEFAULT_INPUT_BOX))
            self.capture.draw_small(lambda: frame.draw_newest("Draw"), (w, h), small)
        self._blurred = self.blur.run(self.capture.small_texture, self.capture.size, s.blur_strength) if blur else None
        self._want_readback = send
        if send:
            self._capture_seq = frame.newest_seq
            self._capture_tick = self.pacer.ticks
            self._capture_time = self.obs.obs_get_video_frame_time() / 1e9
        if self.pacer.after_render:
            # sent after the last render, a mask can arrive while the source renders: shown in time
            self._take_replies()
        t2 = time.perf_counter()
        self._draw(frame, action)
        self.timings.render(t0, t1, t2, time.perf_counter())
        self.timings.add("input", t_input - t1)
        return True

    def _take_replies(self) -> None:
        """Poll the socket; upload the newest mask and parsing map that arrived."""
        tr = self.transport
        if tr is None:
            return
        tr.poll()
        if tr.info:
            self._on_info(tr)
        m = tr.take_mask()
        if m is not None:
            self.pacer.mask_arrived(m.frame_id)
            self.compositor.mask.upload(m.width, m.height, m.data)  # the newest (also sync's fallback)
            if isinstance(self.frame, VideoDelay):
                self.frame.upload_mask(m.frame_id, m.width, m.height, m.data, m.motion, m.people)
            self.have_mask = True
        p = tr.take_parsing()
        if p is not None:
            self.compositor.parsing.upload(p.width, p.height, p.data)
            self.have_parsing = True

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

    def _decide(self) -> Action:
        """Composite, hold, pass through or hide (``policy``), logging each change."""
        tr = self.transport
        now = time.monotonic()
        alive = tr.server_alive if tr is not None else False
        away = tr.away_since if tr is not None else now
        action = self.settings.fallback().decide(now, self.have_mask, alive, away)
        if action is not self.action:
            self._announce(self.action, action, tr)
            self.action = action
            self.events.append((now, f"action {action.value}"))
        return action

    def _draw(self, frame: Union[DirectFrame, VideoDelay], action: Action) -> None:
        """Draw the frame shown at full size: composited, passed through, or nothing (hidden)."""
        if action in (Action.COMPOSITE, Action.HOLD):
            self.pacer.shown()
            s, comp = self.settings, self.compositor
            small = self._blurred  # the blurred small copy (blur mode only)
            tech = comp.technique(s.view_mode, s.background_mode, small)
            mask, offset, people = frame.shown_mask()
            comp.prepare(tech, threshold=s.threshold, feather=s.feather, color=s.color_rgba(), small=small,
                         small_size=self.capture.size, blur=s.blur_strength, mask=mask, mask_offset=offset,
                         people=people)
            frame.draw_shown(tech)
        elif action is Action.PASS:
            frame.draw_shown("Draw")
        # Action.HIDE: draw nothing

    def video_tick(self) -> None:
        """Read back the small frame drawn on the previous render; send it now or after this frame's render.

        Staging inside video_render forces the GPU to finish all queued work right
        there (docs/obs-filter.md has the cost); by the next tick that frame's
        rendering is done and the copy is cheap.  Sent one frame after capture,
        as ``m2fp replay`` models (readback_delay=1); when in that frame ``pacing`` decides.
        """
        self.frame.tick()
        self.pacer.tick()
        self._read = None  # not sent in its frame (no render): a newer one follows
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
        self.timings.add("readback", time.perf_counter() - t0)
        if frame is not None:
            self._read = (frame, self._capture_seq, self._capture_tick, self._capture_time)
            if not self.pacer.after_render:
                self._send_read()

    def _send_read(self) -> None:
        """Send the frame read back at this frame's tick, if any and if the server takes one more."""
        read, self._read = self._read, None
        tr = self.transport
        if read is None or tr is None or not tr.can_send():
            return
        t0 = time.perf_counter()
        (buf, sw, sh, stride), seq, capture_tick, captured = read
        fid = tr.send_frame(buf, sw, sh, stride, PixelFormat.RGBA, captured)
        self.pacer.sent(fid, capture_tick)
        if isinstance(self.frame, VideoDelay):
            self.frame.sent(seq, fid)
        self.timings.add("send", time.perf_counter() - t0)

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
            "frames": self.timings.frames,
            "properties": self.property_names,
            "dialog_rows": self.dialog_rows,
            "server_started": ({"pid": self.launch_child.proc.pid, "log": self.launch_child.log_path,
                                "exit_code": self.launch_child.exit_code()} if self.launch_child else None),
            "events": sorted(list(self.events) + (list(self.transport.events) if self.transport else [])),
            "timings_ms": self.timings.summary(),
            "sync_frames": self.frame.delay if isinstance(self.frame, VideoDelay) else 0,
            "sync": self._sync_stats(),
            "pacing": self.pacer.stats(),
            "server_config": self.transport.acked_config if self.transport is not None else None,
        }
        if st is not None:
            out.update(state=st.state.value, alive=st.server_alive, away_since=st.away_since, sent=st.sent,
                       masks=st.masks, lost=st.lost, bad_replies=st.bad_replies, reconnects=st.reconnects,
                       dropped_here=st.dropped_here, dropped_by_server=st.dropped_by_server,
                       mask_rate=st.mask_rate, latency_ms=st.latency_ms if st.latency_ms == st.latency_ms else None)
        return out

    def _sync_stats(self) -> Dict[str, Any]:
        if not isinstance(self.frame, VideoDelay):
            return {"own_mask": 0, "other_mask": 0, "mask_age_frames": percentiles([])}
        counts = self.frame.sync.counts()
        return {**counts, "mask_age_frames": percentiles(counts["mask_age_frames"])}

    def reset_timings(self) -> None:
        self.timings.clear()
        self.pacer.reset_counts()
        if isinstance(self.frame, VideoDelay):
            self.frame.sync.reset_counts()

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
            self.frame.destroy()
        finally:
            self.obs.obs_leave_graphics()

