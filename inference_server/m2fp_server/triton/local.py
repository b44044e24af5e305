"""``m2fp triton --model-repo DIR``: serve a Triton model repository on this machine through PyTriton.

PyTriton's wheel bundles a real ``tritonserver`` with the Python backend only.
So each model of the repository is read from its ``config.pbtxt`` (parsed with
Triton's own protobuf schema), its file is opened with the runtime its
``backend`` names (ONNX Runtime or OpenVINO, f32), and it is bound under the
same name, tensors, batch size, dynamic batcher and instance count.  Clients
cannot tell it from the official container serving the same directory.

Needs the ``[triton]`` extra (nvidia-pytriton pins numpy<2: its own venv).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .repository import CLASSES_PARAMETER, MODEL_FILES

log = logging.getLogger(__name__)

_DTYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_UINT8": np.uint8, "TYPE_INT32": np.int32,
           "TYPE_INT64": np.int64, "TYPE_BOOL": np.bool_}


class RepositoryError(ValueError):
    """The directory is not a model repository this server can run; the text says what is wrong."""


@dataclass
class RepoModel:
    name: str
    config: Any  # tritonclient.grpc.model_config_pb2.ModelConfig
    model_file: Path

    @property
    def backend(self) -> str:
        return str(self.config.backend)

    def parameter(self, key: str) -> str | None:
        p = self.config.parameters.get(key)
        return None if p is None else str(p.string_value)


def read_config(path: Path) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise RepositoryError(f"{path}: {exc}") from None


def read_repository(repo: Path) -> list[RepoModel]:
    """Every model folder with a config.pbtxt; its newest numeric version holds the model file."""
    repo = Path(repo)
    if not repo.is_dir():
        raise RepositoryError(f"{repo} is not a directory (make one with: m2fp export --triton-repo {repo})")
    models = []
    for folder in sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cfg_file = folder / "config.pbtxt"
        if not cfg_file.is_file():
            continue
        cfg = read_config(cfg_file)
        cfg.name = cfg.name or folder.name
        if cfg.name != folder.name:
            raise RepositoryError(f"{cfg_file}: name {cfg.name!r} differs from its folder {folder.name!r}")
        if cfg.backend not in MODEL_FILES:
            raise RepositoryError(f"{cfg_file}: backend {cfg.backend!r} is not served here "
                                  f"(only {', '.join(MODEL_FILES)})")
        versions = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        if not versions:
            raise RepositoryError(f"{folder} has no version folder (1/)")
        model_file = versions[-1] / MODEL_FILES[cfg.backend][0]
        if not model_file.is_file():
            raise RepositoryError(f"{model_file} is missing")
        models.append(RepoModel(folder.name, cfg, model_file))
    if not models:
        raise RepositoryError(f"{repo} holds no model (no */config.pbtxt)")
    return models


def _tensors(entries: Any) -> list[Any]:
    """Triton config tensors -> PyTriton tensors (shapes without the batch axis, as in config.pbtxt)."""
    from pytriton.model_config import Tensor
    from tritonclient.grpc import model_config_pb2
    out = []
    for e in entries:
        dtype = _DTYPES.get(model_config_pb2.DataType.Name(e.data_type))
        if dtype is None:
            raise RepositoryError(f"tensor {e.name}: unsupported data type {e.data_type}")
        out.append(Tensor(name=e.name, dtype=dtype, shape=tuple(int(d) for d in e.dims)))
    return out


def _infer_function(model: RepoModel, threads: int) -> Callable[..., dict[str, np.ndarray]]:
    """One instance: its own session; Triton hands it whole batches."""
    from pytriton.decorators import batch

    from ..engines.m2fp.exported import open_runner
    precision = model.parameter("INFERENCE_PRECISION_HINT") or "f32"
    runner = open_runner(model.backend, model.model_file, precision, threads)
    in_name = model.config.input[0].name
    out_names = [o.name for o in model.config.output]

    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        outs = runner(np.ascontiguousarray(inputs[in_name], dtype=np.float32))
        return dict(zip(out_names, outs))

    return batch(infer) if model.config.max_batch_size > 0 else infer


def instance_count(cfg: Any) -> int:
    return max(1, sum(int(g.count or 1) for g in cfg.instance_group) if cfg.instance_group else 1)


def bind_models(triton: Any, models: list[RepoModel], threads: int) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig
    for m in models:
        cfg = m.config
        n = instance_count(cfg)
        per_instance = max(1, threads // n)
        batching = cfg.max_batch_size > 0
        batcher = None
        if batching and cfg.HasField("dynamic_batching"):
            db = cfg.dynamic_batching
            batcher = DynamicBatcher(max_queue_delay_microseconds=int(db.max_queue_delay_microseconds),
                                     preferred_batch_size=[int(b) for b in db.preferred_batch_size] or None)
        with _carry_parameters(m):
            triton.bind(model_name=m.name, infer_func=[_infer_function(m, per_instance) for _ in range(n)],
                        inputs=_tensors(cfg.input), outputs=_tensors(cfg.output),
                        config=ModelConfig(batching=batching, max_batch_size=max(1, int(cfg.max_batch_size)),
                                           batcher=batcher))
        log.info("%s: %s %s, max batch %d, dynamic batching %s, %d instance(s) x %d threads", m.name, m.backend,
                 m.model_file.name, cfg.max_batch_size,
                 f"on ({cfg.dynamic_batching.max_queue_delay_microseconds} us)" if batcher else "off", n, per_instance)


@contextlib.contextmanager
def _carry_parameters(model: RepoModel) -> Iterator[None]:
    """Serve the repository's ``m2fp_classes`` parameter, as the official server does.

    PyTriton has no public way to add config parameters: its model object builds
    its Triton config once (at bind, when the server is already up), so that one
    builder is wrapped while this model is bound.
    """
    value = model.parameter(CLASSES_PARAMETER)
    try:
        from pytriton.models.model import Model
        original = Model._get_triton_model_config
    except (ImportError, AttributeError) as exc:  # another PyTriton release: edges then need -E model_dir=
        log.warning("cannot pass %s through this PyTriton (%s); edges need -E model_dir=", CLASSES_PARAMETER, exc)
        yield
        return

    def with_parameters(self: Any) -> Any:
        cfg = original(self)
        if value is not None and self.model_name == model.name:
            cfg.backend_parameters[CLASSES_PARAMETER] = value
        return cfg

    Model._get_triton_model_config = with_parameters
    try:
        yield
    finally:
        Model._get_triton_model_config = original


@dataclass
class LocalTritonSettings:
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    threads: int = 0  # 0: all cores


def serve(repo: Path, settings: LocalTritonSettings, ready: Callable[[], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``); ``ready`` is called once the models answer."""
    from .libpython import check, fixed_environment
    models = read_repository(repo)
    os.environ.update(fixed_environment())  # tritonserver and its stubs inherit it
    lp = check()
    if not lp.ok:
        raise RepositoryError(f"PyTriton's Python backend stub would load {lp.stub}, not this interpreter's "
                              f"{lp.ours}: run m2fp triton with a Python built with a shared libpython "
                              "(Debian's python3 -m venv, or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)")
    from pytriton.triton import Triton, TritonConfig
    from ..engines.m2fp.exported import default_threads
    threads = settings.threads or default_threads()
    cfg = TritonConfig(grpc_address=settings.host, http_address=settings.host, metrics_address=settings.host,
                       grpc_port=settings.grpc_port, http_port=settings.http_port,
                       metrics_port=settings.metrics_port, exit_timeout_secs=2)
    stop = stop or threading.Event()
    with Triton(config=cfg) as triton:
        bind_models(triton, models, threads)
        triton.run()
        if threading.current_thread() is threading.main_thread():  # after PyTriton's own handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        log.info("Triton serving %s on grpc://%s:%d (http %d, metrics %d)", ", ".join(m.name for m in models),
                 settings.host, settings.grpc_port, settings.http_port, settings.metrics_port)
        if ready is not None:
            ready()
        while not stop.wait(0.5):
            if not triton.is_alive():
                raise RuntimeError("tritonserver exited")


def describe(repo: Path) -> str:
    """One line per model (for ``m2fp triton --check``)."""
    lines = []
    for m in read_repository(repo):
        classes = m.parameter(CLASSES_PARAMETER)
        n = len(json.loads(classes)) if classes else "?"
        lines.append(f"{m.name}: backend {m.backend}, max batch {m.config.max_batch_size}, "
                     f"{instance_count(m.config)} instance(s), {n} classes, {m.model_file}")
    return "\n".join(lines)
