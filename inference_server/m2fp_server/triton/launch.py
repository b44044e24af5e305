"""Start ``m2fp triton`` as a child process (tests, ``m2fp bench --triton``) and stop exactly it.

PyTriton pins numpy<2, so it usually lives in its own venv (``.venv-triton``,
made by .ci/run); :func:`triton_python` finds that interpreter.  The child leads
its own process group: tritonserver and the Python-backend stubs it starts are
in it, so a stop or a simulated crash reaches all of them and nothing else.  It
stays in the caller's session: with the kernel's autogroup scheduling a new
session would be a separate CPU-share group, and on busy cores Triton would get
more CPU than the in-process engine it is compared with.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import m2fp_protocol
import m2fp_server

REPO = Path(m2fp_server.__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv-triton" / "bin" / "python"


def _pytriton_works(python: str) -> bool:
    code = "import numpy, pytriton; raise SystemExit(int(numpy.__version__.split('.')[0]) >= 2)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def triton_python() -> str | None:
    """An interpreter that can run ``m2fp triton``: $M2FP_TRITON_PYTHON, .venv-triton, or this one."""
    env = os.environ.get("M2FP_TRITON_PYTHON")
    if env:
        return env
    if VENV_PYTHON.exists() and _pytriton_works(str(VENV_PYTHON)):
        return str(VENV_PYTHON)
    return sys.executable if _pytriton_works(sys.executable) else None


class LocalTriton:
    """``m2fp triton --model-repo DIR`` on loopback ports; ``url`` is what ``-E triton=`` takes."""

    def __init__(self, repo: Path, grpc_port: int, http_port: int, metrics_port: int, python: str,
                 threads: int = 0, log_file: Path | None = None) -> None:
        self.repo, self.python, self.threads = Path(repo), python, threads
        self.grpc_port, self.http_port, self.metrics_port = grpc_port, http_port, metrics_port
        self.log_file = log_file
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._segments_before: set[str] = set()

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 180.0) -> None:
        """Start and wait until every model answers (the ``ready:`` line)."""
        paths = [str(Path(m2fp_server.__file__).resolve().parents[1]),
                 str(Path(m2fp_protocol.__file__).resolve().parents[1])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
        cmd = [self.python, "-m", "m2fp_server.cli.main", "--log-level", "WARNING", "triton", "--model-repo",
               str(self.repo), "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
               "--metrics-port", str(self.metrics_port), "--threads", str(self.threads)]
        self._segments_before = _segments()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     process_group=0, env=env)
        ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, ready), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "".join(self.lines[-30:])
                raise RuntimeError(f"m2fp triton did not become ready (exit {self.proc.returncode}):\n{tail}")

    def _read(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        log = self.log_file.open("a") if self.log_file else None
        for line in proc.stdout:
            self.lines.append(line)
            del self.lines[:-200]
            if log:
                log.write(line)
                log.flush()
            if "ready: grpc://" in line:  # one write, but tritonserver may be mid-line on the same pipe
                ready.set()

    def _signal_group(self, sig: int, force: bool = False) -> None:
        if self.proc is not None and (force or self.proc.poll() is None):
            try:
                os.killpg(self.proc.pid, sig)  # its own group: exactly this Triton and its children
            except ProcessLookupError:
                pass

    def server_pid(self) -> int | None:
        """The tritonserver process this ``m2fp triton`` started (its child)."""
        if self.proc is None:
            return None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                cmd = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"tritonserver/bin/tritonserver" in cmd:
                return int(stat.parent.name)
        return None

    def kill(self) -> None:
        """A crash of the inference server: SIGKILL to tritonserver; PyTriton then exits; stragglers go too."""
        pid = self.server_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL, force=True)
        if self.proc is not None:
            self.proc.wait(30)
            self._wait_group_gone()
            _remove_unused_segments(self._segments_before)

    def _wait_group_gone(self, timeout_s: float = 10.0) -> None:
        """The Python-backend stubs outlive a killed tritonserver briefly: their shared memory is theirs till then."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to ``m2fp triton`` alone: it stops tritonserver and its shared memory is released;
        then SIGKILL to whatever of its group is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL, force=True)
        self.proc.wait(30)
        self._wait_group_gone()
        _remove_unused_segments(self._segments_before)

    def __enter__(self) -> "LocalTriton":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _segments() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir()} if shm.is_dir() else set()


def _remove_unused_segments(before: set[str]) -> None:
    """Shared memory that PyTriton made since this Triton started and nobody maps any more.

    A killed PyTriton (and its resource tracker) leaves its tensor-store segments
    behind; only segments that are new *and* unused by every process are removed.
    """
    new = {n for n in _segments() - before if n.startswith(("psm_", "pytrtion", "m2fp_triton_"))}
    if not new:
        return
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        new = {n for n in new if f"/dev/shm/{n}" not in text}
    for n in new:
        (Path("/dev/shm") / n).unlink(missing_ok=True)
