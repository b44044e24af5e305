"""Message types, pixel formats, error codes and the header dataclass.

Everything here is plain stdlib so the OBS script (which only has pyzmq) and the
server import the very same definitions: a field added on one side cannot be
forgotten on the other.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

MAGIC = b"M2FP"
PROTOCOL_VERSION = 1

#: Default cap on one FRAME's pixel payload (3840x2160 RGBA plus slack).  The
#: server also sets ZMQ_MAXMSGSIZE a little above this so an absurd message is
#: refused by libzmq before Python ever allocates it.
MAX_FRAME_BYTES = 3840 * 2160 * 4
MAX_DIMENSION = 8192
#: Largest MASK a FRAME may ask for (pixels): a 4K mask.  Without it a tiny frame
#: could make the server allocate hundreds of MB (an 8192x8192 float alpha).
MAX_MASK_PIXELS = 3840 * 2160
#: a MASK's ``motion_x``/``motion_y`` count in this fraction of the mask's width/height per frame
MOTION_SCALE = 16384
#: the fields are signed 16-bit: senders clamp to this
MOTION_LIMIT = 32767


class MsgType(enum.IntEnum):
    HELLO = 1  # client -> server: who am I (JSON payload optional)
    INFO = 2  # server -> client: version, engine, classes, preferred size (JSON)
    CONFIG = 3  # client -> server: JSON settings
    CONFIG_ACK = 4  # server -> client: effective settings and their generation (JSON)
    FRAME = 5  # client -> server: pixels
    MASK = 6  # server -> client: uint8 alpha at the requested size
    PARSING = 7  # server -> client: uint8 label map at the requested size
    ERROR = 8  # server -> client: JSON {"code", "name", "message"}
    DROPPED = 9  # server -> client: a FRAME was replaced by a newer one before it ran
    PEOPLE = 10  # server -> client: each person's box and motion, just before the MASK (FRAME flag WANT_PEOPLE)


class PixelFormat(enum.IntEnum):
    RGBA = 1
    BGRA = 2
    RGB = 3
    BGR = 4
    GRAY8 = 5  # masks and label maps

    @property
    def bytes_per_pixel(self) -> int:
        return _BPP[self]


_BPP = {
    PixelFormat.RGBA: 4,
    PixelFormat.BGRA: 4,
    PixelFormat.RGB: 3,
    PixelFormat.BGR: 3,
    PixelFormat.GRAY8: 1,
}

#: Formats a client may send in a FRAME.
FRAME_FORMATS = frozenset({PixelFormat.RGBA, PixelFormat.BGRA, PixelFormat.RGB, PixelFormat.BGR})


class Flags(enum.IntFlag):
    NONE = 0
    WANT_PARSING = 1  # FRAME: also send a PARSING reply (for the colour view)
    WANT_PEOPLE = 2  # FRAME: also send each person's motion (PEOPLE) when they move differently
    #: FRAME: PEOPLE records also carry each person's turn (and come for one person who turns); the PEOPLE
    #: reply's header has it set when its records do (``m2fp_protocol.people``)
    WANT_TURNS = 4


class ErrorCode(enum.IntEnum):
    MALFORMED = 1  # wrong number of parts, short header
    BAD_MAGIC = 2
    BAD_VERSION = 3
    BAD_TYPE = 4
    BAD_PIXEL_FORMAT = 5
    BAD_SIZE = 6  # dimensions, stride or payload length inconsistent
    TOO_LARGE = 7
    BAD_CONFIG = 8
    ENGINE_FAILURE = 9
    UNAUTHORIZED = 10
    SERVER_BUSY = 11  # a limit shared by all clients is reached (memory budget, stream count); retry later
    INTERNAL = 12  # a bug in the server: logged there with the client's id; the server keeps serving


@dataclass
class Header:
    """The fixed binary header that starts every message (see PROTOCOL.md)."""

    type: MsgType
    frame_id: int = 0  # the client's number for the frame, echoed in its replies
    #: the sender's capture time (monotonic microseconds), echoed in replies so a client can
    #: measure latency without clock agreement
    timestamp_us: int = 0
    width: int = 0
    height: int = 0
    pixel_format: int = 0  # a PixelFormat
    stride: int = 0  # bytes per row; 0 = width x bytes per pixel
    generation: int = 0  # the settings generation in use (CONFIG_ACK numbers them)
    flags: int = 0  # Flags bits
    #: on a FRAME, the size of the mask asked for (0 = frame size); on a MASK, zero
    mask_width: int = 0
    mask_height: int = 0
    #: filled in replies only: where the server's time went
    queue_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0
    #: on a MASK: how far the mask's people moved per frame, in ``1/MOTION_SCALE`` of the mask's width and
    #: height (0, 0: not known, or not one motion); a client showing the mask with a later frame moves it on
    motion_x: int = 0
    motion_y: int = 0
    version: int = PROTOCOL_VERSION


@dataclass
class Message:
    """A decoded message: header plus its payload (pixels or JSON bytes)."""

    header: Header
    payload: bytes | memoryview = b""
