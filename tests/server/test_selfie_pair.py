"""The two selfie models together (``selfie.SelfiePair``): the geometry of the general model's
square tiles, and the average beating each model alone where each one fails."""
from __future__ import annotations

import numpy as np
import pytest

from m2fp_server.engines.selfie import SelfieEngine, SelfiePair, SquarePlan
from m2fp_server.evaluation.clips import get_clip
from m2fp_server.evaluation.evaluate import offline_alphas
from m2fp_server.evaluation.metrics import mean_iou

SHORT = {"static": 4, "moving": 20}


class _Recorder:
    """Stands in for one model: records the shapes it is fed and answers a fixed map."""

    def __init__(self, answer: np.ndarray) -> None:
        self.answer, self.fed = answer, []  # type: ignore[var-annotated]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.fed.append(rgb.shape[:2])
        return self.answer.copy()


@pytest.mark.parametrize(("size", "people", "squares"), [
    ((640, 480), None, 1),  # nobody seen: one square in the middle
    ((640, 360), (100, 156), 1),  # one webcam bust
    ((640, 360), (10, 250), 2),  # two people far apart
    ((1260, 420), (5, 250), 3),  # people across an ultra-wide frame
    ((854, 480), (0, 256), 2),  # people from edge to edge
])
def test_the_general_model_sees_squares_that_cover_the_people(
        size: tuple[int, int], people: tuple[int, int] | None, squares: int) -> None:
    """The landscape model says where people are (columns of its 256-wide map); the general model
    (answering 0 here, the landscape model 1 on the people) must cover every column of them with
    full-height squares: there the average is 0.5, and 1.0 would mean a column no square reached."""
    land = np.zeros((144, 256), np.float32)
    if people is not None:
        land[:, people[0]:people[1]] = 1.0
    pair = SelfiePair()
    pair.landscape = _Recorder(land)  # type: ignore[assignment]
    pair.general = _Recorder(np.zeros((256, 256), np.float32))  # type: ignore[assignment]
    W, H = size
    out = pair(np.zeros((H, W, 3), np.uint8))
    assert out.shape == (H, W)
    fed = pair.general.fed  # type: ignore[attr-defined]
    assert fed == [(H, H)] * squares
    if people is not None:
        x0, x1 = people[0] * W // 256 + 4, people[1] * W // 256 - 4  # inside the people's columns
        np.testing.assert_allclose(out[:, x0:x1], 0.5, atol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("size", [(480, 480), (360, 640), (100, 91)])
def test_a_frame_about_as_wide_as_high_is_fed_whole(size: tuple[int, int]) -> None:
    pair = SelfiePair()
    pair.landscape = _Recorder(np.ones((144, 256), np.float32))  # type: ignore[assignment]
    pair.general = _Recorder(np.zeros((256, 256), np.float32))  # type: ignore[assignment]
    W, H = size
    out = pair(np.zeros((H, W, 3), np.uint8), (W // 2, H // 2))
    assert pair.general.fed == [(H, W)]  # type: ignore[attr-defined]
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_the_pair_beats_each_model_alone_on_busts() -> None:
    """Two busts in a 16:9 frame: the general model squashed loses them, the landscape model is unsure
    of the edges, the pair is clearly better than both; a single bust in 4:3: the pair is at least as
    good as the landscape model (the selfie engine's model before)."""
    engines = {v: SelfieEngine(variant=v) for v in ("pair", "landscape", "general")}
    for name, against, margin in (("two-people", ("landscape", "general"), 0.03), ("sway", ("landscape",), -0.005)):
        clip = get_clip(name, **SHORT)
        scores = {v: mean_iou(offline_alphas(e, clip), clip.truth, clip.moving_frames) for v, e in engines.items()}
        assert scores["pair"] >= max(scores[v] for v in against) + margin, (name, scores)
    for e in engines.values():
        e.close()


@pytest.mark.parametrize("variant", ["", "pairs", "PAIR", "landscape ", "../general"])
def test_an_unknown_variant_is_refused_with_the_choices(variant: str) -> None:
    from m2fp_server.engines.base import EngineUnavailable
    with pytest.raises(EngineUnavailable, match="choose from pair, general, landscape"):
        SelfieEngine(variant=variant)


def test_a_streams_squares_stay_put_while_its_people_do() -> None:
    """Sensor noise moves the landscape model's outline by a pixel or two; a square that followed it
    would change the general model's answer on a still picture (flicker).  The stream's squares stay
    until the people move by ``keep_place`` of the height, and their count changes only past a margin."""
    pair = SelfiePair()
    W, H = 854, 480

    def people(x0: int, x1: int) -> np.ndarray:  # columns of the landscape model's 256-wide map
        land = np.zeros((144, 256), np.float32)
        land[:, x0:x1] = 1.0
        return land
    plan = SquarePlan()
    first = pair.squares(people(100, 150), W, H, plan)
    assert len(first) == 1 and plan.starts == first
    assert pair.squares(people(101, 151), W, H, plan) == first  # a 3-px wobble: the same square
    moved = pair.squares(people(130, 180), W, H, plan)  # 100 px: follows
    assert moved != first and plan.starts == moved
    # people 1.2 heights wide: two squares for a fresh stream, one kept for a stream that had one
    wide = people(40, 40 + round(1.2 * H * 256 / W))
    assert len(pair.squares(wide, W, H)) == 2
    assert len(pair.squares(wide, W, H, plan)) == 1
    assert len(pair.squares(people(0, 256), W, H, plan)) == 2  # clearly wider: two
    assert pair.squares(people(0, 256), W, H, SquarePlan(starts=[5], frame=(640, 480))) != [5]  # other size


@pytest.mark.parametrize(("height", "width"), [(1, 3), (1, 640), (2, 640), (3, 1000), (5, 7), (640, 1), (1, 1)])
def test_frames_of_any_shape_give_a_finite_map(height: int, width: int) -> None:
    """Frames a few pixels high or wide (the wire allows them) must not reach a resize to zero width:
    a square narrower than one output pixel is skipped."""
    from m2fp_server.engines.embedded import EmbeddedEngine
    pair = SelfiePair()
    rng = np.random.default_rng(height * 1000 + width)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for out in (None, (max(1, width // 3), max(1, height // 3)), (1, 1)):
        prob = pair(rgb, out, SquarePlan())
        assert prob.shape == ((height, width) if out is None else out[::-1])
        assert np.isfinite(prob).all() and prob.min() >= 0.0 and prob.max() <= 1.0
    engine = EmbeddedEngine()
    probs = engine.infer(rgb, engine.new_stream()).probs
    assert np.isfinite(probs).all()
    engine.close()
