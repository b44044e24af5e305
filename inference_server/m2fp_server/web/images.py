"""Uploaded bytes → RGB array, with the checks a public upload needs, and arrays → base64 PNG.

The format is decided from the file's magic bytes (never from its name or the
client's Content-Type), and the pixel count is read from the JPEG/PNG header
*before* decoding, so a small file declaring a huge image (a decompression
bomb) is refused without allocating it.
"""
from __future__ import annotations

import base64
import struct

import cv2
import numpy as np

from .errors import ApiCode, ApiError

#: magic prefix -> format name; only the first two are accepted.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
)
ACCEPTED = ("JPEG", "PNG")
# JPEG start-of-frame markers (all SOFn except DHT C4, JPG C8, DAC CC) carry the size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def sniff_format(data: bytes) -> str | None:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "AVIF/HEIC"
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def decode_upload(data: bytes, max_pixels: int, max_side: int) -> np.ndarray:
    """JPEG/PNG bytes → HxWx3 RGB uint8, or an :class:`ApiError` that says what is wrong."""
    if not data:
        raise ApiError(ApiCode.NOT_AN_IMAGE, "the uploaded file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ApiError(ApiCode.NOT_AN_IMAGE, "the uploaded file is not an image (send a JPEG or PNG photo)")
    if fmt not in ACCEPTED:
        raise ApiError(ApiCode.UNSUPPORTED_FORMAT, f"{fmt} images are not supported; send a JPEG or PNG")
    size = _png_size(data) if fmt == "PNG" else _jpeg_size(data)
    if size is None:
        raise ApiError(ApiCode.NOT_AN_IMAGE, f"the {fmt} file is damaged (no readable image header)")
    w, h = size
    if w == 0 or h == 0:
        raise ApiError(ApiCode.NOT_AN_IMAGE, f"the {fmt} header declares an empty {w}x{h} image")
    if w * h > max_pixels or max(w, h) > max_side:
        raise ApiError(ApiCode.TOO_LARGE,
                       f"the image is {w}x{h} ({w * h / 1e6:.1f} MP); the limit is {max_pixels / 1e6:.1f} MP "
                       f"and {max_side} px per side: scale it down")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (h, w):
        raise ApiError(ApiCode.NOT_AN_IMAGE, f"the {fmt} file is damaged and could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def png_base64(img: np.ndarray) -> str:
    """Gray (H, W), RGB or RGBA (H, W, 3|4) uint8 → base64 PNG text (no data: prefix)."""
    if img.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR
        img = cv2.cvtColor(img, code)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 PNG
        raise ApiError(ApiCode.INTERNAL, "PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")
