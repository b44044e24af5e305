"""The filter's settings as one dataclass, read from OBS's settings through plain getters.

No OBS import: ``FilterSettings.read`` takes getter functions, so tests (and the
properties code) share one definition of names and defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from m2fp_protocol import (CIHP_CLASSES, DEFAULT_ADDRESS, DEFAULT_SYNC_FRAMES, PERSON_CLASSES, clamp_sync,
                           predict_frames)
from m2fp_protocol import SYNC_MAX as SYNC_MAX  # the shared sync bounds, re-exported for the properties
from m2fp_protocol import SYNC_MIN as SYNC_MIN

from .policy import Fallback, FallbackPolicy
from .transport import TransportSettings

BACKGROUND_MODES = ("transparent", "color", "image", "blur")
VIEW_MODES = ("composite", "alpha", "parsing")
#: "Frame sync" choices offered in the dialog (frames of delay)
SYNC_CHOICES = (0, 1, 2, 3, 4)
#: "Remove small islands": mask components below this fraction of the frame, touching nothing larger, go
ISLAND_FRACTION = 0.002


#: class names the filter knows before any server answers (checkbox defaults are set for all of them)
KNOWN_CLASS_NAMES: Tuple[str, ...] = tuple(dict.fromkeys(c.name for c in (*PERSON_CLASSES, *CIHP_CLASSES)))


def keep_key(class_name: str) -> str:
    """The settings key of one part's checkbox (stable across engines that share a class name)."""
    return "keep_" + "".join(ch if ch.isalnum() else "_" for ch in class_name.lower())


def is_background(name: str) -> bool:
    return name.strip().lower() in ("background", "bg")


@dataclass
class FilterSettings:
    server_address: str = DEFAULT_ADDRESS
    background_mode: str = "transparent"
    background_color: int = 0xFF00FF00  # OBS colour, 0xAABBGGRR (green)
    background_image: str = ""
    blur_strength: float = 0.5  # 0..1
    threshold: float = 0.5
    feather: float = 0.1
    smoothing: float = 0.5  # server-side temporal EMA
    view_mode: str = "composite"
    hold_ms: int = 500
    after_hold: str = "hide"  # hide | pass: hiding is the privacy-safe default (the room never goes on stream)
    remove_islands: bool = True  # drop small stray blobs of mask (server side, CONFIG min_island)
    choose_parts: bool = False  # off: every body part is kept and the checkboxes stay hidden
    keep_flags: Dict[str, bool] = field(default_factory=dict)  # class name -> checkbox
    server_path: str = ""  # m2fp-server to start for a loopback address ("" = where the installers put it)
    advanced: bool = False  # the "Advanced" group is open (dialog only)
    curve_server_key: str = ""
    curve_public_key: str = ""
    curve_secret_key: str = ""
    #: delay the video by N frames: from 2 each frame gets the mask computed from it, 1 halves the motion
    #: the server predicts; 0 = off (``m2fp_protocol.rules``)
    sync_frames: int = DEFAULT_SYNC_FRAMES

    # ---------------------------------------------------------------- reading
    @classmethod
    def read(cls, get_str: Callable[[str], str], get_int: Callable[[str], int], get_float: Callable[[str], float],
             get_bool: Callable[[str], bool], class_names: Iterable[str] = ()) -> "FilterSettings":
        s = cls(
            server_address=get_str("server_address").strip() or DEFAULT_ADDRESS,
            background_mode=_one_of(get_str("background_mode"), BACKGROUND_MODES),
            background_color=int(get_int("background_color")) & 0xFFFFFFFF,
            background_image=get_str("background_image"),
            blur_strength=_clamp(get_float("blur_strength"), 0.0, 1.0),
            threshold=_clamp(get_float("threshold"), 0.0, 1.0),
            feather=_clamp(get_float("feather"), 0.0, 0.5),
            smoothing=_clamp(get_float("smoothing"), 0.0, 0.99),
            view_mode=_one_of(get_str("view_mode"), VIEW_MODES),
            hold_ms=max(0, int(get_int("hold_ms"))),
            after_hold="pass" if get_str("after_hold") == "pass" else "hide",
            remove_islands=bool(get_bool("remove_islands")),
            choose_parts=bool(get_bool("choose_parts")),
            server_path=get_str("server_path").strip(),
            advanced=bool(get_bool("advanced")),
            curve_server_key=get_str("curve_server_key").strip(),
            curve_public_key=get_str("curve_public_key").strip(),
            curve_secret_key=get_str("curve_secret_key").strip(),
            sync_frames=clamp_sync(get_int("sync_frames")),
        )
        for name in dict.fromkeys((*KNOWN_CLASS_NAMES, *class_names)):
            s.keep_flags[name] = bool(get_bool(keep_key(name)))
        return s

    @staticmethod
    def defaults(class_names: Iterable[str] = ()) -> List[Tuple[str, str, Any]]:
        """(key, kind, value) triples for OBS's ``get_defaults``; kind is str/int/float/bool."""
        d = FilterSettings()
        out: List[Tuple[str, str, Any]] = [
            ("server_address", "str", d.server_address), ("background_mode", "str", d.background_mode),
            ("background_color", "int", d.background_color), ("background_image", "str", ""),
            ("blur_strength", "float", d.blur_strength), ("threshold", "float", d.threshold),
            ("feather", "float", d.feather), ("smoothing", "float", d.smoothing),
            ("view_mode", "str", d.view_mode), ("hold_ms", "int", d.hold_ms), ("after_hold", "str", d.after_hold),
            ("curve_server_key", "str", ""), ("curve_public_key", "str", ""), ("curve_secret_key", "str", ""),
            ("sync_frames", "int", d.sync_frames), ("remove_islands", "bool", d.remove_islands),
            ("choose_parts", "bool", d.choose_parts), ("server_path", "str", ""), ("advanced", "bool", d.advanced),
        ]
        for name in dict.fromkeys((*KNOWN_CLASS_NAMES, *class_names)):
            out.append((keep_key(name), "bool", not is_background(name)))
        return out

    # ---------------------------------------------------------------- derived
    def keep_list(self, class_names: Sequence[str]) -> Optional[List[str]]:
        """CONFIG ``keep`` for the server's classes: None when every non-background part is kept."""
        if not self.choose_parts:
            return None
        fg = [n for n in class_names if not is_background(n)]
        kept = [n for n in fg if self.keep_flags.get(n, True)]
        return None if len(kept) == len(fg) else kept

    def server_config(self, class_names: Sequence[str]) -> Dict[str, Any]:
        """A mask is shown the display lag after its frame; the server moves it ahead by what the video
        delay does not cover (nothing from 2 frames of sync on: each frame waits for its own mask)."""
        predict = predict_frames(self.sync_frames)
        return {"keep": self.keep_list(class_names), "smoothing": self.smoothing, "soft": True,
                "predict_frames": predict, "min_island": ISLAND_FRACTION if self.remove_islands else 0.0}

    def transport_settings(self) -> TransportSettings:
        return TransportSettings(address=self.server_address, want_parsing=self.view_mode == "parsing",
                                 curve_server_key=self.curve_server_key, curve_public_key=self.curve_public_key,
                                 curve_secret_key=self.curve_secret_key)

    def connection_key(self) -> Tuple[str, str, str, str]:
        """What needs a new socket when it changes."""
        return (self.server_address, self.curve_server_key, self.curve_public_key, self.curve_secret_key)

    def fallback(self) -> FallbackPolicy:
        return FallbackPolicy(float(self.hold_ms), Fallback.HIDE if self.after_hold == "hide" else Fallback.PASS)

    def color_rgba(self) -> Tuple[float, float, float, float]:
        c = self.background_color
        return ((c & 0xFF) / 255.0, ((c >> 8) & 0xFF) / 255.0, ((c >> 16) & 0xFF) / 255.0, 1.0)


def _clamp(v: float, lo: float, hi: float) -> float:
    v = float(v)
    return lo if v != v else min(hi, max(lo, v))


def _one_of(v: str, allowed: Sequence[str]) -> str:
    return v if v in allowed else allowed[0]
