"""One photo through the shared engine, rendered the way the seed service's API returns it.

Sharing rules (the ZeroMQ clients run on the same engine instance):

* every engine call holds the server's ``engine_lock``, like the ZeroMQ worker;
* each request uses its own throw-away engine stream (``new_stream``) and no
  :class:`StreamState`, so no live client's temporal history, settings or
  stateful-engine state is touched;
* at most ``max_waiting`` parses queue for the engine; more get BUSY (503) at once,
  so a burst of uploads cannot stall a live stream for long.

The engine's class probabilities of the last few photos are kept (keyed by the
upload's hash), so the WebUI can change parts or background without a second
inference: that matters for M2FP, where one inference takes a second or more.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from m2fp_protocol import CONFIG_SCHEMA, ClassInfo, ProtocolError
from m2fp_protocol.classes import is_background

from ..composite import composite, parse_background
from ..engines.base import Engine, EngineOutput, StreamContext
from ..postprocess.classes import colorize, label_map, resolve_keep, select_alpha
from ..postprocess.resize import resize_alpha, resize_labels, threshold_alpha
from .errors import ApiCode, ApiError
from .images import decode_upload, png_base64
from .settings import ParseLimits

log = logging.getLogger(__name__)


@dataclass
class ParseOptions:
    """What the caller asked for besides the seed's outputs (all optional form fields)."""

    keep: list[str] | None = None  # class names or ids; None = every body part
    background: Any = None  # None = no composite; else what composite() takes
    soft: bool = True
    threshold: float = 0.5

    @classmethod
    def from_form(cls, form: Mapping[str, str], background_image: np.ndarray | None) -> ParseOptions:
        """``keep``, ``soft`` and ``threshold`` are read by the same schema rows as a ZeroMQ CONFIG."""
        opts = cls()
        for name in ("keep", "soft", "threshold"):
            value = form.get(name)
            if value is None:
                continue
            try:
                setattr(opts, name, CONFIG_SCHEMA[name].from_text(value))
            except ProtocolError as exc:
                raise ApiError(ApiCode.BAD_OPTION, exc.message) from None
        opts.background = _background(form.get("background"), background_image)
        return opts


def _background(spec: str | None, image: np.ndarray | None) -> Any:
    """Only the named modes and colours: a text value is never taken as a server-side path."""
    if spec is None or spec.strip() == "":
        return image  # an uploaded background image alone means "use it"
    s = spec.strip().lower()
    if s == "image":
        if image is None:
            raise ApiError(ApiCode.BAD_OPTION, "background=image needs a file in the field 'background_image'")
        return image
    if len(s) > 16:
        raise ApiError(ApiCode.BAD_OPTION, "background must be transparent, blur, #RRGGBB or image")
    if s in ("transparent", "blur") or s.startswith("#"):
        try:
            return parse_background(s)
        except ValueError as exc:
            raise ApiError(ApiCode.BAD_OPTION, str(exc)) from None
    raise ApiError(ApiCode.BAD_OPTION,
                   f"background must be transparent, blur, #RRGGBB or image, got {spec!r}")


class ParseService:
    def __init__(self, engine: Engine, engine_lock: threading.Lock, limits: ParseLimits | None = None) -> None:
        self.engine = engine
        self.engine_lock = engine_lock
        self.limits = limits or ParseLimits()
        self._slots = threading.BoundedSemaphore(self.limits.max_waiting)
        self._cache: collections.OrderedDict[bytes, tuple[np.ndarray, float]] = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return tuple(self.engine.classes)

    def decode(self, data: bytes) -> np.ndarray:
        return decode_upload(data, self.limits.max_pixels, self.limits.max_side)

    def info(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "engine": self.engine.info(),
            "classes": [{**c.to_json(), "foreground": not is_background(c.name)} for c in self.classes],
            "formats": ["image/jpeg", "image/png"],
            "limits": {"max_upload_bytes": lim.max_upload_bytes, "max_pixels": lim.max_pixels,
                       "max_side": lim.max_side},
        }

    # ------------------------------------------------------------------ the request
    def parse(self, data: bytes, options: ParseOptions) -> dict[str, Any]:
        """The ``data`` object of a successful reply (seed fields first, then ours).

        All of it runs inside the ``max_waiting`` slots, a cache hit included: decoding a 4096² photo
        and post-processing it at full size cost as much memory as inference does (40 concurrent cache
        hits once took the server from 0.56 to 9.3 GB).
        """
        if not self._slots.acquire(blocking=False):
            raise ApiError(ApiCode.BUSY, "the engine is busy with other uploads; try again in a moment")
        try:
            return self._parse(data, options)
        finally:
            self._slots.release()

    def parse_form(self, data: bytes, form: Mapping[str, str], background: bytes | None) -> dict[str, Any]:
        """A whole form request (the background image decoded inside the same slot as the photo)."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(ApiCode.BUSY, "the engine is busy with other uploads; try again in a moment")
        try:
            bg = None
            if background is not None:
                try:
                    bg = self.decode(background)
                except ApiError as err:
                    raise ApiError(err.code, f"background_image: {err.message}") from None
            return self._parse(data, ParseOptions.from_form(form, bg))
        finally:
            self._slots.release()

    def _parse(self, data: bytes, options: ParseOptions) -> dict[str, Any]:
        started = time.perf_counter()
        classes = self.classes
        try:  # before the engine runs: a typo costs no inference
            keep_ids = resolve_keep(options.keep, classes)
        except ProtocolError as exc:
            raise ApiError(ApiCode.BAD_OPTION, exc.message) from None
        rgb = self.decode(data)
        probs, infer_s, cached = self._probs(rgb, hashlib.sha256(data).digest())
        h, w = rgb.shape[:2]
        by_id = {c.id: c for c in classes}

        labels = resize_labels(label_map(probs), (w, h))
        present = [int(i) for i in np.unique(labels) if int(i) in by_id]
        alpha8 = resize_alpha(select_alpha(probs, keep_ids), (w, h))
        if not options.soft:  # cut after resizing, as the pipeline does: a clean edge at full size
            alpha8 = threshold_alpha(alpha8, options.threshold)
        out: dict[str, Any] = {
            "result_image": png_base64(colorize(labels, classes)),
            "masks": [png_base64(np.where(labels == i, 255, 0).astype(np.uint8)) for i in present],
            "classes": [by_id[i].name for i in present],
            "inference_time": round(infer_s, 4),
            "class_ids": present,
            "colors": [list(by_id[i].color) for i in present],
            "alpha": png_base64(alpha8),
            "keep": [by_id[i].name for i in keep_ids],
            "width": w,
            "height": h,
            "engine": self.engine.name,
            "cached": cached,
        }
        if options.background is not None:
            out["composite"] = png_base64(composite(rgb, alpha8, options.background))
        out["total_time"] = round(time.perf_counter() - started, 4)
        return out

    # ------------------------------------------------------------------ the engine
    def _probs(self, rgb: np.ndarray, digest: bytes) -> tuple[np.ndarray, float, bool]:
        with self._cache_lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
                return hit[0], hit[1], True
        probs, infer_s = self._infer(rgb)
        if self.limits.cache_entries > 0:
            with self._cache_lock:
                self._cache[digest] = (probs, infer_s)
                while len(self._cache) > self.limits.cache_entries:
                    self._cache.popitem(last=False)
        return probs, infer_s, False

    def _infer(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        stream = self.engine.new_stream()  # a stream of its own, never a live client's
        try:
            if self.engine.own_worker:
                out, infer_s = self._infer_in_worker(rgb, stream)
            else:
                out, infer_s = self._infer_here(rgb, stream)
        finally:
            stream.close()
        probs = np.asarray(out.probs, np.float32)
        if probs.ndim != 3 or probs.shape[0] != len(self.classes):
            raise ApiError(ApiCode.ENGINE_FAILURE, f"the {self.engine.name} engine returned probabilities of "
                                                   f"shape {probs.shape} for {len(self.classes)} classes")
        return probs, infer_s

    def _failed(self, rgb: np.ndarray, exc: Exception) -> ApiError:
        log.exception("engine %s failed on an uploaded %dx%d image", self.engine.name, rgb.shape[1], rgb.shape[0])
        return ApiError(ApiCode.ENGINE_FAILURE,
                        f"the {self.engine.name} engine failed on this image: {type(exc).__name__}: {exc}")

    def _infer_here(self, rgb: np.ndarray, stream: StreamContext) -> tuple[EngineOutput, float]:
        """A synchronous engine: run it in this thread, holding the lock the ZeroMQ worker holds."""
        if not self.engine_lock.acquire(timeout=self.limits.lock_timeout_s):
            raise ApiError(ApiCode.BUSY, f"the engine stayed busy for {self.limits.lock_timeout_s:.0f} s; "
                                         "try again later")
        try:
            t0 = time.perf_counter()
            out = self.engine.infer_now(rgb, stream)
            return out, time.perf_counter() - t0
        except Exception as exc:
            raise self._failed(rgb, exc) from exc
        finally:
            self.engine_lock.release()

    def _infer_in_worker(self, rgb: np.ndarray, stream: StreamContext) -> tuple[EngineOutput, float]:
        """An engine whose model runs in its own worker thread (e.g. M2FP behind the hybrid engine):
        ``infer_now`` hands the photo to that worker and waits for this photo's own result.

        Its ``infer`` would answer at once with an older result (or, for a new stream, none).
        The engine lock is not held while waiting, so live streams go on meanwhile.
        """
        t0 = time.perf_counter()
        try:
            out = self.engine.infer_now(rgb, stream, timeout_s=self.limits.lock_timeout_s)
        except TimeoutError:
            raise ApiError(ApiCode.BUSY, f"the {self.engine.name} engine stayed busy for "
                                         f"{self.limits.lock_timeout_s:.0f} s; try again later") from None
        except Exception as exc:
            raise self._failed(rgb, exc) from exc
        return out, time.perf_counter() - t0
