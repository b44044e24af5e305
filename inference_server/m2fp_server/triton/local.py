"""``m2fp triton --model-repo DIR``: serve a Triton model repository on this machine through PyTriton.

PyTriton's wheel bundles a real ``tritonserver`` with the Python backend only.
So each model of the repository is read from its ``config.pbtxt`` (parsed with
Triton's own protobuf schema) and served as a Python-backend model of the same
name, tensors, batch size, dynamic batcher and instance count, whose
``model.py`` (:mod:`python_model`) opens the model file with the runtime its
``backend`` names (ONNX Runtime or OpenVINO, f32).  Clients cannot tell it from
the official container serving the same directory.  PyTriton's own ``bind``
is not used: its model proxy adds a process and a ZeroMQ hop to every request
(measured in docs/triton.md).

Needs the ``[triton]`` extra (nvidia-pytriton pins numpy<2: its own venv).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .repository import CLASSES_PARAMETER, MODEL_FILES
from ..errors import BadInput

log = logging.getLogger(__name__)


class RepositoryError(BadInput):
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


PYTHON_MODEL = Path(__file__).with_name("python_model.py")
#: shared-memory names of this server's Python-backend regions (cleaned up after a crash by its launcher)
SHM_PREFIX = "m2fp_triton_"


def instance_count(cfg: Any) -> int:
    return max(1, sum(int(g.count or 1) for g in cfg.instance_group) if cfg.instance_group else 1)


def python_backend_config(model: RepoModel, threads: int) -> Any:
    """The model's own config, run by ``python_model.py`` (Triton's Python backend) on this machine's CPU."""
    import m2fp_protocol
    import m2fp_server
    from tritonclient.grpc import model_config_pb2
    cfg = model_config_pb2.ModelConfig()
    cfg.CopyFrom(model.config)
    cfg.backend = "python"
    n = instance_count(cfg)
    del cfg.instance_group[:]
    cfg.instance_group.add(count=n, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    paths = [str(Path(str(m.__file__)).resolve().parents[1]) for m in (m2fp_server, m2fp_protocol)]
    extra = {"m2fp_backend": model.backend, "m2fp_model_file": str(model.model_file.resolve()),
             "m2fp_threads": str(max(1, threads // n)), "m2fp_pythonpath": json.dumps(paths),
             "m2fp_precision": model.parameter("INFERENCE_PRECISION_HINT") or "f32"}
    for k, v in extra.items():
        cfg.parameters[k].string_value = v
    return cfg


def write_python_repository(models: list[RepoModel], out: Path, threads: int) -> None:
    """A repository of Python-backend models, one per model of the original, same names and tensors."""
    from google.protobuf import text_format
    for m in models:
        version = out / m.name / "1"
        version.mkdir(parents=True)
        shutil.copyfile(PYTHON_MODEL, version / "model.py")
        cfg = python_backend_config(m, threads)
        (out / m.name / "config.pbtxt").write_text(text_format.MessageToString(cfg))
        batcher = (f"on ({cfg.dynamic_batching.max_queue_delay_microseconds} us)"
                   if cfg.HasField("dynamic_batching") else "off")
        log.info("%s: %s %s, max batch %d, dynamic batching %s, %d instance(s) x %s threads", m.name, m.backend,
                 m.model_file.name, cfg.max_batch_size, batcher, instance_count(cfg),
                 cfg.parameters["m2fp_threads"].string_value)


def backend_directory(out: Path) -> Path:
    """PyTriton's bundled Python backend with the stub built for this interpreter's Python version."""
    from pytriton.utils.distribution import get_root_module_path, get_stub_path
    dist = get_root_module_path() / "tritonserver"
    python = out / "python"
    python.mkdir(parents=True)
    for f in (dist / "backends" / "python").iterdir():
        if f.is_file():
            (python / f.name).symlink_to(f)
    shutil.copy(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}"), python / "triton_python_backend_stub")
    return out


def tritonserver_binary() -> Path:
    from pytriton.utils.distribution import get_root_module_path
    return get_root_module_path() / "tritonserver" / "bin" / "tritonserver"


@dataclass
class LocalTritonSettings:
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    threads: int = 0  # 0: all cores


def _ready(http: str, names: list[str]) -> bool:
    try:
        for path in ["/v2/health/ready", *(f"/v2/models/{n}/ready" for n in names)]:
            with urllib.request.urlopen(http + path, timeout=2) as r:
                if r.status != 200:
                    return False
    except OSError:
        return False
    return True


def serve(repo: Path, settings: LocalTritonSettings, ready: Callable[[], None] | None = None,
          stop: threading.Event | None = None, start_timeout_s: float = 300.0) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop``); ``ready`` is called once every model answers.

    Runs PyTriton's bundled ``tritonserver`` on a generated repository of
    Python-backend models (:mod:`python_model`); PyTriton's own model proxy is not
    used (one process hop fewer per request, docs/triton.md).
    """
    from .libpython import check, fixed_environment
    models = read_repository(repo)
    env = fixed_environment(dict(os.environ))  # tritonserver and its stubs inherit it
    # the stub's Python finds its prefix (this venv and its packages) through PATH, as PyTriton arranges it
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    from pytriton.utils.distribution import get_libs_path  # the libraries tritonserver's wheel carries
    env["LD_LIBRARY_PATH"] = os.pathsep.join([env.get("LD_LIBRARY_PATH", ""), str(get_libs_path())]).lstrip(os.pathsep)
    lp = check(env)
    if not lp.ok:
        raise RepositoryError(f"Triton's Python backend stub would load {lp.stub}, not this interpreter's "
                              f"{lp.ours}: run m2fp triton with a Python built with a shared libpython "
                              "(Debian's python3 -m venv, or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)")
    from ..engines.m2fp.exported import default_threads
    threads = settings.threads or default_threads()
    stop = stop or threading.Event()
    work = Path(tempfile.mkdtemp(prefix="m2fp-triton-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        write_python_repository(models, work / "models", threads)
        cmd = [str(tritonserver_binary()), f"--model-repository={work / 'models'}",
               f"--backend-directory={backend_directory(work / 'backends')}",
               f"--grpc-address={settings.host}", f"--grpc-port={settings.grpc_port}",
               f"--http-address={settings.host}", f"--http-port={settings.http_port}",
               f"--metrics-address={settings.host}", f"--metrics-port={settings.metrics_port}",
               # room for a batch of M2FP outputs without growing the region per request
               f"--backend-config=python,shm-region-prefix-name={SHM_PREFIX}{os.getpid()}_",
               "--backend-config=python,shm-default-byte-size=67108864",
               "--backend-config=python,shm-growth-byte-size=16777216",
               "--exit-timeout-secs=2", "--log-verbose=0", "--log-info=0", "--strict-readiness=true"]
        proc = subprocess.Popen(cmd, env=env)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        http = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.http_port}"
        deadline = time.monotonic() + start_timeout_s
        while not _ready(http, [m.name for m in models]):
            if proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({proc.returncode}) while loading {repo}")
            if stop.wait(0.2):
                return  # asked to stop while starting
            if time.monotonic() > deadline:
                raise RuntimeError(f"tritonserver did not load {repo} within {start_timeout_s:.0f} s")
        log.info("Triton serving %s on grpc://%s:%d (http %d, metrics %d)", ", ".join(m.name for m in models),
                 settings.host, settings.grpc_port, settings.http_port, settings.metrics_port)
        if ready is not None:
            ready()
        while not stop.wait(0.5):
            if proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({proc.returncode})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def describe(repo: Path) -> str:
    """One line per model (for ``m2fp triton --check``)."""
    lines = []
    for m in read_repository(repo):
        classes = m.parameter(CLASSES_PARAMETER)
        inputs = ", ".join(i.name for i in m.config.input)
        what = f"{len(json.loads(classes))} classes" if classes else f"inputs {inputs}"
        lines.append(f"{m.name}: backend {m.backend}, max batch {m.config.max_batch_size}, "
                     f"{instance_count(m.config)} instance(s), {what}, {m.model_file}")
    return "\n".join(lines)
