"""The filter's settings and fallback policy (pure Python, no OBS): names, defaults, CONFIG, policy table."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_protocol import StreamConfig  # noqa: E402
from m2fp_obs.policy import Action, Fallback, FallbackPolicy  # noqa: E402
from m2fp_obs.settings import FilterSettings, keep_key  # noqa: E402


def read(values: dict, classes=()):  # type: ignore[no-untyped-def]
    defaults = {k: v for k, _kind, v in FilterSettings.defaults(classes)}
    merged = {**defaults, **values}
    return FilterSettings.read(lambda k: merged.get(k, ""), lambda k: merged.get(k, 0),
                               lambda k: merged.get(k, 0.0), lambda k: merged.get(k, False), classes)


CIHP = ["Background", "Hat", "Hair", "Face", "UpperClothes"]


def test_defaults_keep_every_part_and_send_a_valid_config():
    s = read({}, CIHP)
    assert s.server_address == "tcp://127.0.0.1:5555" and s.background_mode == "transparent"
    cfg = s.server_config(CIHP)
    assert cfg["keep"] is None  # all non-background parts
    StreamConfig.from_json(cfg).validate()  # the server accepts it


def test_unticked_parts_become_the_keep_list():
    s = read({"choose_parts": True, keep_key("Hat"): False, keep_key("Hair"): False}, CIHP)
    assert s.keep_list(CIHP) == ["Face", "UpperClothes"]
    assert read({"choose_parts": True, keep_key("Person"): False}).keep_list(["Background", "Person"]) == []
    # "Keep only some body parts" off: the checkboxes (hidden then) do not apply
    assert read({keep_key("Hat"): False}, CIHP).keep_list(CIHP) is None
    assert keep_key("Left-arm") == "keep_left_arm"


def test_out_of_range_values_are_clamped_and_unknown_modes_fall_back():
    s = read({"threshold": 7.0, "feather": -1.0, "smoothing": 1.5, "background_mode": "lava",
              "view_mode": "x", "hold_ms": -5, "after_hold": "explode", "server_address": "  "})
    assert (s.threshold, s.feather, s.smoothing) == (1.0, 0.0, 0.99)
    assert (s.background_mode, s.view_mode, s.hold_ms, s.after_hold) == ("transparent", "composite", 0, "hide")
    assert s.server_address == "tcp://127.0.0.1:5555"


def test_colour_is_obs_abgr():
    assert read({"background_color": 0xFF0000FF}).color_rgba() == (1.0, 0.0, 0.0, 1.0)


def test_curve_keys_need_all_three():
    s = read({"curve_server_key": "a" * 40})
    with pytest.raises(ValueError, match="all three"):
        s.transport_settings().curve_keys()
    s = read({"curve_server_key": "a" * 40, "curve_public_key": "b" * 40, "curve_secret_key": "short"})
    with pytest.raises(ValueError, match="40 characters"):
        s.transport_settings().curve_keys()


@pytest.mark.parametrize("now, have, alive, away, after, expected", [
    (10.0, True, True, None, Fallback.PASS, Action.COMPOSITE),  # alive: newest mask, however old
    (10.0, True, False, 9.8, Fallback.PASS, Action.HOLD),  # away 200 ms < hold 500 ms
    (10.0, True, False, 9.4, Fallback.PASS, Action.PASS),  # away 600 ms: give up the mask
    (10.0, True, False, 9.4, Fallback.HIDE, Action.HIDE),
    (10.0, False, True, None, Fallback.HIDE, Action.HIDE),  # no mask yet (server starting): the room stays hidden
    (10.0, False, True, None, Fallback.PASS, Action.PASS),
    (10.0, False, False, 9.9, Fallback.HIDE, Action.HIDE),
])
def test_fallback_policy(now, have, alive, away, after, expected):
    assert FallbackPolicy(500.0, after).decide(now, have, alive, away) is expected
