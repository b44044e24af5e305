"""A real ``m2fp-server`` process for plugin tests: start, kill -9, restart, stop/continue.

The process is started by this helper and signalled only by its own pid.  The time
the server starts listening is taken from its log line, so "reconnected within 1 s
of the server's return" is measured from the moment it could first be reached.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from obs_harness import free_port

REPO = Path(__file__).resolve().parents[2]


def server_command() -> list[str]:
    """``m2fp-server`` of the interpreter running the tests (not whichever one is first on PATH)."""
    return [sys.executable, "-m", "m2fp_server.cli.serve"]


class ServerProcess:
    def __init__(self, engine: str = "selfie", port: int | None = None, extra: list[str] | None = None,
                 command: list[str] | None = None) -> None:
        """``command``: another server program taking the same arguments (default ``m2fp-server``)."""
        self.engine = engine
        self.command = command or server_command()
        self.port = port or free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.listening_at: float | None = None  # time.monotonic() of the "listening" log line
        self.lines: list[str] = []

    def start(self, timeout_s: float = 60.0) -> "ServerProcess":
        self.listening_at = None
        listening = threading.Event()
        self.proc = subprocess.Popen(
            [*self.command, "--address", self.address, "--engine", self.engine, "--log-level", "INFO",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True)
        proc = self.proc

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self.lines.append(line.rstrip())
                if "listening on" in line and not listening.is_set():
                    self.listening_at = time.monotonic()
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(timeout_s):
            self.kill()
            raise RuntimeError("m2fp-server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def kill(self) -> None:
        """kill -9 (no goodbye to clients)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
