"""m2fp-obs wire protocol and the rules both sides share: used by the OBS script and the server (stdlib only)."""
from .classes import CIHP_CLASSES, PALETTE, PERSON_CLASSES, ClassInfo, color_for, foreground_ids, make_classes
from .codec import (
    CLIENT_ACCEPTS,
    HEADER_SIZE,
    SERVER_ACCEPTS,
    decode,
    decode_json,
    encode,
    encode_json,
    error_message,
    pack_header,
    unpack_header,
)
from .config import StreamConfig
from .defaults import DEFAULT_ADDRESS, DEFAULT_INPUT_BOX
from .errors import ProtocolError
from .messages import (
    MAGIC,
    MAX_DIMENSION,
    MAX_FRAME_BYTES,
    MAX_MASK_PIXELS,
    MOTION_LIMIT,
    MOTION_SCALE,
    PROTOCOL_VERSION,
    ErrorCode,
    Flags,
    Header,
    Message,
    MsgType,
    PixelFormat,
)
from .rules import (
    DEFAULT_SYNC_FRAMES,
    DISPLAY_LAG_FRAMES,
    MAX_CARRY_FRAMES,
    MAX_INFLIGHT,
    MAX_MOTION,
    READBACK_DELAY,
    SYNC_MAX,
    SYNC_MIN,
    carry_offset,
    choose_mask,
    clamp_sync,
    may_send,
    predict_frames,
)
from .people import MAX_PEOPLE, MAX_TURN, TURN_SCALE, Carry, PersonBox, pack_people, people_offsets, unpack_people
from .sizing import fit_inside
from .validation import CONFIG_SCHEMA, HELLO_SCHEMA, MAX_REQUEST_JSON_BYTES, Field, parse_json, validate_hello

# a literal list (not built at run time) so linters and type checkers see the names
__all__ = [
    "CIHP_CLASSES", "CLIENT_ACCEPTS", "CONFIG_SCHEMA", "DEFAULT_ADDRESS", "DEFAULT_INPUT_BOX", "DEFAULT_SYNC_FRAMES",
    "DISPLAY_LAG_FRAMES",
    "HEADER_SIZE", "HELLO_SCHEMA", "MAGIC", "MAX_DIMENSION", "MAX_FRAME_BYTES", "MAX_CARRY_FRAMES",
    "MAX_INFLIGHT", "MAX_MASK_PIXELS", "MAX_PEOPLE", "MAX_MOTION", "MAX_TURN", "MOTION_LIMIT", "MOTION_SCALE",
    "TURN_SCALE", "Carry",
    "MAX_REQUEST_JSON_BYTES", "PALETTE", "PERSON_CLASSES", "PROTOCOL_VERSION", "READBACK_DELAY", "SERVER_ACCEPTS",
    "SYNC_MAX", "SYNC_MIN", "ClassInfo", "ErrorCode", "Field", "Flags", "Header", "Message", "MsgType",
    "PersonBox", "PixelFormat", "ProtocolError", "StreamConfig", "carry_offset", "choose_mask", "clamp_sync",
    "color_for", "decode",
    "decode_json", "encode", "encode_json", "error_message", "fit_inside", "foreground_ids", "make_classes",
    "may_send", "pack_header", "pack_people", "parse_json", "people_offsets", "predict_frames", "unpack_header",
    "unpack_people", "validate_hello",
]
