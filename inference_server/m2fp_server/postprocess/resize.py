"""Bring engine-resolution results to the size the client asked for."""
from __future__ import annotations

import cv2
import numpy as np


def resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float alpha to (width, height), returned as uint8 0..255."""
    w, h = size
    if alpha.shape[1] != w or alpha.shape[0] != h:
        interp = cv2.INTER_AREA if w < alpha.shape[1] else cv2.INTER_LINEAR
        alpha = cv2.resize(alpha, (w, h), interpolation=interp)
    return np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if labels.shape[1] == w and labels.shape[0] == h:
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)


def threshold_alpha(alpha8: np.ndarray, threshold: float) -> np.ndarray:
    """Hard 0/255 cut of a uint8 alpha."""
    return np.where(alpha8 >= threshold * 255.0, 255, 0).astype(np.uint8)
