"""The m2fp engine on a random-weight M2FP folder, loaded through the code users run.

The folder is written here from the architecture (configuration.json and
pytorch_model.pt as ModelScope lays them out); the real weights cannot be
downloaded on this machine (see the README for the real-weights check).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("modelscope")

from m2fp_protocol.classes import CIHP_NAMES  # noqa: E402
from m2fp_server.engines import EngineUnavailable, create  # noqa: E402
from m2fp_server.engines.m2fp.engine import M2FPEngine  # noqa: E402
from m2fp_server.engines.m2fp.frames import Canvas, place  # noqa: E402
from m2fp_server.engines.m2fp.random_model import architecture_config, write_random_model_dir  # noqa: E402
from m2fp_server.postprocess.classes import resolve_keep, select_alpha  # noqa: E402
from m2fp_server.samples import frame_of_size, portrait  # noqa: E402
from m2fp_server.weights import WeightsMissing, locate  # noqa: E402

SIZE = 64  # short side for tests; the benchmark covers 256/384/512


@pytest.fixture(scope="session")
def m2fp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model_dir(tmp_path_factory.mktemp("m2fp-multi"), "multi", seed=3)


@pytest.fixture(scope="session")
def engine(m2fp_dir: Path) -> M2FPEngine:
    return M2FPEngine(model_dir=str(m2fp_dir), size=SIZE, runtime="torch", threads=2)


def test_engine_output_shape_and_classes_from_configuration(engine: M2FPEngine, m2fp_dir: Path) -> None:
    config = json.loads((m2fp_dir / "configuration.json").read_text())
    # the 20 parsing classes, in the configuration's order; the instance-only "Human" is not a channel
    assert [c.name for c in engine.classes] == config["model"]["classes"][:20] == list(CIHP_NAMES)
    assert engine.preferred_input == (128, 64)
    frame = frame_of_size(113, 64)  # what a client sends for 16:9 inside the preferred box
    out = engine.infer(frame)
    assert out.probs.dtype == np.float32
    assert out.probs.shape == (20, 16, 29)  # 1/4 of the 64x113 placement, rounded up
    assert np.isfinite(out.probs).all() and (out.probs >= 0).all()
    np.testing.assert_allclose(out.probs.sum(axis=0), 1.0, atol=1e-5)
    assert engine.info()["runtime"] == "torch"


def test_per_frame_path_equals_modelscope_semantic_inference(engine: M2FPEngine, m2fp_dir: Path) -> None:
    """Our probabilities are ModelScope's own forward + semantic_inference, normalised over classes."""
    from m2fp_server.engines.m2fp.config import read_config
    from m2fp_server.engines.m2fp.network import construct, load_weights
    model = construct(read_config(m2fp_dir))
    load_weights(model, m2fp_dir / "pytorch_model.pt")
    frame = frame_of_size(160, 90)
    canvas_input, placement = place(frame, SIZE, Canvas.for_short_side(SIZE))
    image = torch.from_numpy(canvas_input[0, :, :placement.height, :placement.width].copy())
    with torch.no_grad():
        out = model.forward({"batched_inputs": [{"image": image}]})["outputs"]
        # ModelScope's model is untyped: mypy takes its methods for nn.Module attributes (tensors)
        sem = model.semantic_inference(  # type: ignore[operator]
            out["pred_logits"][0], out["pred_masks"][0]).numpy()
    assert sem.shape[0] == 21  # 20 parts + Human
    mh, mw = placement.mask_shape
    expected = sem[:20, :mh, :mw] / sem[:20, :mh, :mw].sum(axis=0, keepdims=True)
    got = engine.infer(frame).probs
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert (got.argmax(0) == sem[:20, :mh, :mw].argmax(0)).mean() > 0.999


def test_class_selection_gives_the_alpha_of_the_chosen_parts(engine: M2FPEngine) -> None:
    probs = engine.infer(frame_of_size(113, 64)).probs
    ids = resolve_keep(["Face", "hair"], engine.classes)
    assert ids == [2, 13]
    np.testing.assert_allclose(select_alpha(probs, ids), np.clip(probs[2] + probs[13], 0, 1), atol=1e-6)
    everyone = resolve_keep(None, engine.classes)
    assert 0 not in everyone and len(everyone) == 19
    np.testing.assert_allclose(select_alpha(probs, everyone), 1 - probs[0], atol=1e-5)


def test_real_server_answers_with_m2fp_masks(engine: M2FPEngine) -> None:
    from m2fp_server.client import MaskClient
    from m2fp_server.server import InferenceServer, ServerSettings
    srv = InferenceServer(engine, ServerSettings(address="tcp://127.0.0.1:*"))
    srv.start()
    try:
        with MaskClient(srv.endpoint, timeout_s=60.0) as c:
            info = c.hello("m2fp-test")
            assert info["engine"]["name"] == "m2fp"
            assert [k["name"] for k in info["classes"]][:3] == ["Background", "Hat", "Hair"]
            c.configure(keep=["Face"], smoothing=0.0, motion=False)
            frame = np.dstack([frame_of_size(113, 64), np.full((64, 113), 255, np.uint8)])
            mask, parsing = c.mask(frame, mask_size=(113, 64), want_parsing=True)
            assert mask.array.shape == (64, 113) and parsing.array.shape == (64, 113)
            assert parsing.array.max() < 20
    finally:
        srv.stop()
        srv.join()


def test_bad_frame_is_a_clear_error(engine: M2FPEngine) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        engine.infer(np.zeros((64, 64, 3), np.float32))


def test_missing_weights_name_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsMissing, match="m2fp fetch-weights"):
        locate("multi")
    with pytest.raises(EngineUnavailable, match="m2fp fetch-weights --model single"):
        M2FPEngine(model="single")
    with pytest.raises(EngineUnavailable, match="lacks pytorch_model.pt"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "configuration.json").write_text("{}")
        M2FPEngine(model_dir=str(tmp_path / "half"))


def test_auto_skips_m2fp_without_weights_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="m2fp_server.engines.auto"):
        eng = create("auto", auto_frames=4)
    try:
        assert eng.name not in ("m2fp", "hybrid")
        # the first M2FP-based candidate tried (which one depends on what else is fetched) says why
        assert re.search(r"skipping (hybrid|m2fp)\S* \(M2FP weights", caplog.text), caplog.text
        assert "m2fp fetch-weights" in caplog.text
    finally:
        eng.close()


def test_auto_prefers_m2fp_when_weights_are_present_without_touching_the_hub(
        m2fp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    hub = importlib.import_module("modelscope.hub.snapshot_download")  # the module, not the function

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub was called although the files are present")
    monkeypatch.setattr(hub, "snapshot_download", no_network)
    from m2fp_server.engines import auto
    order = [name for name, _ in auto.AUTO_CANDIDATES]
    assert order.index("m2fp") < order.index("selfie") and order.index("m2fp") < order.index("embedded")
    # engines listed before m2fp (built on it) are another test's business; a stream so slow (one
    # frame a minute) that M2FP keeps up even on a loaded machine
    monkeypatch.setattr(auto, "AUTO_CANDIDATES", auto.AUTO_CANDIDATES[order.index("m2fp"):])
    eng = create("auto", model_dir=str(m2fp_dir), size=SIZE, runtime="torch", auto_fps=1 / 60, auto_frames=1)
    assert eng.name == "m2fp"


def test_configuration_without_classes_is_refused(tmp_path: Path, m2fp_dir: Path) -> None:
    cfg = architecture_config("multi")
    del cfg["model"]["classes"]
    (tmp_path / "configuration.json").write_text(json.dumps(cfg))
    (tmp_path / "pytorch_model.pt").symlink_to(m2fp_dir / "pytorch_model.pt")
    with pytest.raises(EngineUnavailable, match="model.classes"):
        M2FPEngine(model_dir=str(tmp_path))


def test_checkpoint_of_another_model_is_refused(tmp_path: Path, m2fp_dir: Path) -> None:
    from m2fp_server.engines.m2fp.network import CheckpointError, load_core
    (tmp_path / "configuration.json").write_text((m2fp_dir / "configuration.json").read_text())
    torch.save({"model": {"fc.weight": torch.zeros(3, 3)}}, tmp_path / "pytorch_model.pt")
    with pytest.raises(CheckpointError, match="covers only 0"):
        load_core(tmp_path)


def test_portrait_frames_fit_the_canvas(engine: M2FPEngine) -> None:
    out = engine.infer(portrait())  # 512x512 square and a tall crop
    assert out.probs.shape == (20, 16, 16)
    tall = engine.infer(np.ascontiguousarray(portrait()[:, 128:384]))
    assert tall.probs.shape[1] == 16 and tall.probs.shape[2] == 8


def test_fetch_reuses_present_files_and_explains_a_failed_download(
        m2fp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import importlib

    from m2fp_server.cli import fetch_weights
    from m2fp_server.weights import fetch
    hub = importlib.import_module("modelscope.hub.snapshot_download")
    calls: list[tuple[object, ...]] = []

    def offline(*args: object, **kwargs: object) -> str:
        calls.append(args)
        raise ConnectionError("[E1020] Connection failed: name resolution")
    monkeypatch.setattr(hub, "snapshot_download", offline)
    assert fetch("multi", local_dir=str(m2fp_dir)) == m2fp_dir and calls == []
    args = argparse.Namespace(family="m2fp", model="multi", revision=None, local_dir=str(tmp_path / "new"))
    with pytest.raises(ValueError, match="download failed .*Connection failed.*--model-dir"):
        fetch_weights.run(args)
    assert calls and calls[0][0] == "damo/cv_resnet101_image-multiple-human-parsing"
