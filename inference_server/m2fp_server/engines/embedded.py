"""The embedded engine: the shipped MediaPipe models used together, chosen per stream by framing.

Why two models: on the framing clips (``m2fp eval --clip framing-…``; figures in
docs/engines.md) the landscape selfie model is the best single model for busts
and people near the camera but loses full bodies and finds almost nothing of a
small person, while the pose landmark model is mediocre on the whole frame and
the best by far when given a square region around the person (one person per
call).  So per stream:

* **bust mode** (default; the person is cut by the bottom edge, or nobody was
  found): the two selfie models averaged, the general one on squares placed
  on the people (``selfie.SelfiePair``: above the landscape model alone on nearly every bust
  clip, docs/engines.md);
* **body mode** (the pose detector found someone whose whole body fits in the
  frame): the pose landmark model on a square region per person (up to
  ``max_bodies``; the model segments one person per call) that follows that
  person from frame to frame (region from the last mask, moved on by the
  person's velocity), plus the landscape model on the whole frame every
  ``outside_every`` frames so nobody outside the regions is lost (its blobs there
  are kept only when it is sure of them: on a busy background it also lights up
  patches it is unsure of; and it is sure of some things that are nobody, so each
  part outside the regions is kept only where the pose model or the detector
  finds a person).

The pose models run on OpenVINO when it is installed (``tflite_backend``: it
reads the TFLite files), in f32: bf16 (``-E bf16=true``, only where the CPU has
native bf16) is faster, but its pose masks and presence scores move the engine's
decisions about who is there, and whole bodies were lost with it (docs/engines.md).

The pose detector runs on the first frame, whenever the tracked person is lost,
every ``redetect_every`` frames, and when the covered share of the frame changes
by half (new people, framing changes), so it costs little per frame on average.
The detector's faint hits count too (a person in dark clothes on a busy background
scores as low as that background's false hits), taken only when the pose model is
sure of them: further people once someone is followed, and the first person when
the detector is sure of nobody (whole body by the pose model's own landmarks).
After two people overlapped, the one behind is looked for more often until found,
and along the path they were on; while people overlap, each one's pose run sees the
others painted out (the pose model finds the most prominent person in a region).
People standing one partly behind another are found on the same first frame the
same way: the ones confirmed first are painted out while the next are checked and
while the detector looks again.  A new region is settled on its person before it
is shown, so a still picture does not jump on the next frames, and a region holds still while the picture
in it does.  A bust the detector is sure of beside the whole bodies is the landscape model's, inside the
regions too; a whole body the detector misses and the landscape model sees is followed once the pose model
finds one there.  Somebody lost behind another person stays shown by the landscape model (its blobs where
they were speak inside the regions until they are found again or gone; somebody dropped before ever being
shown, by the mask of the run that dropped them), and a followed person's region that shrank onto part of
them is replaced by a new detection's that holds all of them.  A landscape blob is somebody only where the
pose model's person covers part of it (a followed person painted out grey still has a person's shape).
No edge, contour or size rule removes anything: a person that touches no frame
edge stays, and holes are left to the models.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from m2fp_protocol import PERSON_CLASSES

from .base import EngineOutput, EngineUnavailable, PersonEngine, StreamContext, flag, person_output
from .embedded_detect import FrameDetections, Person, PoseDetector, box_iou
from .embedded_models import POSE_FILE, PoseResult, PoseSegmenter, Roi, crop, paste
from .selfie import MODELS_DIR, SelfiePair, SquarePlan
from .still_hold import StillHold
from .tflite_backend import pick_threads
from ..cpu import lower_thread_priority
from ..postprocess.person_motion import PersonMotion

if TYPE_CHECKING:
    from ..postprocess.motion import FlowTracker

log = logging.getLogger(__name__)


@dataclass
class _Body:
    """One whole body followed in body mode."""

    roi: Roi
    velocity: tuple[float, float] = (0.0, 0.0)
    last_centre: tuple[float, float] | None = None  # None: a new track (its region is the detector's guess)
    steps: list[tuple[float, float]] = field(default_factory=list)  # last moves of the person's box
    trial: int = 0  # frames this person must still be confirmed in before their mask is used
    mask_box: tuple[float, float, float, float] | None = None  # box of their last mask, working-frame pixels
    last_one: np.ndarray | None = None  # their last mask at output size (reused on frames they are not run)
    hips: tuple[float, float] | None = None  # their hip centre by the pose model, working-frame pixels...
    torso: float = 0.0  # ...and the distance from it to their shoulders' centre
    whole: bool = True  # the pose model's landmarks put their whole body in the frame (``_whole_body``), last run
    placed: np.ndarray | None = None  # the frame (output size, grey, blurred) when their region was last placed
    shown: int = 0  # frames their mask was shown
    # their region and speed at the last frame (``free_frame``) their mask touched nobody else's: where
    # they were heading before someone passed in front of them
    free: tuple[Roi, tuple[float, float]] | None = None
    free_frame: int = 0
    # found again along one path of a person gone behind someone: the event's other paths, looked along
    # again if this track merges into another (the path led to the one in front)
    behind: list[_Hidden] = field(default_factory=list)
    uid: int = 0  # who they are in the engine's ``people`` map (1..255; set when they are first followed)


@dataclass
class _Hidden:
    """A person last seen going behind someone: looked for where their path leads until ``until``."""

    roi: Roi
    velocity: tuple[float, float]
    frame: int  # the frame ``roi`` was theirs
    until: int

    def at(self, frame: int) -> Roi:
        n = frame - self.frame
        return Roi(self.roi.cx + self.velocity[0] * n, self.roi.cy + self.velocity[1] * n, self.roi.side)


@dataclass
class _Asked:
    """A landscape blob outside the followed regions, and whether it is somebody."""

    where: np.ndarray  # the blob at output size, moved on each time it is matched again
    somebody: bool
    until: int


@dataclass
class _Track:
    """What one stream's frames taught the engine (reset when the frame size changes)."""

    mode: str = "bust"
    bodies: list[_Body] = field(default_factory=list)  # body mode: the people followed, first found first
    since_detect: int = 10**9
    search: int = 0  # detections left that search both tiles (after people overlapped)
    overlapped: int = 0  # people followed when they overlapped: the search ends once as many are shown again
    look_all: bool = False  # the next detection looks for further people on both tiles (body mode just began)
    scans: int = 0  # body mode: detections made looking for further people on a 16:9 frame (tiles take turns)
    along: int = 0  # body mode: detections that looked along the first person's row (``_alongside``)
    # where the detector put the hips of hits the pose model said were nobody, and the frame (``frames``)
    # until which a hit there is not checked again
    rejected: list[tuple[tuple[float, float], int]] = field(default_factory=list)
    frames: int = 0  # frames seen
    hidden: list[_Hidden] = field(default_factory=list)  # people gone behind someone, not found again yet
    cover: float = 0.0  # share of the frame covered by people at the last detection
    frame_size: tuple[int, int] = (0, 0)
    hold: StillHold | None = None  # each pixel's last answer while its picture does not change
    outside: np.ndarray | None = None  # body mode: the landscape model's confident blobs, last run
    outside_age: int = 10**9  # frames since ``outside`` was computed
    outside_in: np.ndarray | None = None  # where the regions were then (bool; ``tr.others`` left out)
    outside_nobody: np.ndarray | None = None  # its blobs with a part outside the regions that is nobody (bool)
    # the blobs of ``outside`` that are mostly somebody outside the regions (a bust beside a whole body):
    # the landscape model speaks for them inside the regions too
    others: np.ndarray | None = None
    # body mode: the landscape model's blobs outside the regions asked about (``_only_people``), each
    # with its answer until the frame (``frames``) it expires
    asked: list[_Asked] = field(default_factory=list)
    turn: int = 0  # body-mode frames: whose pose run it is when people take turns (``alternate_ms``)
    grey: np.ndarray | None = None  # this frame at output size, grey (people who wait their turn move by its flow)
    prev_grey: np.ndarray | None = None  # ...and the frame before
    squares: SquarePlan = field(default_factory=SquarePlan)  # bust mode: where the general model looks
    people: np.ndarray | None = None  # body mode: who is who in this frame's map (``EngineOutput.people``)
    # body mode: the face boxes (working-frame pixels) of people the last detection found cut by the frame's
    # bottom (busts) who are nobody followed: the landscape model's blobs on them speak inside the regions too
    busts: list[tuple[float, float, float, float]] = field(default_factory=list)
    # body mode: where people lost behind someone are (output size): the landscape model's blobs there that
    # no followed person's mask holds, moved on to the blobs they match at each landscape run
    behind: list[np.ndarray] = field(default_factory=list)
    again: bool = False  # body mode: somebody was first shown this frame beside someone they touch
    # body mode: the square along the first person's row the pose model looks at on the next frame, and the
    # picture it looks at (the detection's, with the people followed painted out: ``_further``)
    posed_due: tuple[np.ndarray, tuple[int, int, int]] | None = None
    # bust mode after somebody went behind this person: they are still followed by the pose model until the
    # next detection (over a busy wall the bust models lose both people)
    front: _Body | None = None
    uids: int = 0  # people followed so far (each body's ``uid``)
    # body mode: a detection running on the detector's thread (``detect_lag``) and the frame (``frames``) its
    # decisions are taken on
    ahead: tuple[Future[FrameDetections], int] | None = None
    # the share of the frame covered by people changed: the next detection runs on its own frame, even while
    # people are followed (``detect_lag``)
    now: bool = False


@dataclass(eq=False)
class EmbeddedStream(StreamContext):
    """The embedded engine's per-stream state: the framing mode and the tracked region."""

    track: _Track | None = None

    def close(self) -> None:
        if self.track is not None and self.track.ahead is not None:
            self.track.ahead[0].cancel()
            self.track.ahead = None


@dataclass
class EmbeddedSettings:
    redetect_every: int = 15  # frames between detector runs while a mode is settled
    rescan_cover: float = 0.5  # relative change of the covered share of the frame that triggers a detection
    steer: str = "mask"  # how the region follows the person: mask (its box) | landmarks (MediaPipe's rule)
    landmark_scale: float = 1.25  # landmarks: side = 2 x scale x hip-to-body-circle distance
    margin: float = 0.30  # mask: side = mask box's longer side x (1 + margin)
    deadband: float = 0.06  # keep the last region unless it moved/grew by more than this share of its side
    min_detection: float = 0.25  # pose detector score that counts as a person
    min_presence: float = 0.5  # pose model's own presence score below which the person is lost...
    keep_presence: float = 0.35  # ...or, once followed for ``SETTLED_TRACK`` frames, this
    verify_max: int = 3  # detections checked with the pose model when looking for a whole body
    max_bodies: int = 3  # whole bodies followed at once (one pose model run each per frame)
    same_body: float = 0.5  # two regions (box IoU) or two masks (IoU) overlapping this much are one person
    more_detection: float = 0.5  # detector score a person besides the best one needs (busy backgrounds' false
    # hits score 0.3-0.5 and the pose model half-believes some of them; second people scored 0.6-0.9)...
    faint_detection: float = 0.05  # ...unless the pose model is sure of them: dark clothes on a busy background
    sure_presence: float = 0.97  # score 0.05-0.3 and are only ever found this way (both pose runs at least this)
    search_after_overlap: int = 8  # detections that search both tiles for people who overlapped...
    # ...this many frames apart: the one behind is whole again within a few frames, and live each searching
    # detection costs several frames' time: closer together, the frames between came late or were skipped,
    # among them the ones the one behind emerged on
    search_every: int = 8
    someone_share: float = 0.003  # body mode looks for further people when the landscape model's confident
    # blobs outside the followed regions cover this share of the frame
    trial_frames: int = 3  # someone found while others are followed: their mask is used after this many frames
    fits_slack: float = 0.10  # a body "fits" if hips + 0.8 radius is within (1 + slack) x frame height
    max_side: int = 640  # working resolution: frame scaled to fit this long side (regions are cut from it)
    out_side: int = 320  # output resolution (long side): what post-processing works on
    hold_grey: float = 6.0  # grey-level change (0..255, blurred) that lets a pixel's answer change; 0 = off
    hold_prob: float = 0.35  # probability change that gets through on an unchanged picture
    only: str = ""  # "landscape" | "general" | "pose": one model on the whole frame (baselines for comparison)
    bust: str = "pair"  # bust mode's model: pair (landscape + general on squares, averaged) | landscape
    pair_ms: float = 14.0  # bust mode drops the general model while one of its runs takes longer than this
    # (measured here, median of the last 9; back below 0.8 x this): a host too slow for it keeps the engine in time
    outside_min_mean: float = 0.85  # outside the region: landscape blobs with a lower mean probability are unsure
    outside: str = "landscape"  # what fills the frame outside the pose region: landscape | none
    outside_every: int = 3  # body mode: frames between landscape runs for the area outside the region
    alternate_ms: float = 20.0  # several people whose pose runs together take longer than this (measured
    # here): one person's run per frame, in turn; the others' last masks move on by their speed (0 = never)
    bf16: bool = False  # pose model in bf16 where the CPU has native bf16 (faster, but loses people: see docs)
    backend: str = ""  # pose models on: openvino | litert | auto; "" = $M2FP_TFLITE_BACKEND, else auto
    # while people are followed and do not take turns (``alternate_ms``), a detection runs on a thread of its
    # own, at the lowest priority, and its decisions are taken this many frames later, so no frame waits for
    # the detector (live, a frame that did made the next ones late); 0 = on the frame itself
    detect_lag: int = 0


#: a detection whose hips are within this share of a followed person's torso length from theirs is that person
FOLLOWED_HIPS = 0.5

#: while people who overlapped are looked for, a second detection at least this share of a followed person's
#: torso further from their hips than the nearest one may be somebody beside them (``_beside_followed``)
BESIDE_HIPS = 0.2

#: a detection's region where the pose model's presence is below the bar but at least this gets a second
#: look on the region its mask gives (``_somebody``)
SECOND_LOOK = 0.15

#: a person waiting their turn (``alternate_ms``) moves by the flow in their last mask when at least this
#: share of it is not also another person's
OWN_SHARE = 0.6

#: faint detections checked with the pose model when the detector is sure of nobody
FAINT_TRIES = 3

#: frames after body mode begins until the detector looks for further people
LOOK_AGAIN = 3

#: frames a false hit's place is not checked again (a person may walk into it), and its size (share of the
#: frame's height, hips to hips): a region would block everybody near the false hit, a person included
REJECTED_FRAMES = 60
REJECTED_PLACE = 0.04

#: a detection the pose model is sure of on the detector's region is still somebody on the region its mask
#: gives when it scores this much below the bar there (``_somebody``: a false hit falls apart on that region;
#: a person's score only wavers, and by how much depends on the CPU's arithmetic)
SETTLED_SLACK = 0.05

#: pose runs at most that settle a new track's region on the person (``_body``)
SETTLE_RUNS = 5

#: a region whose picture changed on at most this share of its pixels since it was placed stays where it is
STILL_SHARE = 0.01

#: a new track's mask this many times the size of a followed person's it is the same as: their region is
#: the new one (``_body``)
GROWN = 1.15

#: frames a person's mask was shown before their track merging into another's means they are hidden
SETTLED_TRACK = 5

#: frames a person gone behind someone is looked for along their path, every ``HIDDEN_EVERY`` body-mode frames
#: (one pose run): the detector often sees the pair as one person until they are well apart
HIDDEN_FRAMES = 45
HIDDEN_EVERY = 2

#: a detection whose body circle ends within this many ``fits_slack`` of the frame's bottom may be a whole
#: body in a wide pose; a bust's ends far beyond (docs/engines.md: "a whole body beside a bust or in a wide pose")
NEARLY_FITS = 2.0
#: a followed person's region whose side is over this many frame heights ran away (a region around a whole
#: body in the frame is its height plus ``margin``): that person is lost
RAN_OFF = 2.0
#: a person whose landmarks do not put their whole body in the frame is a bust when their mask meets the
#: frame's last ``BOTTOM_ROWS`` rows over this share of its widest row (feet standing on the frame's bottom
#: edge meet it over a small part of it; a bust cut at the chest, over most of it)
CUT_WIDTH = 0.7
BOTTOM_ROWS = 3
#: a frame this much wider than high is wide: a person further back gets few of the letterboxed detector's pixels
WIDE = 1.3

#: people lost behind someone whose place is remembered at once (``_Track.behind``)
BEHIND_KEPT = 2

#: squares the size of a followed person's region along their row (``_along_squares``): the first this many
#: sides from their centre, the next each this many further on
ALONG_FIRST = 0.5
ALONG_STEP = 0.75

#: the pose model's presence on a square along the row, looked at on the detector's thread (``detect_lag``),
#: below which it does not look at that square again on the frame the decisions are taken on: the person it
#: then finds must score ``sure_presence`` there, and most squares hold nobody
ALONG_POSED = 0.5

#: the grey people followed are painted in while somebody else is looked for near them (``_painted``)
PAINT = 128

#: how much lower the bar (``outside_min_mean``) is for a landscape blob that was shown the last time
OUTSIDE_KEEP = 0.05

#: a part of a landscape blob outside the regions overlapping an earlier one this much (IoU) has its answer
#: (``_only_people``); an answer no part matched is forgotten at the next landscape run, except a "nobody"
#: last matched less than ``ASK_AGAIN`` frames before (body mode left and back: the false blob is still there)
ASKED_SAME = 0.3
ASK_AGAIN = 30
#: ... and it is somebody if the pose model is sure of a person there, or the detector this sure (a cut
#: bust; a false blob's region scored up to 0.5)
ASKED_DETECTION = 0.7
#: the share of an asked blob the pose model's person must cover for the blob to be somebody
ON_BLOB = 0.25
#: ... and it must see legs (a knee or an ankle at this logit or more), or the detector on the same region
#: somebody there this sure, hips inside it: the pose model took a squirrel's head and body for a person,
#: sure of it, knees and ankles unsure; the detector's hits there fell outside the region
BLOB_LEGS = 1.0
BLOB_DETECTION = 0.2

#: a detection of somebody else whose region is less than this share of the smallest followed person's
#: (``SMALL_HIT``), turned down, is looked at again on a region ``AGAIN_SIDE`` x that person's side, its centre
#: ``AGAIN_UP`` x that side above the detection's hips: somebody mostly behind a person is detected on their
#: uncovered part, with a body circle far smaller than they are, and the region cut from it shows the pose
#: model part of a torso (it needs the head)
SMALL_HIT = 0.5
AGAIN_SIDE = 1.25
AGAIN_UP = 0.25

#: a whole body the detector does not see is looked for on the landscape model's blobs at this bar
#: (``_on_faint_blobs``), the ``FAINT_BLOBS`` largest of those at least ``UPRIGHT`` times as high as wide
FAINT_BLOB = 0.2
FAINT_BLOBS = 2
UPRIGHT = 1.2

#: bust frames between two timings of the general model while it is dropped (``pair_ms``)
PAIR_PROBE_EVERY = 30


class EmbeddedEngine(PersonEngine):
    name = "embedded"
    description = ("MediaPipe selfie + pose models chosen per stream by framing (busts: both selfie models; "
                   "full bodies: pose landmark on a tracked region), embedded, Apache-2.0")

    def __init__(self, threads: int | str = 0, **options: Any) -> None:
        """``threads``: per model (``-E threads=N`` gives a string); 0 = as many as run the pose model
        fastest here (``pick_threads``)."""
        known = EmbeddedSettings.__dataclass_fields__
        unknown = sorted(set(options) - set(known) - {"variant"})
        if unknown:
            log.warning("embedded: ignoring unknown options %s", unknown)
        try:
            self.settings = EmbeddedSettings(**{k: _coerce(getattr(EmbeddedSettings, k), v)
                                                for k, v in options.items() if k in known})
        except ValueError as exc:
            raise EngineUnavailable(f"embedded: bad option value ({exc})") from None
        if self.settings.only not in ("", "landscape", "general", "pose"):
            raise EngineUnavailable(f"embedded: only={self.settings.only!r}; choose landscape, general or pose")
        if self.settings.steer not in ("landmarks", "mask"):
            raise EngineUnavailable(f"embedded: steer={self.settings.steer!r}; choose landmarks or mask")
        if self.settings.bust not in ("pair", "landscape"):
            raise EngineUnavailable(f"embedded: bust={self.settings.bust!r}; choose pair or landscape")
        if self.settings.outside not in ("landscape", "none"):
            raise EngineUnavailable(f"embedded: outside={self.settings.outside!r}; choose landscape or none")
        backend = self.settings.backend or None
        try:
            count = int(threads)
        except (TypeError, ValueError):
            raise EngineUnavailable(f"embedded: threads={threads!r}; give a whole number (0 = measure)") from None
        if count <= 0:
            count, medians = pick_threads(MODELS_DIR / POSE_FILE, backend, self.settings.bf16)
            log.info("embedded: %d thread(s) per model (pose model ms by threads: %s)", count,
                     ", ".join(f"{n}: {ms:.1f}" for n, ms in medians.items()) or "one core")
        self.threads = threads = count
        self._pair = SelfiePair(threads)  # bust mode's models; its landscape model also guards body mode
        self._pose = PoseSegmenter(threads=threads, bf16=self.settings.bf16, backend=backend)
        # below MediaPipe's 0.5: with a bust close to the camera, a whole body further back scores ~0.3;
        # a false hit costs one pose run, whose own presence score then rejects it
        # the detector reports faint hits too; only further people may be one (``_further``)
        self._detect = PoseDetector(threads=threads, min_score=min(self.settings.faint_detection,
                                                                    self.settings.min_detection), backend=backend)
        self._flow = PersonMotion()  # people waiting their turn (``alternate_ms``) move by their own flow
        self._pose_ms = 0.0  # recent time of one pose run here (moving average)
        self._pair_dropped = False  # the general model is too slow here (``pair_ms``)
        self._pair_probe = 0  # bust frames since its time was last measured while dropped
        # ``detect_lag``'s thread, and its own detector and pose model
        self._ahead: tuple[ThreadPoolExecutor, PoseDetector, PoseSegmenter] | None = None
        if self.settings.detect_lag < 0:
            raise EngineUnavailable(f"embedded: detect_lag={self.settings.detect_lag}; give 0 or more frames")


    @property
    def preferred_input(self) -> tuple[int, int]:
        # small people need pixels: the pose region is cut from the frame as sent
        return (self.settings.max_side, self.settings.max_side)

    def new_stream(self) -> EmbeddedStream:
        return EmbeddedStream()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "threads": self.threads, "settings": self.settings.__dict__}

    # ------------------------------------------------------------------ per frame
    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        ctx = EmbeddedStream() if stream is None else stream
        assert isinstance(ctx, EmbeddedStream), "a context from another engine"
        s = self.settings
        H0, W0 = rgb.shape[:2]
        scale = min(1.0, s.max_side / max(W0, H0))
        if scale < 1.0:
            rgb = cv2.resize(rgb, (round(W0 * scale), round(H0 * scale)), interpolation=cv2.INTER_AREA)
        H, W = rgb.shape[:2]
        tr = ctx.track
        if tr is None or tr.frame_size != (W, H):  # new stream, or its size changed: start afresh
            tr = ctx.track = _Track(frame_size=(W, H))
        k = min(1.0, s.out_side / max(W, H))
        out = (max(1, round(W * k)), max(1, round(H * k)))
        if s.only:
            return person_output(self._single(rgb, out), PERSON_CLASSES)
        tr.since_detect += 1
        tr.frames += 1
        following = tr.mode == "body" and bool(tr.bodies)
        if tr.ahead is not None and (not following or tr.now):
            # nobody followed any more: what it would decide is moot; or the framing changed: that is
            # decided on this frame (a person walking up to the camera is cut by it three frames later)
            tr.ahead = None
        if tr.search and following and sum(b.trial == 0 and b.shown > 0 for b in tr.bodies) >= tr.overlapped:
            # everyone who overlapped is shown again: the search for them is over.  Its detections (the
            # frame, both tiles, and the frame with the people followed painted out) cost several normal
            # frames, and live the frames after each came late or were skipped, for nobody left to find
            log.debug("embedded: everyone who overlapped is followed again: the search ends")
            # and nobody is behind anyone any more: a place kept for them (``_still_behind``) would make a
            # blob near it somebody (a figure painted on the wall beside the pair)
            tr.search, tr.behind = 0, []
        det: FrameDetections | None = None
        if tr.ahead is not None:
            if tr.frames >= tr.ahead[1]:
                if not tr.ahead[0].done():
                    log.debug("embedded: this frame waits for the detector's thread")
                det, tr.ahead = tr.ahead[0].result(), None
        elif (tr.mode == "body" and not tr.bodies) or \
                tr.since_detect >= (s.search_every if tr.search else s.redetect_every):
            tr.since_detect = 0
            # not while people take turns: a detection checked on a later frame then missed the one behind
            # after an overlap, and the landscape blob left for them was taken for nobody (docs/engines.md,
            # session 44)
            if following and s.detect_lag > 0 and not tr.now and not self._turns(len(tr.bodies)):
                tr.ahead = self._detect_ahead(rgb, tr), tr.frames + s.detect_lag
            else:
                det = FrameDetections(self._detect, rgb, tr.frames)
            tr.now = False
        if det is not None:
            people = self._redetect(rgb, tr, det)
            tr.busts = self._busts(people, tr, H) if tr.mode == "body" else []
        elif tr.posed_due is not None:
            self._look_along(tr)
        # the still-picture test works at output size; the models see the working frame (fed the smaller
        # output-size copy, the landscape model loses IoU on two people: docs/engines.md)
        small = cv2.resize(rgb, out, interpolation=cv2.INTER_AREA) if out != (W, H) else rgb
        tr.prev_grey, tr.grey = tr.grey, cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        tr.people = None
        if tr.mode == "body" and tr.bodies:
            prob = self._body(rgb, small, tr)
            if tr.again and (tr.prev_grey is None or _still_frame(tr.prev_grey, tr.grey, s.hold_grey)):
                # somebody first shown beside someone they touch: each one's pose run saw the others
                # painted out with their masks from before (none yet for the newcomer), and the masks would
                # settle over the next frames, visibly on a still picture: once more with this frame's, all
                # of them (none waits their turn)
                prob = self._body(rgb, small, tr, everyone=True)
            tr.again = False
        else:
            prob = self._bust(rgb, out, tr)
        # framing change (someone walks up to the camera, steps back, enters): the share of the frame
        # covered by people changes a lot; look again on the next frame instead of waiting
        cover = float(prob.mean())
        if tr.since_detect == 0:
            tr.cover = cover
        elif abs(cover - tr.cover) > s.rescan_cover * max(tr.cover, 0.02):
            tr.since_detect, tr.now = s.redetect_every, True
        if tr.hold is None:
            tr.hold = StillHold(s.hold_grey, s.hold_prob)
        prob = tr.hold(small, prob)
        result = person_output(prob, PERSON_CLASSES)
        if tr.mode == "body" and tr.people is not None and tr.people.shape == prob.shape:
            result.people = tr.people
        return result

    def _turns(self, people: int) -> bool:
        """Whether the pose runs of this many people take longer here than a frame leaves them
        (``alternate_ms``): they then take turns.  One person alone never does."""
        return people > 1 and 0 < self.settings.alternate_ms < self._pose_ms * people

    def _detect_ahead(self, rgb: np.ndarray, tr: _Track) -> Future[FrameDetections]:
        """Hand this frame to the detector's thread with what body mode's decisions will ask of it."""
        if self._ahead is None:
            # one thread, at the lowest priority, on a runtime that runs it in that thread (LiteRT: OpenVINO's
            # own threads would not be lowered): it takes the time the frames leave free, not theirs
            self._ahead = (ThreadPoolExecutor(1, thread_name_prefix="m2fp-detect", initializer=_lowest_priority),
                           PoseDetector(threads=1, min_score=self._detect.min_score, backend="litert"),
                           PoseSegmenter(threads=1, bf16=self.settings.bf16, backend="litert"))
        pool, detector, pose = self._ahead
        H, W = rgb.shape[:2]
        look_all = self._look_all(tr, W)
        squares: list[int] = []  # the tiles ``_further`` will look at (none when nobody more is looked for)
        if len(tr.bodies) < self.settings.max_bodies:
            if look_all and W >= WIDE * H:
                squares = [0, W - H]
            elif not look_all and W >= 1.6 * H:
                squares = [0 if (tr.scans + 1) % 2 else W - H]
        # and the square along the first person's row ``_further`` looks at
        square = self._along_turn(tr, W, H)
        own = rgb.copy()
        along = None if square is None else (self._painted(own, tr.bodies), square)
        det = FrameDetections(self._detect, own, tr.frames, tiles_planned=look_all, along=along)

        def presence(painted: np.ndarray, q: tuple[int, int, int]) -> float:
            return pose.run(crop(painted, _square_roi(q), PoseSegmenter.size)).presence
        return pool.submit(det.ahead, detector, squares, presence)

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead[0].shutdown(wait=True, cancel_futures=True)
            self._ahead = None
        super().close()

    def _single(self, rgb: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        """One shipped model on the whole frame, nothing else (the baselines of the table in docs/engines.md)."""
        if self.settings.only == "landscape":
            return self._landscape(rgb, out)
        if self.settings.only == "pose":
            return cv2.resize(self._pose(rgb), out, interpolation=cv2.INTER_LINEAR)
        return cv2.resize(self._pair.general(rgb), out, interpolation=cv2.INTER_LINEAR)

    def _landscape(self, rgb: np.ndarray, out: tuple[int, int]) -> np.ndarray:
        return cv2.resize(self._pair.landscape(rgb), out, interpolation=cv2.INTER_LINEAR)

    def _bust(self, rgb: np.ndarray, out: tuple[int, int], tr: _Track) -> np.ndarray:
        """The whole frame's people when no pose region speaks for them."""
        s = self.settings
        # body mode's last landscape answer is from before these frames: not reused when body mode comes
        # back (random-644: an empty answer from the first frame, reused six frames later, hid somebody)
        tr.outside_age = 10**9
        prob = self._landscape(rgb, out) if s.bust != "pair" else self._paired(rgb, out, tr)
        b = tr.front
        if b is not None:
            # the one in front of somebody just lost behind them, on: the pose model on their own region
            res = self._pose.run(crop(rgb, b.roi, PoseSegmenter.size))
            if res.presence < s.keep_presence:
                tr.front = None
            else:
                k = out[0] / rgb.shape[1]
                one = paste(res.mask, b.roi.scaled(k), out)
                # away from the two who overlap (the one in front, the one just lost behind them), body
                # mode's bar for the blobs: this is body mode between two detections, and a busy
                # background's patches score barely above one half (random-795: a circuit board's
                # capacitors, shown until the next detection).  On them, the landscape model's blobs as
                # they are (random-647: the one behind, unsure there, is most of what is shown of him)
                near = one >= 0.5
                for m in tr.behind:
                    near |= m
                prob = np.maximum(_confident_blobs(prob, s.outside_min_mean, keep=near), one)
                self._follow(res, b.roi, b)
        return prob

    def _paired(self, rgb: np.ndarray, out: tuple[int, int], tr: _Track) -> np.ndarray:
        """Bust mode's pair of selfie models, or the landscape model alone while the general one is too slow."""
        s = self.settings
        if s.pair_ms > 0:
            slow = self._pair.general_ms > (0.8 if self._pair_dropped else 1.0) * s.pair_ms
            if slow != self._pair_dropped:
                log.info("embedded: bust mode %s the general selfie model (%.1f ms a run here; pair_ms %.1f)",
                         "drops" if slow else "takes back", self._pair.general_ms, s.pair_ms)
                self._pair_dropped, self._pair_probe = slow, 0
        if self._pair_dropped:  # measured again now and then: the host may be less busy
            self._pair_probe += 1
            if self._pair_probe >= PAIR_PROBE_EVERY:
                self._pair_probe = 0
                self._pair.time_general(rgb)
            return self._landscape(rgb, out)
        return self._pair(rgb, out, tr.squares)

    def _redetect(self, rgb: np.ndarray, tr: _Track, det: FrameDetections) -> list[Person]:
        """Choose the mode from the pose detector; a healthy track is only left for a real reason.
        Returns the whole frame's detections that count as a person.

        ``det`` answers for ``rgb`` or, while people are followed, for a frame up to ``detect_lag``
        frames before it (the pose model then checks them on ``rgb``)."""
        tr.front = None
        H, W = rgb.shape[:2]
        everyone = det.whole()
        people = self._strong(everyone)
        # the detector letterboxes a wide frame to a square: people further back get few pixels there,
        # and beside a bigger person they are not reported at all; square tiles give them twice as many
        wide = W >= WIDE * H
        if tr.mode == "body" and tr.bodies:
            # on a wide frame the tiles also measure people the letterboxed frame shrinks, and report the
            # ones it leaves out; they cost two detector runs, so they run only when needed
            asked = False  # the tiles were needed to tell whether a followed person still fits

            def tiled() -> list[Person]:
                return det.tiles() if wide else []

            def strong_tiles() -> list[Person]:
                nonlocal asked
                asked = True
                return self._strong(tiled())
            # a tracked person (the pose model still sees them) stays tracked unless the detector says
            # they came so close that the frame cuts them, and the pose model's own landmarks agree (a wide
            # pose, a kick, makes the detector's body circle too big).  A missed detection (the detector
            # favours the person nearest the camera) does not end a good track.
            for b in list(tr.bodies):
                if b.whole:
                    continue
                if self._cut_by_frame(b.roi, people, H) and self._cut_by_frame(b.roi, people + strong_tiles(), H):
                    log.debug("embedded: a tracked person no longer fits the frame")
                    tr.bodies.remove(b)
            if not tr.bodies:
                log.debug("embedded: bust mode (the tracked people came close)")
                tr.mode = "bust"
                return people
            if len(tr.bodies) < self.settings.max_bodies:
                self._further(rgb, tr, det, tiled, asked)
            return people
        bodies = [p for p in people if self._fits(p, H)]
        on_tiles: list[Person] = []
        if wide and (len(bodies) == len(people) or tr.search):
            # nobody close to the camera, or people just overlapped (the letterboxed frame takes the two
            # for one person too big to fit): look for everyone on the tiles too
            on_tiles = det.tiles()
            bodies += [p for p in self._strong(on_tiles) if self._fits(p, H)]
        # and people in a wide pose (a kick), whose body circle the detector makes too big
        bodies += [p for p in people + self._strong(on_tiles)
                   if not self._fits(p, H) and self._fits(p, H, NEARLY_FITS)]
        seen: list[_Body] = []
        found = self._confirmed(rgb, bodies, self.settings.max_bodies, close=not tr.search, seen=seen)
        painted = rgb  # the frame with the people ``seen`` painted out, once they are looked beside
        if seen and len(found) < self.settings.max_bodies:
            # somebody standing partly behind the people found: the detector reports the one in front only.
            # With those painted out it sees the one behind (on a wide frame: the tiles), now, so a still
            # picture does not change a few frames into the stream when they are found
            painted = self._painted(rgb, seen)
            behind = self._everyone(painted)
            more = self._confirmed(painted, [p for p in behind if p.score >= self.settings.more_detection
                                             and self._fits(p, H)],
                                   self.settings.max_bodies - len(found), others=seen, whole=True, close=True)
            if more:
                log.debug("embedded: %d more behind the people found", len(more))
                found += more
        if not found and wide and not on_tiles and people:
            if any(self._fits(p, H, NEARLY_FITS) for p in people):
                # the letterboxed frame's rough body circle puts someone just beyond the frame's bottom: a
                # wide pose (arms and legs spread) makes that circle too big.  The tiles measure better; the
                # pose model's own landmarks must then put the whole body in the frame
                on_tiles = det.tiles()
            else:
                # a bust; beside them the letterboxed frame reports nobody further back (the detector favours
                # the person nearest the camera).  One tile per detection, in turn, keeps bust frames short;
                # both on a stream's first frame, so a still picture does not change when they are found
                tr.scans += 1
                on_tiles = det.tiles() if tr.frames <= 1 else det.tile(0 if tr.scans % 2 else W - H)
            whole = [p for p in self._strong(on_tiles) if self._fits(p, H)
                     and _in_frame(p.hips, W, H)]  # a tile's stray hit can lie beyond it
            found = self._confirmed(rgb, whole, self.settings.max_bodies, whole=True)
            if found:
                log.debug("embedded: the tiles find %d whole bodies the whole frame took for cut", len(found))
        if not found and all(self._fits(p, H) for p in people):
            # nobody the detector is sure of, or only whole bodies the pose model said were nobody (a
            # street's false hits outscore a small person in dim light): a person in dark clothes on a busy
            # background scores as low as that background's false hits.  The faintest are taken when the
            # pose model is sure of them and its own landmarks put their whole body in the frame (the
            # detector's guess of a faint hit's size is poor, and a bust must stay in bust mode)
            if not on_tiles and W > H:  # a frame of any width: the tiles give a small person more pixels
                on_tiles = det.tiles()
            faint = [p for p in everyone + on_tiles if self._fits(p, H) and not any(p is q for q in bodies)]
            if faint:
                # a few of them (a false hit often lies on the person, with a box that misses them); nothing
                # remembered: the person may stand where a false hit was
                found = self._confirmed(rgb, faint, 1, tries=FAINT_TRIES, presence=self.settings.sure_presence,
                                        whole=True)
                log.debug("embedded: nobody sure; %d faint detections: %s", len(faint),
                          "a whole body" if found else "nobody")
            if not found:
                found = self._on_faint_blobs(rgb)
        elif not found and W > H:
            found = self._beside_bust(rgb, people, [p for p in everyone + on_tiles
                                                    if p.score < self.settings.min_detection and self._fits(p, H)
                                                    and _in_frame(p.hips, W, H)])
        if not found:
            if tr.mode != "bust":
                log.debug("embedded: bust mode (%d people, none whole)", len(people))
            tr.mode, tr.bodies = "bust", []
            return people
        beside = len(found)  # the people found before the faint detections beside them are looked at
        if len(found) < self.settings.max_bodies and (on_tiles or wide):
            # somebody the detector barely sees beside them: found now, not a few frames into the stream, so a
            # still picture does not change when they appear
            if not on_tiles:
                on_tiles = det.tiles()
            # a detection inside a region found is that person, unless the pose model saw everyone found
            # (``seen``, painted out in ``painted``): then their hips say it (the region of a person in a wide
            # pose, a kick, holds the hips of somebody beside them: random-1061, shown four frames into a still
            # opening)
            known = seen if seen and len(seen) == len(found) else []
            faint = [p for p in everyone + on_tiles if p.score < self.settings.min_detection and self._fits(p, H)
                     and not (any(_followed(p, b) for b in known) if known else
                              any(_inside(p.hips, r) for r in found))]
            more = self._confirmed(painted if known else rgb, faint, 1, tries=1,
                                   presence=self.settings.sure_presence, whole=True, others=known or None)
            if more and not any(box_iou(more[0].box(), r.box()) >= self.settings.same_body for r in found):
                log.debug("embedded: a faint detection beside them is somebody too")
                found += more
        if found and len(found) == beside < self.settings.max_bodies and len(seen) in (0, len(found)) \
                and not tr.search:
            # nobody besides the people found so far: somebody beside them the detector does not see at the
            # frame's scale (a man in grey, the whole of him in the frame), on squares the size of the first
            # one's region, when the pose model is sure of them (``painted`` above: the same people).  People
            # found another way (the tiles, a faint detection, a blob) are seen by the pose model first.  Not
            # while people who overlapped are looked for (``_along_turn``): a square then holds part of the
            # one behind, taken for somebody else
            if not seen:
                seen = [_seen_as(self._pose.run(crop(rgb, r, PoseSegmenter.size)), r, (H, W)) for r in found]
                painted = self._painted(rgb, seen)
            squares = _along_squares(seen[0].roi, W, H)
            more = self._confirmed(painted, self._alongside(painted, squares), self.settings.max_bodies - len(found),
                                   others=seen, presence=self.settings.sure_presence, whole=True, close=True)
            if not more:
                more = self._posed_along(painted, squares, seen, found, self.settings.max_bodies - len(found))
                # not a bust the pose model takes for a whole body (it draws legs inside the frame) that the
                # detector says the frame cuts: followed on the first frame, it was dropped at the next
                # detection, and a still picture's mask changed there (random-1028).  A circle that nearly fits
                # is a wide pose's (a kick, dropped here and shown only after the next detection: random-812)
                more = [r for r in more if not self._cut_by_frame(r, people, H, NEARLY_FITS)]
            if more:
                log.debug("embedded: %d more along the row of the first found", len(more))
                found += more
        tr.mode, tr.bodies = "body", [_Body(roi) for roi in found]
        log.debug("embedded: body mode, regions %s", [b.roi for b in tr.bodies])
        if len(found) < self.settings.max_bodies:
            # somebody the detector barely sees (``faint_detection``) is only looked for once the people
            # found are followed: soon, and on both tiles
            tr.look_all, tr.since_detect = True, max(0, self.settings.redetect_every - LOOK_AGAIN)
        return people

    def _on_faint_blobs(self, rgb: np.ndarray) -> list[Roi]:
        """The region of a whole body the detector does not see at all, found on the landscape model's faint
        blobs, or none.

        A small person in grey or dull colours on a busy background can get no detection anywhere near them,
        on the whole frame or the tiles, for seconds; the landscape model still lights them up faintly (well
        below one half), and the pose model on a region around that blob is sure of them.  Only upright
        blobs (a standing body, not a bust's shoulders), the largest first, and a person only when the pose
        model is sure of them and its landmarks put their whole body, legs too, in the frame.
        """
        land = self._pair.landscape(rgb)
        h, w = land.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats((land >= FAINT_BLOB).astype(np.uint8), connectivity=8)
        kx, ky = rgb.shape[1] / w, rgb.shape[0] / h
        upright = [j for j in range(1, n) if stats[j, cv2.CC_STAT_AREA] >= self.settings.someone_share * h * w
                   and stats[j, cv2.CC_STAT_HEIGHT] * ky >= UPRIGHT * stats[j, cv2.CC_STAT_WIDTH] * kx]
        upright.sort(key=lambda j: -stats[j, cv2.CC_STAT_AREA])
        for j in upright[:FAINT_BLOBS]:
            x, y, bw, bh = stats[j, :4]
            roi = Roi.around(x * kx, y * ky, (x + bw) * kx, (y + bh) * ky, 0.25)
            hit = self._somebody(rgb, roi, self.settings.sure_presence, None, whole=True, legs=True)
            if hit is not None:
                log.debug("embedded: nobody detected; a faint landscape blob is a whole body")
                return [roi]
        return []

    def _beside_bust(self, rgb: np.ndarray, people: list[Person], faint: list[Person]) -> list[Roi]:
        """The region of a whole body beside the bust the detector is surest of, or none.

        The detector, anchored on faces, can report the bust near the camera alone, and the selfie models
        light up nothing on a small person in grey beside them (random-790: a man beside an astronaut,
        missed for 80 frames).  The pose model on the square of the frame away from that bust finds them;
        else on the best of the ``faint`` detections (that fit the frame, their hips in it): somebody standing
        close to the bust (Messi mid-kick, partly behind a bust's shoulder) is cut by that square, and the
        detector's hit on them is faint.  Not the bust: its landmarks can put a whole body, legs too, below a bust's
        face (framing-bust), and their nose is then in the detector's face box.
        """
        H, W = rgb.shape[:2]
        best = max(people, key=lambda p: p.score)
        x0 = 0 if best.box[0] + best.box[2] > W else W - H
        regions = [Roi(x0 + H / 2, H / 2, H)]
        if faint:
            # one faint detection at most (each costs a pose run or two on a bust-mode frame, which live came late)
            regions.append(_region(max(faint, key=lambda q: q.score)))
        for roi in regions:
            hit = self._somebody(rgb, roi, self.settings.sure_presence, None, whole=True, legs=True)
            if hit is None:
                continue
            nose, _ = _landmark_at(*hit, 0)
            if any(_inside(nose, Roi.around(*p.box, 0.5)) for p in people):
                continue
            log.debug("embedded: a whole body beside the bust")
            return [hit[1]]
        return []

    def _busts(self, people: list[Person], tr: _Track, H: int) -> list[tuple[float, float, float, float]]:
        """The face boxes of the detections that are a bust beside the whole bodies (``_Track.busts``).

        A bust near the camera and a whole body further back: the whole body's square region cuts the bust
        (the pose model there sees the whole body only), and the bust's blob outside it may be a thin strip.
        The detector, anchored on faces, is sure of a bust (busy backgrounds' false hits score below
        ``more_detection``).  Not a bust: a detection whose face is a whole body's (a wide pose makes the
        detector's body circle too big; the tiles' circle fits), or of a followed person (``_theirs``; not
        one on trial, which may be a false hit around the bust).
        """
        whole = [p.box for p in people if self._fits(p, H)]
        followed = [b for b in tr.bodies if b.trial == 0]
        return [p.box for p in people if p.score >= self.settings.more_detection and not self._fits(p, H)
                and not any(box_iou(p.box, w) >= self.settings.same_body for w in whole)
                and not any(_theirs(p, b) for b in followed)]

    def _alongside(self, rgb: np.ndarray, squares: list[tuple[int, int, int]],
                   run: Callable[[tuple[int, int, int]], list[Person]] | None = None) -> list[Person]:
        """The detector's hits on ``squares`` (``_along_squares``) that fit the frame and score
        ``more_detection``, best first.

        The detector letterboxes its input to 224x224: beside a bigger person, or small in a wide frame, a
        man in grey gets no hit on the frame or its tiles (random-845, -842), and on a square about his
        own height scores 0.9.  A person beside another is about their size.  ``rgb`` should have the
        people followed painted out (each square holds part of them); ``run``: the detector on one square
        (``FrameDetections.along``), else it runs here on ``rgb``."""
        H = rgb.shape[0]

        def here(q: tuple[int, int, int]) -> list[Person]:
            return self._detect.on_square(rgb, *q)
        hits = [p for q in squares for p in (run or here)(q)
                if p.score >= self.settings.more_detection and self._fits(p, H)
                and q[0] <= p.hips[0] < q[0] + q[2] and q[1] <= p.hips[1] < q[1] + q[2]]
        log.debug("embedded: along the row %s: %s", squares, [(round(p.score, 2), p.hips) for p in hits])
        return sorted(hits, key=lambda p: -p.score)

    def _posed_along(self, painted: np.ndarray, squares: list[tuple[int, int, int]], others: list[_Body],
                     regions: list[Roi], most: int) -> list[Roi]:
        """Regions of up to ``most`` whole bodies the pose model itself finds on ``squares`` (``painted``: the
        people in ``others`` painted out), when the detector found nobody there.

        On a busy picture a man in grey or black gets no detector hit on any square (random-893's graffiti,
        random-845), and the pose model, on a square that holds him, is sure of him.  A hit must pass what a
        faint detection must (``sure_presence``, the whole body in the frame, legs seen) and not be the region
        of one of the people followed (``regions``: one just found has no hips yet)."""
        found: list[Roi] = []
        for q in squares:
            if len(found) >= most:
                break
            hit = self._somebody(painted, _square_roi(q), self.settings.sure_presence,
                                 others or None, whole=True, legs=True)
            if hit is None or any(box_iou(hit[1].box(), r.box()) >= self.settings.same_body for r in regions + found):
                continue
            found.append(hit[1])
        log.debug("embedded: the pose model along the row %s: %s", squares, found)
        return found

    def _look_along(self, tr: _Track) -> None:
        """The pose model's look at the square along the row that the last detection found nobody on
        (``_further``), on that detection's picture, a frame later."""
        due, tr.posed_due = tr.posed_due, None
        if due is None or tr.mode != "body" or not tr.bodies or len(tr.bodies) >= self.settings.max_bodies:
            return
        seen, square = due
        posed = self._posed_along(seen, [square], tr.bodies, [b.roi for b in tr.bodies], 1)
        if posed:
            tr.bodies.append(_Body(posed[0], trial=self.settings.trial_frames))

    def _along_turn(self, tr: _Track, width: int, height: int) -> tuple[int, int, int] | None:
        """The square along the first followed person's row that body mode's next detection looks at (one
        in turn: ``_further``), or None when it looks at none (nobody more is looked for, or the search
        after an overlap is on)."""
        if tr.search or not tr.bodies or len(tr.bodies) >= self.settings.max_bodies:
            return None
        squares = _along_squares(tr.bodies[0].roi, width, height)
        return squares[(tr.along + 1) % len(squares)] if squares else None

    def _everyone(self, rgb: np.ndarray) -> list[Person]:
        """The detector's hits on a frame, on both of its tiles when it is wide (``WIDE``)."""
        H, W = rgb.shape[:2]
        return self._detect.on_tiles(rgb) if W >= WIDE * H else self._detect(rgb, max_people=6)

    def _strong(self, people: list[Person]) -> list[Person]:
        """The detections that count as a person by the detector's score alone."""
        return [p for p in people if p.score >= self.settings.min_detection]

    def _further(self, rgb: np.ndarray, tr: _Track, det: FrameDetections, tiled: Callable[[], list[Person]],
                 tiles_run: bool) -> None:
        """Look for somebody else whose whole body is in the frame (walked in, or was hidden by the first).

        Both tiles when the landscape model sees a person outside the regions, people who overlapped are
        to be found again, or body mode just began; else on 16:9 one tile per detection, in turn, besides
        the whole frame's detections.  One candidate checked with the pose model per detection at most, so
        a detecting frame stays short.  A faint one (below the detector's bar) only when the pose model is
        sure of it: the person the detector barely sees is then found, and a busy background's false hits,
        which score as low, are not.  With nobody new at all, the pose model looks at the square along the row
        itself (``_posed_along``).
        """
        s = self.settings
        H, W = rgb.shape[:2]
        extra: list[Person] = []
        search = tr.search > 0
        # the square along the row looked at below, decided before this detection counts as a search (as
        # ``_detect_ahead`` decides it when the frame goes to the detector's thread)
        square = self._along_turn(tr, W, H) if det.tiles_planned is None else det.along_planned
        look_all = self._look_all(tr, W) if det.tiles_planned is None else det.tiles_planned
        tr.search = max(0, tr.search - 1)
        if tiles_run or look_all:
            tr.look_all = False
            extra = tiled()
        elif W >= 1.6 * H:  # 16:9: room for people the letterboxed detection leaves out
            tr.scans += 1
            extra = det.tile(0 if tr.scans % 2 else W - H)
        # after people overlapped, someone is known to be there: the first person's bar is enough.  Below the
        # bar (busy backgrounds' false hits live there, and so does a person in dark clothes on one), only
        # when both pose runs are sure
        bar = s.min_detection if search else s.more_detection
        tr.rejected = [r for r in tr.rejected if r[1] > tr.frames]
        candidates = [p for p in det.whole() + extra if self._fits(p, H, NEARLY_FITS) and not _rejected(p, tr, H)]
        new = [p for p in candidates if not any(_followed(p, b) for b in tr.bodies)]
        if not new and search:
            # just after two people parted the hips of the one behind are still within reach of the one in
            # front's: a detection there is taken for the one followed, and the one behind stayed lost until
            # they were well apart.  Another detection beside the one that best matches a followed person's
            # hips may be them: checked with that person painted out
            new = _beside_followed(candidates, tr.bodies)[:1]
        more: list[Person] = []
        seen: np.ndarray | None = None  # the frame with the people followed painted out
        if search and tr.bodies and not any(p.score >= bar for p in new):
            # and when the one behind has stepped out, the detector can still report the one followed alone,
            # on the frame and the tiles (random-831: two men in grey, one missing for 28 frames once they
            # parted, the detector's faint hits around the one followed): with the people followed painted
            # out it sees them
            seen = self._painted(rgb, tr.bodies)
            more = [p for p in self._everyone(seen)
                    if self._fits(p, H, NEARLY_FITS) and not any(_followed(p, b) for b in tr.bodies)]
            log.debug("embedded: with the people followed painted out: %s", [round(p.score, 2) for p in more])
            new += more
        along: list[Person] = []
        # one square along the first person's row, in turn (``_alongside``; decided when the frame went to the
        # detector's thread, and computed there, when it did), a candidate when nobody else is new, checked
        # as a faint hit is
        def paint() -> np.ndarray:
            return self._painted(det.rgb, tr.bodies)
        if square is not None:
            tr.along += 1
            along = [p for p in self._alongside(det.rgb, [square], lambda q: det.along(q, paint))
                     if not any(_followed(p, b) for b in tr.bodies) and not _rejected(p, tr, H)]
            # the one candidate checked: a hit on the square, with the people followed painted out, is a
            # candidate when nobody else is new or it scores above them all (random-1098: a man standing apart
            # scored well there, and a weaker hit on the one followed's chest was the one checked, and
            # rejected, detection after detection while he stayed missing)
            along = along[:1] if along and (not new or along[0].score > max(p.score for p in new)) else []
            new = along or new
        if not new:
            if square is not None and (det.posed is None or det.posed >= ALONG_POSED):
                # nobody the detector sees on the square either: the pose model looks at it itself, unless
                # its look on the detector's thread saw nobody there.  On this frame's picture, but during
                # the next frame (this one has had the detector's runs, and with this look too the masks
                # after it came late live).  The next frame's own picture is not the same decision: the man
                # it finds can score just above ``sure_presence``, and painted out by the last masks a man
                # moving fast shows part of himself there (random-642, footage-dark-graffiti: docs/engines.md).
                # A detection of this very frame has painted the people out already, for the detector's look
                tr.posed_due = det.painted(paint) if det.rgb is rgb else self._painted(rgb, tr.bodies), square
            return
        best = max(new, key=lambda q: q.score)
        held: list[tuple[PoseResult, Roi]] = []
        if seen is None:
            seen = self._painted(rgb, tr.bodies)
        need = s.min_presence if best.score >= bar and not along else s.sure_presence
        found = self._confirmed(seen, [best], 1, tries=1, presence=need, others=tr.bodies, followed=held)
        log.debug("embedded: somebody else? detection %.2f at (%.0f, %.0f): %s", best.score, *best.hips,
                  "followed" if found else "no")
        side = min((b.roi.side for b in tr.bodies), default=0.0)
        if not found and not held and _region(best).side < SMALL_HIT * side:
            again = Roi(best.hips[0], best.hips[1] - AGAIN_UP * side, AGAIN_SIDE * side)
            hit = self._somebody(seen, again, need, tr.bodies, not self._fits(best, H), followed=held)
            log.debug("embedded: ... on a region the size of the people followed: %s", "followed" if hit else "no")
            if hit is not None:
                found = [hit[1]]
        if not found and held and not any(best is p for p in more):
            # not on a detection of the painted frame: the person followed found there is the one in front,
            # where their paint misses them, and that region is not theirs to grow to
            self._regrow(rgb, tr, *held[-1])
        if found:
            # while people overlap someone is known to be there: one frame of trial is enough
            tr.bodies.append(_Body(found[0], trial=min(1, s.trial_frames) if search else s.trial_frames))
        elif not search:
            # a false hit (busy backgrounds' come back at the same place): not checked again for a while, so
            # the next detection checks another.  Not while people overlap: there a detection between two
            # people is rejected, and the one behind emerges right there
            tr.rejected = (tr.rejected + [(best.hips, tr.frames + REJECTED_FRAMES)])[-8:]

    def _regrow(self, rgb: np.ndarray, tr: _Track, res: PoseResult, roi: Roi) -> None:
        """A detection the pose model took for somebody followed, in ``roi`` (settled on its mask), bigger
        than their region: if it is their last mask grown (``_grown``), the region is theirs.

        Their region can shrink onto part of them (the pose model left out a kicking leg, and the region is
        drawn from the mask).  ``_body`` mends that when a new track turns out to be them grown, but a
        detection whose settled hips are theirs is taken for them before it becomes a track, and the leg
        stayed missing for as long as the hips matched (footage-crossing, people taking turns).  Asked
        again with only the others painted out: painted, their own shrunk mask hid the part they share.
        """
        for b in tr.bodies:
            if b.trial or b.last_one is None or roi.side < GROWN * b.roi.side or not _is_followed(res, roi, [b]):
                continue
            out = (b.last_one.shape[1], b.last_one.shape[0])  # compared with their last mask, at its size
            k = out[0] / rgb.shape[1]
            others = [o for o in tr.bodies if o is not b]
            again = self._pose.run(crop(self._painted(rgb, others), roi, PoseSegmenter.size))
            if again.presence < self.settings.min_presence:
                return
            new = paste(again.mask, roi.scaled(k), out) >= 0.5
            if _grown(new, b.last_one >= 0.5, [o.last_one >= 0.5 for o in others if o.last_one is not None]):
                log.debug("embedded: a followed person's region grown to a detection of them")
                b.roi, b.last_centre, b.steps, b.placed = roi, (roi.cx, roi.cy), [], None
            return

    def _look_all(self, tr: _Track, width: int) -> bool:
        """Whether body mode's next detection looks for further people on both tiles (``_further``)."""
        return tr.search > 0 or tr.look_all or self._someone_else(tr, width)

    def _someone_else(self, tr: _Track, width: int) -> bool:
        """Whether the landscape model's last confident blobs hold a person outside the followed regions."""
        if tr.outside is None:
            return False
        h, w = tr.outside.shape
        k = w / width
        free = tr.outside >= 0.5
        for b in tr.bodies:
            x0, y0, x1, y1 = b.roi.scaled(k).box()
            free[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = False
        return int(np.count_nonzero(free)) >= self.settings.someone_share * h * w

    def _confirmed(self, rgb: np.ndarray, bodies: list[Person], most: int, tries: int | None = None,
                   presence: float | None = None, others: list[_Body] | None = None, whole: bool = False,
                   close: bool = False, seen: list[_Body] | None = None,
                   followed: list[tuple[PoseResult, Roi]] | None = None) -> list[Roi]:
        """The regions of up to ``most`` detections the pose model confirms, best first, one per person.

        A busy background gives the detector false hits that can outscore a small real person;
        the pose model's own presence score tells them apart (mostly: people besides the first need a
        higher detector score too).  The same person found on the whole frame and on a tile counts once.
        ``others``: people followed already (a region between two people gets the nearer one's mask: that
        is not somebody new).  ``whole``: the pose model's landmarks must also put the whole body in the frame.
        ``close``: people may stand partly behind one another (not while they cross: there the one behind is
        partly hidden and followed along their path, ``_look_behind``); ``seen`` then receives them as the
        pose model saw them.  ``followed`` receives the pose runs that found one of ``others``.
        """
        found: list[Roi] = []
        # ``close``: the people confirmed so far as the pose model saw them.  Somebody standing partly behind
        # one of them has their hips inside that one's region, and a region around them holds the other's
        # hips too: the one seen is painted out for the next, and a detection at their hips is them again
        # (frame and tile).  Else a detection inside a region found is that person
        seen = [] if seen is None else seen
        known = [b for b in others or [] if b.hips is not None] if close else []
        tried = 0
        bar = self.settings.min_presence if presence is None else presence
        for p in sorted(bodies, key=lambda q: -q.score):
            if len(found) >= most or tried >= (self.settings.verify_max + most - 1 if tries is None else tries):
                break
            if found and p.score < self.settings.more_detection:
                # the first person may be small and far away (a low score); anyone besides needs more
                break
            roi = _region(p)
            if any(_near_hips(p.hips, b) for b in known + seen) or not close and any(
                    _inside(p.hips, r) or box_iou(roi.box(), r.box()) >= self.settings.same_body for r in found):
                continue
            tried += 1
            # a detection whose body circle ends just beyond the frame's bottom (``NEARLY_FITS``: a wide pose)
            # is a whole body if the pose model's own landmarks say so
            wide = not self._fits(p, rgb.shape[0])
            hit = self._somebody(self._painted(rgb, seen), roi, bar, (others or []) + seen or None, whole or wide,
                                 legs=wide, followed=followed)
            if hit is not None:
                # a region more than RAN_OFF frames high is dropped by ``_body`` before it is settled: such a
                # detection (a false hit's huge body circle over a small person, whom its mask found) is
                # followed from the region it settled on
                found.append(hit[1] if roi.side > RAN_OFF * rgb.shape[0] else roi)
                if close:
                    seen.append(_seen_as(*hit, rgb.shape[:2]))
        return found

    def _somebody(self, rgb: np.ndarray, roi: Roi, bar: float, others: list[_Body] | None,
                  whole: bool, legs: bool = False,
                  followed: list[tuple[PoseResult, Roi]] | None = None) -> tuple[PoseResult, Roi] | None:
        """The pose model's result and its region if it finds somebody new in ``roi`` (``_confirmed``'s
        rules), else None.  ``legs``: the whole body must also show its legs (``_legs_seen``: a bust's
        landmarks can be drawn inside the frame).  ``followed`` receives a run that found one of ``others``."""
        res = self._pose.run(crop(rgb, roi, PoseSegmenter.size))
        # the detector's rough region can cut the person badly (just after two people parted, the one who was
        # behind: unsure there, sure on the region their own mask gives); a middling answer gets that second
        # look, and must then be sure of them
        unsure = res.presence < bar
        if unsure and (res.presence < SECOND_LOOK or self.settings.sure_presence <= bar):
            return None
        if others and _is_followed(res, roi, others):
            if followed is not None:
                followed.append((res, roi))
            return None
        # the landmarks on the detector's rough region may put a whole body in a wide pose beyond the frame's
        # bottom, and settled on their mask inside it: whole on either region
        whole_here = not whole or not unsure and _whole_body(res, roi, rgb.shape[0], self.settings.fits_slack, legs)
        # a new track is settled on its own mask at once (``_body``): a false hit on a busy background
        # often passes on the detector's rough region and falls apart there, which left the first frame
        # of a stream without the real person, found one frame later
        settled = self._next_region(res, roi)
        if settled is not None and settled != roi:
            look = self._settle(rgb, res, roi, settled,
                                self.settings.sure_presence if unsure else bar - SETTLED_SLACK)
            if look is None:
                log.debug("embedded: detection rejected once settled on its mask")
                return None
            again, settled = look
            if others and _is_followed(again, settled, others):
                if followed is not None:
                    followed.append((again, settled))
                return None
            if not whole_here and not _whole_body(again, settled, rgb.shape[0], self.settings.fits_slack, legs):
                return None
            return again, settled
        return None if unsure or not whole_here else (res, roi)

    def _second_look(self, rgb: np.ndarray, res: PoseResult, roi: Roi,
                     bar: float) -> tuple[PoseResult, Roi] | None:
        """The pose model's result on MediaPipe's own region (the landmarks') for a person it was sure of on
        ``roi`` and lost on the region their mask gives, if it scores ``bar`` there; else None.

        Somebody partly behind a person painted out has a mask without the part the paint hides (their
        head, say), and a region cut from that mask can cut them off there: the pose model, which needs a
        head, is then sure of nobody.  The landmarks place the whole body, the hidden parts too.  Their hips
        must be in the frame: a false hit in a corner (a region mostly beyond the frame, its replicated
        border) can put a body there.
        """
        s = self.settings
        if s.steer != "mask" or res.presence < s.sure_presence:
            return None
        region = _region_from_landmarks(res.landmarks, roi, s.landmark_scale)
        if not _in_frame((region.cx, region.cy), rgb.shape[1], rgb.shape[0]):
            return None
        look = self._pose.run(crop(rgb, region, PoseSegmenter.size))
        if look.presence < bar:
            return None
        log.debug("embedded: lost on the region of their mask, found on the region of their landmarks")
        return look, region

    def _settle(self, rgb: np.ndarray, res: PoseResult, roi: Roi, region: Roi,
                bar: float) -> tuple[PoseResult, Roi] | None:
        """The pose model's result and region for the person of ``res`` (found in ``roi``) settled on
        ``region``, the one their mask gives, if it scores ``bar`` there; else on the landmarks' region
        (``_second_look``); else None."""
        again = self._pose.run(crop(rgb, region, PoseSegmenter.size))
        return (again, region) if again.presence >= bar else self._second_look(rgb, res, roi, bar)

    def _settled(self, rgb: np.ndarray, res: PoseResult, roi: Roi) -> Roi:
        """The region to follow somebody the pose model found in ``roi`` on: the one their mask gives, or,
        if they are lost there, MediaPipe's own (the landmarks').  A region around a landscape blob that
        covers part of a person (the model lit up a grey man's chest and arms) gives a mask of that part,
        and the region cut from it lost him on the next frame (random-647)."""
        region = self._next_region(res, roi)
        if region is None or region == roi:
            return roi
        look = self._settle(rgb, res, roi, region, self.settings.min_presence)
        return region if look is None else look[1]

    def _next_region(self, res: PoseResult, roi: Roi) -> Roi | None:
        """The region the person in ``res`` (found in ``roi``) fills, by the ``steer`` rule."""
        s = self.settings
        return _region_from_landmarks(res.landmarks, roi, s.landmark_scale) if s.steer == "landmarks" \
            else _region_from_mask(res.mask, roi, s.margin)

    def _fits(self, p: Person, H: int, slack: float = 1.0) -> bool:
        """Whether detection ``p``'s body circle ends within the frame's bottom (+ ``slack`` x fits_slack), its
        hips in the frame: hips above its top are a figure painted on a wall, a person would be out of the
        picture (footage-crossing-graffiti: the cartoon over the wall, found when a detection fell on another
        frame)."""
        return p.hips[1] >= 0 and p.hips[1] + 0.8 * p.body_radius <= H * (1.0 + slack * self.settings.fits_slack)

    def _cut_by_frame(self, roi: Roi, people: list[Person], H: int, slack: float = 1.0) -> bool:
        """Whether the detector's ``people`` with their hips in ``roi`` say the frame cuts whoever is there:
        some are, and none ``_fits`` a frame ``H`` high (the rule a followed person leaves body mode by), with
        ``slack``."""
        mine = [p for p in people if _inside(p.hips, roi)]
        return bool(mine) and not any(self._fits(p, H, slack) for p in mine)

    def _body(self, rgb: np.ndarray, small: np.ndarray, tr: _Track, everyone: bool = False) -> np.ndarray:
        """``rgb``: the working frame (regions are cut from it); ``small``: the same at output size;
        ``everyone``: each person's pose model runs, even on a host too slow for that (``alternate_ms``)."""
        s = self.settings
        H, W = rgb.shape[:2]
        out = (small.shape[1], small.shape[0])
        k = out[0] / W
        prob: np.ndarray | None = None
        inside = np.zeros((out[1], out[0]), bool)
        rejected = False  # a detection the pose model says is nobody (or a bust taken for a whole body)
        masks: dict[int, np.ndarray] = {}  # id(body) -> its person at output size
        blurred = cv2.GaussianBlur(tr.grey, (3, 3), 0) if tr.grey is not None else None
        ones: dict[int, np.ndarray] = {}  # id(body) -> its person at output size, the probability

        def shown(b: _Body, one: np.ndarray, roi: Roi) -> None:
            """Person ``b``'s mask ``one`` (output size) goes into the frame's map; ``roi``: where it was cut."""
            nonlocal prob
            masks[id(b)] = one >= 0.5
            ones[id(b)] = one
            prob = one.copy() if prob is None else np.maximum(prob, one, out=prob)
            x0, y0, x1, y1 = roi.scaled(k).box()
            inside[max(0, y0 + 1):max(0, y1 - 1), max(0, x0 + 1):max(0, x1 - 1)] = True

        tr.turn += 1
        # a host too slow for every person's pose run in one frame interval: a mask late by a frame costs
        # far more than one person's mask carried a frame on by their speed
        alternate = not everyone and self._turns(len(tr.bodies))
        for i, b in enumerate(list(tr.bodies)):
            roi = b.roi
            if roi.side > RAN_OFF * H:
                # a mask that spills into the crop's replicated border (a bust cut by the frame's bottom,
                # taken for a whole body) grows the region, and the region the mask, frame after frame; the
                # pose model still scores the crop (random-1025: the region ends far below the frame)
                log.debug("embedded: a region ran off the frame: person lost")
                tr.bodies.remove(b)
                continue
            if alternate and b.last_one is not None and b.last_centre is not None and b.trial == 0 \
                    and tr.turn % len(tr.bodies) != i:
                one = b.last_one
                # by the flow inside their last mask, without the pixels other people's last masks hold
                # (there the flow is partly theirs), while most of it is left; else by their region's speed
                person = one >= 0.5
                own = person.copy()
                for o in tr.bodies:
                    if o is not b and o.last_one is not None and o.last_one.shape == one.shape:
                        own &= o.last_one < 0.5
                step = self._carried(tr, own) if b.mask_box is not None and \
                    np.count_nonzero(own) >= OWN_SHARE * np.count_nonzero(person) else None
                if step is not None:
                    one = b.last_one = cv2.warpAffine(one, step[:2], out)
                    cx, cy = _moved(step, roi.cx * k, roi.cy * k)
                    b.roi = Roi(cx / k, cy / k, roi.side)
                    if b.last_centre is not None:
                        lx, ly = _moved(step, b.last_centre[0] * k, b.last_centre[1] * k)
                        b.last_centre = (lx / k, ly / k)
                elif abs(b.velocity[0]) + abs(b.velocity[1]) >= s.deadband * roi.side:  # else still: held as is
                    dx, dy = b.velocity[0] * k, b.velocity[1] * k
                    one = b.last_one = cv2.warpAffine(one, np.array([[1, 0, dx], [0, 1, dy]], np.float32), out)
                    b.roi = Roi(roi.cx + b.velocity[0], roi.cy + b.velocity[1], roi.side)
                    b.last_centre = (b.last_centre[0] + b.velocity[0], b.last_centre[1] + b.velocity[1])
                shown(b, one, roi)
                continue
            seen = self._painted(rgb, [o for o in tr.bodies if o is not b], roi, b)
            t0 = time.perf_counter()
            res = self._pose.run(crop(seen, roi, PoseSegmenter.size))
            took = (time.perf_counter() - t0) * 1e3
            self._pose_ms = took if self._pose_ms == 0.0 else 0.9 * self._pose_ms + 0.1 * took
            if b.last_centre is None and res.presence >= s.min_presence:
                # a new track starts from the detector's rough region: settle it on the mask at once, so
                # the region (and the mask) does not jump on the next frames.  A region cut from the
                # landmarks of a rough crop is itself off, so this repeats until it holds still
                # (a first settled region the person falls apart in is a false hit; a later one is only
                # worse than the one before, which is kept)
                for run in range(SETTLE_RUNS):
                    self._follow(res, roi, b)
                    b.steps = []  # settling is not a motion
                    if b.roi == roi:
                        break
                    held = res, roi
                    roi = b.roi
                    res = self._pose.run(crop(seen, roi, PoseSegmenter.size))
                    if res.presence < s.min_presence:
                        look = self._second_look(seen, *held, s.min_presence) if run == 0 else None
                        if run > 0 or look is not None:
                            res, roi = held if look is None else look
                            b.roi = roi
                        break
            if res.presence < (s.keep_presence if b.shown >= SETTLED_TRACK and b.trial == 0 else s.min_presence):
                # a false hit's region, one on trial, or the only person followed lost on the frame after they
                # were found (detector and pose model disagree there: detected again at once, they were found
                # and lost frame after frame, body and bust mode in turn)
                rejected = b.last_centre is None or b.trial > 0 or (b.shown <= 1 and len(tr.bodies) == 1)
                log.debug("embedded: %s (presence %.2f)", "detection rejected" if rejected else "person lost",
                          res.presence)
                tr.bodies.remove(b)
                front = next((o for o in tr.bodies if box_iou(b.roi.box(), o.roi.box()) > 0), None)
                if not rejected and front is not None:
                    # lost behind someone else: the region left would hold two people and show only
                    # one; the landscape model sees both until the next detection separates them
                    log.debug("embedded: people overlap: bust mode until the next detection")
                    # never shown (dropped on the frame they were tried): this run's mask, unsure as it
                    # is; only the landscape blobs it meets speak for them
                    last = b.last_one if b.last_one is not None else \
                        paste(res.mask, roi.scaled(k), out)
                    self._went_behind(tr, b, front, last >= 0.5)
                    tr.mode, tr.bodies, tr.since_detect, tr.front = "bust", [], 0, front
                    return self._bust(rgb, out, tr)
                continue
            if b.trial > 0:
                b.trial -= 1
                self._follow(res, roi, b)
                continue
            one = paste(res.mask, roi.scaled(k), out)
            whole = _whole_body(res, roi, H, s.fits_slack)
            if not whole and _cut_at_bottom(one >= 0.5):
                # a bust the tiles took for a whole body (the pose model draws legs for it): followed, its
                # region grew into the crop's replicated border frame after frame until it ran off, and the
                # selfie models, which keep what the bust holds, were not used (random-1129).  Taken for
                # nobody: bust mode until the next regular detection, not a detection at once, whose tiles
                # would find the same whole body again
                log.debug("embedded: the frame's bottom cuts a person followed across their width: a bust")
                tr.bodies.remove(b)
                rejected = True
                continue
            b.last_one = one
            shown(b, one, roi)
            ys, xs = np.nonzero(masks[id(b)])
            b.mask_box = (xs.min() / k, ys.min() / k, (xs.max() + 1) / k, (ys.max() + 1) / k) if xs.size else None
            b.hips, b.torso = _hips(res, roi)
            b.whole = whole
            # a still picture keeps its region: the mask steers the region and the region the mask, and
            # for some people (a big one the frame cuts, two close together) that loop does not settle
            self._follow(res, roi, b, hold=s.hold_grey > 0 and _unchanged(b.placed, blurred, roi, k, s.hold_grey))
            if b.roi != roi or b.placed is None:
                b.placed = blurred
        # two regions whose masks ended up on one person (the one behind was hidden): follow it once, the
        # one found first.  Regions of two people passing each other overlap too; their masks do not
        kept: list[_Body] = []
        for b in tr.bodies:
            mine = masks.get(id(b))
            same = None if mine is None else next(
                (o for o in kept if id(o) in masks and _mask_iou(masks[id(o)], mine) >= s.same_body), None)
            if same is None:
                kept.append(b)
                b.shown += mine is not None
            elif b.behind and b.behind[0].until > tr.frames:
                tr.hidden += b.behind  # found on a path that led to the one in front: look along the others
            elif mine is not None and b.shown == 0 and _grown(mine, masks[id(same)],
                                                              [masks[id(o)] for o in tr.bodies
                                                               if o is not b and o is not same and id(o) in masks]):
                # a new detection of someone followed whose region had shrunk onto part of them (a wide
                # pose's legs left out of the mask, and the region drawn from that mask): theirs from now on
                log.debug("embedded: a followed person's region taken from a new detection of them")
                same.roi, same.last_centre, same.steps, same.placed = b.roi, b.last_centre, [], b.placed
                same.mask_box, same.last_one, same.hips, same.torso, same.whole = \
                    b.mask_box, b.last_one, b.hips, b.torso, b.whole
                masks[id(same)], ones[id(same)] = mine, ones[id(b)]
            elif min(b.shown, same.shown) >= SETTLED_TRACK:
                # two people followed apart until now: the one behind is hidden, and back in a moment
                log.debug("embedded: two people followed as one: looking for the one behind")
                tr.since_detect = min(tr.since_detect, s.search_every - 1)
                self._went_behind(tr, b, same, mine)  # the pair's mask: the blob the landscape model makes of the two
            else:
                log.debug("embedded: a region whose mask is a person followed already dropped")
        tr.bodies = kept
        tr.again = any(b.shown == 1 and _touching(b, kept) for b in kept)
        tr.people = _who_is_who(tr, [(b, ones[id(b)]) for b in kept if id(b) in ones])
        for b in kept:  # where each person heads while nobody is in front of them
            if id(b) in masks and b.mask_box is not None and not _touching(b, kept):
                b.free, b.free_frame = (b.roi, b.velocity), tr.frames + 1  # ``roi``: next frame's region
        if prob is not None and tr.hidden:
            self._look_behind(rgb, tr)
        if prob is None:
            # nobody confirmed left: look again at once for a person lost; after a false hit, at the next
            # regular detection (it would be found, and rejected, again).  The landscape model meanwhile.
            if not tr.bodies:
                tr.mode, tr.since_detect = "bust", (0 if rejected else s.redetect_every)
            return self._bust(rgb, out, tr)
        if s.outside == "landscape":
            # outside the regions the landscape model speaks (nobody it found is lost); inside, the pose
            # model.  Someone entering is found within ``outside_every`` frames; in between its last answer
            # is reused.
            tr.outside_age += 1
            # where it speaks for somebody inside the regions too (``tr.others``), its last answer is not
            # reused: that person moves inside a region, where nothing else shows them
            every = 1 if tr.others is not None else s.outside_every
            if tr.outside is None or tr.outside.shape != prob.shape or tr.outside_age >= every:
                shown_before = [tr.outside >= 0.5] if tr.outside is not None and tr.outside.shape == prob.shape \
                    else []
                if tr.behind:
                    # the blob somebody lost behind someone makes with the people followed is people known to
                    # be there: it keeps the bar of a blob shown last time (two people together score lower)
                    shown_before += [m for m in [*tr.behind, *masks.values()] if m.shape == prob.shape]
                tr.outside, tr.outside_age = _confident_blobs(
                    self._landscape(rgb, out), s.outside_min_mean,
                    np.logical_or.reduce(shown_before) if shown_before else None), 0
                blobs = cv2.connectedComponents((tr.outside >= 0.5).astype(np.uint8), connectivity=8)
                known = _on_boxes(blobs, [tuple(v * k for v in box) for box in tr.busts])
                behind = _still_behind(tr, blobs, list(masks.values()), s.someone_share)
                if behind is not None:
                    known = behind if known is None else known | behind
                tr.outside = self._only_people(rgb, tr, inside, blobs, known)
                tr.others = _beyond(tr.outside, inside, s.someone_share)
                if known is not None:
                    tr.others = known if tr.others is None else tr.others | known
            mine = inside if tr.others is None else inside & ~tr.others
            if tr.outside_age == 0:
                tr.outside_in = mine
            theirs = tr.outside
            if tr.outside_age > 0 and tr.outside_nobody is not None and tr.outside_in is not None and \
                    tr.outside_in.shape == prob.shape:
                # its answer reused after a region moved: a blob with a part that is nobody was asked about
                # outside the regions only, and the rest of it, where a region was, is not shown either
                theirs = np.where(tr.outside_in & tr.outside_nobody, 0.0, tr.outside)
            prob = np.where(mine, prob, np.maximum(prob, theirs))
        return prob

    def _carried(self, tr: _Track, mine: np.ndarray) -> np.ndarray | None:
        """How the person whose last mask's pixels are ``mine`` (bool) moved since the frame before (3x3,
        output pixels), by the flow there; None when it cannot be told."""
        if tr.prev_grey is None or tr.grey is None or tr.prev_grey.shape != mine.shape:
            return None
        # ``transform`` maps its first frame's points to its second's: given the frame before first (where
        # the mask was made), the map carries the mask forward; a person standing still gets the identity
        return self._flow.transform(mine, tr.prev_grey, tr.grey)

    def _only_people(self, rgb: np.ndarray, tr: _Track, inside: np.ndarray, whole: tuple[int, np.ndarray],
                     busts: np.ndarray | None = None) -> np.ndarray:
        """``tr.outside`` without its blobs' parts outside the regions that are not a person.

        The landscape model is sure of some things that are nobody (a domed tower against the sky, cartoon
        figures on a wall: docs/engines.md); beside a small followed person such a blob is most of what is
        shown.  Each part outside the regions that covers ``someone_share`` of the frame is asked about
        once: the pose model on a region around it (the people followed painted out), and the pose
        detector there if that finds nobody.  The answer is kept while the part stays where it was
        (somebody walking into a part changes it, and it is asked about again).  ``busts``: the blobs on a
        bust the detector is sure of (``_Track.busts``), somebody without asking.  ``whole``: the count and
        labels of ``tr.outside``'s connected blobs (labelled once for every rule that reads them).
        """
        blobs = tr.outside
        assert blobs is not None
        # the blobs' parts outside the regions: one that holds a followed person and a tower behind them is
        # asked about the tower alone (inside the regions the pose model speaks)
        n, labels = cv2.connectedComponents(((blobs >= 0.5) & ~inside).astype(np.uint8), connectivity=8)
        tr.asked = [a for a in tr.asked if a.until > tr.frames]
        tr.outside_nobody = None
        if n <= 1:
            return blobs
        out = np.bincount(labels.ravel(), minlength=n)
        out[0] = 0  # label 0: every pixel that is in no part
        k = rgb.shape[1] / blobs.shape[1]
        nobody = np.zeros(n, bool)
        seen: np.ndarray | None = None
        matched: list[_Asked] = []
        for j in np.flatnonzero(out >= self.settings.someone_share * blobs.size):
            blob = labels == j
            same, asked = max(((_mask_iou(a.where, blob), a) for a in tr.asked), key=lambda x: x[0],
                              default=(0.0, None))
            if busts is not None and np.count_nonzero(blob & busts) * 2 > np.count_nonzero(blob):
                # somebody without asking; an earlier answer on the blob is kept (moved on) for when the
                # detector is less sure of them: asked again then, a bust the frame's edge cuts scored just
                # under ``ASKED_DETECTION`` and vanished until the next detection (random-666)
                if asked is not None and same >= ASKED_SAME:
                    asked.where = blob
                    matched.append(asked)
                continue
            if asked is None or same < ASKED_SAME:
                ys, xs = np.nonzero(blob)
                roi = Roi.around(xs.min() * k, ys.min() * k, (xs.max() + 1) * k, (ys.max() + 1) * k, 0.25)
                if seen is None:
                    seen = self._painted(rgb, tr.bodies)
                near = crop(seen, roi, PoseSegmenter.size)
                res = self._pose.run(near)
                presence = res.presence
                hits: list[Person] | None = None  # the detector's on ``near``, best first, once it ran there
                if presence >= self.settings.min_presence:
                    # somebody on the blob: a followed person painted out grey is still a person's shape,
                    # and the pose model finds them there beside a blob that is nobody
                    theirs = paste(res.mask, Roi(roi.cx / k, roi.cy / k, roi.side / k),
                                   (blobs.shape[1], blobs.shape[0])) >= 0.5
                    if np.count_nonzero(theirs & blob) < ON_BLOB * np.count_nonzero(blob):
                        presence = 0.0
                    elif not _legs_seen(res, BLOB_LEGS):
                        size = PoseSegmenter.size
                        hits = self._detect(near, max_people=2)
                        there = max((p.score for p in hits
                                     if 0 <= p.hips[0] < size and 0 <= p.hips[1] < size), default=0.0)
                        log.debug("embedded: the pose model is sure of a landscape blob without legs (presence "
                                  "%.2f); the detector there %.2f", presence, there)
                        if there < BLOB_DETECTION:
                            presence = 0.0
                # (not while a person just found is being confirmed: the blob may be theirs, not yet shown)
                if presence >= self.settings.min_presence and len(tr.bodies) < self.settings.max_bodies and \
                        all(b.trial == 0 and b.last_centre is not None for b in tr.bodies) and \
                        not _is_followed(res, roi, tr.bodies) and \
                        _whole_body(res, roi, rgb.shape[0], self.settings.fits_slack, legs=True):
                    # a whole body the detector missed (dark clothes on a busy background) and the landscape
                    # model sees, poorly: followed from now on, by the pose model
                    tr.bodies.append(_Body(self._settled(seen, res, roi), trial=1))
                    log.debug("embedded: a landscape blob outside the regions is a whole body: followed")
                # the pose model barely believes in a bust that the frame cuts at the chest; the detector,
                # anchored on faces, does
                score = 0.0
                if presence < self.settings.min_presence:
                    hits = self._detect(near, max_people=1) if hits is None else hits
                    # an upright person's: a hit with its hips far to the side of its face is a busy
                    # background's (random-795: a crystal on a circuit board, 0.73, shown as somebody)
                    score = max((p.score for p in hits if _upright(p)), default=0.0)
                asked = _Asked(blob, presence >= self.settings.min_presence or score >= ASKED_DETECTION, 0)
                tr.asked = (tr.asked + [asked])[-8:]
                log.debug("embedded: a landscape blob outside the regions is %s (presence %.2f, detection %.2f)",
                          "somebody" if asked.somebody else "nobody", presence, score)
            asked.where = blob
            asked.until = tr.frames + (10**9 if asked.somebody else ASK_AGAIN)
            matched.append(asked)
            nobody[j] = not asked.somebody
        for a in tr.asked:
            if not any(a is m for m in matched):
                a.until = min(a.until, tr.frames + 1)
        if not nobody.any():
            return blobs
        m, whole_labels = whole
        false = np.zeros(m, bool)
        false[np.unique(whole_labels[nobody[labels]])] = True
        false[0] = False
        tr.outside_nobody = false[whole_labels]  # (what is shown where a region was, once it moves)
        kept = blobs.copy()
        kept[nobody[labels]] = 0.0
        return kept

    def _painted(self, rgb: np.ndarray, others: list[_Body], roi: Roi | None = None,
                 me: _Body | None = None) -> np.ndarray:
        """The frame with the people followed in ``others`` painted grey (their last masks, where they
        meet ``roi``; not the pixels ``me``'s own last mask holds).

        The pose model finds one person per region, the most prominent: cut around someone partly behind
        another, it finds the one in front, and the one behind stays lost until they are well apart.
        """
        H, W = rgb.shape[:2]
        box = None if roi is None else roi.box()
        hide: np.ndarray | None = None
        for o in others:
            if o.last_one is None or o.mask_box is None:
                continue
            if box is not None and box_iou(box, o.mask_box) <= 0:
                continue
            m = o.last_one >= 0.5
            hide = m if hide is None else (hide | m)
        if hide is None:
            return rgb
        if me is not None and me.last_one is not None and me.last_one.shape == hide.shape:
            hide = hide & (me.last_one < 0.5)
        if hide.shape != (H, W):
            hide = cv2.resize(hide.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
        out = rgb.copy()
        out[hide] = PAINT
        return out

    def _went_behind(self, tr: _Track, gone: _Body, front: _Body, where: np.ndarray | None) -> None:
        """Remember where the two people of a track just dropped and the one kept were heading, and where
        the one gone is (``where``, bool at output size, if known: ``_still_behind``), and search for everyone
        followed until now (once they part, ``_further``; ended once as many are shown again).

        Which of them is the one still followed is not known: the region of the one behind is pulled onto
        the one in front, and as they pass each other the one kept may go on with either.  Both paths are
        looked along; the followed person's is rejected there as someone followed.
        """
        now = tr.frames
        paths = [_Hidden(x.free[0], x.free[1], x.free_frame, now + HIDDEN_FRAMES)
                 for x in (gone, front) if x.free is not None]
        tr.hidden = (tr.hidden + paths)[-4:]
        tr.search = self.settings.search_after_overlap
        tr.overlapped = len(tr.bodies) + (not any(b is gone for b in tr.bodies))
        if where is not None:
            tr.behind = (tr.behind + [where])[-BEHIND_KEPT:]

    def _look_behind(self, rgb: np.ndarray, tr: _Track) -> None:
        """Look for a person gone behind someone where their path leads (one pose run, every other frame).

        The detector sees two people who just parted as one for a while, or its hit for the one behind
        has the hips of the one in front; their own path finds them as soon as the pose model can.
        """
        H, W = rgb.shape[:2]
        s = self.settings
        tr.hidden = [h for h in tr.hidden if h.until > tr.frames]
        if not tr.hidden or len(tr.bodies) >= s.max_bodies or tr.frames % HIDDEN_EVERY:
            return
        if self._turns(len(tr.bodies) + 1):
            return  # no time for one more pose run in this frame on this host (``alternate_ms``)
        h = tr.hidden[(tr.frames // HIDDEN_EVERY) % len(tr.hidden)]  # each path in turn
        roi = h.at(tr.frames)
        if not _in_frame((roi.cx, roi.cy), W, H):
            tr.hidden.remove(h)  # their path left the frame
            return
        if self._somebody(self._painted(rgb, tr.bodies), roi, s.min_presence, tr.bodies, whole=False):
            log.debug("embedded: the person gone behind someone found again at (%.0f, %.0f)", roi.cx, roi.cy)
            others = [x for x in tr.hidden if x.until == h.until and x is not h]  # the same people's paths
            tr.hidden = [x for x in tr.hidden if x.until != h.until]
            tr.bodies.append(_Body(roi, trial=min(1, s.trial_frames), behind=others))

    def _follow(self, res: PoseResult, roi: Roi, b: _Body, hold: bool = False) -> None:
        """Next frame's region from this frame's result, moved on by the person's velocity (``hold``: kept
        where it is)."""
        s = self.settings
        new = self._next_region(res, roi)
        if new is None:
            b.last_centre, b.steps = None, []
            return
        if b.last_centre is not None:
            # median of the last three steps: one jump of the box (an arm appearing) is not a motion
            b.steps = (b.steps + [(new.cx - b.last_centre[0], new.cy - b.last_centre[1])])[-3:]
            if len(b.steps) == 3:
                b.velocity = (float(np.median([v[0] for v in b.steps])), float(np.median([v[1] for v in b.steps])))
        b.last_centre = (new.cx, new.cy)
        moved = max(abs(new.cx - roi.cx), abs(new.cy - roi.cy), abs(new.side - roi.side))
        if hold or moved <= s.deadband * roi.side and abs(b.velocity[0]) + abs(b.velocity[1]) < s.deadband * roi.side:
            return  # still: keep the region fixed so a still picture gives a still mask
        b.roi = Roi(new.cx + b.velocity[0], new.cy + b.velocity[1], new.side)


def _square_roi(q: tuple[int, int, int]) -> Roi:
    """The region of square ``q`` (x0, y0, side)."""
    return Roi(q[0] + q[2] / 2, q[1] + q[2] / 2, q[2])


def _lowest_priority() -> None:
    """The detector's thread at the lowest priority (nice 19 from the usual 0; the kernel caps it there)."""
    lower_thread_priority(19, "the embedded engine's detector thread")


def _still_frame(before: np.ndarray, now: np.ndarray, step: float) -> bool:
    """Whether grey frame ``now`` is ``before`` but for noise (``_unchanged``'s rule on the whole frame)."""
    h, w = now.shape
    return _unchanged(cv2.GaussianBlur(before, (3, 3), 0), cv2.GaussianBlur(now, (3, 3), 0),
                      Roi(w / 2, h / 2, max(w, h)), 1.0, step)


def _unchanged(placed: np.ndarray | None, blurred: np.ndarray | None, roi: Roi, k: float, step: float) -> bool:
    """Whether the picture in ``roi`` (working-frame pixels; ``k``: to output pixels) is the one ``placed``
    held: at most ``STILL_SHARE`` of its pixels' blurred grey level moved more than ``step``.  Compared with
    the frame the region was placed on, not the last one, so a slow creep counts."""
    if placed is None or blurred is None or placed.shape != blurred.shape:
        return False
    h, w = blurred.shape
    x0, y0, x1, y1 = roi.scaled(k).box()
    now = blurred[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if now.size == 0:
        return False
    then = placed[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    return int(np.count_nonzero(cv2.absdiff(now, then) > step)) <= STILL_SHARE * now.size


def _touching(b: _Body, bodies: list[_Body]) -> bool:
    """Whether the box of ``b``'s last mask meets another of ``bodies``' (False while ``b`` has none)."""
    return b.mask_box is not None and any(o is not b and o.mask_box is not None and
                                          box_iou(b.mask_box, o.mask_box) > 0 for o in bodies)


def _grown(new: np.ndarray, old: np.ndarray, others: list[np.ndarray]) -> bool:
    """Whether mask ``new`` is ``old`` grown (``GROWN`` times its size, holding nearly all of it) by a part
    that is none of ``others`` (a region on two people also holds more than one of them)."""
    size = np.count_nonzero(old)
    if np.count_nonzero(new) <= GROWN * size or np.count_nonzero(new & old) < 0.9 * size:
        return False
    extra = new & ~old
    return all(np.count_nonzero(extra & o) <= 0.1 * np.count_nonzero(extra) for o in others)


def _who_is_who(tr: _Track, ones: list[tuple[_Body, np.ndarray]]) -> np.ndarray | None:
    """The ``people`` map of the bodies shown: each pixel where someone's mask is at least 0.5 is the one
    whose mask is highest there."""
    if not ones:
        return None
    best = np.full(ones[0][1].shape, 0.5, np.float32)
    who = np.zeros(best.shape, np.uint8)
    for b, one in ones:
        if b.uid == 0:
            tr.uids += 1
            b.uid = (tr.uids - 1) % 255 + 1
        here = one >= best
        who[here] = b.uid
        np.maximum(best, one, out=best)
    return who


def _coerce(default: Any, value: Any) -> Any:
    """An option given as text (``-E bf16=false``) in the type of its default."""
    if isinstance(default, bool):
        return flag(value)
    return type(default)(value)


def _moved(m: np.ndarray, x: float, y: float) -> tuple[float, float]:
    return float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2])


def _region(p: Person) -> Roi:
    """The square region the pose model gets for a detection."""
    return Roi.around(*p.body_box(), 0.25)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 0.0


def _followed(p: Person, b: _Body) -> bool:
    """Whether detection ``p`` is the person followed as ``b``.  Their hips say it best: the square region
    around a person in a wide pose also holds the hips of someone beside them, and so does the box of
    their mask (after two people crossed, the one behind was taken for the one in front and stayed lost
    for half a second).  A detection taken for somebody new by mistake costs a few pose runs: once shown,
    two masks on one person are merged (``_body``)."""
    if b.hips is not None:
        return _near_hips(p.hips, b)
    if b.mask_box is None:
        return _inside(p.hips, b.roi) or box_iou(_region(p).box(), b.roi.box()) >= 0.3
    x0, y0, x1, y1 = b.mask_box
    return x0 <= p.hips[0] <= x1 and y0 <= p.hips[1] <= y1


def _theirs(p: Person, b: _Body) -> bool:
    """Whether detection ``p`` is of followed person ``b``, whose hips it puts in their region (a wide pose
    makes the detector's body circle too big and its hips can be far off theirs): its face (the detector is
    anchored on faces) lies in the box of their mask too, or before they have one, within a quarter of their
    region's side of its middle column (it is drawn around their hips, their face above them).  Their region
    alone holds the hips of a bust beside a small whole body (random-809); the box of their mask alone, an
    arm spread, the face of a bust in front of them (random-203)."""
    if not _inside(p.hips, b.roi):
        return False
    x, y = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
    if b.mask_box is not None:
        x0, y0, x1, y1 = b.mask_box
        return x0 <= x <= x1 and y0 <= y <= y1
    return abs(x - b.roi.cx) <= b.roi.side / 4


def _beside_followed(detections: list[Person], bodies: list[_Body]) -> list[Person]:
    """The detections taken for a followed person (``_followed``) that are not the one nearest their hips,
    furthest first: the same person seen on the frame and on a tile lands within a few pixels of their hips,
    somebody just beside them further off."""
    out: list[tuple[float, Person]] = []
    for b in bodies:
        if b.hips is None:
            continue
        hx, hy = b.hips
        mine = sorted((float(np.hypot(p.hips[0] - hx, p.hips[1] - hy)), i) for i, p in enumerate(detections)
                      if _followed(p, b))
        out += [(d, detections[i]) for d, i in mine[1:] if d > mine[0][0] + BESIDE_HIPS * b.torso]
    return [p for _, p in sorted(out, key=lambda x: -x[0])]


def _near_hips(pt: tuple[float, float], b: _Body) -> bool:
    """Whether a point said to be someone's hips is followed person ``b``'s (``b.hips`` known)."""
    assert b.hips is not None
    return float(np.hypot(pt[0] - b.hips[0], pt[1] - b.hips[1])) <= FOLLOWED_HIPS * b.torso


def _whole_body(res: PoseResult, roi: Roi, height: int, slack: float, legs: bool = False) -> bool:
    """Whether the body circle of the pose model's landmarks (hips 33, circle 34) fits the frame's height,
    by the rule the detector's circle is held to (``EmbeddedEngine._fits``).  ``legs``: the model must also
    see the legs (``_legs_seen``): a bust's landmarks can be drawn inside the frame."""
    (_, hy), k = _hips_at(res, roi)
    lm = res.landmarks
    r = float(np.hypot(lm[34, 0] - lm[33, 0], lm[34, 1] - lm[33, 1])) * k
    return hy + 0.8 * r <= height * (1.0 + slack) and (not legs or _legs_seen(res))


def _legs_seen(res: PoseResult, logit: float = 0.0) -> bool:
    """Whether the pose model sees a knee or an ankle (landmarks 25-28) at ``logit`` or more (0: more
    likely than not): a bust's legs, which it also places, are beyond the frame, and seen with a likelihood
    near 0."""
    return bool((res.landmarks[25:29, 3] >= logit).any())


def _is_followed(res: PoseResult, roi: Roi, bodies: list[_Body]) -> bool:
    """Whether the person the pose model found in ``roi`` is one of ``bodies`` (their hips)."""
    hips, _ = _hips_at(res, roi)
    return any(b.hips is not None and _near_hips(hips, b) for b in bodies)


def _hips_at(res: PoseResult, roi: Roi) -> tuple[tuple[float, float], float]:
    """The hip centre (landmark 33) of the person in ``res``, found in ``roi``, in working-frame pixels,
    and the scale from the crop's pixels to the frame's."""
    return _landmark_at(res, roi, 33)


def _landmark_at(res: PoseResult, roi: Roi, i: int) -> tuple[tuple[float, float], float]:
    """Landmark ``i`` of the person in ``res``, found in ``roi``, in working-frame pixels, and the scale
    from the crop's pixels to the frame's."""
    k = roi.side / PoseSegmenter.size
    x, y = float(res.landmarks[i, 0]), float(res.landmarks[i, 1])
    return (roi.cx - roi.side / 2 + x * k, roi.cy - roi.side / 2 + y * k), k


def _hips(res: PoseResult, roi: Roi) -> tuple[tuple[float, float], float]:
    """The hip centre of the person in ``res`` (``_hips_at``) and their torso's length (to the shoulders'
    centre, landmarks 11 and 12): unlike the region, it does not grow when they spread their arms or legs."""
    hips, k = _hips_at(res, roi)
    lm = res.landmarks
    hx, hy = float(lm[33, 0]), float(lm[33, 1])
    sx, sy = float(lm[11, 0] + lm[12, 0]) / 2, float(lm[11, 1] + lm[12, 1]) / 2
    torso = max(float(np.hypot(sx - hx, sy - hy)) * k, 0.05 * roi.side)
    return hips, torso


def _seen_as(res: PoseResult, roi: Roi, size: tuple[int, int]) -> _Body:
    """The person the pose model found in ``roi`` as a body of a frame of ``size`` (H, W): their mask at
    that size, its box, their hips and torso (what ``_painted`` and ``_is_followed`` look at)."""
    one = paste(res.mask, roi, (size[1], size[0]))
    ys, xs = np.nonzero(one >= 0.5)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if xs.size else None
    hips, torso = _hips(res, roi)
    return _Body(roi, mask_box=box, last_one=one, hips=hips, torso=torso)


def _in_frame(pt: tuple[float, float], width: int, height: int) -> bool:
    return 0 <= pt[0] < width and 0 <= pt[1] < height


def _inside(pt: tuple[float, float], roi: Roi) -> bool:
    return abs(pt[0] - roi.cx) <= roi.side / 2 and abs(pt[1] - roi.cy) <= roi.side / 2


def _cut_at_bottom(fg: np.ndarray) -> bool:
    """Whether the person mask ``fg`` (bool, frame-sized) meets the frame's bottom rows over at least
    ``CUT_WIDTH`` of its widest row: a bust's chest, not a whole body's feet."""
    widest = int(fg.sum(1).max())
    return widest > 0 and bool(np.count_nonzero(fg[-BOTTOM_ROWS:].any(0)) >= CUT_WIDTH * widest)


def _region_from_landmarks(lm: np.ndarray, roi: Roi, scale: float) -> Roi:
    """MediaPipe's own tracking rule: centred on the hip centre (landmark 33), side = 2 x scale x the
    distance to landmark 34 (the whole-body circle).  Unlike the mask, landmarks are not pulled by a
    busy background the mask model mistakes for a person."""
    k = roi.side / PoseSegmenter.size
    x0, y0 = roi.cx - roi.side / 2, roi.cy - roi.side / 2
    hx, hy = x0 + lm[33, 0] * k, y0 + lm[33, 1] * k
    r = float(np.hypot(lm[34, 0] - lm[33, 0], lm[34, 1] - lm[33, 1])) * k
    return Roi(hx, hy, max(2.0 * scale * r, 16.0))


def _region_from_mask(mask: np.ndarray, roi: Roi, margin: float) -> Roi | None:
    """The mask's box (+margin).  A speck or a limb touching a background blob cannot move it much:
    1st-99th percentile of the mask's pixels along each axis (this only steers the region; the
    output keeps every pixel the model found)."""
    fg = mask >= 0.5
    cols, rows = fg.sum(0), fg.sum(1)
    total = int(cols.sum())
    if total < 16:
        return None
    cc, rc = np.cumsum(cols), np.cumsum(rows)
    lo, hi = 0.01 * total, 0.99 * total
    bx0, bx1 = int(np.searchsorted(cc, lo)), int(np.searchsorted(cc, hi)) + 1
    by0, by1 = int(np.searchsorted(rc, lo)), int(np.searchsorted(rc, hi)) + 1
    k = roi.side / mask.shape[0]
    x0, y0 = roi.cx - roi.side / 2, roi.cy - roi.side / 2
    return Roi.around(x0 + bx0 * k, y0 + by0 * k, x0 + bx1 * k, y0 + by1 * k, margin)


def _beyond(blobs: np.ndarray, inside: np.ndarray, share: float) -> np.ndarray | None:
    """The blobs (>= 0.5) of ``blobs`` with at least ``share`` of the frame outside ``inside`` and more of
    their pixels outside it than in it: somebody not followed, whose body a followed person's region cuts
    (the region is a square; a bust beside a whole body lost a shoulder to it).  None if there are none."""
    n, labels = cv2.connectedComponents((blobs >= 0.5).astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    total = np.bincount(labels.ravel(), minlength=n)
    out = np.bincount(labels[~inside].ravel(), minlength=n)
    theirs = (out >= share * blobs.size) & (out > total - out)
    theirs[0] = False
    return theirs[labels] if theirs.any() else None


def _still_behind(tr: _Track, blobs: tuple[int, np.ndarray], followed: list[np.ndarray],
                  share: float) -> np.ndarray | None:
    """The ``blobs`` (count and labels of ``tr.outside``'s connected blobs) where people lost behind someone
    are (``tr.behind``); each record moves on to the parts of the blobs it meets that no ``followed`` mask
    holds, and is dropped once those cover less than ``share`` of the frame (the person was found again, or
    left; not while they are searched for and not found yet, ``_Track.hidden``: then they are hidden
    entirely, and the record stays where it was).  None if none."""
    if not tr.behind:
        return None
    n, labels = blobs
    free = np.ones(labels.shape, bool)
    for m in followed:
        if m.shape == free.shape:
            free &= ~m
    hit_all = np.zeros(n, bool)
    kept: list[np.ndarray] = []
    for where in tr.behind:
        if where.shape != labels.shape:
            continue
        hit = np.zeros(n, bool)
        hit[np.unique(labels[where])] = True
        hit[0] = False
        # a thin rim the landscape model draws around a followed person is not somebody behind them
        left = cv2.morphologyEx((hit[labels] & free).astype(np.uint8), cv2.MORPH_OPEN,
                                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))).astype(bool)
        if np.count_nonzero(left) >= share * left.size:
            kept.append(left)
            hit_all |= hit
        elif tr.search and tr.hidden:
            # hidden entirely for now, and not found again yet: kept where they were, for when they come out
            # (forgotten, the region followed slid onto them as they did, and the one in front was in no mask)
            kept.append(where)
    tr.behind = kept
    return hit_all[labels] if hit_all.any() else None


def _on_boxes(blobs: tuple[int, np.ndarray], boxes: list[tuple[float, ...]]) -> np.ndarray | None:
    """The ``blobs`` (count and labels of connected blobs) that hold a pixel of one of ``boxes`` (x0, y0,
    x1, y1 in their pixels); None if there are none."""
    if not boxes:
        return None
    n, labels = blobs
    h, w = labels.shape
    hit = np.zeros(n, bool)
    for x0, y0, x1, y1 in boxes:
        part = labels[max(0, int(y0)):min(h, int(np.ceil(y1))), max(0, int(x0)):min(w, int(np.ceil(x1)))]
        hit[np.unique(part)] = True
    hit[0] = False
    return hit[labels] if hit.any() else None


def _rejected(p: Person, tr: _Track, height: int) -> bool:
    """Whether detection ``p``'s hips lie where a hit the pose model said was nobody lay (``_Track.rejected``)."""
    return any(abs(p.hips[0] - x) + abs(p.hips[1] - y) <= REJECTED_PLACE * height for (x, y), _ in tr.rejected)


def _along_squares(roi: Roi, width: int, height: int) -> list[tuple[int, int, int]]:
    """Squares (x0, y0, side) the size of ``roi`` along its row, both ways from it to the frame's edges,
    each inside the frame, the two ways' first steps first (``_alongside``)."""
    side = int(min(roi.side, width, height))
    if side < 16:
        return []
    y0 = int(np.clip(roi.cy - side / 2, 0, height - side))
    ways: list[list[tuple[int, int, int]]] = []
    for sign in (1, -1):
        way: list[tuple[int, int, int]] = []
        off = ALONG_FIRST * side
        while True:
            x0 = int(np.clip(roi.cx + sign * off - side / 2, 0, width - side))
            if way and way[-1][0] == x0:
                break
            way.append((x0, y0, side))
            if x0 in (0, width - side):
                break
            off += ALONG_STEP * side
        ways.append(way)
    out: list[tuple[int, int, int]] = []
    for k in range(max(len(w) for w in ways)):
        out += [w[k] for w in ways if k < len(w) and w[k] not in out]
    return out


def _upright(p: Person) -> bool:
    """Whether detection ``p``'s hips are below its face, within 45 degrees of straight down."""
    fx, fy = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
    return p.hips[1] > fy and abs(p.hips[0] - fx) <= p.hips[1] - fy


def _confident_blobs(prob: np.ndarray, min_mean: float, shown: np.ndarray | None = None,
                     keep: np.ndarray | None = None) -> np.ndarray:
    """Zero the blobs (>= 0.5) whose mean probability is below ``min_mean``; every other pixel unchanged.

    Used in body mode outside the followed people's regions (inside them too for a blob that is mostly
    somebody else: ``_beyond``); ``shown``: the last result, whose blobs keep a bar ``OUTSIDE_KEEP`` lower;
    ``keep`` (bool): the blobs that meet it stay whatever their mean.
    A person the landscape model finds
    scores high throughout; the patches it lights up on a busy background score barely above one half
    and, kept, ruin a small full body over a busy texture (figures in docs/engines.md).
    No size or edge rule: a confident blob of any size, anywhere, stays.
    """
    if min_mean <= 0.5:
        return prob
    n, labels = cv2.connectedComponents((prob >= 0.5).astype(np.uint8), connectivity=8)
    if n <= 1:
        return prob
    sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n)
    counts = np.bincount(labels.ravel(), minlength=n)
    bar = np.full(n, min_mean)
    if shown is not None:
        # a blob mostly shown last time keeps a lower bar: one whose mean hovers around it (a person in
        # colours the model is less sure of) would otherwise come and go on a still picture
        before = np.bincount(labels.ravel(), weights=(shown >= 0.5).ravel().astype(np.float64), minlength=n)
        bar[before > 0.5 * counts] = min_mean - OUTSIDE_KEEP
    unsure = sums / np.maximum(counts, 1) < bar
    if keep is not None:
        unsure[np.unique(labels[keep])] = False
    unsure[0] = False
    if not unsure.any():
        return prob
    out = prob.copy()
    out[unsure[labels]] = 0.0
    return out
