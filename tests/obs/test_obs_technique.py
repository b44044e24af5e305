"""The one technique chooser of the OBS filter (pure Python, no OBS): modes → effect technique, and the
fallbacks when a texture is missing."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_obs.render import EFFECT_FILE, choose_technique  # noqa: E402

ALL = {"bg_image": True, "small": True, "parsing": True}


@pytest.mark.parametrize("view, background, have, expected", [
    ("composite", "transparent", ALL, "Transparent"),
    ("composite", "color", ALL, "Color"),
    ("composite", "image", ALL, "Image"),
    ("composite", "blur", ALL, "Blur"),
    ("composite", "image", {**ALL, "bg_image": False}, "Transparent"),  # no image file: never an unchosen colour
    ("composite", "blur", {**ALL, "small": False}, "Transparent"),  # no blurred copy yet
    ("composite", "unknown", ALL, "Transparent"),
    ("alpha", "blur", ALL, "Alpha"),
    ("parsing", "color", ALL, "Parsing"),
    ("parsing", "color", {**ALL, "parsing": False}, "Alpha"),  # no parsing map yet
])
def test_modes_map_to_techniques_with_fallbacks(view, background, have, expected):
    assert choose_technique(view, background, **have) == expected


def test_every_technique_chosen_exists_in_the_effect_file():
    declared = set(re.findall(r"^technique\s+(\w+)", Path(EFFECT_FILE).read_text(), re.M))
    chosen = {choose_technique(v, b, bg_image=i, small=s, parsing=p)
              for v in ("composite", "alpha", "parsing") for b in ("transparent", "color", "image", "blur")
              for i in (True, False) for s in (True, False) for p in (True, False)}
    assert chosen | {"Draw"} <= declared
