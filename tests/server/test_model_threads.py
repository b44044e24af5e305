"""How many threads the shipped models get is measured on this machine, not assumed.

The timings here are real (the shipped pose model on the shipped photo); what is asserted is the
rule applied to them and what the engine reports, never a speed.
"""
from __future__ import annotations

import pytest

from m2fp_server.engines import tflite_backend
from m2fp_server.engines.base import EngineUnavailable
from m2fp_server.engines.embedded import EmbeddedEngine
from m2fp_server.engines.embedded_models import POSE_FILE
from m2fp_server.engines.selfie import MODELS_DIR

POSE = MODELS_DIR / POSE_FILE


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tflite_backend, "_picked", {})


def test_every_count_tried_is_timed_and_the_choice_follows_the_rule() -> None:
    if tflite_backend.usable_cores() < 2:
        pytest.skip("one core: nothing to choose")
    threads, medians = tflite_backend.pick_threads(POSE, passes=1, runs=3)
    assert sorted(medians) == list(tflite_backend.THREAD_CHOICES)
    assert all(ms > 0 for ms in medians.values())
    won = medians[2] < (1.0 - tflite_backend.THREADS_GAIN) * medians[1]
    assert threads == (2 if won else 1)
    # kept for the process: asked again, nothing is timed
    assert tflite_backend.pick_threads(POSE, passes=1, runs=3) == (threads, medians)


@pytest.mark.parametrize("one, two, chosen", [([20.0] * 4, [11.0] * 4, 2), ([20.0] * 4, [18.0] * 4, 1),
                                              ([10.0] * 4, [12.0] * 4, 1)])
def test_a_second_thread_must_win_by_the_margin(monkeypatch: pytest.MonkeyPatch, one: list[float],
                                                two: list[float], chosen: int) -> None:
    monkeypatch.setattr(tflite_backend, "usable_cores", lambda: 2)
    monkeypatch.setattr(tflite_backend, "_times_ms", lambda path, n, backend, bf16, runs: one if n == 1 else two)
    assert tflite_backend.pick_threads(POSE)[0] == chosen


def test_one_usable_core_gets_one_thread_without_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object) -> list[float]:
        raise AssertionError("timed on one core")
    monkeypatch.setattr(tflite_backend, "usable_cores", lambda: 1)
    monkeypatch.setattr(tflite_backend, "_times_ms", never)
    assert tflite_backend.pick_threads(POSE) == (1, {})


def test_the_engine_reports_its_threads_and_refuses_a_bad_count() -> None:
    eng = EmbeddedEngine(threads="1")
    try:
        assert eng.info()["threads"] == 1
    finally:
        eng.close()
    measured = EmbeddedEngine()
    try:
        assert measured.info()["threads"] == tflite_backend.pick_threads(POSE, bf16=measured.settings.bf16)[0]
    finally:
        measured.close()
    with pytest.raises(EngineUnavailable, match="threads"):
        EmbeddedEngine(threads="many")
