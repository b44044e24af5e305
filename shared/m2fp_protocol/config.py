"""The CONFIG message's settings, as one dataclass both sides agree on."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .validation import CONFIG_SCHEMA, validate_object


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
        """Check every field against :data:`~m2fp_protocol.validation.CONFIG_SCHEMA` (types, ranges, lengths)."""
        checked = validate_object(asdict(self), CONFIG_SCHEMA, "CONFIG")
        for name, value in checked.items():
            setattr(self, name, value)
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, base: "StreamConfig | None" = None) -> "StreamConfig":
        """Apply a (partial) JSON object on top of ``base``; unknown keys and bad values are an error.

        The object is checked field by field before anything is copied or merged.
        """
        checked = validate_object(obj, CONFIG_SCHEMA, "CONFIG")
        merged = {f.name: getattr(base, f.name) for f in fields(cls)} if base is not None else {}
        merged.update(checked)
        return cls(**merged)
