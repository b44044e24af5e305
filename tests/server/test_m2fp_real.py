"""Checks that need the real M2FP weights (`m2fp fetch-weights`); skipped when they are absent.

Run on a machine with the weights:  python -m pytest -m real_weights tests/server/test_m2fp_real.py
(``M2FP_MODEL_DIR=/path`` to use a folder instead of the ModelScope cache.)
"""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

pytestmark = pytest.mark.real_weights

torch = pytest.importorskip("torch")
pytest.importorskip("modelscope")

from m2fp_server.engines.m2fp.engine import M2FPEngine  # noqa: E402
from m2fp_server.evaluation.groundtruth import still  # noqa: E402
from m2fp_server.postprocess.classes import resolve_keep, select_alpha  # noqa: E402
from m2fp_server.weights import WeightsMissing, locate  # noqa: E402


@pytest.fixture(scope="module")
def real_dir():  # type: ignore[no-untyped-def]
    try:
        return locate("multi", os.environ.get("M2FP_MODEL_DIR"))
    except WeightsMissing as exc:
        pytest.skip(str(exc))


def test_checkpoint_fills_every_tensor_of_the_architecture(real_dir, caplog) -> None:  # type: ignore[no-untyped-def]
    from m2fp_server.engines.m2fp.network import load_core
    with caplog.at_level(logging.WARNING):
        load_core(real_dir)
    assert "not in the checkpoint" not in caplog.text, caplog.text
    assert "unused" not in caplog.text, caplog.text


@pytest.mark.parametrize("size", [256, 384])
def test_person_and_parts_on_a_portrait(real_dir, size: int) -> None:  # type: ignore[no-untyped-def]
    import cv2
    eng = M2FPEngine(model_dir=str(real_dir), size=size, runtime="torch")
    frame, truth = still("astronaut", (640, 360))
    out = eng.infer(frame)
    alpha = select_alpha(out.probs, resolve_keep(None, eng.classes))
    person = cv2.resize(alpha, (640, 360), interpolation=cv2.INTER_LINEAR) >= 0.5
    iou = (person & (truth > 0)).sum() / max(1, (person | (truth > 0)).sum())
    assert iou > 0.85, f"person IoU {iou:.3f}"
    labels = {eng.classes[i].name for i in np.unique(out.probs.argmax(0))}
    assert {"Face", "Hair"} <= labels, labels
