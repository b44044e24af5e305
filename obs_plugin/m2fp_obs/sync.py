"""Frame sync bookkeeping: which ring slot holds which frame, and which mask goes with the frame shown.

The video is delayed by ``delay`` frames so that a frame is shown with the mask
made for that very frame (NVIDIA Broadcast's way): from 2 frames of delay the mask
computed from it; with 1, the mask of the frame before, which the server moved one
frame ahead (``m2fp_protocol.predict_frames``).  The frame rendered at
OBS frame ``seq`` is sent to the server one tick later (readback delay 1) under
the transport's ``frame_id``; its MASK comes back with that id.  This module
maps ids to frames and chooses, for the frame shown, its own mask if it is here,
else the newest mask made for an earlier frame, else (never wait) the oldest one held.

No OBS and no GPU here (``delay.py`` holds the textures), so the choice is unit-tested.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

from m2fp_protocol import Carry, PersonBox, carry_offset, choose_mask, people_offsets, predict_frames


@dataclass
class MaskSlot:
    seq: Optional[int]  # the frame the mask was computed from (None: sent before sync knew it)
    frame_id: int
    motion: Tuple[int, int] = (0, 0)  # its people's motion per frame (MASK header)
    #: each person's box and own motion (PEOPLE), when they move apart, in a mask of ``size``
    people: Tuple[PersonBox, ...] = ()
    size: Tuple[int, int] = (1, 1)


class FrameSync:
    def __init__(self, delay: int, extra_masks: int = 3) -> None:
        if delay < 1:
            raise ValueError("frame sync needs a delay of at least one frame")
        self.delay = delay
        #: frames the server moves each mask ahead: the mask of frame ``seq`` is made for ``seq + ahead``
        self.ahead = int(predict_frames(delay))
        self.video_slots = delay + 1  # the frame being rendered + ``delay`` older ones
        #: masks of the frames in the window, plus a few so an upload never hits a texture drawn 1–2 frames ago
        self.mask_slots = delay + 1 + extra_masks
        self.masks: List[Optional[MaskSlot]] = [None] * self.mask_slots
        self._seq_of_id: Dict[int, int] = {}
        self._next_seq = 0  # never goes back: masks keep the seq of their frame across resets
        self.newest: Optional[int] = None
        self.count = 0
        #: frames shown with the mask made for them / another one, and how many frames older than the
        #: shown frame the frame the mask was computed from was
        self.own_mask = 0
        self.other_mask = 0
        self.carried = 0  # ...of which moved on by their motion (``carry_offset``)
        self.mask_age: Deque[float] = collections.deque(maxlen=1800)
        self._counted: Optional[int] = None  # newest seq when the last frame was counted

    def reset(self) -> None:
        """Forget the video frames (after a pass-through the ring holds stale pictures); masks stay."""
        self.newest = None  # seq of the newest frame in the ring
        self.count = 0  # frames in the ring (≤ video_slots)

    def forget_ids(self) -> None:
        """A new connection numbers frames from 1 again: old ids and masks mean nothing now."""
        self._seq_of_id.clear()
        self.forget_masks()

    def forget_masks(self) -> None:
        self.masks = [None] * self.mask_slots

    # ------------------------------------------------------------------ video
    def push(self) -> int:
        """A new OBS frame: returns its seq; render it into ``slot_of(seq)``."""
        seq = self._next_seq
        self._next_seq += 1
        self.newest = seq
        self.count = min(self.video_slots, self.count + 1)
        return seq

    def slot_of(self, seq: int) -> int:
        return seq % self.video_slots

    def shown_seq(self) -> Optional[int]:
        """The frame to show now: ``delay`` frames back, or the oldest held while the ring fills."""
        if self.newest is None:
            return None
        return self.newest - min(self.delay, self.count - 1)

    def filled(self) -> bool:
        return self.count == self.video_slots

    # ------------------------------------------------------------------ masks
    def sent(self, seq: int, frame_id: int) -> None:
        """The small copy of frame ``seq`` went to the server as ``frame_id``."""
        self._seq_of_id[frame_id] = seq
        if len(self._seq_of_id) > 4 * self.mask_slots + 16:  # bounded: drop the oldest ids
            for fid in sorted(self._seq_of_id)[: len(self._seq_of_id) // 2]:
                del self._seq_of_id[fid]

    def add_mask(self, frame_id: int, motion: Tuple[int, int] = (0, 0), people: Tuple[PersonBox, ...] = (),
                 size: Tuple[int, int] = (1, 1)) -> int:
        """A mask arrived (``size``: its width and height): returns the mask slot to upload it into (the one of
        the oldest frame)."""
        seq = self._seq_of_id.get(frame_id)
        slot = self._free_slot()
        self.masks[slot] = MaskSlot(seq, frame_id, motion, people, size)
        return slot

    def _free_slot(self) -> int:
        for i, m in enumerate(self.masks):
            if m is None:
                return i
        return min(range(self.mask_slots), key=lambda i: self._order(self.masks[i]))

    def _order(self, m: Optional[MaskSlot]) -> Tuple[int, int]:
        """(frame the mask was made for, -1 if unknown; arrival): ``choose_mask``'s key."""
        assert m is not None
        return (m.seq + self.ahead if m.seq is not None else -1, m.frame_id)

    def mask_for(self, seq: Optional[int]) -> Optional[int]:
        """Mask slot for frame ``seq``: the mask made for it, else the newest made for an earlier frame, else
        the oldest held."""
        held = [(i, m) for i, m in enumerate(self.masks) if m is not None]
        k = choose_mask(seq, [self._order(m) for _, m in held])
        return None if k is None else held[k][0]

    def mask_offset(self, slot: int, seq: Optional[int]) -> Tuple[float, float]:
        """How far (fractions of the frame) to move the mask in ``slot`` shown with frame ``seq``: a mask of an
        earlier frame (the server answered late) is moved on by its people's motion."""
        m = self.masks[slot]
        if m is None or m.seq is None:
            return (0.0, 0.0)
        return carry_offset(seq, m.seq + self.ahead, *m.motion)

    def people_offsets(self, slot: int, seq: Optional[int]) -> List[Carry]:
        """Each person's box and how far to move and turn what lies in it, for the mask in ``slot`` shown with
        frame ``seq`` (``mask_offset`` person by person); empty when the mask came without people."""
        m = self.masks[slot]
        if m is None or m.seq is None or not m.people:
            return []
        return people_offsets(m.people, m.size[0], m.size[1], seq, m.seq + self.ahead)

    def mask_seq(self, slot: int) -> Optional[int]:
        m = self.masks[slot]
        return m.seq if m is not None else None

    # ------------------------------------------------------------------ counters
    def count_shown(self, seq: Optional[int], mask_seq: Optional[int],
                    offset: Tuple[float, float] = (0.0, 0.0)) -> None:
        """Frame ``seq`` is shown with the mask of frame ``mask_seq``: counted once per OBS frame, however
        often OBS renders the source in it (screenshots, projectors)."""
        if seq is None or mask_seq is None or self._counted == self.newest:
            return
        self._counted = self.newest
        if mask_seq + self.ahead == seq:
            self.own_mask += 1
        else:
            self.other_mask += 1
            self.carried += offset != (0.0, 0.0)
        self.mask_age.append(float(seq - mask_seq))

    def reset_counts(self) -> None:
        self.own_mask = self.other_mask = self.carried = 0
        self.mask_age.clear()

    def counts(self) -> Dict[str, Any]:
        return {"own_mask": self.own_mask, "other_mask": self.other_mask, "carried": self.carried,
                "mask_age_frames": list(self.mask_age)}
