"""Which parked frame the workers run next, and how much frame memory all clients may park.

* latest frame wins per client (a newer frame replaces the parked one: DROPPED);
* a memory budget over all clients' parked and running frames (policy drop-oldest or refuse);
* a fair share of worker time by frame cost, one frame per client at a time, one big frame at a time.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, ProtocolError

from .streams import StreamState


@dataclass
class Job:
    identity: bytes
    message: proto.Message
    frame: Any  # keeps the zmq.Frame (and so the payload buffer) alive
    received: float
    stream: StreamState


#: A frame above this cost (a 720p RGBA frame and mask) is "big": at most one big frame runs at a time,
#: so with two workers one is always free for small frames however many 4K frames are parked.
BIG_COST = 2 * (1280 * 720 * 4)


def _cost(job: Job) -> int:
    """What a frame costs the worker, roughly: its pixels in, and the mask pixels out (float work)."""
    h = job.message.header
    mask = (h.mask_width * h.mask_height) or (h.width * h.height)
    return len(job.message.payload) + 4 * mask


@dataclass
class Scheduler:
    """Latest frame wins per client; clients share the worker's time fairly (start-time fair queuing).

    Each client has a virtual finish time that grows by the cost of each frame it has had run; the
    worker takes the parked frame that would finish earliest in virtual time (ties: arrival order).
    So a client sending small frames is not kept waiting behind other clients' 4K frames, and
    clients sending equal frames still take turns, as with plain round-robin.
    """

    pending: dict[bytes, Job] = field(default_factory=dict)
    order: collections.deque = field(default_factory=collections.deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False
    budget: int = 384 * 1024 * 1024  # parked payload bytes across all clients
    policy: str = "drop-oldest"
    parked: int = 0  # payload bytes of the jobs in ``pending`` and of the one running
    vnow: float = 0.0  # virtual time: the start tag of the frame taken last
    finish: dict[bytes, float] = field(default_factory=dict)  # each client's virtual finish time
    running: set[bytes] = field(default_factory=set)  # clients a worker is processing a frame of
    big_running: int = 0  # of those, frames costing more than BIG_COST

    def submit(self, job: Job) -> tuple[Job | None, list[Job]]:
        """Queue ``job``; return the job it replaced (if any) and the jobs dropped to fit the budget.

        Raises SERVER_BUSY when ``job`` does not fit (policy "refuse", or a frame above the whole budget).
        """
        size = len(job.message.payload)
        evicted: list[Job] = []
        with self.cond:
            old = self.pending.get(job.identity)
            free = self.budget - self.parked + (len(old.message.payload) if old is not None else 0)
            if size > free:
                if self.policy != "drop-oldest" or size > self.budget:
                    raise ProtocolError(ErrorCode.SERVER_BUSY, f"the server's frame memory budget "
                                        f"({self.budget >> 20} MiB) is in use by other clients; frame refused")
                # the largest first (ties: the oldest): a small frame frees little and costs its client a frame
                others = sorted((j for k, j in self.pending.items() if k != job.identity),
                                key=lambda j: (-len(j.message.payload), j.received))
                for victim in others:
                    if size <= free:
                        break
                    self._remove(victim.identity)
                    free += len(victim.message.payload)
                    evicted.append(victim)
            if old is not None:
                self.parked -= len(old.message.payload)
            self.pending[job.identity] = job
            self.parked += size
            if old is None:
                self.order.append(job.identity)
            self.cond.notify()
            return old, evicted

    def _remove(self, identity: bytes) -> Job | None:
        job = self.pending.pop(identity, None)
        if job is not None:
            self.parked -= len(job.message.payload)
            try:
                self.order.remove(identity)
            except ValueError:
                pass
        return job

    def discard(self, identity: bytes) -> Job | None:
        """Drop a client's parked frame without running it (its peer has gone)."""
        with self.cond:
            return self._remove(identity)

    def take(self, timeout: float = 0.2) -> Job | None:
        with self.cond:
            if not self._ready() and not self.closed:
                self.cond.wait(timeout)
            if not self._ready():
                return None
            best: tuple[float, float, bytes] | None = None
            for ident in self.order:  # the earliest virtual finish time wins; ties: arrival order
                if not self._may_run(ident):
                    continue
                start = max(self.vnow, self.finish.get(ident, 0.0))
                end = start + _cost(self.pending[ident])
                if best is None or end < best[0]:
                    best = (end, start, ident)
            assert best is not None
            end, start, ident = best
            self.order.remove(ident)
            job = self.pending.pop(ident)  # its bytes stay counted until done(): it is still in memory
            self.vnow = start
            self.finish[ident] = end
            self.running.add(ident)
            self.big_running += _cost(job) > BIG_COST
            if len(self.finish) > 2 * len(self.pending) + 64:  # a finish time in the past counts as none
                self.finish = {k: v for k, v in self.finish.items() if v > self.vnow}
            return job

    def done(self, job: Job) -> None:
        """The worker has finished with ``job`` (taken by :meth:`take`): its bytes leave the budget."""
        with self.cond:
            self.parked -= len(job.message.payload)
            self.running.discard(job.identity)
            self.big_running -= _cost(job) > BIG_COST
            self.cond.notify()

    def is_running(self, ident: bytes) -> bool:
        with self.cond:
            return ident in self.running

    def _may_run(self, ident: bytes) -> bool:
        """Not while a frame of the same client runs (its stream state is not shared), and one big frame
        at a time."""
        if ident in self.running:
            return False
        return self.big_running == 0 or _cost(self.pending[ident]) <= BIG_COST

    def _ready(self) -> bool:
        return any(self._may_run(ident) for ident in self.order)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
