"""Play a clip through a running server in real time, as the OBS filter does.

At each display tick the newest mask that has *arrived* is the one a viewer sees
with that frame.  This is the measurement behind "live IoU": it includes the
transport, the queueing, the engine's latency and the readback delay.

Model of the OBS filter (see obs_plugin/):
* frame k is captured at tick k; the GPU readback is mapped ``readback_delay``
  ticks later and only then sent (the ring of stage surfaces);
* the pacing and the mask choice are the filter's own rules, imported from
  ``m2fp_protocol.rules``: frames sent only while fewer than ``max_inflight`` are
  unanswered; frame k shown (at tick k, or k+N with ``sync_frames = N``) with the
  mask made for it, else the newest made for an earlier frame, else the oldest held;
  masks moved ahead by the display lag the delay does not cover (``predict_frames``:
  2 frames without sync, 1 with one frame of delay, none from 2 on);
* with frame sync, a mask shown with a later frame than it was made for is moved on
  by the motion its MASK header carries (``carry_offset``), or each person by their
  own (the PEOPLE message before it), as the filter's shader does; without sync the
  filter shows the newest mask as the server predicted it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from m2fp_protocol import (DEFAULT_SYNC_FRAMES, MAX_INFLIGHT, READBACK_DELAY, MsgType, PersonBox, carry_offset,
                           choose_mask, fit_inside, may_send, people_offsets, predict_frames)

from .client import MaskClient
from .postprocess.mask_motion import carry as carry_mask
from .postprocess.mask_motion import carry_people

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    alpha: np.ndarray  # (T, H, W) uint8, the clip's size
    #: (T,) frames between the shown frame and the mask's frame; -1 = no mask yet; 0 also for a mask of a
    #: later frame (shown, as the filter does, when no mask of this or an earlier frame is held)
    mask_age: np.ndarray
    latency_ms: np.ndarray  # (T,) round trip of the shown mask; NaN = none
    sent: int
    masks: int
    dropped: int
    errors: int
    fps: float
    late_ticks: int  # ticks the player itself missed by more than half a frame

    def save(self, path: str) -> None:
        np.savez_compressed(path, alpha=self.alpha, mask_age=self.mask_age, latency_ms=self.latency_ms,
                            fps=np.float32(self.fps))


def replay(frames: list[np.ndarray] | np.ndarray, address: str, fps: float = 30.0, *,
           sync_frames: int = DEFAULT_SYNC_FRAMES,
           readback_delay: int = READBACK_DELAY, max_inflight: int = MAX_INFLIGHT,
           send_size: tuple[int, int] | None = None,
           config: dict | None = None, timeout_s: float = 10.0, carry: bool = True) -> ReplayResult:
    """Replay RGB ``frames`` through the server at ``address`` at ``fps``.  ``carry=False``: late masks
    are shown where they are (the filter before masks carried their motion)."""
    T = len(frames)
    H, W = frames[0].shape[:2]
    with MaskClient(address, timeout_s=timeout_s) as client:
        info = client.hello("m2fp-replay")
        config = {"predict_frames": predict_frames(sync_frames, readback_delay), **(config or {})}
        client.configure(**config)
        ahead = int(round(float(config["predict_frames"])))  # a mask of frame m is made for frame m + ahead
        box = send_size or tuple(info["preferred_input"])
        sw, sh = fit_inside((W, H), (int(box[0]), int(box[1])))
        small = [cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) for f in frames]
        masks: dict[int, np.ndarray] = {}
        motions: dict[int, tuple[int, int]] = {}
        people: dict[int, tuple[PersonBox, ...]] = {}
        sent_at: dict[int, float] = {}
        rtt: dict[int, float] = {}
        shown = np.full(T, -1, np.int64)
        inflight = sent = dropped = errors = late = 0
        period = 1.0 / fps
        ticks = T + sync_frames + readback_delay
        t0 = time.perf_counter() + 0.05
        for j in range(ticks):
            deadline = t0 + j * period
            if time.perf_counter() - deadline > period / 2:
                late += 1
            for r in client.replies_until(deadline):  # until this tick, each reply as it arrives
                fid = r.header.frame_id - 1  # ids are 1-based on the wire
                if r.type == MsgType.MASK:
                    assert r.array is not None
                    masks[fid] = r.array
                    motions[fid] = (r.header.motion_x, r.header.motion_y)
                    rtt[fid] = (time.perf_counter() - sent_at.get(fid, time.perf_counter())) * 1e3
                    inflight -= 1
                elif r.type == MsgType.PEOPLE:  # just before its MASK
                    people[fid] = r.people
                elif r.type == MsgType.DROPPED:
                    dropped += 1
                    inflight -= 1
                elif r.type == MsgType.ERROR:
                    errors += 1
                    inflight = max(0, inflight - 1)
                    log.warning("server error on frame %d: %s", fid, r.json)
            s = j - readback_delay
            if 0 <= s < T and may_send(inflight, max_inflight):
                sent_at[s] = time.perf_counter()
                client.send_frame(small[s], frame_id=s + 1, mask_size=(sw, sh), want_people=carry,
                                  want_turns=carry)
                inflight += 1
                sent += 1
            d = j - sync_frames
            if 0 <= d < T:
                held = list(masks)
                k = choose_mask(d, [(m + ahead, m) for m in held])
                if k is not None:
                    shown[d] = held[k]
    alpha = np.zeros((T, H, W), np.uint8)
    age = np.full(T, -1, np.int32)
    lat = np.full(T, np.nan, np.float32)
    for d in range(T):
        m = shown[d]
        if m >= 0:
            alpha[d] = cv2.resize(masks[m], (W, H), interpolation=cv2.INTER_LINEAR)
            if carry and sync_frames > 0:  # as the filter: only its frame sync knows which frame shows a mask
                if m in people:  # each person by their own motion
                    alpha[d] = carry_people(alpha[d], people_offsets(people[m], sw, sh, d, int(m) + ahead))
                else:
                    alpha[d] = carry_mask(alpha[d], carry_offset(d, int(m) + ahead, *motions[m]))
            age[d] = max(0, d - m)
            lat[d] = rtt[m]
    return ReplayResult(alpha, age, lat, sent, len(masks), dropped, errors, fps, late)
