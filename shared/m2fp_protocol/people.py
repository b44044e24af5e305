"""Each person's own motion, so a late mask of people moving apart is moved on person by person.

A MASK header has room for one motion, and the server sends none when its people move differently (two
people walking past each other): such a mask, shown with a later frame, stays where it was made.  A
client that asks (FRAME flag ``WANT_PEOPLE``) gets a PEOPLE message just before the MASK of the same
frame: a box around each person and that person's motion per frame.  The client moves what lies in each
box by its own ``carry_offset`` and leaves the rest where it is.  Boxes never overlap (the server sends
no PEOPLE when they would): a pixel belongs to one person or to nobody.

A person who sways or leans also turns: moved along a straight line, their head trails by the turn.  A
client that can turn what it moves asks for turns too (``WANT_TURNS``): each record then also says how
far the person turns per frame about their box's centre, and one person alone gets a PEOPLE when they
turn.  Older clients never ask, so they get the records they know.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .errors import ProtocolError
from .messages import MOTION_LIMIT, MOTION_SCALE, ErrorCode
from .rules import MAX_MOTION, carry_frames

#: x0, y0, x1, y1 (mask pixels, x1/y1 exclusive), motion_x, motion_y (as the MASK header's)
PERSON_STRUCT = struct.Struct("<HHHHhh")
#: the same and turn (radians per frame in ``1/TURN_SCALE``, positive = clockwise on screen), reserved (0):
#: the records of a PEOPLE whose header has ``Flags.WANT_TURNS``
TURN_STRUCT = struct.Struct("<HHHHhhhH")
TURN_SCALE = 16384
#: a turn beyond this many radians per frame (17 degrees) is not a person's, even at a low frame rate (a broken
#: or hostile sender): that person's box is shown where it is
MAX_TURN = 0.3
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
    turn: int = 0  # radians per frame about the box's centre, in ``1/TURN_SCALE`` (records with turns only)

    def overlaps(self, other: "PersonBox") -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def pack_people(people: Sequence[PersonBox], turns: bool = False) -> bytes:
    """The records of a PEOPLE payload; ``turns``: with each person's turn (the client asked, ``WANT_TURNS``,
    and the header says so)."""
    if turns:
        return b"".join(TURN_STRUCT.pack(p.x0, p.y0, p.x1, p.y1, p.motion_x, p.motion_y, p.turn, 0) for p in people)
    return b"".join(PERSON_STRUCT.pack(p.x0, p.y0, p.x1, p.y1, p.motion_x, p.motion_y) for p in people)


def unpack_people(payload: bytes | memoryview, width: int, height: int, turns: bool = False
                  ) -> Tuple[PersonBox, ...]:
    """The people of a PEOPLE payload for a ``width`` x ``height`` mask, every value checked: 1 to
    ``MAX_PEOPLE`` boxes, each non-empty and inside the mask, none overlapping another, motions within the
    header's range, the reserved field 0.  ``turns``: the records carry turns (the header's ``WANT_TURNS``).
    Anything else raises ``ProtocolError`` (MALFORMED)."""
    record = TURN_STRUCT if turns else PERSON_STRUCT
    size = record.size
    n, rest = divmod(len(payload), size)
    if rest or not 1 <= n <= MAX_PEOPLE:
        raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE payload of {len(payload)} bytes: expected 1 to "
                                                 f"{MAX_PEOPLE} records of {size} bytes")
    people: List[PersonBox] = []
    for i in range(n):
        fields = record.unpack_from(payload, i * size)
        if turns and fields[-1] != 0:
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE record {i}: reserved field is {fields[-1]}, not 0")
        p = PersonBox(*fields[:7])
        if not (0 <= p.x0 < p.x1 <= width and 0 <= p.y0 < p.y1 <= height):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE box {i} ({p.x0},{p.y0})-({p.x1},{p.y1}) is empty "
                                                     f"or outside the {width}x{height} mask")
        if not (abs(p.motion_x) <= MOTION_LIMIT and abs(p.motion_y) <= MOTION_LIMIT):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE motion {i} ({p.motion_x}, {p.motion_y}) is out of range")
        if any(p.overlaps(q) for q in people):
            raise ProtocolError(ErrorCode.MALFORMED, f"PEOPLE box {i} overlaps another")
        people.append(p)
    return tuple(people)


class Carry(NamedTuple):
    """How a client moves what lies in one person's box of a mask shown with a later frame: the box's centre
    moves by ``offset`` and what lies in the box turns by ``turn`` about it."""

    box: Tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the mask
    offset: Tuple[float, float]  # fractions of the mask's width and height
    turn: float  # radians, positive = clockwise on screen (y points down)
    aspect: float  # the mask's width / height: a turn is a turn in pixels, not in fractions


def people_offsets(people: Sequence[PersonBox], width: int, height: int, shown: Optional[int],
                   made_for: int) -> List[Carry]:
    """Each person's box and how far to move and turn what lies in it when the mask made for ``made_for`` is
    shown with frame ``shown``: ``carry_offset``'s frames of their motion, each step turned by the turns
    before it (a person turning while they move goes round a curve).  A person whose motion or turn is
    implausible (beyond ``MAX_MOTION``, ``MAX_TURN``) stays where they are."""
    out: List[Carry] = []
    aspect = width / height
    frames = carry_frames(shown, made_for)
    for p in people:
        box = (p.x0 / width, p.y0 / height, p.x1 / width, p.y1 / height)
        mx, my, turn = p.motion_x / MOTION_SCALE, p.motion_y / MOTION_SCALE, p.turn / TURN_SCALE
        if not frames or not (abs(mx) <= MAX_MOTION and abs(my) <= MAX_MOTION and abs(turn) <= MAX_TURN):
            out.append(Carry(box, (0.0, 0.0), 0.0, aspect))
            continue
        # in pixels, each frame's step turned by the turns before it (the sum of R^j t for j < frames)
        tx, ty, sx, sy = mx * width, my * height, 0.0, 0.0
        for j in range(frames):
            c, s = math.cos(j * turn), math.sin(j * turn)
            sx, sy = sx + c * tx - s * ty, sy + s * tx + c * ty
        out.append(Carry(box, (sx / width, sy / height), frames * turn, aspect))
    return out
