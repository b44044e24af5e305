"""m2fp-obs wire protocol: shared by the OBS script and the inference server (stdlib only)."""
from .classes import CIHP_CLASSES, PALETTE, PERSON_CLASSES, ClassInfo, color_for, foreground_ids, make_classes
from .codec import CLIENT_ACCEPTS, HEADER_SIZE, SERVER_ACCEPTS, decode, decode_json, encode, encode_json, error_message, pack_header, unpack_header
from .config import StreamConfig
from .errors import ProtocolError
from .validation import CONFIG_SCHEMA, HELLO_SCHEMA, MAX_REQUEST_JSON_BYTES, Field, parse_json, validate_hello
from .messages import (
    MAGIC,
    MAX_DIMENSION,
    MAX_FRAME_BYTES,
    MAX_MASK_PIXELS,
    PROTOCOL_VERSION,
    ErrorCode,
    Flags,
    Header,
    Message,
    MsgType,
    PixelFormat,
)

__all__ = sorted([
    "CIHP_CLASSES", "CLIENT_ACCEPTS", "CONFIG_SCHEMA", "Field", "HELLO_SCHEMA", "MAX_REQUEST_JSON_BYTES",
    "parse_json", "validate_hello", "SERVER_ACCEPTS", "ClassInfo", "ErrorCode", "Flags", "HEADER_SIZE", "Header", "MAGIC", "MAX_DIMENSION",
    "MAX_FRAME_BYTES", "MAX_MASK_PIXELS", "Message", "MsgType", "PALETTE", "PERSON_CLASSES", "PROTOCOL_VERSION", "PixelFormat",
    "ProtocolError", "StreamConfig", "color_for", "decode", "decode_json", "encode", "encode_json",
    "error_message", "foreground_ids", "make_classes", "pack_header", "unpack_header",
])
