"""The CONFIG message's settings, as one dataclass both sides agree on."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ProtocolError
from .messages import ErrorCode


@dataclass
class StreamConfig:
    """Per-client settings; every CONFIG bumps the server-side generation.

    ``keep`` names the classes (or their ids as strings) whose probability makes
    up the alpha; ``None`` means every non-background class.
    """

    keep: list[str] | None = None
    threshold: float = 0.5
    soft: bool = True  # soft alpha (probabilities) or a hard 0/255 cut at threshold
    smoothing: float = 0.5  # temporal EMA weight of the past, 0 = off
    motion: bool = True  # motion-compensate held masks where the engine supports it
    # frames the mask is moved ahead along the motion (motion on): the client's display lag.
    # A live client showing masks as they arrive sends its lag (the OBS filter: 2); a client
    # that waits for each frame's mask (sync, files, single images) keeps 0
    predict_frames: float = 0.0
    refine: bool = False  # edge refinement with the full-resolution frame
    min_island: float = 0.0  # drop mask blobs below this fraction of the frame touching nothing larger; 0 = off
    engine_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "StreamConfig":
        if self.keep is not None:
            if not isinstance(self.keep, list) or not all(isinstance(k, (str, int)) for k in self.keep):
                raise ProtocolError(ErrorCode.BAD_CONFIG, "keep must be a list of class names or ids")
            self.keep = [str(k) for k in self.keep]
        for name, lo, hi in (("threshold", 0.0, 1.0), ("smoothing", 0.0, 0.99), ("predict_frames", 0.0, 10.0),
                             ("min_island", 0.0, 0.1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                raise ProtocolError(ErrorCode.BAD_CONFIG, f"{name} must be a number in [{lo}, {hi}], got {v!r}")
            setattr(self, name, float(v))
        for name in ("soft", "motion", "refine"):
            if not isinstance(getattr(self, name), bool):
                raise ProtocolError(ErrorCode.BAD_CONFIG, f"{name} must be true or false")
        if not isinstance(self.engine_options, dict):
            raise ProtocolError(ErrorCode.BAD_CONFIG, "engine_options must be an object")
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, base: "StreamConfig | None" = None) -> "StreamConfig":
        """Apply a (partial) JSON object on top of ``base``; unknown keys are an error."""
        if not isinstance(obj, dict):
            raise ProtocolError(ErrorCode.BAD_CONFIG, "CONFIG payload must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ProtocolError(ErrorCode.BAD_CONFIG, f"unknown setting(s): {', '.join(unknown)}")
        merged = asdict(base) if base is not None else {}
        merged.update(obj)
        return cls(**merged).validate()
