"""RVM's forward pass on a real Triton Inference Server, the recurrent states kept by the edge.

Export the fetched RVM into a model repository with the CLI, serve it with
``m2fp triton`` (PyTriton's bundled tritonserver), and check: alphas equal the
in-process engine's frame after frame (so the states went to Triton and came
back), four streams at once each keep their own states while Triton batches
them, hybrid's RVM silhouette uses it, and a real ``m2fp-server`` answers ERROR
while Triton is down and masks again within 2 s of its restart.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tritonclient.grpc")

from m2fp_protocol import ErrorCode, MsgType, StreamConfig  # noqa: E402
from m2fp_server import rvm_weights  # noqa: E402
from m2fp_server.bench.server import free_port, wait_ready  # noqa: E402
from m2fp_server.client import MaskClient  # noqa: E402
from m2fp_server.engines.rvm import RVMEngine  # noqa: E402
from m2fp_server.evaluation.clips import get_clip  # noqa: E402
from m2fp_server.pipeline import Pipeline  # noqa: E402
from m2fp_server.streams import StreamState  # noqa: E402
from m2fp_server.triton.launch import LocalTriton, triton_python  # noqa: E402

from conftest import start_server_process  # noqa: E402

PYTHON = triton_python()
pytestmark = pytest.mark.skipif(PYTHON is None, reason="no Python with the [triton] extra: run .ci/run's "
                                                       "`.venv-triton` step (PyTriton pins numpy<2)")
SMALL: dict[str, Any] = {"width": 256, "downsample": 0.5, "tuned": False}  # cheap; the model name rvm_256x144
MODEL = "rvm_256x144"
MASK = (160, 90)


@pytest.fixture(scope="module")
def model() -> Path:
    try:
        return rvm_weights.locate()
    except rvm_weights.RVMWeightsMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def repo(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton-rvm-repo")
    done = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "export", "--triton-repo", str(out),
                           "--triton-models", "rvm", "--rvm-width", "256", "--rvm-downsample", "0.5"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "two streams batched" in done.stdout
    return out


OLD: dict[str, Any] = {"width": 192, "downsample": 0.5, "tuned": False}


def export_before_the_cut(model: Path, repo: Path, w: int, h: int, ds: float) -> None:
    """``rvm_<w>x<h>`` as ``m2fp export`` wrote it before the Triton graph was cut: the whole graph, the
    alpha ``pha`` out (as users who exported then still have it)."""
    import onnx

    from m2fp_server.engines.rvm import ModelFiles
    from m2fp_server.triton.repository import RepoSettings
    from m2fp_server.triton.rvm_repository import config_text, uint8_whole_graph
    shapes = ModelFiles(model, repo / ".unused").state_shapes(w, h, ds)
    (repo / f"rvm_{w}x{h}" / "1").mkdir(parents=True)
    onnx.save(uint8_whole_graph(model, w, h, ds, shapes), str(repo / f"rvm_{w}x{h}" / "1" / "model.onnx"))
    text = config_text(f"rvm_{w}x{h}", w, h, ds, shapes, RepoSettings())
    old_outputs = text.replace(f'name: "alpha_gain" data_type: TYPE_FP32 dims: [ 1, {h // 2}, {w // 2} ]',
                               f'name: "pha" data_type: TYPE_FP32 dims: [ 1, {h}, {w} ]')
    old_outputs = "\n".join(line for line in old_outputs.splitlines() if '"alpha_offset"' not in line) + "\n"
    assert '"pha"' in old_outputs and "alpha_" not in old_outputs
    (repo / f"rvm_{w}x{h}" / "config.pbtxt").write_text(old_outputs)


@pytest.fixture(scope="module")
def triton(repo: Path, model: Path) -> Iterator[LocalTriton]:
    export_before_the_cut(model, repo, 192, 108, 0.5)
    assert PYTHON is not None
    t = LocalTriton(repo, free_port(), free_port(), free_port(), PYTHON, threads=2)
    t.start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def local(model: Path) -> Iterator[RVMEngine]:
    eng = RVMEngine(**SMALL)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def remote(triton: LocalTriton) -> Iterator[RVMEngine]:
    eng = RVMEngine(triton=triton.url, **SMALL)  # no model file needed on this side
    yield eng
    eng.close()


def clips() -> list[list[np.ndarray]]:
    """Four different real clips of six frames: two motions, and each mirrored/shifted."""
    a = get_clip("sway", static=2, moving=4, size=(320, 180)).frames
    b = get_clip("bob", static=2, moving=4, size=(320, 180)).frames
    return [list(a), list(b), [np.ascontiguousarray(f[:, ::-1]) for f in a],
            [np.ascontiguousarray(np.roll(f, 80, axis=1)) for f in b]]


def run_alone(engine: RVMEngine, frames: list[np.ndarray]) -> list[np.ndarray]:
    ctx = engine.new_stream()
    return [engine.infer(f, ctx, now=i / 30).probs[1] for i, f in enumerate(frames)]


def _metric(triton: LocalTriton, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{triton.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and f'model="{MODEL}"' in line)


def test_repository_declares_the_states_as_inputs_and_outputs(repo: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    cfg = text_format.Parse((repo / MODEL / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == (MODEL, "onnxruntime", 8)
    # the frame as uint8 (the graph scales it), the states as float32
    assert [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("src", "TYPE_UINT8", [144, 256, 3]), ("r1i", "TYPE_FP32", [16, 36, 64]), ("r2i", "TYPE_FP32", [20, 18, 32]),
        ("r3i", "TYPE_FP32", [40, 9, 16]), ("r4i", "TYPE_FP32", [64, 5, 8])]
    # the graph stops before its full-resolution step: the alpha's gain and offset at the network's size
    # (256x144 at downsample 0.5), which the edge turns into the alpha
    assert [(o.name, list(o.dims)) for o in cfg.output] == [
        ("alpha_gain", [1, 72, 128]), ("alpha_offset", [1, 72, 128]), ("r1o", [16, 36, 64]), ("r2o", [20, 18, 32]),
        ("r3o", [40, 9, 16]), ("r4o", [64, 5, 8])]
    assert not cfg.HasField("sequence_batching") and cfg.HasField("dynamic_batching")
    assert cfg.parameters["m2fp_rvm_downsample"].string_value == "0.5"


def test_rvm_on_triton_equals_in_process_frame_after_frame(remote: RVMEngine, local: RVMEngine) -> None:
    frames = clips()[0]
    assert (remote.info()["runtime"], remote.info()["graph"]) == ("triton", "lowres")
    ctx = remote.new_stream()
    expected = run_alone(local, frames)
    for i, (f, want) in enumerate(zip(frames, expected)):
        np.testing.assert_allclose(remote.infer(f, ctx, now=i / 30).probs[1], want, atol=1e-3)
    assert ctx.frames == len(frames) and ctx.resets == 0
    # the states matter: the last frame alone (fresh states) gives another alpha than after the clip
    fresh = local.infer(frames[-1], local.new_stream()).probs[1]
    assert np.abs(fresh - expected[-1]).max() > 0.01


def test_a_repository_exported_before_the_cut_is_still_served(triton: LocalTriton, model: Path) -> None:
    remote, local = RVMEngine(triton=triton.url, **OLD), RVMEngine(**OLD)
    try:
        assert remote.info()["graph"] == "whole" and local.info()["graph"] == "lowres"
        frames = clips()[1]
        ctx = remote.new_stream()
        for i, (f, want) in enumerate(zip(frames, run_alone(local, frames))):
            np.testing.assert_allclose(remote.infer(f, ctx, now=i / 30).probs[1], want, atol=1e-3)
    finally:
        remote.close()
        local.close()


def test_four_streams_at_once_each_keep_their_own_state(remote: RVMEngine, local: RVMEngine,
                                                       triton: LocalTriton) -> None:
    streams = clips()
    expected = [run_alone(local, s) for s in streams]  # four separate in-process runs
    assert all(np.abs(expected[i][-1] - expected[j][-1]).max() > 0.05 for i in range(4) for j in range(i))
    requests0, execs0 = _metric(triton, "nv_inference_request_success"), _metric(triton, "nv_inference_exec_count")
    got: list[list[np.ndarray]] = [[] for _ in streams]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    contexts = [remote.new_stream() for _ in streams]

    def stream(k: int) -> None:
        try:
            ctx = contexts[k]
            for i, f in enumerate(streams[k]):
                barrier.wait(60)  # the four streams' frames reach Triton together: it batches them
                got[k].append(remote.infer(f, ctx, now=i / 30).probs[1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()
    threads = [threading.Thread(target=stream, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for k in range(4):
        for i in range(len(streams[k])):
            np.testing.assert_allclose(got[k][i], expected[k][i], atol=1e-3, err_msg=f"stream {k}, frame {i}")
    passes = sum(c.passes for c in contexts)  # a frame's forward pass each, and the first ones settle
    assert passes > sum(len(s) for s in streams)
    deadline = time.monotonic() + 15  # Triton refreshes its metrics every 2 s
    while True:
        requests = _metric(triton, "nv_inference_request_success") - requests0
        execs = _metric(triton, "nv_inference_exec_count") - execs0
        if requests >= passes or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert requests == passes
    assert execs < requests, "Triton never put two streams' frames in one batch"


def test_hybrid_sends_its_rvm_silhouette_to_triton(triton: LocalTriton, local: RVMEngine) -> None:
    from m2fp_server.engines.hybrid import HybridEngine
    # the slow engine is given (M2FP's own Triton path is tested in test_triton.py); fast_* go to the silhouette
    hybrid = HybridEngine(fast="rvm", slow_engine=RVMEngine(**SMALL), triton=triton.url, fast_width=256,
                          fast_downsample=0.5, fast_tuned=False)
    try:
        assert hybrid.fast.info()["runtime"] == "triton"
        frame = clips()[1][0]
        np.testing.assert_allclose(hybrid._person(frame, hybrid.new_stream()),
                                   local.infer(frame, local.new_stream()).probs[1], atol=1e-3)
    finally:
        hybrid.close()


def in_process_mask(engine: RVMEngine, image: np.ndarray) -> np.ndarray:
    st = StreamState(b"reference")
    st.apply(StreamConfig.from_json(SETTINGS), engine.classes)
    return Pipeline(engine).process(image, st, MASK).alpha


SETTINGS = {"soft": True, "smoothing": 0.0, "motion": False, "refine": False}


def test_server_on_triton_masks_then_errors_while_down_then_masks_within_2s_of_restart(
        triton: LocalTriton, local: RVMEngine) -> None:
    image = clips()[2][0]
    proc, address = start_server_process("--engine", "rvm", "-E", f"triton={triton.url}", "-E", "width=256",
                                         "-E", "downsample=0.5", "-E", "tuned=false", "-E", "triton_timeout_s=3",
                                         "--log-level", "WARNING")
    try:
        wait_ready(address, 60)
        with MaskClient(address, timeout_s=30) as c:
            assert c.hello("rvm-crash")["engine"]["runtime"] == "triton"
            c.configure(**SETTINGS)
            first = c.mask(image, mask_size=MASK)[0].array  # the stream's first frame: fresh states
            assert int(np.abs(first.astype(int) - in_process_mask(local, image).astype(int)).max()) <= 1
            triton.kill()
            for _ in range(2):  # every frame answered promptly with an ERROR naming the failure
                t0 = time.monotonic()
                fid = c.send_frame(image, mask_size=MASK)
                r = c.recv(10)
                assert r is not None and r.type == MsgType.ERROR and r.header.frame_id == fid
                assert r.json["code"] == ErrorCode.ENGINE_FAILURE and "Triton" in r.json["message"]
                assert time.monotonic() - t0 < 5
            triton.start()
            t0 = time.monotonic()
            while True:
                c.send_frame(image, mask_size=MASK)
                r = c.recv(10)
                assert r is not None
                if r.type == MsgType.MASK:
                    break
                assert time.monotonic() - t0 < 2.0, f"no mask within 2 s of Triton's restart: {r.json}"
            assert time.monotonic() - t0 < 2.0
            assert r.array.shape == first.shape and (r.array > 128).mean() > 0.05  # a person again
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
