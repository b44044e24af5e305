"""Wire pixels ↔ numpy images, without copying more than once."""
from __future__ import annotations

import cv2
import numpy as np

from m2fp_protocol import Header, PixelFormat


def to_rgb(header: Header, payload: memoryview | bytes) -> np.ndarray:
    """View the FRAME payload as an image and convert it to contiguous HxWx3 RGB uint8.

    The codec has already checked size, stride and format.
    """
    fmt = PixelFormat(header.pixel_format)
    bpp = fmt.bytes_per_pixel
    w, h = header.width, header.height
    stride = header.stride or w * bpp
    buf = np.frombuffer(payload, np.uint8)
    if len(buf) < stride * h:  # last row may be unpadded
        buf = np.concatenate([buf, np.zeros(stride * h - len(buf), np.uint8)])
    img = buf.reshape(h, stride)[:, : w * bpp].reshape(h, w, bpp)
    if fmt == PixelFormat.RGB:
        return np.ascontiguousarray(img)
    code = {
        PixelFormat.RGBA: cv2.COLOR_RGBA2RGB,
        PixelFormat.BGRA: cv2.COLOR_BGRA2RGB,
        PixelFormat.BGR: cv2.COLOR_BGR2RGB,
    }[fmt]
    return cv2.cvtColor(img, code)
