"""The engine contract: the stream's owner holds the engine's state, so dropping a stream drops it all;
``infer_now`` answers with the frame's own result; the age travels in a typed field."""
from __future__ import annotations

import time

import cv2
import numpy as np

from m2fp_protocol import StreamConfig
from m2fp_server.engines.async_worker import AsyncEngine
from m2fp_server.engines.base import Engine
from m2fp_server.engines.embedded import EmbeddedStream
from m2fp_server.engines.registry import create
from m2fp_server.evaluation.groundtruth import still
from m2fp_server.evaluation.metrics import iou
from m2fp_server.pipeline import Pipeline
from m2fp_server.streams import StreamTable


def _frames() -> list[np.ndarray]:
    return [still(name, (256, 192), seed=s)[0] for s, name in enumerate(["astronaut", "grace_hopper"] * 2)]


def test_infer_now_is_this_frames_own_result_even_when_the_model_is_slow(selfie_engine: Engine) -> None:
    eng = AsyncEngine(selfie_engine, min_latency_s=0.2, wait_first_s=0)
    try:
        stream = eng.new_stream()
        rgb, truth = still("grace_hopper", (256, 192), seed=2)
        assert eng.infer(rgb, stream).extra.get("empty")  # live: nothing yet, and no waiting
        t = time.perf_counter()
        out = eng.infer_now(rgb, stream, timeout_s=20)
        assert time.perf_counter() - t >= 0.15  # it waited for the worker ...
        assert out.age_frames == 0  # ... and got this frame's own result
        own = selfie_engine.infer_now(rgb).probs[1]
        np.testing.assert_allclose(out.probs[1], own, atol=1e-6)
        assert iou(cv2.resize((own * 255).astype(np.uint8), (256, 192)), truth) > 0.8
        assert eng.slow_runs is not None and eng.slow_runs >= 1
        assert selfie_engine.slow_runs is None  # a synchronous engine has no worker
    finally:
        eng.close()


def test_a_stream_that_expires_takes_its_queued_work_with_it(selfie_engine: Engine) -> None:
    """Streams forgotten by the table leave nothing in the engine's worker: no per-client table to sync."""
    eng = AsyncEngine(selfie_engine, min_latency_s=0.3, wait_first_s=0)
    try:
        table = StreamTable(eng.classes, idle_s=0.0)
        pipe = Pipeline(eng)
        frames = _frames()
        for key in (b"a", b"b", b"c"):
            st = table.get(key)
            st.settle()
            pipe.process(frames[0], st)  # the first job of each starts or waits in the worker
            pipe.process(frames[1], st)
        assert eng.runner.queued >= 2  # one running, the others waiting
        time.sleep(0.01)
        assert sorted(table.expire()) == [b"a", b"b", b"c"] and len(table) == 0
        deadline = time.monotonic() + 5
        while eng.runner.queued and time.monotonic() < deadline:  # at most the running one finishes
            time.sleep(0.02)
        assert eng.runner.queued == 0
        runs = eng.runner.runs
        time.sleep(0.5)
        assert eng.runner.runs == runs  # no frame of a dropped stream ran afterwards
    finally:
        eng.close()


def test_per_stream_state_lives_in_the_context_the_engine_made() -> None:
    eng = create("embedded")
    try:
        a, b = eng.new_stream(), eng.new_stream()
        assert isinstance(a, EmbeddedStream) and a.track is None
        frame = _frames()[0]
        eng.infer(frame, a)
        assert a.track is not None and b.track is None  # nothing kept in the engine, nothing shared
        fresh = eng.infer(frame)  # no stream: a lone frame, no history
        assert fresh.age_frames == 0
    finally:
        eng.close()


def test_the_pipeline_reports_the_engines_typed_age(selfie_engine: Engine) -> None:
    eng = AsyncEngine(selfie_engine, min_latency_s=0.25, wait_first_s=5.0)
    try:
        table = StreamTable(eng.classes)
        st = table.get(b"x")
        st.apply(StreamConfig(smoothing=0.0), eng.classes)
        seen: list[int] = []
        pipe = Pipeline(eng, observer=lambda r: seen.append(r.source_age))
        for f in _frames() * 2:
            pipe.process(f, st)
            time.sleep(1 / 30)
        assert seen[0] == 0 and max(seen) >= 2  # the first waits for its own result, later ones are late
        blocking = Pipeline(eng, blocking=True)
        assert blocking.process(_frames()[1], st).source_age == 0
    finally:
        eng.close()
