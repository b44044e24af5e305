"""Video in (OpenCV) and out (ffmpeg pipe, since OpenCV's wheel cannot write H.264)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from .errors import BadInput, MissingFile

ALPHA_CODECS = {  # containers that can carry transparency
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-crf", "30"],
    ".mov": ["-c:v", "png", "-pix_fmt", "rgba"],
    ".mkv": ["-c:v", "ffv1", "-pix_fmt", "bgra"],
}
PLAIN_CODECS = {
    ".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "veryfast"],
    ".mkv": ["-c:v", "ffv1"],
    ".webm": ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "30"],
    ".mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18"],
    ".avi": ["-c:v", "ffv1"],
}


def probe(path: Path) -> tuple[int, int, float, int]:
    """(width, height, fps, frame count) of a video."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadInput(f"{path} is not a video OpenCV can read")
    try:
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return w, h, fps, n


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """RGB frames of a video, one at a time."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadInput(f"{path} is not a video OpenCV can read")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


class VideoWriter:
    """Raw frames piped into ffmpeg; pixel format from the first frame (gray, rgb, rgba)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._proc: subprocess.Popen[bytes] | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._proc is None:
            self._start(frame)
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())

    def _start(self, frame: np.ndarray) -> None:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise MissingFile("ffmpeg is needed to write videos (Debian/Ubuntu: apt install ffmpeg)")
        ext = self.path.suffix.lower()
        channels = 1 if frame.ndim == 2 else frame.shape[2]
        pix = {1: "gray", 3: "rgb24", 4: "rgba"}[channels]
        table = ALPHA_CODECS if channels == 4 else PLAIN_CODECS
        if ext not in table:
            kinds = ", ".join(sorted(table))
            raise BadInput(f"cannot write {'transparent ' if channels == 4 else ''}video as {ext}; use {kinds}")
        h, w = frame.shape[:2]
        cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix, "-s", f"{w}x{h}",
               "-r", f"{self.fps:.3f}", "-i", "-", *table[ext], str(self.path)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            if self._proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed writing {self.path}")
            self._proc = None


def process_video(src: Path, dst: Path, seg: Any, mode: str, background: Any) -> None:
    """Segment every frame of ``src``; write a video or an .npz of alphas."""
    from tqdm import tqdm

    from .composite import render
    _, _, fps, n = probe(src)
    want_labels = mode == "parsing"
    alphas: list[np.ndarray] = []
    writer = None if dst.suffix.lower() == ".npz" else VideoWriter(dst, fps)
    try:
        for rgb in tqdm(read_frames(src), total=n or None, unit="frame", desc=src.name):
            alpha, labels = seg(rgb, want_labels=want_labels)
            if writer is None:
                alphas.append(alpha)
            else:
                writer.write(render(mode, rgb, alpha, labels, seg.classes, background))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        if not alphas:
            raise BadInput(f"{src} has no frames")
        np.savez_compressed(dst, alpha=np.stack(alphas))
