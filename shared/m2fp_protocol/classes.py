"""Class lists and the colour palette shared by the server and the OBS script.

The server is the authority on which classes an engine has (INFO carries them);
these tables give the embedded engine its list and every class a stable colour
for the colour-coded parsing view (the seed service's "拼图" picture).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "color": list(self.color)}

    @classmethod
    def from_json(cls, obj: dict) -> "ClassInfo":
        r, g, b = (int(c) for c in obj["color"])
        return cls(int(obj["id"]), str(obj["name"]), (r, g, b))


#: The LIP / CIHP palette used by human-parsing tools; index = class id.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51),
    (255, 85, 0), (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85),
    (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221),
    (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)

#: CIHP parsing classes in model order (multi-person M2FP).
CIHP_NAMES = (
    "Background", "Hat", "Hair", "Gloves", "Sunglasses", "UpperClothes", "Dress", "Coat",
    "Socks", "Pants", "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
    "Left-leg", "Right-leg", "Left-shoe", "Right-shoe",
)

BACKGROUND_NAMES = frozenset({"background", "bg"})


def color_for(index: int) -> tuple[int, int, int]:
    """A stable colour for any class index, the palette first, then a hash."""
    if 0 <= index < len(PALETTE):
        return PALETTE[index]
    x = (index * 2654435761) & 0xFFFFFF
    return ((x >> 16) & 0xFF, (x >> 8) & 0xFF, x & 0xFF)


def make_classes(names: Iterable[str]) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(i, n, color_for(i)) for i, n in enumerate(names))


PERSON_CLASSES = (ClassInfo(0, "Background", (0, 0, 0)), ClassInfo(1, "Person", (255, 85, 0)))
CIHP_CLASSES = make_classes(CIHP_NAMES)


def is_background(name: str) -> bool:
    return name.strip().lower() in BACKGROUND_NAMES


def foreground_ids(classes: Sequence[ClassInfo]) -> list[int]:
    return [c.id for c in classes if not is_background(c.name)]
