"""Class selection: per-class probabilities → alpha, and the label map for the colour view."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from m2fp_protocol import ClassInfo, ErrorCode, ProtocolError, foreground_ids
from m2fp_protocol.validation import class_index, is_class_id_text


def resolve_keep(keep: Sequence[str] | None, classes: Sequence[ClassInfo]) -> list[int]:
    """Map names (case-insensitive) or numeric ids to channel indices.

    ``None`` keeps every non-background class.  An unknown name is an error so a
    typo in the OBS settings shows up instead of silently dropping a body part.
    Ids are ASCII decimal only (``"²".isdigit()`` is true, and ``int()`` of 5,000
    digits raises), below the class count: :func:`m2fp_protocol.validation.class_index`.
    """
    if keep is None:
        return foreground_ids(classes)
    by_name = {c.name.lower(): c.id for c in classes}
    ids = []
    for k in keep:
        key = str(k).strip()
        index = class_index(key, len(classes))
        if index is not None:
            ids.append(index)
        elif is_class_id_text(key):
            raise ProtocolError(ErrorCode.BAD_CONFIG, f"keep: class id {key} is not below this engine's "
                                                      f"{len(classes)} classes")
        elif key.lower() in by_name:
            ids.append(by_name[key.lower()])
        elif key.lower() == "person":  # on a parsing engine: every body part
            ids.extend(foreground_ids(classes))
        else:
            names = ", ".join(c.name for c in classes)
            raise ProtocolError(ErrorCode.BAD_CONFIG, f"keep: unknown class {key[:64]!r}; this engine has: {names}")
    return sorted(set(ids))


def select_alpha(probs: np.ndarray, keep_ids: Sequence[int]) -> np.ndarray:
    """Soft alpha in [0, 1] = sum of the kept classes' probabilities, (h, w) float32."""
    if len(keep_ids) == 0:
        return np.zeros(probs.shape[1:], np.float32)
    if len(keep_ids) == probs.shape[0] - 1 and 0 not in keep_ids:
        alpha = 1.0 - probs[0]  # all foreground: one subtraction instead of a sum
    else:
        alpha = probs[list(keep_ids)].sum(axis=0)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)


def label_map(probs: np.ndarray) -> np.ndarray:
    """argmax over classes as uint8, (h, w)."""
    return np.argmax(probs, axis=0).astype(np.uint8)


def colorize(labels: np.ndarray, classes: Sequence[ClassInfo]) -> np.ndarray:
    """RGB picture of a label map with each class's palette colour."""
    lut = np.zeros((256, 3), np.uint8)
    for c in classes:
        lut[c.id] = c.color
    return lut[labels]
