"""When the filter sends (pure Python, no OBS): after the render while masks come back in time, at the tick
for a while when too many come back a frame late; and the age of the mask shown in each frame."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_obs.pacing import DISPLAY_LAG, Pacer  # noqa: E402


def run(p: Pacer, frames: int, late_every: int = 0, start_id: int = 1) -> int:
    """The filter's order of calls for ``frames`` OBS frames: frame c is captured in the render after tick c,
    read back at tick c + 1 and sent then or after that render; its mask is taken in the render after tick
    c + 2 (in time) or, for every ``late_every``-th frame, c + 3.  Returns the next frame id."""
    arrivals: dict[int, list[int]] = {}
    fid = start_id
    for tick in range(frames):
        p.tick()
        now = p.ticks
        captured = now - 1  # read back at this tick
        if tick > 0:
            p.sent(fid, captured)
            late = late_every and fid % late_every == 0
            arrivals.setdefault(captured + DISPLAY_LAG + (1 if late else 0), []).append(fid)
            fid += 1
        for f in arrivals.pop(now, []):  # the render polls
            p.mask_arrived(f)
        p.shown()
    return fid


def test_masks_in_time_keep_sending_after_the_render_and_are_shown_at_the_display_lag():
    p = Pacer(window=30)
    run(p, 200)
    assert p.after_render and p.fallbacks == 0
    ages = p.stats()["shown_mask_age_frames"]
    assert set(ages) == {str(DISPLAY_LAG)}, ages


def test_too_many_late_masks_send_at_the_tick_then_try_again():
    p = Pacer(late_share=0.2, window=30, retry_ticks=100)
    fid = run(p, 60, late_every=3)  # a third late: more than the share allowed
    assert not p.after_render and p.fallbacks == 1
    assert p.stats()["send"] == "at tick"
    ages = p.stats()["shown_mask_age_frames"]
    assert ages.get(str(DISPLAY_LAG + 1), 0) > 0, ages
    fid = run(p, 150, start_id=fid)  # masks in time again; after retry_ticks the pacer tries again
    assert p.after_render and p.fallbacks == 1
    run(p, 100, start_id=fid)
    assert p.after_render and p.fallbacks == 1


def test_a_few_late_masks_do_not_change_when_it_sends():
    p = Pacer(late_share=0.2, window=30)
    run(p, 300, late_every=10)
    assert p.after_render and p.fallbacks == 0


def test_masks_of_frames_sent_at_the_tick_are_not_judged():
    p = Pacer(window=10)
    for i in range(1, 40):
        p.tick()
        p.after_render = False  # sending at the tick (a fallback)...
        p.sent(i, p.ticks - 1)
        p.after_render = True  # ...whose retry came before the mask
        p.tick()
        p.tick()
        assert p.mask_arrived(i) == 3  # late, but sent at the tick: nothing to learn about after-render sends
    assert p.after_render and p.fallbacks == 0


def test_unknown_and_forgotten_frames():
    p = Pacer()
    assert p.mask_arrived(5) is None
    p.sent(None, 0)  # not sent (queue full): nothing tracked
    for i in range(1, 200):
        p.sent(i, 0)
    assert p.mask_arrived(1) is None  # only the newest sends are remembered
    assert p.mask_arrived(199) == 0
    p.forget()  # a new connection numbers frames from 1 again
    assert p.mask_arrived(198) is None
    p.shown()
    assert p.stats()["shown_mask_age_frames"] == {}
