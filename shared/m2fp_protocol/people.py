"""Each person's own motion, so a late mask of people moving apart is moved on person by person.

A MASK header has room for one motion, and the server sends none when its people move differently (two
people walking past each other): such a mask, shown with a later frame, stays where it was made.  A
client that asks (FRAME flag ``WANT_PEOPLE``) gets a PEOPLE message just before the MASK of the same
frame: a box around each person and that person's motion per frame.  The client moves what lies in each
box by its own ``carry_offset`` and leaves the rest where it is.  Boxes never overlap (the server sends
no PEOPLE when they would): a pixel belongs to one person or to nobody.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .errors import ProtocolError
from .messages import MOTION_LIMIT, ErrorCode
from .rules import carry_offset

#: x0, y0, x1, y1 (mask pixels, x1/y1 exclusive), motion_x, motion_y (as the MASK header's)
PERSON_STRUCT = struct.Struct("<HHHHhh")
#: people in one PEOPLE message (the filter's shader moves this many)
MAX_PEOPLE = 4


@dataclass(frozen=True)
class PersonBox:
    """One person's box in the mask (pixels, ``x1``/``y1`` exclusive) and motion per frame (``1/MOTION_SCALE``
    of the mask's width and height, as the MASK header's ``motion_x``/``motion_y``)."""

    x0: int
    y0: int
    x1: int
    y1: int
    motion_x: int
    motion_y: int

    def overlaps(self, other: "PersonBox") -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def pack_people(people: Sequence[PersonBox]) -> bytes:
    return b"".join(PERSON_STRUCT.pack(p.x0, p.y0, p.x1, p.y1, p.motion_x, p.motion_y) for p in people)


def unpack_people(payload: bytes | memoryview, width: int, height: int) -> Tuple[PersonBox, ...]:
    """The people of a PEOPLE payload for a ``width`` x ``height`` mask, every value checked: 1 to
    ``MAX_PEOPLE`` boxes, each non-empty and inside the mask, none overlapping another, motions within the
    header's range.  Anything else raises ``ProtocolError`` (MALFORMED)."""
    size = PERSON_STRUCT.size
    n, rest = divmod(len(payload), size)
    if rest or not 1 <= n <= MAX_PEOPLE:
        raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE payload of {len(payload)} bytes: expected 1 to "
                                                 f"{MAX_PEOPLE} records of {size} bytes")
    people: List[PersonBox] = []
    for i in range(n):
        p = PersonBox(*PERSON_STRUCT.unpack_from(payload, i * size))
        if not (0 <= p.x0 < p.x1 <= width and 0 <= p.y0 < p.y1 <= height):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE box {i} ({p.x0},{p.y0})-({p.x1},{p.y1}) is empty "
                                                     f"or outside the {width}x{height} mask")
        if not (abs(p.motion_x) <= MOTION_LIMIT and abs(p.motion_y) <= MOTION_LIMIT):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE motion {i} ({p.motion_x}, {p.motion_y}) is out of range")
        if any(p.overlaps(q) for q in people):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE box {i} overlaps another")
        people.append(p)
    return tuple(people)


def people_offsets(people: Sequence[PersonBox], width: int, height: int, shown: Optional[int],
                   made_for: int) -> List[Tuple[Tuple[float, float, float, float], Tuple[float, float]]]:
    """Each person's box (fractions of the mask: x0, y0, x1, y1) and how far to move what lies in it
    (``carry_offset``) when the mask made for ``made_for`` is shown with frame ``shown``."""
    return [((p.x0 / width, p.y0 / height, p.x1 / width, p.y1 / height),
             carry_offset(shown, made_for, p.motion_x, p.motion_y)) for p in people]
