"""The engines' remote model step: one forward pass on a Triton Inference Server over gRPC.

Named tensors in, named tensors out (:meth:`TritonModel.run`); the engines'
pre- and post-processing and all per-stream state stay in ``m2fp-server``.  Failures follow the server's rules:
every call is bounded by ``timeout_s`` and raises :class:`TritonUnavailable`
(the server answers that frame with an ENGINE_FAILURE ERROR and the OBS filter
falls back); the next call reconnects on a fresh channel, so a restarted
Triton is used again on the first frame after it is back.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from .repository import CLASSES_PARAMETER
from ..errors import ToolFailed

log = logging.getLogger(__name__)

#: gRPC's own reconnect backoff grows to minutes; a fresh channel per outage keeps recovery prompt
CHANNEL_ARGS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500)]


class TritonUnavailable(ToolFailed):
    """Triton did not answer (down, timed out, model missing); the text says which and where."""


@dataclass(frozen=True)
class TritonAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> "TritonAddress":
        """``grpc://host:8001`` (or ``host:8001``); HTTP is not supported: gRPC carries the tensors raw."""
        text = url if "://" in url else f"grpc://{url}"
        u = urlparse(text)
        if u.scheme != "grpc":
            raise ValueError(f"triton address must be grpc://host:port, got {url!r}")
        if not u.hostname:
            raise ValueError(f"triton address {url!r} has no host")
        try:
            port = u.port or 8001
        except ValueError:
            raise ValueError(f"triton address {url!r} has a bad port") from None
        return cls(u.hostname, port)

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"grpc://{self.target}"


@dataclass(frozen=True)
class RemoteModelInfo:
    """What the server's config says: the canvas the model takes and what its channels mean."""

    name: str
    canvas_hw: tuple[int, int]
    max_batch_size: int
    classes: tuple[str, ...] | None
    tensors: tuple[str, ...] = ()  # input and output names, in the config's order


class TritonModel:
    """Callable like the local runners; thread-safe (calls from several streams overlap, Triton batches them)."""

    def __init__(self, address: TritonAddress, model: str, timeout_s: float = 10.0) -> None:
        self.address = address
        self.model = model
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        self.failures = 0
        self.reconnects = 0

    def _get(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import tritonclient.grpc as grpcclient
                except ImportError as exc:
                    raise TritonUnavailable("tritonclient is not installed: pip install 'm2fp-obs[triton-client]'"
                                            ) from exc
                self._client = grpcclient.InferenceServerClient(self.address.target, channel_args=CHANNEL_ARGS)
            return self._client

    def _drop(self, client: Any) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
                self.reconnects += 1
        try:
            client.close()
        except Exception:  # noqa: BLE001 - a broken channel may fail to close; it is gone either way
            pass

    def config(self) -> dict[str, Any]:
        """The model's config as the server reports it (raises TritonUnavailable when it cannot)."""
        from tritonclient.utils import InferenceServerException
        client = self._get()
        try:
            return dict(client.get_model_config(self.model, as_json=True, client_timeout=self.timeout_s)["config"])
        except InferenceServerException as exc:
            self._drop(client)
            raise TritonUnavailable(f"Triton at {self.address} has no usable model {self.model!r}: "
                                    f"{exc.message() or exc}") from None

    def info(self) -> RemoteModelInfo:
        """The M2FP model's canvas and classes, from its config."""
        cfg = self.config()
        dims = [int(d) for d in cfg["input"][0]["dims"]]  # image: (H, W, 3) uint8
        if int(cfg.get("max_batch_size", 0)) == 0:
            dims = dims[1:]
        raw = cfg.get("parameters", {}).get(CLASSES_PARAMETER, {}).get("string_value")
        classes = tuple(json.loads(raw)) if raw else None
        names = tuple(t["name"] for t in [*cfg.get("input", []), *cfg.get("output", [])])
        return RemoteModelInfo(self.model, (dims[0], dims[1]), int(cfg.get("max_batch_size", 0)), classes, names)

    def run(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """One request: tensors by name in (their numpy dtypes say Triton's), the named outputs back."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype
        client = self._get()
        feeds = []
        for name, array in inputs.items():
            inp = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            inp.set_data_from_numpy(np.ascontiguousarray(array))
            feeds.append(inp)
        wanted = [grpcclient.InferRequestedOutput(n) for n in outputs]
        t0 = time.perf_counter()
        try:
            res = client.infer(self.model, feeds, outputs=wanted, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            self.failures += 1
            self._drop(client)  # the next frame dials again on a fresh channel
            spent = time.perf_counter() - t0
            raise TritonUnavailable(f"Triton at {self.address} ({self.model}) failed after {spent:.1f} s: "
                                    f"{exc.message() or exc}") from None
        return {n: res.as_numpy(n) for n in outputs}

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
