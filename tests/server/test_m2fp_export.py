"""``m2fp export`` at a small size: checked against torch, cached next to the weights, used by the engine."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("modelscope")

from m2fp_server.engines import EngineUnavailable  # noqa: E402
from m2fp_server.engines.m2fp.engine import M2FPEngine  # noqa: E402
from m2fp_server.engines.m2fp.exported import export_paths, find_export  # noqa: E402
from m2fp_server.engines.m2fp.frames import Canvas  # noqa: E402
from m2fp_server.engines.m2fp.random_model import write_random_model_dir  # noqa: E402
from m2fp_server.samples import frame_of_size  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the same code path with a shallower network (ResNet-50, fewer transformer layers) keeps the
    # two exports within the test-time budget; the full ResNet-101 is exported by `m2fp bench`
    return write_random_model_dir(tmp_path_factory.mktemp("m2fp-export"), "multi", seed=5,
                                  depth=50, enc_layers=2, dec_layers=3)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_export_is_checked_saved_and_used(model_dir: Path, runtime: str) -> None:
    canvas = Canvas.for_short_side(SIZE)
    assert find_export(model_dir, canvas, runtime) is None
    with pytest.raises(EngineUnavailable, match=f"m2fp export --size {SIZE} --runtime {runtime}"):
        M2FPEngine(model_dir=str(model_dir), size=SIZE, runtime=runtime)

    done = run_cli("export", "--size", str(SIZE), "--runtime", runtime, "--model-dir", str(model_dir),
                   "--threads", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max |d logits|" in done.stdout
    model_file, record_file = export_paths(model_dir, runtime, canvas)
    assert model_file.is_file() and record_file.is_file()
    found = find_export(model_dir, canvas, runtime)
    assert found is not None and found[2].max_logit_diff <= 1e-3

    fast = M2FPEngine(model_dir=str(model_dir), size=SIZE, runtime=runtime, threads=2)
    slow = M2FPEngine(model_dir=str(model_dir), size=SIZE, runtime="torch", threads=2)
    assert fast.info()["runtime"] == runtime and fast.info()["precision"] == "f32"
    frame = frame_of_size(200, 120)
    a, b = fast.infer(frame).probs, slow.infer(frame).probs
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert (a.argmax(0) == b.argmax(0)).mean() > 0.99


def test_auto_runtime_prefers_an_export_and_ignores_stale_ones(model_dir: Path) -> None:
    canvas = Canvas.for_short_side(SIZE)
    if find_export(model_dir, canvas) is None:
        pytest.skip("needs the export made by the test above")
    assert M2FPEngine(model_dir=str(model_dir), size=SIZE, threads=2).info()["runtime"] in ("openvino", "onnxruntime")
    weights = model_dir / "pytorch_model.pt"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "new weights"
    assert find_export(model_dir, canvas) is None
    assert M2FPEngine(model_dir=str(model_dir), size=SIZE, threads=2).info()["runtime"] == "torch"


def test_bf16_needs_an_image_to_report_agreement(model_dir: Path) -> None:
    done = run_cli("export", "--size", str(SIZE), "--precision", "bf16", "--model-dir", str(model_dir))
    assert done.returncode == 1
    assert "--image" in done.stderr


def test_an_export_that_disagrees_with_torch_is_not_saved(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m2fp_server.engines.m2fp import exported
    from m2fp_server.samples import portrait
    monkeypatch.setattr(exported, "MAX_LOGIT_DIFF", -1.0)  # any difference at all is "too much"
    canvas = Canvas.for_short_side(SIZE, portrait=True)
    with pytest.raises(exported.ExportError, match="differs from torch .* not saved"):
        exported.export(model_dir, SIZE, "onnxruntime", portrait(), "astronaut", portrait=True, threads=2)
    model_file, record_file = export_paths(model_dir, "onnxruntime", canvas)
    assert not model_file.exists() and not record_file.exists()
    assert not [p for p in model_file.parent.parent.iterdir() if p.name.startswith(".tmp-")]
