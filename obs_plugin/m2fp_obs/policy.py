"""What the filter draws this frame, given the transport's state and the newest mask.

Kept apart from OBS so the fallback policy can be tested with a clock alone:
while the server answers, the newest mask is shown however old it is (a slow
engine is not an outage); once the server is *away* (connection dropped or no
answer to pings), the last mask is held for ``hold_ms`` and then the frame is
passed through or hidden, as the user chose.  Before the first mask the same
choice applies: with "hide" (the default) the unmasked room is never shown, not
even while a server is starting.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional


class Action(enum.Enum):
    COMPOSITE = "composite"  # apply the newest mask
    HOLD = "hold"  # server away, still within hold_ms: keep applying the last mask
    PASS = "pass"  # no usable mask: show the frame untouched
    HIDE = "hide"  # no usable mask and the user prefers hiding the source


class Fallback(enum.Enum):
    PASS = "pass"
    HIDE = "hide"


@dataclass
class FallbackPolicy:
    hold_ms: float = 500.0
    after_hold: Fallback = Fallback.HIDE

    def decide(self, now: float, have_mask: bool, server_alive: bool, away_since: Optional[float]) -> Action:
        """``now`` and ``away_since`` are monotonic seconds; ``away_since`` is None while alive."""
        if have_mask and server_alive:
            return Action.COMPOSITE
        if have_mask and away_since is not None and (now - away_since) * 1000.0 < self.hold_ms:
            return Action.HOLD
        return Action.HIDE if self.after_hold is Fallback.HIDE else Action.PASS
