"""The ``m2fp`` commands as users run them: real processes, real files, real server."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from m2fp_server.evaluation.groundtruth import Cutout, Placement, compose, place, still, textured_background
from m2fp_server.video import VideoWriter


def m2fp(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", *args], capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"m2fp {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def portrait_png(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rgb, truth = still("grace_hopper", (640, 480), Placement(cx=0.55, bottom=1.0, height=0.9), seed=3)
    path = tmp_path_factory.mktemp("img") / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path, truth


@pytest.fixture(scope="module")
def sway_clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """640x480, 30 fps, 45 frames: a person swaying over a panning background (lossless FFV1)."""
    W, H, T = 640, 480, 45
    big = textured_background(W + 200, H, seed=5)
    cut = Cutout.load("astronaut")
    path = tmp_path_factory.mktemp("clip") / "sway.mkv"
    writer = VideoWriter(path, 30.0)
    truths = []
    for t in range(T):
        bg = np.ascontiguousarray(big[:, 2 * t: 2 * t + W])
        p = Placement(cx=0.5 + 0.12 * np.sin(t / 6.0), bottom=1.0, height=0.85, angle=3 * np.sin(t / 9.0))
        frame, truth = compose(bg, [place(cut, p, (W, H))])
        writer.write(frame)
        truths.append(truth)
    writer.close()
    return path, np.stack(truths)


def test_parse_through_a_running_server_gives_a_correct_mask(server_process, portrait_png, tmp_path):
    _, address = server_process
    src, truth = portrait_png
    out = tmp_path / "a.png"
    m2fp("parse", str(src), "--server", address, "--mode", "alpha", "-o", str(out))
    alpha = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == truth.shape
    assert iou(alpha >= 128, truth) >= 0.9


def test_parse_in_process_npz_composite_and_parsing(portrait_png, tmp_path):
    src, truth = portrait_png
    m2fp("parse", str(src), "-o", str(tmp_path / "a.npz"))  # --engine auto, as users run it
    alpha = np.load(tmp_path / "a.npz")["alpha"]
    assert alpha.shape == truth.shape and alpha.dtype == np.uint8
    assert iou(alpha >= 128, truth) >= 0.9

    # the composite is checked against the alpha of the same engine run the same way: on a busy machine
    # ``auto`` measures its candidates again (nothing cached then), and its benchmark's timing can make the
    # embedded engine drop its general selfie model for the parse that follows (``pair_ms``); another run
    # kept it.  The plain selfie engine adapts to nothing
    m2fp("parse", str(src), "-o", str(tmp_path / "s.npz"), "--engine", "selfie")
    alpha = np.load(tmp_path / "s.npz")["alpha"]
    assert iou(alpha >= 128, truth) >= 0.9
    m2fp("parse", str(src), "-o", str(tmp_path / "c.png"), "--mode", "composite", "--background", "#00FF00",
         "--engine", "selfie")
    comp = cv2.cvtColor(cv2.imread(str(tmp_path / "c.png")), cv2.COLOR_BGR2RGB).astype(int)
    bg = (truth == 0) & (alpha <= 1)
    assert np.count_nonzero(bg) > 0.5 * np.count_nonzero(truth == 0)
    assert np.abs(comp[bg] - [0, 255, 0]).max() <= 2  # background replaced by the colour
    orig = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB).astype(int)
    fg = alpha == 255
    assert np.count_nonzero(fg) > 0.5 * np.count_nonzero(truth)
    assert np.abs(comp[fg] - orig[fg]).max() <= 2  # the person untouched

    m2fp("parse", str(src), "-o", str(tmp_path / "t.png"), "--mode", "composite")  # transparent
    rgba = cv2.imread(str(tmp_path / "t.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4 and iou(rgba[..., 3] >= 128, truth) >= 0.9

    m2fp("parse", str(src), "-o", str(tmp_path / "p.png"), "--mode", "parsing")
    par = cv2.cvtColor(cv2.imread(str(tmp_path / "p.png")), cv2.COLOR_BGR2RGB)
    person = np.all(par == [255, 85, 0], axis=2)  # the Person class colour from the palette
    assert iou(person, truth) >= 0.9


def test_parse_video_to_npz_and_mp4(sway_clip, tmp_path):
    src, truths = sway_clip
    proc = m2fp("parse", str(src), "-o", str(tmp_path / "v.npz"))
    alpha = np.load(tmp_path / "v.npz")["alpha"]
    assert alpha.shape == truths.shape
    scores = [iou(a >= 128, t) for a, t in zip(alpha, truths)]
    assert np.mean(scores) >= 0.9, np.round(scores, 3)
    assert "frame" in proc.stderr  # the progress bar
    m2fp("parse", str(src), "-o", str(tmp_path / "v.mp4"), "--mode", "composite", "--background", "blur")
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert n == len(truths) and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640


def test_replay_runs_a_640x480_clip_at_30fps(server_process, sway_clip, tmp_path):
    _, address = server_process
    src, truths = sway_clip
    out = tmp_path / "r.npz"
    proc = m2fp("replay", str(src), "--server", address, "--fps", "30", "-o", str(out))
    r = np.load(out)
    assert r["alpha"].shape == truths.shape
    assert r["mask_age"].shape == r["latency_ms"].shape == (len(truths),)
    shown = r["mask_age"] >= 0
    assert shown[5:].all(), "after a few frames every frame has a mask"
    assert np.median(r["mask_age"][shown]) <= 2  # the selfie model keeps up at 30 fps
    assert np.nanmedian(r["latency_ms"]) < 33
    scores = [iou(a >= 128, t) for a, t in zip(r["alpha"][5:], truths[5:])]
    assert np.mean(scores) >= 0.85, np.round(scores, 3)
    assert "masks" in proc.stdout


def test_info_and_bench(server_process):
    _, address = server_process
    out = m2fp("info", "--server", address).stdout
    assert "engine         : selfie" in out and "1:Person" in out
    out = m2fp("bench", "--server", address, "--seconds", "0.5", "--sizes", "256x144", "--clients", "1,2").stdout
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("256x144")]
    assert len(rows) == 2 and all(float(r[2]) > 10 for r in rows)  # masks/s


@pytest.mark.parametrize("args,needle", [
    (["parse", "/nonexistent.png", "-o", "x.png"], "does not exist"),
    (["parse", "{img}", "-o", "x.png", "--mode", "composite", "--background", "#12"], "#RRGGBB"),
    (["parse", "{img}", "-o", "x.png", "--engine", "nope"], "unknown engine 'nope'"),
    (["parse", "{img}", "-o", "x.png", "--keep", "Wings"], "unknown class 'Wings'"),
])
def test_bad_arguments_give_one_clear_error(portrait_png, tmp_path, args, needle):
    src, _ = portrait_png
    args = [a.replace("{img}", str(src)).replace("x.png", str(tmp_path / "x.png")) for a in args]
    proc = m2fp(*args, check=False)
    assert proc.returncode == 1
    assert needle in proc.stderr and "Traceback" not in proc.stderr
