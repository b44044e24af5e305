"""The filter's UX rules without OBS: defaults, which rows apply, tooltips, the server launcher (a real
server process), and the server's small-island removal on a small full-body silhouette."""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_protocol import ProtocolError, StreamConfig  # noqa: E402
from m2fp_obs import launcher  # noqa: E402
from m2fp_obs.properties import ADVANCED, TIPS, sync_label, visibility  # noqa: E402
from m2fp_obs.settings import SYNC_CHOICES, FilterSettings, clamp_sync  # noqa: E402
from m2fp_server.postprocess.islands import remove_islands  # noqa: E402
from obs_harness import REPO, free_port  # noqa: E402


def test_defaults_are_privacy_safe_and_drop_islands():
    s = FilterSettings()
    assert s.after_hold == "hide" and s.remove_islands and not s.advanced and not s.choose_parts
    cfg = s.server_config(["Background", "Person"])
    assert cfg["min_island"] > 0
    StreamConfig.from_json(cfg).validate()
    s.remove_islands = False
    assert s.server_config([])["min_island"] == 0.0
    for bad in (-0.1, 0.5, "x", True):
        with pytest.raises(ProtocolError):
            StreamConfig.from_json({"min_island": bad})


def test_only_the_rows_that_apply_are_shown():
    s = FilterSettings()
    shown = {k for k, v in visibility(s).items() if v}
    assert shown == set(), shown  # transparent, hide, parts off, advanced closed: no optional row
    s.background_mode = "image"
    assert visibility(s)["background_image"] and visibility(s)["image_note"] and not visibility(s)["blur_strength"]
    s.background_image = "/pictures/beach.png"
    assert not visibility(s)["image_note"]
    s.background_mode, s.after_hold, s.advanced, s.choose_parts = "blur", "pass", True, True
    v = visibility(s)
    assert v["blur_strength"] and v["pass_warning"] and v["grp_parts"] and not v["background_color"]
    assert all(v[k] for k in ADVANCED)


def test_every_setting_has_a_one_line_tooltip_and_frame_sync_offers_every_delay():
    keys = {k for k, _kind, _v in FilterSettings.defaults() if not k.startswith("keep_")}
    assert keys <= set(TIPS), keys - set(TIPS)
    assert all("\n" not in t and 0 < len(t) <= 160 for t in TIPS.values())
    assert SYNC_CHOICES == (0, 1, 2, 3, 4) and all(clamp_sync(n) == n for n in SYNC_CHOICES)
    assert [sync_label(n) for n in (0, 1, 2)] == ["Off", "Delay video by 1 frame", "Delay video by 2 frames (default)"]


@pytest.mark.parametrize("address, expected", [
    ("tcp://127.0.0.1:5555", ("127.0.0.1", 5555)), ("tcp://localhost:6000", ("127.0.0.1", 6000)),
    ("tcp://[::1]:5555", ("::1", 5555)), ("tcp://192.168.1.20:5555", None), ("ipc:///tmp/x", None),
    ("tcp://127.0.0.1", None), ("nonsense", None),
])
def test_loopback_endpoint(address, expected):
    assert launcher.loopback_endpoint(address) == expected


def wrapper(d: Path) -> Path:
    path = d / "server.sh"
    pythonpath = os.pathsep.join(str(REPO / p) for p in ("shared", "inference_server"))
    path.write_text(f"#!/bin/sh\nexport PYTHONPATH='{pythonpath}'\n"
                    f"exec '{sys.executable}' -m m2fp_server.cli.serve --engine selfie \"$@\"\n")
    path.chmod(0o755)
    return path


def test_launcher_starts_shares_and_stops_a_real_server(tmp_path):
    lau = launcher.Launcher(grace_s=0.3)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    assert lau.acquire(1, address, str(tmp_path / "missing"), str(tmp_path)).phase == "failed"
    a = lau.acquire(1, address, str(wrapper(tmp_path)), str(tmp_path / "logs"))
    assert a.phase == "started" and a.log_path == str(tmp_path / "logs" / f"m2fp-server-{port}.log"), a
    child = lau.state(address)
    assert child is not None
    deadline = time.monotonic() + 20
    while not launcher.something_listens("127.0.0.1", port) and time.monotonic() < deadline:
        assert child.exit_code() is None, Path(a.log_path).read_text()
        time.sleep(0.1)
    assert launcher.something_listens("127.0.0.1", port)
    assert lau.acquire(2, address, "", "").phase == "started"  # a second filter shares it
    lau.release(1)
    time.sleep(0.6)
    assert child.exit_code() is None, "still used by filter 2"
    lau.release(2)
    lau.acquire(2, address, "", "")  # back within the grace period (a script reload): kept
    assert lau.state(address) is child
    lau.release(2)
    child.proc.wait(10)  # the last filter went: stopped after the grace period
    assert lau.state(address) is None
    assert "listening on" in Path(a.log_path).read_text()


def test_launcher_leaves_a_listening_server_alone(tmp_path):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        address = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        assert launcher.Launcher().acquire(1, address, str(wrapper(tmp_path)), str(tmp_path)).phase == "external"
    assert launcher.Launcher().acquire(1, "tcp://10.1.2.3:5555", "", "").phase == "remote"


def small_full_body(size=(1280, 720), x=300, feet=650, height=130):
    """A standing person drawn part by part, with the gaps a model leaves at this size (neck, wrists)."""
    W, H = size
    m = np.zeros((H, W), np.uint8)
    u = height / 8.0  # head heights
    cx = x
    cv2.ellipse(m, (cx, int(feet - 7.5 * u)), (int(0.35 * u), int(0.5 * u)), 0, 0, 360, 255, -1)  # head
    cv2.rectangle(m, (int(cx - 0.7 * u), int(feet - 6.4 * u)), (int(cx + 0.7 * u), int(feet - 4 * u)), 255, -1)
    for side in (-1, 1):
        ax = int(cx + side * 1.2 * u)
        cv2.rectangle(m, (ax - int(0.15 * u), int(feet - 6.6 * u)), (ax + int(0.15 * u), int(feet - 4.3 * u)), 255, -1)
        cv2.circle(m, (ax, int(feet - 3.3 * u)), int(0.2 * u), 255, -1)  # hand, cut off at the wrist
        lx = int(cx + side * 0.35 * u)
        cv2.rectangle(m, (lx - int(0.22 * u), int(feet - 4 * u)), (lx + int(0.22 * u), feet), 255, -1)  # legs
    return m


def test_islands_never_erase_a_small_full_body_person():
    person = small_full_body()
    # what an engine answers for a 1280x720 frame sent at 256x144: the person is ~26 px tall
    alpha = cv2.resize(person, (256, 144), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    n_parts = cv2.connectedComponents((alpha > 0.25).astype(np.uint8))[0] - 1
    assert n_parts >= 3, "head and hands are separate components at this size"
    noisy = alpha.copy()
    cv2.circle(noisy, (200, 30), 2, 0.9, -1)  # a stray blob far from the person
    cv2.rectangle(noisy, (20, 100), (22, 103), 0.8, -1)  # another
    cv2.circle(noisy, (67, 106), 1, 0.9, -1)  # near the shoulder (a strand of hair, a raised finger)
    out = remove_islands(noisy, FilterSettings().server_config([])["min_island"])
    person_px = alpha > 0.25
    assert (out[person_px] == noisy[person_px]).all(), "every part of the person kept"
    assert out[25:36, 195:206].max() == 0 and out[100:104, 20:23].max() == 0, "stray blobs dropped"
    assert out[106, 67] > 0, "the blob near the shoulder stays"
    # alone in the frame, the person is the largest component: never dropped, whatever the fraction
    assert (remove_islands(alpha, 0.1)[person_px] == alpha[person_px]).all()


def test_a_second_small_person_is_not_an_island():
    big = small_full_body(x=300, height=500)
    small = small_full_body(x=1000, height=130)
    alpha = cv2.resize(np.maximum(big, small), (256, 144), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    out = remove_islands(alpha, FilterSettings().server_config([])["min_island"])
    right = alpha[:, 180:] > 0.25
    kept = (out[:, 180:][right] > 0).mean()
    assert kept > 0.9, f"the far person lost {1 - kept:.0%}"


def test_the_blur_measure_tells_a_real_blur_from_the_former_one(capsys):
    """The real-OBS blur test's measure (detail energy kept in the 2-8 px band) on CPU references: a perfect
    Gaussian of the same radius keeps well under its 1 % limit, the former 3x3-tap blur far more."""
    from m2fp_server.evaluation.groundtruth import Cutout, Placement, compose, place, textured_background
    from test_obs_ux import high_freq_energy
    W, H = 1280, 720
    rgb, truth = compose(textured_background(W, H, seed=11),
                         [place(Cutout.load("astronaut"), Placement(cx=0.5, bottom=1.0, height=0.9), (W, H))])
    region = cv2.erode((truth == 0).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    sharp = high_freq_energy(rgb, region)
    ideal = high_freq_energy(cv2.GaussianBlur(rgb, (0, 0), 0.03 * W), region) / sharp
    small = cv2.resize(rgb, (256, 144), interpolation=cv2.INTER_LINEAR)
    taps = np.zeros((7, 7), np.float32)
    taps[::3, ::3] = 1 / 9  # the former shader: 3x3 taps, 3 px apart on the small copy
    former = high_freq_energy(cv2.resize(cv2.filter2D(small, -1, taps), (W, H)), region) / sharp
    with capsys.disabled():
        print(f"\n[blur reference] detail kept: perfect Gaussian {ideal:.4f}, former 3x3 blur {former:.4f}")
    assert ideal < 0.005 and former > 0.05


def test_log_lines_wait_for_the_scripts_own_context():
    """Inside OBS the sink only names the script from the script's timer: nothing is written before flush."""
    from m2fp_obs import log
    got: list = []
    log.set_sink(lambda level, text: got.append((level, text)), deferred=True)
    try:
        log.warning("server away")
        log.debug("registered")
        assert got == []
        log.flush()
        assert got == [(log.WARNING, "server away"), (log.DEBUG, "registered")]
    finally:
        log.set_sink(None)
