"""Starts the local m2fp-server a filter needs, and stops it once no filter uses it.

A streamer should not need a terminal: a filter whose address is on this machine
(loopback) and finds nothing listening there starts ``m2fp-server`` itself — the
one named in the filter's settings, else the one the installers put in place.
Its output goes to ``m2fp-server-<port>.log`` in OBS's log folder.

Lifetime: a server is shared by every filter using its address.  When the last
one goes (filter removed, OBS exiting) it is stopped after a short grace period,
so a script reload (which destroys and re-creates the filters' state) does not
restart a model that takes seconds to load.  At interpreter exit (OBS shutting
down) every server still running is stopped at once.

This module keeps process state, so the script loader does not reload it (like
``registration``).  No OBS import: the log folder is passed in.
"""
from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

GRACE_S = 3.0  # a filter re-created within this time (script reload) keeps the running server
STOP_WAIT_S = 5.0  # SIGTERM, then SIGKILL after this long


def loopback_endpoint(address: str) -> Optional[Tuple[str, int]]:
    """(host, port) when ``address`` is a TCP endpoint on this machine, else None."""
    try:
        parts = urlsplit(address.strip())
        if parts.scheme != "tcp" or parts.port is None:
            return None
        host = parts.hostname or ""
    except ValueError:
        return None
    if host == "localhost":
        return "127.0.0.1", parts.port
    try:
        return (host, parts.port) if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def something_listens(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """A loopback connect is answered or refused at once; the timeout only bounds odd setups."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def installed_server() -> Optional[str]:
    """``m2fp-server`` on PATH, or in the venv the install scripts create (same places as they use)."""
    found = shutil.which("m2fp-server")
    if found:
        return found
    if os.environ.get("M2FP_HOME"):
        home = os.environ["M2FP_HOME"]
    elif sys.platform.startswith("win"):
        home = os.path.join(os.environ.get("LOCALAPPDATA", ""), "m2fp-obs")
    elif sys.platform == "darwin":
        home = os.path.join(os.path.expanduser("~"), "Library", "Application Support", "m2fp-obs")
    else:
        home = os.path.join(os.path.expanduser("~"), ".local", "share", "m2fp-obs")
    sub = ("Scripts", "m2fp-server.exe") if sys.platform.startswith("win") else ("bin", "m2fp-server")
    path = os.path.join(home, "venv", *sub)
    return path if os.path.exists(path) else None


@dataclass
class Child:
    """One server this module started."""

    address: str
    proc: "subprocess.Popen[bytes]"
    log_path: str
    started: float
    users: Set[int] = field(default_factory=set)
    stop_timer: Optional[threading.Timer] = None
    log_file: Optional[IO[bytes]] = None

    def exit_code(self) -> Optional[int]:
        return self.proc.poll()


@dataclass
class Launch:
    """What a filter shows about its server: ``phase`` is started | failed | external | remote."""

    phase: str
    message: str
    log_path: str = ""


class Launcher:
    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.children: Dict[str, Child] = {}
        self.failures: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._atexit = False

    # ------------------------------------------------------------------ users
    def acquire(self, user: int, address: str, server_path: str, log_dir: str) -> Launch:
        """Called when a filter is created or its address changes (UI thread).  Never raises."""
        self.release(user)
        end = loopback_endpoint(address)
        if end is None:
            return Launch("remote", "")
        with self._lock:
            child = self.children.get(address)
            if child is not None and child.exit_code() is None:
                child.users.add(user)
                if child.stop_timer is not None:
                    child.stop_timer.cancel()
                    child.stop_timer = None
                return Launch("started", f"server started by OBS (pid {child.proc.pid})", child.log_path)
            if child is not None:  # it exited: start a new one below if nothing else listens
                self._forget(child)
        if something_listens(*end):
            return Launch("external", "")
        cmd = server_path or installed_server()
        if not cmd:
            msg = ("m2fp-server not found: run install_scripts/install.sh (install.ps1 on Windows) "
                   "or set Advanced → Server program")
            return Launch("failed", msg)
        if not os.path.isfile(cmd):
            return Launch("failed", f"server program {cmd!r} does not exist")
        try:
            child = self._spawn(address, cmd, log_dir)
        except OSError as exc:
            return Launch("failed", f"cannot start {cmd}: {exc}")
        child.users.add(user)
        with self._lock:
            self.children[address] = child
        return Launch("started", f"started {os.path.basename(cmd)} (pid {child.proc.pid})", child.log_path)

    def release(self, user: int) -> None:
        """The filter is gone or uses another address: stop its server after the grace period if unused."""
        with self._lock:
            for child in self.children.values():
                if user in child.users:
                    child.users.discard(user)
                    if not child.users and child.stop_timer is None:
                        child.stop_timer = threading.Timer(self.grace_s, self._stop_if_unused, (child,))
                        child.stop_timer.daemon = True
                        child.stop_timer.start()

    def state(self, address: str) -> Optional[Child]:
        return self.children.get(address)

    # ------------------------------------------------------------------ processes
    def _spawn(self, address: str, cmd: str, log_dir: str) -> Child:
        end = loopback_endpoint(address)
        port = end[1] if end else 0
        os.makedirs(log_dir, exist_ok=True)
        log_path = os.path.join(log_dir, f"m2fp-server-{port}.log")
        log_file = open(log_path, "ab")
        log_file.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} started by OBS: {cmd} --address {address}\n"
                       .encode())
        log_file.flush()
        kwargs: Dict[str, object] = {}
        if sys.platform.startswith("win"):
            kwargs["creationflags"] = 0x08000000 | 0x00000200  # CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # OBS's Ctrl-C is not also the server's: we stop it ourselves
        try:
            proc = subprocess.Popen([cmd, "--address", address], stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
        except OSError:
            log_file.close()
            raise
        if not self._atexit:
            atexit.register(self.stop_all)
            self._atexit = True
        return Child(address, proc, log_path, time.monotonic(), log_file=log_file)

    def _stop_if_unused(self, child: Child) -> None:
        with self._lock:
            if child.users or self.children.get(child.address) is not child:
                return
            self._forget(child)
        _stop([child])

    def _forget(self, child: Child) -> None:
        self.children.pop(child.address, None)
        if child.stop_timer is not None:
            child.stop_timer.cancel()
            child.stop_timer = None

    def stop_all(self) -> None:
        """OBS is exiting (interpreter exit): stop every server this module started."""
        with self._lock:
            children = list(self.children.values())
            for c in children:
                self._forget(c)
        _stop(children)


def _stop(children: List[Child]) -> None:
    """Terminate by pid (only processes started here), wait, then kill what is left."""
    for c in children:
        if c.proc.poll() is None:
            c.proc.terminate()
    deadline = time.monotonic() + STOP_WAIT_S
    for c in children:
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait(5)
        if c.log_file is not None:
            c.log_file.close()


_LAUNCHER: Optional[Launcher] = None


def get() -> Launcher:
    """The process-wide launcher (survives script reloads: this module is not reloaded)."""
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = Launcher()
    return _LAUNCHER
