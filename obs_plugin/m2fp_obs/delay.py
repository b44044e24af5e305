"""Where the full-size frame lives for one OBS frame: the source is rendered into it once, and both the
small copy for the server and the composite are drawn from it.

* ``DirectFrame`` (frame sync off): OBS's own filter texture.  ``process_filter_begin``
  renders the filter's input into it at full size; each draw is a
  ``process_filter_tech_end`` with a technique of our effect.
* ``VideoDelay`` (frame sync on, the frame-sync object): a ring of ``delay + 1``
  full-size texrenders and a pool of mask textures.  The input is rendered into
  the ring once per OBS frame (OBS may render a source several times in one
  frame: screenshots, projectors; the later renders reuse the ring), the small copy
  is made from the newest frame and the frame of ``delay`` frames ago is drawn
  with the mask made from it.  Allocated only while frame sync is on, e.g. 3 × 3.7 MB
  at 1280×720 for a delay of 2.  The bookkeeping (which slot, which mask, the
  counters) is ``sync.FrameSync``.

Runs on OBS's graphics thread with the graphics context entered.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from m2fp_protocol import MAX_PEOPLE, PersonBox

from . import libobs as L
from .render import Compositor, People
from .sync import FrameSync
from .texrender import TexRender


class DirectFrame:
    """Frame sync off: the frame is OBS's filter texture, shown as soon as it is rendered."""

    def __init__(self, obs: L.LibObs, compositor: Compositor, source: int) -> None:
        self.obs = obs
        self.comp = compositor
        self.source = source
        self.size: Tuple[int, int] = (0, 0)

    newest_seq: Optional[int] = None

    def tick(self) -> None:
        pass

    def begin(self, target: int, size: Tuple[int, int]) -> bool:
        """Render the filter's input into OBS's full-size filter texture (the only render of the source)."""
        self.size = size
        return bool(self.obs.obs_source_process_filter_begin(self.source, L.GS_RGBA, L.OBS_NO_DIRECT_RENDERING))

    def draw_newest(self, technique: str) -> None:
        self.draw_shown(technique)

    def draw_shown(self, technique: str) -> None:
        self.obs.obs_source_process_filter_tech_end(self.source, self.comp.effect, self.size[0], self.size[1],
                                                    technique.encode())

    def shown_mask(self) -> Tuple[Optional[int], Tuple[float, float], People]:
        """None: the newest mask (the compositor's own), where it is (the server moved it ahead)."""
        return None, (0.0, 0.0), []

    def destroy(self) -> None:
        pass


class VideoDelay:
    """Frame sync on: answers "which texture, which mask" for the frame shown, and counts how often it was
    the frame's own mask."""

    def __init__(self, obs: L.LibObs, compositor: Compositor, delay: int) -> None:
        self.obs = obs
        self.comp = compositor
        self.sync = FrameSync(delay)
        self.size: Tuple[int, int] = (0, 0)
        self.frames: List[TexRender] = [TexRender(obs) for _ in range(self.sync.video_slots)]
        self.masks: List[Optional[int]] = [None] * self.sync.mask_slots  # R8 textures
        self.mask_size: Tuple[int, int] = (0, 0)
        self._ticks = 0  # video_tick count: the first render after a new tick is a new frame
        self._frame_tick = -1  # tick of the newest frame in the ring
        self.newest_seq: Optional[int] = None

    @property
    def delay(self) -> int:
        return self.sync.delay

    def tick(self) -> None:
        self._ticks += 1

    def begin(self, target: int, size: Tuple[int, int]) -> bool:
        """Render the filter's input into the ring if this OBS frame has not been yet; False: nothing to show."""
        if size != self.size:
            self._destroy_frames()
            self.size = size
            self.sync.reset()  # old pictures have the old size: refill (seq stays monotonic)
            self.newest_seq = None
        if self._frame_tick != self._ticks or self.newest_seq is None:
            self._frame_tick = self._ticks
            seq = self.newest_seq = self.sync.push()
            o, comp = self.obs, self.comp
            self.frames[self.sync.slot_of(seq)].render(
                size, size, lambda: comp.run("Draw", lambda: o.obs_source_video_render(target)))
        return self._texture(self.sync.shown_seq()) is not None

    def restart(self) -> None:
        """The ring stops (frames passed through untouched): refill it when masks are back."""
        self.sync.reset()
        self.newest_seq = None

    def _texture(self, seq: Optional[int]) -> Optional[int]:
        return self.frames[self.sync.slot_of(seq)].texture if seq is not None else None

    def draw_newest(self, technique: str) -> None:
        tex = self._texture(self.newest_seq)
        if tex:
            self.comp.draw(technique, tex, self.size)

    def draw_shown(self, technique: str) -> None:
        tex = self._texture(self.sync.shown_seq())
        if tex:
            self.comp.draw(technique, tex, self.size)

    # ------------------------------------------------------------------ masks
    def upload_mask(self, frame_id: int, width: int, height: int, data: bytes,
                    motion: Tuple[int, int] = (0, 0), people: Sequence[PersonBox] = ()) -> None:
        o = self.obs
        if (width, height) != self.mask_size:
            self._destroy_masks()
            self.sync.forget_masks()
            self.mask_size = (width, height)
        i = self.sync.add_mask(frame_id, motion, tuple(people[:MAX_PEOPLE]), (width, height))
        if not self.masks[i]:
            self.masks[i] = o.gs_texture_create(width, height, L.GS_R8, 1, None, L.GS_DYNAMIC)
        o.gs_texture_set_image(self.masks[i], data, width, False)

    def shown_mask(self) -> Tuple[Optional[int], Tuple[float, float], People]:
        """The mask texture for the frame shown now (its own if here) and how far to move it (a mask of an
        earlier frame is moved on by its people's motion, or each person by their own); counted once per OBS
        frame."""
        seq = self.sync.shown_seq()
        i = self.sync.mask_for(seq)
        if i is None:
            return None, (0.0, 0.0), []
        offset = self.sync.mask_offset(i, seq)
        people = self.sync.people_offsets(i, seq)
        moved = next((c.offset for c in people if c.offset != (0.0, 0.0) or c.turn), None)
        if moved is None:  # nobody moves: the plain path (one sample a pixel in the shader)
            people, moved = [], offset
        self.sync.count_shown(seq, self.sync.mask_seq(i), moved)
        return self.masks[i], offset, people

    def sent(self, seq: Optional[int], frame_id: Optional[int]) -> None:
        """The small copy of frame ``seq`` went to the server as ``frame_id``."""
        if seq is not None and frame_id is not None:
            self.sync.sent(seq, frame_id)

    # ------------------------------------------------------------------ teardown
    def _destroy_frames(self) -> None:
        for tr in self.frames:
            tr.destroy()
        self.size = (0, 0)

    def _destroy_masks(self) -> None:
        for i, t in enumerate(self.masks):
            if t:
                self.obs.gs_texture_destroy(t)
            self.masks[i] = None
        self.mask_size = (0, 0)

    def destroy(self) -> None:
        """Graphics context must be entered."""
        self._destroy_frames()
        self._destroy_masks()
