"""How far the people in a mask moved per frame, sent with each MASK.

A client that waits two frames for each frame's own mask (the filter's frame sync) still shows some
masks with a later frame: the server answered late (a slow host, a frame that waited behind another).
Unmoved, such a mask trails a walking person by a frame's motion, which on a small or fast person is
most of the overlap.  The client moves it on by this motion (``m2fp_protocol.carry_offset``); the server
cannot, since only the client knows which frame the mask will be shown with.

Measured on the masks alone, not on the pictures (optical flow cost the late frames so much on a slow
host that the next frames were late too, docs/evaluation.md): each person's (connected part's) centroid
against the same person's in the mask before, then refined to the shift that best lays the mask before
onto this one (a walking person's legs move the centroid apart from the body).  One motion per mask:
when people move differently (two walking past each other), or parts cannot be matched (a merge,
someone coming in), it says none and the mask is shown where it is, as without it.  For a client that
asks, ``people`` gives each person's box and own motion instead (PEOPLE, ``m2fp_protocol.people``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from m2fp_protocol import MAX_PEOPLE, MOTION_LIMIT, MOTION_SCALE, TURN_SCALE, Carry, PersonBox


#: a mask's parts (labels) and, per person the engine names (uid), their label and part (cx, cy, area) in it
Said = tuple[np.ndarray, dict[int, tuple[int, tuple[float, float, float]]]]


@dataclass(frozen=True)
class PersonMove:
    """One person of a mask for PEOPLE: their box and how what lies in it moves per frame."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1, fractions of the mask
    motion: tuple[float, float]  # the box centre's motion per frame, fractions of the mask's width and height
    turn: float = 0.0  # radians per frame about the box centre, clockwise on screen (y down)


@dataclass(frozen=True)
class _Going:
    """The motion last measured for a person: per frame (working pixels), and at which frame
    (``MaskMotion._clock``)."""

    vx: float
    vy: float
    when: int
    steady: bool  # within ``coast_agree`` of the motion before it, and not slowing down


@dataclass
class MaskMotion:
    work_side: int = 192  # larger masks are measured reduced to this longer side (centroids stay sub-pixel)
    min_pixels: int = 16  # parts smaller than this (pixels at the working size) are ignored...
    min_share: float = 0.1  # ...and parts smaller than this share of the largest
    max_area_change: float = 0.35  # a part whose area changed more is not the same part (a merge, a split)
    max_step: float = 0.5  # ...nor one whose centroid moved more than this × √area per frame
    agree: float = 0.35  # parts move as one when each is within this share of their mean motion...
    agree_px: float = 1.0  # ...or this many pixels per frame of it
    still_px: float = 0.25  # motion below this (working pixels per frame) is sent as none: a still mask stays still
    #: the motion must explain the last step: the mask before, moved by it, must overlap this mask by this
    #: much more of what they do not share than unmoved (a merged blob of people moving apart is not one motion)
    explain: float = 0.2
    #: the centroids' motion is then refined to the shift that best lays the soft mask before onto this one
    #: (ECC, on the people's box): a walking person's legs and arms move their centroid apart from them
    refine: bool = True
    refine_iterations: int = 20
    #: people (``people``): a box around each, this share of the mask's longer side beyond their outline
    #: (their soft edge, and what they move in the frames a late mask is carried)
    box_margin: float = 0.03
    #: two people's boxes that overlap (they walk close: an arm, the margins; one partly in front of the
    #: other) are cut apart by a line between them when it leaves at most this share of the smaller one's
    #: pixels on the other's side; else no PEOPLE.  The few pixels carried with the other person cost a late
    #: mask less than both people held where they were (docs/evaluation.md)
    cut_share: float = 0.2
    #: a person's turn beyond this (radians per second: 100 degrees; a sway's fastest is about half) is not
    #: taken: ECC wandered (``people`` with turns)...
    max_turn_speed: float = 1.8
    #: ...nor one of a person smaller than this (their outline's longer side, working pixels): too few
    #: pixels to tell a turn from a change of outline
    turn_min_side: int = 48
    #: a person whose centroid stands still (``still_px``) and who turns less than this (radians per frame)
    #: stands still
    still_turn: float = 0.004
    #: a person the engine follows (``who``) whose step no longer explains their mask, or is no plausible step
    #: (somebody walking past covers part of them, a leg swings out: their outline changes), keeps the motion
    #: last measured for them for up to this many frames: held where they were, a walking person left the
    #: mask behind.  Only a steady walk is kept: their last two motions measured within ``coast_agree`` of
    #: the larger one, and the last at least ``coast_slowing`` times the one before (who slows down is about
    #: to stop or turn back, where the last motion overshoots; docs/evaluation.md)
    coast_frames: int = 3
    coast_agree: float = 0.35
    coast_slowing: float = 0.8
    _prev: list[tuple[float, float, float]] = field(default_factory=list)  # (cx, cy, area) per part
    # the last call's parts matched one by one to the mask before, each with its box (working pixels) and
    # centroid motion (``people``)
    _people: list[tuple[tuple[int, int, int, int], tuple[float, float, float]]] = field(default_factory=list)
    _pair: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int] | None = None
    _labels: np.ndarray | None = None  # the last mask's parts, and each person's label in it
    _label_of: list[int] = field(default_factory=list)
    # where the engine says who: the mask before's parts and, per person (uid), their label and part in it;
    # and the uid of each of ``_people`` (0: not said)
    _before_people: Said | None = None
    _people_uids: list[int] = field(default_factory=list)
    _people_before: Said | None = None  # ``_before_people`` as ``_people`` saw it
    _prev_mask: np.ndarray | None = None
    _prev_soft: np.ndarray | None = None
    _coasting: list[bool] = field(default_factory=list)  # per ``_people``: no step of their own this time
    _clock: int = 0  # frames since the stream began, as the masks said
    _going: dict[int, _Going] = field(default_factory=dict)  # uid -> the motion last measured for them
    _motion: tuple[float, float] = (0.0, 0.0)  # what the last call returned

    def reset(self) -> None:
        self._prev, self._prev_mask, self._prev_soft = [], None, None
        self._people, self._pair, self._labels, self._label_of = [], None, None, []
        self._before_people, self._people_uids, self._people_before = None, [], None
        self._coasting, self._clock, self._going, self._motion = [], 0, {}, (0.0, 0.0)

    def people(self, turns: bool = False, frame_s: float = 0.0) -> list[PersonMove]:
        """The last mask's people, each with a box and their own motion per frame, for a client that moves
        each person on by their own motion (PEOPLE); empty when the mask holds fewer than two people matched
        to the mask before, or none of them moves.  Boxes that overlap (a pixel must belong to one person)
        are refused where they are rounded to the mask sent (``people_boxes``).

        Each person's motion is refined as the mask's one (ECC on their box alone) and must explain their
        last step; a person whose motion does not gets none, unless the engine follows them and they were
        walking steadily (``coast_frames``), and one who stands still gets none.  Two people walking close
        to each other have boxes that overlap long before their masks touch: those are cut apart along a
        line between the two (``cut_share``).

        ``turns`` (the client turns what it moves, ``WANT_TURNS``): each person's turn too, measured by the
        same ECC allowed to turn, and one person alone is given when they move: a person who sways or leans
        turns, and moved in a straight line their head trails by the turn.  ``frame_s``: the stream's frame
        interval (0: not known, taken as 30 fps), which the turn's limit is per.
        """
        if len(self._people) < (1 if turns else 2) or self._pair is None:
            return []
        before_soft, soft, before, mask, frames = self._pair
        h, w = mask.shape
        pad = self.box_margin * max(w, h)
        boxes: list[list[int]] = []
        moves: list[np.ndarray | None] = []  # each person's move over ``frames`` frames (2x3, working pixels)
        coasted = 0  # of them, the people who keep the motion measured before (``coast_frames``)
        for k, ((x0, y0, x1, y1), (vx, vy, _area)) in enumerate(self._people):
            speed = math.hypot(vx, vy)
            slack = max(self.agree * speed, self.agree_px) * frames
            m = max(1.0, speed * frames) + pad
            bx0, by0 = max(0, int(x0 - m)), max(0, int(y0 - m))
            bx1, by1 = min(w, int(math.ceil(x1 + m))), min(h, int(math.ceil(y1 + m)))
            was, now, was_soft, now_soft = before, mask, before_soft, soft
            uid = self._people_uids[k] if k < len(self._people_uids) else 0
            if k < len(self._coasting) and self._coasting[k]:  # no plausible step of their own (``__call__``)
                boxes.append([bx0, by0, bx1, by1])
                moves.append(self._coast(uid, frames))
                coasted += moves[-1] is not None
                continue
            if uid and self._people_before is not None and uid in self._people_before[1] and self._labels is not None:
                # the engine says who: this person's own pixels alone, not those of whoever they touch
                prev_labels, prev_people = self._people_before
                was = (prev_labels == prev_people[uid][0]).astype(np.uint8)
                now = (self._labels == self._label_of[k]).astype(np.uint8)
                was_soft, now_soft = before_soft * was, soft * now
            where = np.zeros_like(mask)
            where[by0:by1, bx0:bx1] = (was | now)[by0:by1, bx0:bx1]
            move: np.ndarray | None = None
            # a bust that leans turns about the frame's bottom edge: its centroid hardly moves
            may_turn = turns and self.refine and max(x1 - x0, y1 - y0) >= self.turn_min_side
            if speed >= self.still_px or may_turn:
                mx, my = (vx * frames, vy * frames)
                if self.refine and speed >= self.still_px and not may_turn:  # (the turning ECC refines it)
                    mx, my = _refined(was_soft, now_soft, where, mx, my, slack, self.refine_iterations)
                move = np.array([[1, 0, mx], [0, 1, my]], np.float64)
                if may_turn:
                    max_turn = self.max_turn_speed * (frame_s if frame_s > 0 else 1 / 30) * frames
                    move = _turned(was_soft, now_soft, where, move, slack, max_turn,
                                   self.refine_iterations)
                    if speed < self.still_px and abs(_turn_of(move)) < self.still_turn * frames:
                        move = None  # standing still
                if move is not None and not self._explains(was, now, move, (bx0, by0, bx1, by1)):
                    move = self._coast(uid, frames) if uid else None
                    coasted += move is not None
                elif uid:
                    self._went(uid, move, (x0 + x1) / 2, (y0 + y1) / 2, frames)
            elif uid:
                self._went(uid, None, 0.0, 0.0, frames)
            boxes.append([bx0, by0, bx1, by1])
            moves.append(move)
        measured = sum(mv is not None for mv in moves) - coasted
        if not measured and (coasted == 0 or self._motion != (0.0, 0.0)):
            return []  # (the whole mask's motion, when it explains the step, covers people none measured)
        if not self._cut_apart(boxes):
            return []
        out: list[PersonMove] = []
        for (x0, y0, x1, y1), mv in zip(boxes, moves):
            box = (x0 / w, y0 / h, x1 / w, y1 / h)
            if mv is None:
                out.append(PersonMove(box, (0.0, 0.0)))
                continue
            # per frame, about the box's centre: its step, and the turn
            tx, ty = _shift_at(mv, (x0 + x1) / 2, (y0 + y1) / 2)
            out.append(PersonMove(box, (tx / frames / w, ty / frames / h), _turn_of(mv) / frames))
        return out

    def _went(self, uid: int, move: np.ndarray | None, cx: float, cy: float, frames: int) -> None:
        """Remember the motion measured for person ``uid``: ``move`` over ``frames`` frames, about (cx, cy);
        None: standing still."""
        tx, ty = (0.0, 0.0) if move is None else _shift_at(move, cx, cy)
        vx, vy = tx / frames, ty / frames
        was = self._going.get(uid)
        speed, before = math.hypot(vx, vy), 0.0 if was is None else math.hypot(was.vx, was.vy)
        # (``_going`` holds only people measured within ``coast_frames``: ``__call__`` drops the rest)
        steady = was is not None and (math.hypot(vx - was.vx, vy - was.vy) <= self.coast_agree * max(speed, before)
                                      and speed >= self.coast_slowing * before)
        self._going[uid] = _Going(vx, vy, self._clock, steady)

    def _coast(self, uid: int, frames: int) -> np.ndarray | None:
        """The move over ``frames`` frames by the steady motion last measured for person ``uid``, when that was
        at most ``coast_frames`` frames ago; else None."""
        going = self._going.get(uid)
        if going is None or not going.steady:
            return None
        return np.array([[1, 0, going.vx * frames], [0, 1, going.vy * frames]], np.float64)

    def _cut_apart(self, boxes: list[list[int]]) -> bool:
        """Trim overlapping boxes (x0, y0, x1, y1, in place) so that none overlaps another: each pair along
        the column or row that leaves fewest of either person's pixels on the other's side, at most
        ``cut_share`` of the smaller one's.  False when some pair cannot be cut so."""
        labels = self._labels
        assert labels is not None
        for i in range(len(boxes)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                if not _overlap(a, b):
                    continue
                pa, pb = labels == self._label_of[i], labels == self._label_of[j]
                best: tuple[int, int, int, bool] | None = None  # cost, axis (0: a column, 1: a row), line, a first
                for axis in (0, 1):
                    ca, cb = pa.sum(axis=axis), pb.sum(axis=axis)  # pixels per column (or row)
                    a_first = _centre(ca) <= _centre(cb)
                    lo, hi = max(a[axis], b[axis]), min(a[axis + 2], b[axis + 2])
                    costs = _cut_costs(ca, cb, lo, hi) if a_first else _cut_costs(cb, ca, lo, hi)
                    k = int(np.argmin(costs))
                    if best is None or costs[k] < best[0]:
                        best = (int(costs[k]), axis, lo + k, a_first)
                assert best is not None
                cost, axis, line, a_first = best
                if cost > self.cut_share * min(int(pa.sum()), int(pb.sum())):
                    return False
                first, second = (a, b) if a_first else (b, a)
                first[axis + 2] = min(first[axis + 2], line)
                second[axis] = max(second[axis], line)
                if first[axis] >= first[axis + 2] or second[axis] >= second[axis + 2]:
                    return False
        return not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[:i])

    def _step(self, part: tuple[float, float, float], was: tuple[float, float, float],
              frames: int) -> tuple[float, float] | None:
        """Motion per frame of ``part`` (cx, cy, area) from ``was``, the part of the mask before nearest to it;
        None when that is not plausibly the same part (its area changed a lot: a merge, a split; or the step
        is too long for its size)."""
        (cx, cy, area), (px, py, pa) = part, was
        vx, vy = (cx - px) / frames, (cy - py) / frames
        if (abs(area - pa) > self.max_area_change * max(area, pa)
                or math.hypot(vx, vy) > self.max_step * math.sqrt(area)):
            return None
        return vx, vy

    def _explains(self, before: np.ndarray, mask: np.ndarray, move: np.ndarray,
                  box: tuple[int, int, int, int] | None = None) -> bool:
        """Whether the mask before, moved by ``move`` (2x3: a point of the mask before -> where it is now),
        overlaps this one (in ``box``: x0, y0, x1, y1) by ``explain`` more of what they do not share than
        unmoved (a merged blob of people moving apart is not one motion)."""
        if self.explain <= 0:
            return True
        h, w = mask.shape
        moved = cv2.warpAffine(before, move.astype(np.float32), (w, h), flags=cv2.INTER_NEAREST)
        x0, y0, x1, y1 = box or (0, 0, w, h)
        b, now, moved = before[y0:y1, x0:x1], mask[y0:y1, x0:x1], moved[y0:y1, x0:x1]
        held, fit = _iou(b, now), _iou(moved, now)
        return fit >= held + self.explain * (1.0 - held)

    def __call__(self, alpha: np.ndarray, frames: int, who: np.ndarray | None = None) -> tuple[float, float]:
        """Motion per frame, as fractions of the mask's width and height, of ``alpha`` ((H, W), 0..1)
        against the mask of ``frames`` frames before (0: not known, nothing is measured).

        ``who``: the engine's map of who is who (``EngineOutput.people``), any size: an outline that holds
        several people it follows is split into them, and each is matched to the same person before."""
        h, w = alpha.shape
        scale = self.work_side / max(h, w)
        if scale < 1.0:
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        soft = np.ascontiguousarray(alpha, dtype=np.float32)
        mask = (soft >= 0.5).astype(np.uint8)
        n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
        uid_of: dict[int, int] = {}
        if who is not None and n > 1:
            if who.shape != (h, w):
                who = cv2.resize(who, (w, h), interpolation=cv2.INTER_NEAREST)
            n, labels, stats, cents, uid_of = _split_by_person(labels, n, stats, cents, who)
        areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        parts: list[tuple[float, float, float]] = []
        keep: list[int] = []
        if len(areas):
            floor = max(float(self.min_pixels), self.min_share * float(areas.max()))
            keep = [i for i in range(1, n) if areas[i - 1] >= floor]
            parts = [(float(cents[i][0]), float(cents[i][1]), float(areas[i - 1])) for i in keep]
        boxes = {i: (int(stats[i, 0]), int(stats[i, 1]), int(stats[i, 0] + stats[i, 2]), int(stats[i, 1] + stats[i, 3]))
                 for i in keep}
        uids = [uid_of.get(i, 0) for i in keep]
        before_people, self._before_people = self._before_people, (
            (labels, {u: (i, part) for i, u, part in zip(keep, uids, parts) if u}) if uid_of else None)
        prev, self._prev = self._prev, parts
        prev_by_uid = {u: part for u, (_, part) in before_people[1].items()} if before_people else {}

        def match(part: tuple[float, float, float], uid: int) -> tuple[tuple[float, float, float] | None, bool]:
            """The same part in the mask before: the same person's where the engine says who, else the
            nearest; and whether it was the engine's say."""
            if uid and uid in prev_by_uid:
                return prev_by_uid[uid], True
            return _nearest(prev, part), False

        before, self._prev_mask = self._prev_mask, mask
        before_soft, self._prev_soft = self._prev_soft, soft
        self._people, self._people_uids, self._coasting = [], [], []
        self._clock += max(0, frames)
        self._motion = (0.0, 0.0)
        # what was measured longer ago than ``coast_frames`` is kept no more (nor grows in a long stream)
        self._going = {u: g for u, g in self._going.items() if self._clock - g.when <= self.coast_frames}
        if frames <= 0 or not parts or before is None or before.shape != mask.shape:
            return (0.0, 0.0)
        if before_soft is not None:
            # each part that is plainly the same as one of the mask before (each the other's nearest, about
            # as large, a plausible step) gets its own motion, measured only if a client asks (``people``);
            # a blob that comes and goes beside them stays where it is
            own, label_of, own_uids, coasting = [], [], [], []
            for i, part, uid in zip(keep, parts, uids):
                was, said = match(part, uid)
                if was is None or not said and _nearest(parts, was) is not part:  # each the other's nearest
                    continue
                step = self._step(part, was, frames)
                going = self._going.get(uid) if said else None
                coast = step is None and going is not None and going.steady
                if coast and going is not None:
                    step = (going.vx, going.vy)  # their outline changed (covered, uncovered): they keep going
                if step is not None:
                    own.append((boxes[i], (*step, part[2])))
                    label_of.append(i)
                    own_uids.append(uid if said else 0)
                    coasting.append(coast)
            if own:
                self._people, self._pair = own, (before_soft, soft, before, mask, frames)
                self._labels, self._label_of, self._people_uids = labels, label_of, own_uids
                self._coasting = coasting
                self._people_before = before_people
        if len(parts) != len(prev):
            return (0.0, 0.0)
        moves: list[tuple[float, float, float]] = []
        for part, uid in zip(parts, uids):
            was, _ = match(part, uid)
            step = self._step(part, was, frames) if was is not None else None
            if step is None:
                return (0.0, 0.0)
            moves.append((*step, part[2]))
        total = sum(a for _, _, a in moves)
        mx = sum(vx * a for vx, _, a in moves) / total
        my = sum(vy * a for _, vy, a in moves) / total
        speed = math.hypot(mx, my)
        if any(math.hypot(vx - mx, vy - my) > max(self.agree * speed, self.agree_px) for vx, vy, _ in moves):
            return (0.0, 0.0)
        if speed < self.still_px:
            return (0.0, 0.0)
        if self.refine and before_soft is not None:
            mx, my = _refined(before_soft, soft, before | mask, mx * frames, my * frames,
                              max(self.agree * speed, self.agree_px) * frames, self.refine_iterations)
            mx, my = mx / frames, my / frames
        if not self._explains(before, mask, np.array([[1, 0, mx * frames], [0, 1, my * frames]])):
            return (0.0, 0.0)
        self._motion = (mx / w, my / h)
        return self._motion


def carry(alpha: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """``alpha`` moved by ``offset`` (fractions of its width and height, from ``carry_offset``) as the filter's
    shader shows it: sampled at uv - offset, clamped at the edge.  ``replay`` and the evaluation use it."""
    dx, dy = offset
    if not (dx or dy):
        return alpha
    h, w = alpha.shape[:2]
    move = np.array([[1, 0, dx * w], [0, 1, dy * h]], np.float32)
    return cv2.warpAffine(alpha, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def carry_people(alpha: np.ndarray, people: list[Carry]) -> np.ndarray:
    """``alpha`` with what lies in each person's box moved and turned as ``people_offsets`` says, the rest where
    it is, as the filter's shader shows it."""
    if not people:
        return alpha
    h, w = alpha.shape[:2]
    out = alpha.copy()
    pieces = []
    for p in people:
        x0, y0, x1, y1 = p.box
        c0, r0, c1, r1 = (int(round(x0 * w)), int(round(y0 * h)), int(round(x1 * w)), int(round(y1 * h)))
        piece = np.zeros_like(alpha)
        piece[r0:r1, c0:c1] = alpha[r0:r1, c0:c1]
        out[r0:r1, c0:c1] = 0
        if not (p.offset[0] or p.offset[1] or p.turn):
            pieces.append(piece)
            continue
        # a point x of the box goes to c + R (x - c) + offset (pixels; c = the box's centre)
        cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
        c, s = math.cos(p.turn), math.sin(p.turn)
        move = np.array([[c, -s, cx + p.offset[0] * w - c * cx + s * cy],
                         [s, c, cy + p.offset[1] * h - s * cx - c * cy]], np.float32)
        pieces.append(cv2.warpAffine(piece, move, (w, h), flags=cv2.INTER_LINEAR))
    for piece in pieces:
        np.maximum(out, piece, out=out)
    return out


def _ecc_on_box(before: np.ndarray, now: np.ndarray, where: np.ndarray, dx: float, dy: float, slack: float,
                iterations: int, mode: int) -> np.ndarray | None:
    """ECC (``mode``: shift, or shift and turn) on the people's box (``where``, padded by the motion and the
    slack), started from the shift (dx, dy): the warp found, a point of ``now`` -> where it was in ``before``
    (2x3, the whole mask's pixels); None when there is no box, or ECC fails or gives no finite warp."""
    bx, by, bw, bh = cv2.boundingRect(where)
    if not bw or not bh:
        return None
    pad = int(math.ceil(max(abs(dx), abs(dy)) + slack)) + 4
    h, w = now.shape
    x0, x1 = max(0, bx - pad), min(w, bx + bw + pad)
    y0, y1 = max(0, by - pad), min(h, by + bh + pad)
    a, b = now[y0:y1, x0:x1], before[y0:y1, x0:x1]
    k = 2 if min(a.shape) >= 32 else 1  # half the pixels cost half as much and find the same move
    if k == 2:
        a, b = np.asarray(cv2.pyrDown(a)), np.asarray(cv2.pyrDown(b))
    # ECC finds the warp W with before(W x) = now(x), x in the crop (reduced k times): a shift t is minus
    # the motion
    start = np.array([[1, 0, -dx / k], [0, 1, -dy / k]], np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-3)
    try:
        no_mask: Any = None  # the whole crop counts (the stubs want a Mat; OpenCV takes None)
        _, warp = cv2.findTransformECC(a, b, start, mode, criteria, no_mask, 3)
    except cv2.error:  # no texture to align (a flat crop), or it did not converge
        return None
    if not np.all(np.isfinite(warp)):
        return None
    rot = warp[:, :2].astype(np.float64)
    o = np.array([x0, y0], np.float64)
    return np.hstack([rot, (k * warp[:, 2].astype(np.float64) + o - rot @ o)[:, None]])


def _refined(before: np.ndarray, now: np.ndarray, where: np.ndarray, dx: float, dy: float,
             slack: float, iterations: int) -> tuple[float, float]:
    """The shift (dx, dy) that best lays ``before`` onto ``now``, refined from the centroids' one by ECC on
    the people's box; the centroids' shift when ECC fails or wanders further than ``slack`` from it."""
    back = _ecc_on_box(before, now, where, dx, dy, slack, iterations, cv2.MOTION_TRANSLATION)
    if back is None:
        return dx, dy
    rx, ry = -float(back[0, 2]), -float(back[1, 2])
    if math.hypot(rx - dx, ry - dy) > slack:
        return dx, dy
    return rx, ry


def _turned(before: np.ndarray, now: np.ndarray, where: np.ndarray, move: np.ndarray, slack: float,
            max_turn: float, iterations: int) -> np.ndarray:
    """``move`` (2x3, a shift: a point of ``before`` -> where it is in ``now``) refined by ECC allowed to turn
    as well, on the people's box; ``move`` itself when ECC fails, turns further than ``max_turn`` radians,
    or takes the person's centroid further than ``slack`` from where ``move`` puts it."""
    dx, dy = float(move[0, 2]), float(move[1, 2])
    back = _ecc_on_box(before, now, where, dx, dy, slack, iterations, cv2.MOTION_EUCLIDEAN)
    if back is None:
        return move
    # x_before = R x_now + g, so a point of before goes to R^T (x - g)
    rot = back[:, :2]
    turned = np.hstack([rot.T, (-rot.T @ back[:, 2])[:, None]])
    # a rigid move takes the person's centroid to theirs now: ``move``'s shift (the centroids')
    bx, by, bw, bh = cv2.boundingRect(where)
    m = cv2.moments(np.where(where[by:by + bh, bx:bx + bw] > 0, before[by:by + bh, bx:bx + bw], 0).astype(np.float32))
    if m["m00"] <= 0:
        return move
    sx, sy = _shift_at(turned, bx + m["m10"] / m["m00"], by + m["m01"] / m["m00"])
    if abs(_turn_of(turned)) > max_turn or math.hypot(sx - dx, sy - dy) > slack:
        return move
    return turned


def _shift_at(move: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """How far ``move`` (2x3) takes the point (x, y)."""
    return (float(move[0, 0] * x + move[0, 1] * y + move[0, 2] - x),
            float(move[1, 0] * x + move[1, 1] * y + move[1, 2] - y))


def _turn_of(move: np.ndarray) -> float:
    """The turn of ``move`` (2x3), radians, clockwise on screen."""
    return math.atan2(float(move[1, 0]), float(move[0, 0]))


def _nearest(parts: list[tuple[float, float, float]], part: tuple[float, float, float]
             ) -> tuple[float, float, float] | None:
    """The one of ``parts`` (cx, cy, area) whose centre is nearest ``part``'s; None when there are none."""
    return min(parts, key=lambda p: (p[0] - part[0]) ** 2 + (p[1] - part[1]) ** 2, default=None)


def _split_by_person(labels: np.ndarray, n: int, stats: np.ndarray, cents: np.ndarray, who: np.ndarray
                     ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, dict[int, int]]:
    """Connected parts (``cv2.connectedComponentsWithStats``' n, labels, stats, centroids) with each part that
    holds several of the engine's people (``who``) split into them (what no one holds stays the part);
    and the person each part is (label -> uid), where it is one."""
    uid_of: dict[int, int] = {}
    pieces: list[tuple[int, np.ndarray]] = []  # (uid, pixels) of the people split off
    for i in range(1, n):
        x0, y0, bw, bh = (int(v) for v in stats[i, :4])
        window = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        here = labels[window] == i
        found = np.unique(who[window][here])
        found = found[found > 0]
        if len(found) == 1:
            uid_of[i] = int(found[0])
        elif len(found) > 1:
            for u in found:
                sel = np.zeros(labels.shape, bool)
                sel[window] = here & (who[window] == u)
                pieces.append((int(u), sel))
    if not pieces:
        return n, labels, stats, cents, uid_of
    labels = labels.copy()
    for k, (u, sel) in enumerate(pieces):
        labels[sel] = n + k
        uid_of[n + k] = u
    total = n + len(pieces)
    stats = np.zeros((total, 5), np.int32)
    cents = np.zeros((total, 2), np.float64)
    for i in range(1, total):
        ys, xs = np.nonzero(labels == i)
        if len(xs):
            stats[i] = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, len(xs))
            cents[i] = (xs.mean(), ys.mean())
    return total, labels, stats, cents, uid_of


def _overlap(a: list[int], b: list[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _centre(counts: np.ndarray) -> float:
    total = float(counts.sum())
    return float((np.arange(len(counts)) * counts).sum()) / total if total else 0.0


def _cut_costs(first: np.ndarray, second: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """For a line at each of ``lo..hi`` (``first`` keeps what is before it, ``second`` what is from it on):
    the pixels left on the wrong side, from each one's pixel count per column (or row)."""
    f = np.concatenate([[0], np.cumsum(first)])
    s = np.concatenate([[0], np.cumsum(second)])
    return (f[-1] - f[lo:hi + 1]) + s[lo:hi + 1]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 1.0


def people_boxes(people: list[PersonMove], width: int, height: int) -> list[PersonBox]:
    """``PipelineResult.people`` in a ``width`` x ``height`` mask's pixels and the header's motion units; none
    when the boxes overlap, or there are more than the client moves.  Boxes are rounded out to whole pixels,
    except where two of them meet (cut apart, ``MaskMotion.people``): that edge is rounded to the nearest.
    A turning person's step is then given about the rounded box's centre."""
    boxes = [PersonBox(max(0, int(p.box[0] * width)), max(0, int(p.box[1] * height)),
                       min(width, math.ceil(p.box[2] * width)), min(height, math.ceil(p.box[3] * height)), 0, 0)
             for p in people]
    for i, pa in enumerate(people):
        for j, pb in enumerate(people):
            a, b = boxes[i], boxes[j]
            if i == j or not a.overlaps(b):
                continue
            fa, fb = pa.box, pb.box
            if fa[2] <= fb[0]:  # a ends where (or before) b begins, in x
                edge = round((fa[2] + fb[0]) / 2 * width)
                boxes[i], boxes[j] = replace(a, x1=min(a.x1, edge)), replace(b, x0=max(b.x0, edge))
            elif fa[3] <= fb[1]:  # ... in y
                edge = round((fa[3] + fb[1]) / 2 * height)
                boxes[i], boxes[j] = replace(a, y1=min(a.y1, edge)), replace(b, y0=max(b.y0, edge))
    if not 1 <= len(boxes) <= MAX_PEOPLE or any(b.x0 >= b.x1 or b.y0 >= b.y1 for b in boxes) or any(
            a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[:i]):
        return []
    out = []
    for p, b in zip(people, boxes):
        tx, ty = p.motion[0] * width, p.motion[1] * height  # pixels per frame, about the box's own centre
        if p.turn:  # about the rounded box's centre: the centre's offset turns too
            ox = (b.x0 + b.x1) / 2 - (p.box[0] + p.box[2]) / 2 * width
            oy = (b.y0 + b.y1) / 2 - (p.box[1] + p.box[3]) / 2 * height
            c, s = math.cos(p.turn), math.sin(p.turn)
            tx, ty = tx + (c - 1) * ox - s * oy, ty + s * ox + (c - 1) * oy
        out.append(replace(b, motion_x=_units(tx / width * MOTION_SCALE), motion_y=_units(ty / height * MOTION_SCALE),
                           turn=_units(p.turn * TURN_SCALE)))
    return out


def _units(v: float) -> int:
    """A value for a signed 16-bit field, clamped."""
    return max(-MOTION_LIMIT, min(MOTION_LIMIT, round(v)))
