"""RVM's closer view of small people (``engines/rvm_view.py``) and the engine using it on a real clip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from m2fp_server import rvm_weights
from m2fp_server.engines.rvm_view import View, ZoomSettings, crop, follow, move_states, paste, union, wanted
from m2fp_server.evaluation.metrics import mean_iou

FRAME = (640, 360)
MODEL = (512, 288)


def _photo(size: tuple[int, int]) -> np.ndarray:
    """The shipped astronaut portrait at ``size``: real image data with edges everywhere."""
    from m2fp_server.samples import frame_of_size
    return frame_of_size(size[0], size[1], "astronaut")


def test_a_small_person_gets_a_closer_view_that_holds_them_and_big_people_the_whole_frame() -> None:
    z = ZoomSettings()
    small = (400.0, 200.0, 440.0, 320.0)  # 120 px high in a 360 px frame
    v = wanted(small, FRAME, MODEL, z)
    whole = View.whole(FRAME, MODEL)
    assert v.scale < whole.scale
    view_h = MODEL[1] * v.scale
    assert view_h == pytest.approx(120 / z.fill)
    # the box is inside the view, and the view inside the frame
    assert v.ox <= small[0] and small[2] <= v.ox + MODEL[0] * v.scale
    assert v.oy <= small[1] and small[3] <= v.oy + view_h + 1e-6
    assert v.ox >= 0 and v.oy >= 0 and v.ox + MODEL[0] * v.scale <= FRAME[0] + 1e-6
    assert wanted((100.0, 20.0, 300.0, 350.0), FRAME, MODEL, z) == whole  # a big person
    assert wanted(None, FRAME, MODEL, z) == whole
    assert wanted(small, FRAME, MODEL, ZoomSettings(enabled=False)) == whole
    tiny = wanted((300.0, 300.0, 305.0, 310.0), FRAME, MODEL, z)  # never closer than max_zoom
    assert tiny.scale == pytest.approx(whole.scale / z.max_zoom)
    # two people far apart: the view widens to hold both
    both = wanted(union([(20.0, 200.0, 60.0, 300.0), (560.0, 200.0, 600.0, 300.0)], FRAME), FRAME, MODEL, z)
    assert both.ox <= 20 and both.ox + MODEL[0] * both.scale >= 600


def test_follow_moves_part_of_the_way_and_arrives() -> None:
    a, b = View(0.0, 0.0, 1.25), View(200.0, 100.0, 0.5)
    v = follow(a, b, 0.5)
    assert 0 < v.ox < 200 and 0 < v.oy < 100 and 0.5 < v.scale < 1.25
    for _ in range(30):
        v = follow(v, b, 0.5)
    assert v == b
    assert follow(a, b, 1.0) == b


def test_crop_then_paste_puts_the_alpha_back_where_it_was() -> None:
    rgb = _photo(FRAME)
    truth = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) > 128).astype(np.float32)
    whole = View.whole(FRAME, MODEL)
    view = View(200.0, 90.0, 0.5)
    # "the model" returns the truth seen through the view; pasted back it must match the truth there
    seen = crop((truth[..., None] * 255).repeat(3, -1).astype(np.uint8), view, MODEL)[..., 0] / 255.0
    back = paste(seen.astype(np.float32), view, whole)
    truth_small = cv2.resize(truth, MODEL, interpolation=cv2.INTER_AREA)
    x0, y0 = int(200 / whole.scale) + 2, int(90 / whole.scale) + 2
    x1, y1 = int((200 + MODEL[0] * 0.5) / whole.scale) - 2, int((90 + MODEL[1] * 0.5) / whole.scale) - 2
    inside = np.abs(back[y0:y1, x0:x1] - truth_small[y0:y1, x0:x1])
    assert inside.mean() < 0.05
    assert back[:, : x0 - 4].max() == 0 and back[: y0 - 4].max() == 0  # nothing outside the view
    assert paste(seen.astype(np.float32), whole, whole) is not None


def test_states_move_with_the_view() -> None:
    rng = np.random.default_rng(3)
    h, w = 72, 128  # RVM's first state at 512x288, downsample 0.5
    img = cv2.GaussianBlur(rng.random((h, w, 16)).astype(np.float32), (0, 0), 2.0)
    st = img.transpose(2, 0, 1)[None].copy()
    k = MODEL[0] / w  # model pixels per state pixel
    before = View(100.0, 50.0, 0.5)
    after = View(100.0 + 8 * k * 0.5, 50.0 + 4 * k * 0.5, 0.5)  # 8 state pixels right, 4 down
    moved = move_states([st], before, after, MODEL)[0]
    assert moved.shape == st.shape
    np.testing.assert_allclose(moved[0, :, : h - 4, : w - 8], st[0, :, 4:, 8:], atol=1e-5)
    # a view twice as close: the middle of the old state, enlarged
    closer = View(before.ox + MODEL[0] * 0.25 * 0.5, before.oy + MODEL[1] * 0.25 * 0.5, 0.25)
    big = move_states([st], before, closer, MODEL)[0]
    np.testing.assert_allclose(big[0, :, 20, 40], st[0, :, 28, 52], atol=0.02)
    assert move_states([st], before, before, MODEL)[0] is st


def test_bad_zoom_options_are_refused() -> None:
    for bad in ({"below": 0.0}, {"fill": 2.0}, {"max_zoom": 0.5}, {"follow": 0.0}, {"detect_every": 0}):
        with pytest.raises(ValueError):
            ZoomSettings(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the engine on a real clip
@pytest.fixture(scope="module")
def model() -> None:
    try:
        rvm_weights.locate()
    except rvm_weights.RVMWeightsMissing as exc:
        pytest.skip(str(exc))


def test_rvm_finds_a_small_full_body_with_the_closer_view(model: None) -> None:
    """footage-small-body: RVM on the whole frame misses the person a third of the frame high."""
    from m2fp_server.engines.rvm import RVMEngine
    from m2fp_server.evaluation.clips import get_clip
    from m2fp_server.evaluation.evaluate import offline_alphas
    clip = get_clip("footage-small-body", static=5, moving=30)
    scores = {}
    for zoom in (False, True):
        eng = RVMEngine(tuned=False, zoom=zoom)
        try:
            scores[zoom] = mean_iou(offline_alphas(eng, clip), clip.truth, clip.moving_frames)
        finally:
            eng.close()
    assert scores[False] < 0.5, scores
    assert scores[True] > 0.75, scores


def test_a_fresh_stream_finds_the_small_person_on_its_first_frame(model: None) -> None:
    """On a fresh stream the detector looks at the whole wide frame and both its squares at once: the
    person standing on the right is there from the first frame (one part per frame found them at frame 6)."""
    from m2fp_server.engines.rvm import RVMEngine
    from m2fp_server.evaluation.clips import get_clip
    from m2fp_server.evaluation.evaluate import offline_alphas
    from m2fp_server.evaluation.metrics import iou
    clip = get_clip("footage-small-body", static=4, moving=2)
    eng = RVMEngine(tuned=False, width=640, downsample=0.4)  # the size the filter sends on a 16:9 frame
    try:
        alphas = offline_alphas(eng, clip)
    finally:
        eng.close()
    assert iou(alphas[0], clip.truth[0]) > 0.75


def test_the_states_settle_on_the_first_frame_so_a_still_opening_holds_still(model: None) -> None:
    """Zero states take a few frames to settle on a person: an outline that grows and shifts over a still
    picture (the flicker the static part measures).  The same first frame again settles them at once."""
    from m2fp_server.engines.rvm import RVMEngine
    from m2fp_server.evaluation.clips import get_clip
    from m2fp_server.evaluation.evaluate import offline_alphas
    from m2fp_server.evaluation.metrics import flicker
    clip = get_clip("footage-edge-cut", static=8, moving=2)
    flick = {}
    for settle in (0, 2):  # none, the default
        eng = RVMEngine(tuned=False, width=640, downsample=0.4, settle=settle)
        try:
            flick[settle] = flicker(offline_alphas(eng, clip), clip.static_frames)
        finally:
            eng.close()
    assert flick[2] <= 0.01 and flick[2] < flick[0] / 2, flick


def test_the_model_runs_every_frame_shape_at_the_pixels_of_a_16_9_frame_at_most() -> None:
    """``tune-rvm`` times 16:9 frames: a 4:3 or portrait frame must not cost more than that."""
    from m2fp_server.engines.rvm import model_shape
    assert model_shape((640, 360), 640) == (640, 360)
    assert model_shape((1920, 1080), 640) == (640, 360)
    w, h = model_shape((640, 480), 640)
    assert w * h <= 640 * 360 and abs(w / h - 4 / 3) < 0.02 and w % 2 == 0 and h % 2 == 0
    assert model_shape((360, 640), 640) == (360, 640)  # portrait: already that many pixels
    assert model_shape((256, 144), 640) == (256, 144)  # never enlarged


def test_bad_zoom_and_hold_options_of_the_engine_say_which(model: None) -> None:
    from m2fp_server.engines.base import EngineUnavailable
    from m2fp_server.engines.rvm import RVMEngine
    for bad, says in (({"zoom": "maybe"}, "yes/no"), ({"zoom_max": "9"}, "zoom_max"), ({"hold_grey": "x"}, "x"),
                      ({"settle": "9"}, "settle"), ({"settle": "-1"}, "settle"), ({"settle": "x"}, "x")):
        with pytest.raises(EngineUnavailable, match=says):
            RVMEngine(tuned=False, **bad)  # type: ignore[arg-type]
