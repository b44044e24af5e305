"""CPU compositing for ``m2fp parse`` and the web page (OBS composites on the GPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from m2fp_protocol import ClassInfo

from .errors import BadInput, MissingFile
from .postprocess.classes import colorize


def parse_background(spec: str) -> str | tuple[int, int, int] | Path:
    """'transparent' | 'blur' | '#RRGGBB' | an image path."""
    s = spec.strip()
    if s.lower() in ("transparent", "blur"):
        return s.lower()
    if s.startswith("#"):
        if len(s) != 7:
            raise BadInput(f"colour {spec!r} is not #RRGGBB")
        try:
            return (int(s[1:3], 16), int(s[3:5], 16), int(s[5:7], 16))
        except ValueError:
            raise BadInput(f"colour {spec!r} is not #RRGGBB") from None
    p = Path(s)
    if not p.is_file():
        raise MissingFile(f"background {spec!r} is not transparent, blur, #RRGGBB or an image file")
    return p


def load_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise BadInput(f"{path} is not an image OpenCV can read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def composite(rgb: np.ndarray, alpha: np.ndarray, background: str | tuple[int, int, int] | Path | np.ndarray,
              blur_sigma: float = 12.0) -> np.ndarray:
    """Return RGBA for 'transparent', otherwise RGB over the chosen background."""
    h, w = rgb.shape[:2]
    if isinstance(background, str) and background == "transparent":
        return np.dstack([rgb, alpha])
    if isinstance(background, str) and background == "blur":
        bg = cv2.GaussianBlur(rgb, (0, 0), blur_sigma)
    elif isinstance(background, tuple):
        bg = np.empty_like(rgb)
        bg[:] = background
    elif isinstance(background, Path):
        bg = cv2.resize(load_rgb(background), (w, h), interpolation=cv2.INTER_AREA)
    else:
        bg = cv2.resize(np.asarray(background), (w, h))
    a = (alpha.astype(np.float32) / 255.0)[..., None]
    return (rgb * a + bg * (1.0 - a) + 0.5).astype(np.uint8)


def render(mode: str, rgb: np.ndarray, alpha: np.ndarray, labels: np.ndarray | None,
           classes: Sequence[ClassInfo], background: Any) -> np.ndarray:
    """The picture ``m2fp parse --mode`` asks for: alpha, composite or colour-coded parsing."""
    if mode == "alpha":
        return alpha
    if mode == "parsing":
        if labels is None:
            raise BadInput("parsing mode needs labels")
        return colorize(labels, classes)
    return composite(rgb, alpha, background)
