"""MediaPipe selfie segmentation (Apache-2.0), shipped in ``m2fp_server/models``.

Runs with ai-edge-litert's TFLite interpreter; no network, no mediapipe package.
Two models ship: *landscape* (256x144) and *general* (256x256).  Neither wins
on every framing: the landscape model is the steadier on synthetic textures,
the general one on photographs, but squashing a wide frame into its square
input ruins it.  Their average, with the general model fed squares placed on
the people of a wide frame (:class:`SelfiePair`), beat the landscape model alone on nearly
every bust clip we have (docs/engines.md): the embedded engine's bust mode uses
it, and ``-E variant=pair`` here.  This engine's default stays the landscape
model alone: it is the cheapest engine there is, and what the tests and ``auto``
fall back to for speed.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from m2fp_protocol import PERSON_CLASSES

from .base import EngineOutput, EngineUnavailable, PersonEngine, StreamContext, person_output

if TYPE_CHECKING:
    from ..postprocess.motion import FlowTracker

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_FILES = {
    "general": "selfie_segmentation.tflite",
    "landscape": "selfie_segmentation_landscape.tflite",
}


def load_interpreter(path: Path, threads: int = 1, backend: str | None = None, bf16: bool = False) -> Any:
    """The model behind TFLite's interpreter calls, on OpenVINO or ai-edge-litert (see ``tflite_backend``)."""
    from .tflite_backend import open_model
    return open_model(path, threads, backend, bf16)


class TFLiteSegmenter:
    """One TFLite person-mask model: RGB uint8 in, (h, w) probability out."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self._it = load_interpreter(path, threads)
        inp = self._it.get_input_details()[0]
        out = self._it.get_output_details()[0]
        self._in_index = inp["index"]
        self._out_index = out["index"]
        _, self.height, self.width, _ = (int(x) for x in inp["shape"])
        self._buf = np.empty((1, self.height, self.width, 3), np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        small = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        np.multiply(small, np.float32(1.0 / 255.0), out=self._buf[0], casting="unsafe")
        self._it.set_tensor(self._in_index, self._buf)
        self._it.invoke()
        return self._it.get_tensor(self._out_index)[0, :, :, 0].copy()


@dataclass
class SquarePlan:
    """One stream's squares for the general model, kept while the people stay about where they were:
    a square moved by sensor noise would change the general model's answer on a still picture."""

    starts: list[int] = field(default_factory=list)
    frame: tuple[int, int] = (0, 0)


class SelfiePair:
    """The landscape model's probability averaged with the general model's on squares.

    The general model only ever sees squares, so nobody is squashed: a frame about as wide
    as high is fed whole; a wider one gets full-height squares placed on the people the
    landscape model saw (one square per frame height of people, spread over them with a
    margin, averaged where they overlap).  Where no square reaches, the landscape model
    speaks alone.  One webcam bust costs one run of each model; nobody seen, one square in
    the middle (where a person the landscape model missed most likely is).
    """

    square_slack = 1.1  # frames up to this aspect are fed to the general model whole
    box_prob = 0.25  # the landscape model's probability that marks where people are
    margin = 0.2  # squares spread over the people's columns widened by this share of the height
    per_square = 1.15  # people wider than this many heights get one more square
    keep_count = 0.1  # a stream's square count changes only past ``per_square`` by this many heights
    keep_place = 0.05  # ... and its squares move only when one would move by this share of the height

    def __init__(self, threads: int = 1) -> None:
        self.landscape = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["landscape"], threads)
        self.general = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["general"], threads)
        self._times: deque[float] = deque(maxlen=9)  # wall times of the last general runs (ms)
        # the clock the general model is timed by: a test gives a slow host by advancing its own
        self.clock: Callable[[], float] = time.perf_counter

    def _general(self, square: np.ndarray) -> np.ndarray:
        t0 = self.clock()
        prob = self.general(square)
        self._times.append((self.clock() - t0) * 1e3)
        return prob

    @property
    def general_ms(self) -> float:
        """Median of the general model's last runs here (0 before the first): a stall or two does not move it."""
        return float(np.median(self._times)) if self._times else 0.0

    def time_general(self, rgb: np.ndarray) -> None:
        """Run the general model once on the frame's middle square, for its time only."""
        H, W = rgb.shape[:2]
        side = min(H, W)
        y0, x0 = (H - side) // 2, (W - side) // 2
        self._general(rgb[y0:y0 + side, x0:x0 + side])

    def squares(self, land: np.ndarray, W: int, H: int, plan: SquarePlan | None = None) -> list[int]:
        """Left edges (frame pixels) of the general model's H x H squares, from the landscape map;
        ``plan``: the stream's last squares, kept while they still fit."""
        if W <= self.square_slack * H:
            return []
        cols = np.nonzero((land > self.box_prob).any(axis=0))[0]
        lw = land.shape[1]
        x0, x1 = (cols[0] * W / lw, (cols[-1] + 1) * W / lw) if cols.size else (W / 2, W / 2)
        wide = (x1 - x0) / H - (self.per_square - 1)
        n = max(1, int(np.ceil(wide)))
        last = plan.starts if plan is not None and plan.frame == (W, H) else []
        if last and n != len(last) and len(last) - 1 - self.keep_count < wide <= len(last) + self.keep_count:
            n = len(last)
        n = min(n, int(np.ceil(W / H)))
        if n == 1:
            starts = [int(min(max(0, round((x0 + x1 - H) / 2)), W - H))]
        else:
            a, b = max(0.0, x0 - self.margin * H), min(float(W), x1 + self.margin * H)
            starts = [int(min(max(0, round(x)), W - H)) for x in np.linspace(a, max(a, b - H), n)]
        if len(last) == n and max(abs(x - y) for x, y in zip(starts, last)) <= self.keep_place * H:
            starts = last
        if plan is not None:
            plan.starts, plan.frame = starts, (W, H)
        return starts

    def __call__(self, rgb: np.ndarray, out: tuple[int, int] | None = None,
                 plan: SquarePlan | None = None) -> np.ndarray:
        """(h, w) probability at ``out`` (width, height; the frame's own size when None); ``plan``:
        the stream's squares (see :meth:`squares`)."""
        H, W = rgb.shape[:2]
        ow, oh = out or (W, H)
        land_small = self.landscape(rgb)
        land = cv2.resize(land_small, (ow, oh), interpolation=cv2.INTER_LINEAR)
        if W <= self.square_slack * H:
            gen = cv2.resize(self._general(rgb), (ow, oh), interpolation=cv2.INTER_LINEAR)
            return (land + gen) * np.float32(0.5)
        acc = np.zeros((oh, ow), np.float32)
        weight = np.zeros((1, ow), np.float32)
        for x0 in self.squares(land_small, W, H, plan):
            a, b = round(x0 * ow / W), round((x0 + H) * ow / W)
            if b <= a:  # a frame a few pixels high, shown smaller still: nothing of this square to show
                continue
            acc[:, a:b] += cv2.resize(self._general(rgb[:, x0:x0 + H]), (b - a, oh), interpolation=cv2.INTER_LINEAR)
            weight[:, a:b] += 1.0
        gen = np.where(weight > 0, acc / np.maximum(weight, 1.0), land)
        return (land + gen) * np.float32(0.5)


VARIANTS = ("pair", *MODEL_FILES)


@dataclass(eq=False)
class SelfieStream(StreamContext):
    """``variant=pair``: where the stream's squares are (the single models keep nothing)."""

    plan: SquarePlan = field(default_factory=SquarePlan)


class SelfieEngine(PersonEngine):
    name = "selfie"
    description = "MediaPipe selfie segmentation (person / background), embedded, Apache-2.0"

    def __init__(self, variant: str = "landscape", threads: int = 1, **_: Any) -> None:
        if variant not in VARIANTS:
            raise EngineUnavailable(f"unknown selfie variant {variant!r}; choose from {', '.join(VARIANTS)}")
        self.variant = variant
        self._model: SelfiePair | TFLiteSegmenter = (
            SelfiePair(threads) if variant == "pair" else TFLiteSegmenter(MODELS_DIR / MODEL_FILES[variant], threads))

    def new_stream(self) -> StreamContext:
        return SelfieStream() if self.variant == "pair" else StreamContext()

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        if isinstance(self._model, SelfiePair):
            plan = stream.plan if isinstance(stream, SelfieStream) else None
            return person_output(self._model(rgb, plan=plan), PERSON_CLASSES)
        return person_output(self._model(rgb), PERSON_CLASSES)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "variant": self.variant}
