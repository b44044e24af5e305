"""Frame sync bookkeeping (pure Python, no OBS): ring slots, frame ids → frames, the mask for the frame shown,
and the settings → CONFIG mapping of ``predict_frames``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_protocol import StreamConfig  # noqa: E402
from m2fp_obs.settings import FilterSettings, clamp_sync  # noqa: E402
from m2fp_obs.sync import FrameSync  # noqa: E402


def simulate(delay: int, round_trip: int, frames: int = 40, send_every: int = 1) -> list[tuple[int, int | None]]:
    """OBS frames with the filter's timing: frame k is sent at tick k+1 (readback delay 1) and its mask
    arrives ``round_trip`` ticks later, before that tick's render.  Returns (shown seq, mask seq) per frame."""
    sync = FrameSync(delay)
    arrivals: dict[int, list[int]] = {}
    shown = []
    pending_send: int | None = None
    next_id = 1
    for tick in range(frames):
        if pending_send is not None:  # video_tick: read back the previous render and send it
            fid = next_id
            next_id += 1
            sync.sent(pending_send, fid)
            arrivals.setdefault(tick + round_trip, []).append(fid)
            pending_send = None
        for fid in arrivals.pop(tick, []):  # video_render: poll, upload the masks that are here
            sync.add_mask(fid)
        seq = sync.push()
        if seq % send_every == 0:
            pending_send = seq
        s = sync.shown_seq()
        slot = sync.mask_for(s)
        shown.append((s, sync.mask_seq(slot) if slot is not None else None))
    return shown


def test_ring_fills_then_shows_the_frame_delay_back_never_blocking():
    sync = FrameSync(2)
    assert sync.shown_seq() is None and sync.mask_for(None) is None
    seqs = [sync.push() for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    # after each push the ring shows the oldest frame it has, then exactly 2 back
    sync2 = FrameSync(2)
    shown = []
    for _ in range(5):
        sync2.push()
        shown.append(sync2.shown_seq())
    assert shown == [0, 0, 0, 1, 2]
    # the slot being rendered is never the one shown
    for k in range(10):
        assert sync2.slot_of(k) != sync2.slot_of(k - 2)


def test_each_frame_gets_its_own_mask_when_it_is_back_in_time():
    # readback 1 + a round trip under a frame: the mask of frame k is there at tick k+2
    shown = simulate(delay=2, round_trip=1)
    steady = shown[5:]
    assert all(mask == frame for frame, mask in steady), steady


def test_a_delay_of_one_frame_shows_the_mask_of_the_frame_before_made_for_this_one():
    # its own mask is never back in time; the server moved the previous frame's mask one frame ahead
    sync = FrameSync(1)
    assert sync.ahead == 1
    shown = simulate(delay=1, round_trip=1)
    steady = shown[5:]
    assert all(mask == frame - 1 for frame, mask in steady), steady
    assert sync.mask_for(None) is None
    # counted as the mask made for the frame shown
    for k in range(6):
        seq = sync.push()
        sync.sent(seq, 50 + k)
        sync.add_mask(50 + k)
        sync.count_shown(sync.shown_seq(), sync.mask_seq(sync.mask_for(sync.shown_seq())))
    c = sync.counts()
    assert c["own_mask"] == 4 and c["mask_age_frames"][2:] == [1.0] * 4, c  # after the first (fallback) frames
    # a late mask: the newest made for an earlier frame, never one made for a later frame
    late = simulate(delay=1, round_trip=2)[6:]
    assert all(frame - mask == 2 for frame, mask in late), late
    assert clamp_sync(1) == 1 and clamp_sync(0) == 0 and clamp_sync(9) == 4 and clamp_sync(-3) == 0


def test_late_or_missing_masks_fall_back_to_the_newest_earlier_one():
    # a round trip of 2 frames with a delay of 2: every mask is one frame late
    late = simulate(delay=2, round_trip=2)[6:]
    assert all(frame - mask == 1 for frame, mask in late), late
    # every other frame sent: the unsent frames use the previous frame's mask, never a future one
    sparse = simulate(delay=2, round_trip=1, send_every=2)[6:]
    assert all(0 <= frame - mask <= 1 for frame, mask in sparse), sparse
    assert any(frame == mask for frame, mask in sparse)


def test_exact_match_wins_over_newer_masks_and_unknown_ids_are_only_a_fallback():
    sync = FrameSync(3)
    for _ in range(6):
        sync.push()
    for seq, fid in ((1, 10), (2, 11), (3, 12), (4, 13)):
        sync.sent(seq, fid)
    for fid in (10, 11, 12, 13):
        sync.add_mask(fid)
    assert sync.shown_seq() == 2
    assert sync.mask_seq(sync.mask_for(2)) == 2  # not 4, the newest
    assert sync.mask_seq(sync.mask_for(0)) == 1  # nothing earlier: the oldest held (never wait)
    sync.forget_ids()  # reconnected: ids restart at 1
    assert sync.mask_for(2) is None
    slot = sync.add_mask(99)  # a mask for a frame sync does not know (sent before it was on)
    assert sync.mask_seq(slot) is None and sync.mask_for(5) == slot


def test_mask_pool_evicts_the_oldest_frame_and_stays_bounded():
    sync = FrameSync(2)
    for k in range(50):
        sync.push()
        sync.sent(k, 1000 + k)
        sync.add_mask(1000 + k)
        assert sum(m is not None for m in sync.masks) <= sync.mask_slots
    held = sorted(m.seq for m in sync.masks if m is not None)
    assert held == list(range(50 - sync.mask_slots, 50))
    assert len(sync._seq_of_id) <= 4 * sync.mask_slots + 16


def test_reset_refills_the_ring_but_keeps_seqs_increasing():
    sync = FrameSync(2)
    for _ in range(4):
        sync.push()
    sync.reset()
    assert sync.shown_seq() is None
    assert sync.push() == 4 and sync.shown_seq() == 4


@pytest.mark.parametrize("sync_frames, predict", [(0, 2), (1, 1), (2, 0), (4, 0)])
def test_predict_frames_follows_frame_sync(sync_frames, predict):
    defaults = {k: v for k, _kind, v in FilterSettings.defaults()}
    assert defaults["sync_frames"] == 2
    merged = {**defaults, "sync_frames": sync_frames}
    s = FilterSettings.read(lambda k: merged.get(k, ""), lambda k: merged.get(k, 0), lambda k: merged.get(k, 0.0),
                            lambda k: merged.get(k, False))
    cfg = s.server_config(["Background", "Person"])
    assert cfg["predict_frames"] == predict
    assert StreamConfig.from_json(cfg).validate().predict_frames == predict


def test_shown_frames_are_counted_once_per_obs_frame_however_often_rendered():
    sync = FrameSync(2)
    for k in range(6):
        seq = sync.push()
        sync.sent(seq, 100 + k)
        sync.add_mask(100 + k)
        for _render in range(3):  # the program output, a screenshot, a projector: one OBS frame
            shown = sync.shown_seq()
            slot = sync.mask_for(shown)
            sync.count_shown(shown, sync.mask_seq(slot) if slot is not None else None)
    assert sync.own_mask + sync.other_mask == 6
    assert sync.own_mask == 6 and list(sync.mask_age) == [0.0] * 6
    sync.reset_counts()
    assert sync.counts() == {"own_mask": 0, "other_mask": 0, "carried": 0, "mask_age_frames": []}


def test_a_late_mask_is_moved_on_by_its_motion_and_counted_as_carried():
    """Every mask one frame late (round trip 2, delay 2): each is shown with the frame after its own, moved on
    by one frame of the motion in its MASK header; a mask in time, or one without motion, stays put."""
    from m2fp_protocol import MOTION_SCALE
    motion = (round(0.02 * MOTION_SCALE), 0)  # 2 % of the width to the right per frame
    sync = FrameSync(2)
    offsets = []
    for k in range(8):
        seq = sync.push()
        sync.sent(seq, 100 + k)
        if k >= 3:
            sync.add_mask(100 + k - 3, motion)  # frame k-3's mask arrives now: frame k-2 is shown, one frame late
        shown = sync.shown_seq()
        slot = sync.mask_for(shown)
        if slot is not None and shown is not None and shown >= 2 and k >= 3:
            off = sync.mask_offset(slot, shown)
            sync.count_shown(shown, sync.mask_seq(slot), off)
            offsets.append((shown - (sync.mask_seq(slot) or 0), off))
    assert offsets and all(age == 1 and abs(off[0] - 0.02) < 1e-3 and off[1] == 0 for age, off in offsets), offsets
    assert sync.counts()["carried"] == len(offsets) == sync.other_mask

    sync = FrameSync(2)  # in time: its own mask, never moved
    for k in range(6):
        seq = sync.push()
        sync.sent(seq, 200 + k)
        sync.add_mask(200 + k, motion)
        slot = sync.mask_for(sync.shown_seq())
        assert slot is not None and sync.mask_offset(slot, sync.shown_seq()) == (0.0, 0.0)


def test_a_late_mask_of_people_moving_apart_moves_each_person_by_their_own_motion():
    """A mask that came with each person's box and motion (PEOPLE), shown a frame late: each box gets its own
    offset (the header's one motion is none for people moving apart); shown in time, every offset is none."""
    from m2fp_protocol import MOTION_SCALE, PersonBox
    left, right = (0.0, 0.1, 0.4, 1.0), (0.6, 0.1, 1.0, 1.0)  # in a 100x100 mask
    people = (PersonBox(0, 10, 40, 100, round(-0.02 * MOTION_SCALE), 0),
              PersonBox(60, 10, 100, 100, round(0.03 * MOTION_SCALE), 0))
    sync = FrameSync(2)
    got = []
    for k in range(8):
        seq = sync.push()
        sync.sent(seq, 100 + k)
        if k >= 3:
            sync.add_mask(100 + k - 3, (0, 0), people, (100, 100))  # one frame late, as above
        shown = sync.shown_seq()
        slot = sync.mask_for(shown)
        if slot is not None and shown is not None and shown >= 2 and k >= 3:
            assert sync.mask_offset(slot, shown) == (0.0, 0.0)
            got.append(sync.people_offsets(slot, shown))
    assert got and all([c.box for c in g] == [left, right] for g in got), got
    assert all(abs(g[0].offset[0] + 0.02) < 1e-3 and abs(g[1].offset[0] - 0.03) < 1e-3 for g in got), got
    sync = FrameSync(2)
    for k in range(6):
        seq = sync.push()
        sync.sent(seq, 200 + k)
        sync.add_mask(200 + k, (0, 0), people, (100, 100))
        slot = sync.mask_for(sync.shown_seq())
        assert slot is not None and all(c.offset == (0.0, 0.0) for c in sync.people_offsets(slot, sync.shown_seq()))
