"""Where the M2FP weights live: ModelScope's cache (``m2fp fetch-weights``) or a folder.

The project ships no weights (CC BY-NC 4.0).  Downloading goes through
ModelScope's own ``snapshot_download`` so the cache is the one ModelScope users
already have (``MODELSCOPE_CACHE``, default ``~/.cache/modelscope``).  Loading
never talks to the hub: it asks ``snapshot_download`` with ``local_files_only``
or takes ``--model-dir`` as it is, and a missing model is an error that names
the command that fetches it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, M2fpError

log = logging.getLogger(__name__)

CONFIG_FILE = "configuration.json"
WEIGHTS_FILE = "pytorch_model.pt"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    model_id: str
    #: Pinned so a re-upload on the hub cannot change what users run unnoticed.
    revision: str
    description: str


MODELS: dict[str, ModelSpec] = {
    "multi": ModelSpec("multi", "damo/cv_resnet101_image-multiple-human-parsing", "v1.0.1",
                       "M2FP ResNet-101, multi-person (CIHP classes)"),
    "single": ModelSpec("single", "damo/cv_resnet101_image-single-human-parsing", "v1.0.0",
                        "M2FP ResNet-101, single person (LIP classes)"),
}
DEFAULT_MODEL = "multi"


class WeightsMissing(M2fpError, FileNotFoundError):
    """The model files are not on disk; the message names the command that fetches them."""


def spec_for(kind: str) -> ModelSpec:
    try:
        return MODELS[kind]
    except KeyError:
        raise BadInput(f"unknown M2FP model {kind!r}; choose from {', '.join(MODELS)}") from None


def fetch_command(kind: str = DEFAULT_MODEL) -> str:
    return "m2fp fetch-weights" + ("" if kind == DEFAULT_MODEL else f" --model {kind}")


def cache_root() -> Path:
    """ModelScope's cache root, as ModelScope itself resolves it."""
    return Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope")


def missing_files(directory: Path) -> list[str]:
    return [f for f in REQUIRED_FILES if not (directory / f).is_file()]


def check_model_dir(directory: str | os.PathLike[str]) -> Path:
    """A user-given folder: must hold the two model files."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise WeightsMissing(f"model directory {path} does not exist")
    missing = missing_files(path)
    if missing:
        raise WeightsMissing(f"model directory {path} lacks {', '.join(missing)} "
                             f"(fetch with: m2fp fetch-weights --local-dir {path})")
    return path


def locate(kind: str = DEFAULT_MODEL, model_dir: str | os.PathLike[str] | None = None,
           revision: str | None = None) -> Path:
    """The directory holding the model files, without any network access."""
    if model_dir is not None:
        return check_model_dir(model_dir)
    spec = spec_for(kind)
    rev = revision or spec.revision
    hint = (f"M2FP weights ({spec.model_id} @ {rev}) are not in the ModelScope cache {cache_root()}; "
            f"download them with: {fetch_command(kind)}" + (f" --revision {rev}" if revision else "")
            + " (or pass --model-dir DIR)")
    try:
        from modelscope.hub.snapshot_download import snapshot_download
    except ImportError as exc:
        raise WeightsMissing(f"{hint}; the modelscope package is missing: pip install 'm2fp-obs[m2fp]'") from exc
    try:
        path = Path(snapshot_download(spec.model_id, revision=rev, local_files_only=True))
    except Exception as exc:  # modelscope_hub.errors.CacheNotFound and friends
        log.debug("cache lookup failed: %s", exc)
        raise WeightsMissing(hint) from None
    if missing_files(path):
        raise WeightsMissing(f"{hint}; the cached copy at {path} is incomplete ({', '.join(missing_files(path))})")
    return path


def fetch(kind: str = DEFAULT_MODEL, revision: str | None = None, local_dir: str | None = None) -> Path:
    """Download (or reuse) the model with ModelScope's snapshot_download; returns its folder.

    Files already present are not downloaded again; ModelScope shows a progress bar
    per file.
    """
    if local_dir is not None and not missing_files(Path(local_dir)):
        log.info("%s already holds %s; nothing to download", local_dir, ", ".join(REQUIRED_FILES))
        return Path(local_dir)
    spec = spec_for(kind)
    rev = revision or spec.revision
    if local_dir is None:
        try:
            return locate(kind, revision=rev)
        except WeightsMissing:
            pass
    from modelscope.hub.snapshot_download import snapshot_download
    log.info("downloading %s @ %s (%s)", spec.model_id, rev, spec.description)
    path = snapshot_download(spec.model_id, revision=rev, local_dir=local_dir)
    result = Path(path)
    if missing_files(result):
        raise WeightsMissing(f"download of {spec.model_id} finished without {', '.join(missing_files(result))}")
    return result
