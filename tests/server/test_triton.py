"""The M2FP forward pass on a real Triton Inference Server (PyTriton's bundled tritonserver).

Export a small random-weight M2FP into a model repository with the CLI, serve
it with ``m2fp triton``, and run real ``m2fp-server`` processes with
``-E triton=``: masks must equal the in-process engine's, four streams at once
must each get their own, and a Triton killed mid-stream must give ERROR
replies (never a hang) and masks again soon after it is restarted.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("modelscope")
pytest.importorskip("tritonclient.grpc")

from m2fp_protocol import ErrorCode, MsgType  # noqa: E402
from m2fp_server.bench.server import free_port, wait_ready  # noqa: E402
from m2fp_server.client import MaskClient  # noqa: E402
from m2fp_server.engines.m2fp.engine import M2FPEngine  # noqa: E402
from m2fp_server.engines.m2fp.random_model import write_random_model_dir  # noqa: E402
from m2fp_server.samples import portrait  # noqa: E402
from m2fp_server.triton.launch import LocalTriton, triton_python  # noqa: E402

from conftest import start_server_process  # noqa: E402

SIZE = 64
PYTHON = triton_python()
pytestmark = pytest.mark.skipif(PYTHON is None, reason="no Python with the [triton] extra: run .ci/run's "
                                                       "`.venv-triton` step (PyTriton pins numpy<2)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ResNet-50 and few transformer layers: the same code, fast enough for the default suite
    return write_random_model_dir(tmp_path_factory.mktemp("m2fp-triton"), "multi", seed=11,
                                  depth=50, enc_layers=1, dec_layers=2)


@pytest.fixture(scope="module")
def repo(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton-repo")
    done = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "export", "--size", str(SIZE),
                           "--model-dir", str(model_dir), "--triton-repo", str(out), "--threads", "2",
                           "--triton-models", "m2fp"],  # RVM: test_triton_rvm.py
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch of 2" in done.stdout
    return out


@pytest.fixture(scope="module")
def triton(repo: Path) -> Iterator[LocalTriton]:
    assert PYTHON is not None
    t = LocalTriton(repo, free_port(), free_port(), free_port(), PYTHON, threads=2)
    t.start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def local_engine(model_dir: Path) -> M2FPEngine:
    return M2FPEngine(model_dir=str(model_dir), size=SIZE, runtime="torch", threads=2)


def frames() -> list[np.ndarray]:
    """Four different real frames (the portrait, mirrored, cropped, darkened), 16:9."""
    img = portrait()
    h = img.shape[0]
    w = h * 16 // 9
    base = np.zeros((h, w, 3), np.uint8)
    base[:, (w - img.shape[1]) // 2:][:, :img.shape[1]] = img
    return [base, np.ascontiguousarray(base[:, ::-1]), np.ascontiguousarray(np.roll(base, w // 4, axis=1)),
            (base // 2).astype(np.uint8)]


KEEPS = [["Face"], ["Face", "Hair", "Hat"], ["UpperClothes", "Pants", "Coat", "Dress", "Skirt", "Torso-skin"],
         ["Background"]]  # one per stream: random weights give flat masks, so the class set tells them apart
MASK = (160, 90)


def server(*args: str) -> tuple[subprocess.Popen, str]:
    proc, address = start_server_process("--engine", *args, "--log-level", "WARNING")
    wait_ready(address, 60)
    return proc, address


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def settings(keep: list[str]) -> dict:
    return {"keep": keep, "soft": True, "smoothing": 0.0, "motion": False, "refine": False}


def in_process_mask(engine: M2FPEngine, image: np.ndarray, keep: list[str]) -> np.ndarray:
    """What the in-process server makes of this frame: the same pipeline on the local engine."""
    from m2fp_protocol import StreamConfig
    from m2fp_server.pipeline import Pipeline
    from m2fp_server.streams import StreamState
    st = StreamState(b"reference")
    st.apply(StreamConfig.from_json(settings(keep)), engine.classes)
    return Pipeline(engine).process(image, st, MASK).alpha


def close_enough(a: np.ndarray, b: np.ndarray) -> bool:
    """Probabilities within 1e-3 -> 8-bit masks within one level (rounding)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def _metric(triton: LocalTriton, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{triton.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and 'model="m2fp_64x128"' in line)


def test_repository_has_what_triton_needs(repo: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    folder = repo / "m2fp_64x128"
    cfg = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == ("m2fp_64x128", "onnxruntime", 8)
    # uint8 canvas and the frame's size in, M2FP's 20 class probabilities at 1/4 resolution out
    assert [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("image", "TYPE_UINT8", [64, 128, 3]), ("size", "TYPE_INT32", [2])]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("semantic", [20, 16, 32])]
    assert cfg.HasField("dynamic_batching") and list(cfg.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert cfg.instance_group[0].count == 1 and model_config_pb2.ModelInstanceGroup.Kind.Name(
        cfg.instance_group[0].kind) == "KIND_CPU"
    assert "Face" in cfg.parameters["m2fp_classes"].string_value
    assert (folder / "1" / "model.onnx").stat().st_size > 1e6
    assert folder.stat().st_mode & 0o005 == 0o005  # a container's tritonserver may run as another user


def test_engine_on_triton_equals_the_in_process_engine(triton: LocalTriton, local_engine: M2FPEngine) -> None:
    remote = M2FPEngine(size=SIZE, triton=triton.url)  # no weights needed on this side
    try:
        assert remote.info()["runtime"] == "triton" and remote.classes == local_engine.classes
        for im in frames()[:1]:  # the server test below takes the next one
            a, b = remote.infer(im).probs, local_engine.infer(im).probs
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-3)
    finally:
        remote.close()


def test_overlapping_calls_are_batched_and_each_caller_gets_its_own_output(triton: LocalTriton, repo: Path) -> None:
    """Four callers at once (as four streams' workers): Triton batches them; nobody gets another's tensors."""
    import onnxruntime as ort

    from m2fp_server.engines.m2fp.frames import Canvas, place_u8
    from m2fp_server.triton.remote import TritonAddress, TritonModel
    canvas = Canvas.for_short_side(SIZE)
    placed = [place_u8(im, SIZE, canvas) for im in frames()]
    inputs = [{"image": u8, "size": np.array([[p.height, p.width]], np.int32)} for u8, p in placed]
    # the repository's own model file (checked against torch by the export), run here one frame at a time
    session = ort.InferenceSession(str(repo / "m2fp_64x128" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = [session.run(["semantic"], x)[0] for x in inputs]
    # random weights give flat probabilities, yet frame to frame they differ far more than the check's limit
    assert all(np.abs(expected[0] - e).max() > 2e-3 for e in expected[1:])
    model = TritonModel(TritonAddress.parse(triton.url), "m2fp_64x128")
    requests0, execs0 = _metric(triton, "nv_inference_request_success"), _metric(triton, "nv_inference_exec_count")
    wrong: list[str] = []
    barrier = threading.Barrier(4)

    def caller(i: int) -> None:
        for _ in range(4):
            barrier.wait(60)
            sem = model.run(inputs[i], ["semantic"])["semantic"]
            if not np.abs(sem - expected[i]).max() < 1e-4:  # the same file and runtime: only batching may round
                wrong.append(f"caller {i}: off by {np.abs(sem - expected[i]).max():.3g}")
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    model.close()
    assert not wrong, wrong
    deadline = time.monotonic() + 15  # Triton refreshes its metrics every 2 s
    while True:
        requests = _metric(triton, "nv_inference_request_success") - requests0
        execs = _metric(triton, "nv_inference_exec_count") - execs0
        if requests >= 16 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert requests == 16
    assert execs < requests, "Triton never put two callers' frames in one batch"


def test_server_on_triton_gives_the_in_process_masks(triton: LocalTriton, local_engine: M2FPEngine) -> None:
    images = frames()[1:3]
    proc, address = server("m2fp", "-E", f"size={SIZE}", "-E", f"triton={triton.url}")
    try:
        with MaskClient(address, timeout_s=30) as c:
            assert c.hello()["engine"]["runtime"] == "triton"
            c.configure(**settings(KEEPS[1]))
            for im in images:
                got = c.mask(im, mask_size=MASK)[0].array
                assert close_enough(got, in_process_mask(local_engine, im, KEEPS[1]))
    finally:
        stop(proc)


def test_four_streams_at_once_each_get_their_own_masks(triton: LocalTriton, local_engine: M2FPEngine) -> None:
    images = frames()
    expected = [in_process_mask(local_engine, images[i], KEEPS[i]) for i in range(4)]
    assert all(not close_enough(expected[i], expected[j]) for i in range(4) for j in range(i))
    # the asynchronous engine keeps one Triton request in flight per stream, so Triton can batch them
    proc, address = server("async", "-E", "engine=m2fp", "-E", f"size={SIZE}", "-E", f"triton={triton.url}")
    got: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def stream(i: int) -> None:
        try:
            with MaskClient(address, timeout_s=60) as c:
                c.hello(f"stream-{i}")
                c.configure(**settings(KEEPS[i]))
                got[i] = [c.mask(images[i], mask_size=MASK)[0].array for _ in range(2)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    try:
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        stop(proc)
    assert not errors, errors
    for i in range(4):
        assert all(close_enough(m, expected[i]) for m in got[i]), f"stream {i} did not get its own masks"


def test_triton_killed_mid_stream_errors_then_masks_again_after_restart(triton: LocalTriton) -> None:
    image = frames()[0]
    proc, address = server("m2fp", "-E", f"size={SIZE}", "-E", f"triton={triton.url}", "-E", "triton_timeout_s=3")
    try:
        with MaskClient(address, timeout_s=30) as c:
            c.hello("crash-test")
            c.configure(**settings(KEEPS[1]))
            before = c.mask(image, mask_size=MASK)[0].array
            triton.kill()
            # every frame is answered, with an ERROR naming the engine failure, and promptly (never a hang)
            for _ in range(3):
                t0 = time.monotonic()
                fid = c.send_frame(image, mask_size=MASK)
                r = c.recv(10)
                assert r is not None, "no reply while Triton is down"
                assert r.type == MsgType.ERROR and r.header.frame_id == fid
                assert r.json["code"] == ErrorCode.ENGINE_FAILURE and "Triton" in r.json["message"]
                assert time.monotonic() - t0 < 5
            triton.start()
            t0 = time.monotonic()
            while True:  # the edge reconnects by itself: masks again within 2 s of Triton being back
                c.send_frame(image, mask_size=MASK)
                r = c.recv(10)
                assert r is not None
                if r.type == MsgType.MASK:
                    break
                assert time.monotonic() - t0 < 2.0, f"no mask within 2 s of Triton's restart: {r.json}"
            assert time.monotonic() - t0 < 2.0
            assert close_enough(r.array, before)
    finally:
        stop(proc)


def test_doctor_says_how_pytriton_gets_a_matching_libpython() -> None:
    from m2fp_server.cli.doctor import triton_checks
    checks = {c.name: c for c in triton_checks()}
    assert checks["Triton client (-E triton=)"].ok and checks["PyTriton (m2fp triton)"].ok
    lib = checks["PyTriton libpython"]
    assert lib.ok, lib.detail  # matching as installed, or fixed by m2fp triton's LD_LIBRARY_PATH
    assert "libpython3" in lib.detail


def test_a_repository_triton_cannot_serve_is_a_clear_error(repo: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from m2fp_server.cli.main import main

    def check(folder: Path) -> tuple[int, str]:
        code = main(["triton", "--model-repo", str(folder), "--check"])
        out = capsys.readouterr()
        return code, out.out + out.err
    assert check(repo) == (0, f"m2fp_64x128: backend onnxruntime, max batch 8, 1 instance(s), 20 classes, "
                              f"{repo / 'm2fp_64x128' / '1' / 'model.onnx'}\n")
    bad = tmp_path / "repo"
    (bad / "m2fp_x" / "1").mkdir(parents=True)
    (bad / "m2fp_x" / "config.pbtxt").write_text('name: "m2fp_x"\nbackend: "tensorrt"\n')
    code, text = check(bad)
    assert code == 1 and "backend 'tensorrt' is not served here" in text
    (bad / "m2fp_x" / "config.pbtxt").write_text('name: "m2fp_x"\nbackend: "onnxruntime"\nmax_batch_size: eight\n')
    code, text = check(bad)
    assert code == 1 and "config.pbtxt" in text
    code, text = check(tmp_path / "nowhere")
    assert code == 1 and "m2fp export --triton-repo" in text
