"""Run a real, headless OBS Studio for tests and benchmarks (Xvfb + obs-websocket).

Everything the run needs is generated in a temporary directory: global.ini (no
wizard, websocket on a free port, preview off), a profile (video size, 30 fps), a
scene collection with the inputs, their filters and the m2fp script.  OBS and
Xvfb are started by this module, each in its own process group; OBS is quit by
closing its main window (WM_DELETE_WINDOW, as a window manager would), with
SIGTERM / SIGKILL by process id only as a logged fallback — nothing else is touched.

OBS runs with a clean PATH so it embeds the system Python (which has apt's
python3-zmq); see shared/notes/obs.md.  With ``M2FP_OBS_ROOT`` set to another
Debian's root filesystem (``tests/obs/debian13_root.sh`` makes one), OBS runs from
there through ``chroot``; the Xvfb, the server and the tests stay on this machine.
"""
from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "obs_plugin" / "m2fp_obs_filter.py"
RELOAD_HELPER = Path(__file__).resolve().parent / "obs_harness_reload.py"
PROBE_HELPER = Path(__file__).resolve().parent / "obs_harness_probe.py"
FILTER_ID = "m2fp_obs_filter"
PROBE_ID = "m2fp_test_probe"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: run OBS from this root filesystem (chroot; /tmp and the repository mounted at the same paths in it)
OBS_ROOT = os.environ.get("M2FP_OBS_ROOT", "")
_log = logging.getLogger("obs_harness")


def obs_command(*args: str, cwd: str | None = None) -> list[str]:
    """``obs`` with ``args``, from ``M2FP_OBS_ROOT`` when set (started in ``cwd``: chroot starts in its /)."""
    if not OBS_ROOT:
        return ["obs", *args]
    return ["chroot", OBS_ROOT, "/bin/sh", "-c", 'cd "$0" && exec obs "$@"', cwd or "/", *args]


def obs_available() -> str | None:
    """None when a headless OBS can run here, else what is missing."""
    if OBS_ROOT and not (Path(OBS_ROOT) / "usr/bin/obs").exists():
        return f"M2FP_OBS_ROOT={OBS_ROOT} has no usr/bin/obs"
    for exe in ("Xvfb",) if OBS_ROOT else ("obs", "Xvfb"):
        if shutil.which(exe, path=CLEAN_PATH) is None:
            return f"{exe} not installed (apt install obs-studio obs-plugins xvfb)"
    try:
        import obsws_python  # noqa: F401
    except ImportError:
        return "obsws-python not installed (pip install -e .[test])"
    return None


@functools.lru_cache(maxsize=1)
def obs_version_number() -> int:
    """The installed OBS's version as global.ini's LastVersion wants it, (major << 24) | (minor << 16) | patch.

    LastVersion at the running version skips the first-run wizard and the "what's new" dialog; the
    version comes from ``obs --version`` so the same harness serves OBS 29 (Debian 12) and newer.
    """
    try:
        out = subprocess.run(obs_command("--version"), capture_output=True, text=True, timeout=30,
                             env={"PATH": CLEAN_PATH}).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    major, minor, patch = (int(v) for v in m.groups()) if m else (29, 0, 2)
    return (major << 24) | (minor << 16) | patch


@functools.lru_cache(maxsize=1)
def obs_embedded_python() -> str | None:
    """The interpreter of the Python OBS embeds: ``/usr/bin/pythonX.Y`` for the libpythonX.Y the ``obs`` binary
    links (Debian 12: 3.11, Debian 13: 3.13), None when OBS or that interpreter is not found."""
    exe = shutil.which("obs", path=CLEAN_PATH)
    if exe is None:
        return None
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"libpython(3\.\d+)", out)
    return shutil.which(f"python{m.group(1)}", path=CLEAN_PATH) if m else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Input:
    """One scene input: ``kind`` is an OBS input id (image_source, ffmpeg_source, color_source_v3)."""

    name: str
    kind: str
    settings: dict[str, Any]
    filters: list[dict[str, Any]] = field(default_factory=list)
    visible: bool = True

    def with_m2fp(self, filter_name: str = "M2FP", **settings: Any) -> "Input":
        self.filters.append({"id": FILTER_ID, "versioned_id": FILTER_ID, "name": filter_name, "enabled": True,
                             "settings": settings})
        return self

    def with_probe(self, filter_name: str = "Probe", copy_passes: int = 0) -> "Input":
        """The render-counting filter of obs_harness_probe.py (needs ``ObsProcess(probe=True)``).  Filters
        apply in list order: add the probe first to have it on the source itself, beneath the others."""
        self.filters.append({"id": PROBE_ID, "versioned_id": PROBE_ID, "name": filter_name, "enabled": True,
                             "settings": {"copy_passes": copy_passes}})
        return self


def ffmpeg_input(name: str, path: Path) -> Input:
    return Input(name, "ffmpeg_source", {"local_file": str(path), "is_local_file": True, "looping": True,
                                          "restart_on_activate": True, "hw_decode": False})


def image_input(name: str, path: Path) -> Input:
    return Input(name, "image_source", {"file": str(path)})


class ObsProcess:
    def __init__(self, workdir: Path, inputs: list[Input], size: tuple[int, int] = (1280, 720), fps: int = 30,
                 load_script: bool = True, extra_env: dict[str, str] | None = None,
                 reload_helper: bool = False, probe: bool = False) -> None:
        self.dir = Path(workdir)
        self.inputs = inputs
        self.size = size
        self.fps = fps
        self.load_script = load_script
        self.reload_helper = reload_helper
        self.probe = probe
        self.extra_env = extra_env or {}
        self.ws_port = free_port()
        self.stats_path = self.dir / "m2fp_stats.json"
        self.xvfb: subprocess.Popen | None = None
        self.obs: subprocess.Popen | None = None
        self.client: Any = None
        self.display = ""

    # ------------------------------------------------------------------ config
    def write_config(self) -> Path:
        cfg = self.dir / "config"
        base = cfg / "obs-studio"
        (base / "basic" / "profiles" / "m2fp").mkdir(parents=True, exist_ok=True)
        (base / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        w, h = self.size
        settings = (
            f"[General]\nFirstRun=true\nLastVersion={obs_version_number()}\nEnableAutoUpdates=false\n"
            "ConfirmOnExit=false\n"
            "[BasicWindow]\nPreviewEnabled=false\nSysTrayEnabled=false\nSysTrayWhenStarted=false\n"
            "[Basic]\nProfile=m2fp\nProfileDir=m2fp\nSceneCollection=m2fp\nSceneCollectionFile=m2fp\n"
            f"[OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\nServerPort={self.ws_port}\n"
            "AuthRequired=false\nAlertsEnabled=false\n")
        # OBS ≤ 30 reads global.ini; 31+ reads the user's part from user.ini (it migrates global.ini only
        # when user.ini is missing); obs-websocket 5.1 reads global.ini, newer ones their config.json
        (base / "global.ini").write_text(settings)
        (base / "user.ini").write_text(settings)
        ws = base / "plugin_config" / "obs-websocket"
        ws.mkdir(parents=True, exist_ok=True)
        (ws / "config.json").write_text(json.dumps({
            "first_load": False, "server_enabled": True, "server_port": self.ws_port, "alerts_enabled": False,
            "auth_required": False, "server_password": ""}))
        (base / "basic" / "profiles" / "m2fp" / "basic.ini").write_text(
            f"[General]\nName=m2fp\n[Video]\nBaseCX={w}\nBaseCY={h}\nOutputCX={w}\nOutputCY={h}\n"
            f"FPSType=0\nFPSCommon={self.fps}\n[Output]\nMode=Simple\n"
            f"[SimpleOutput]\nFilePath={self.dir}\nRecFormat=mkv\nRecEncoder=x264\n")
        items = []
        sources: list[dict[str, Any]] = []
        for i, inp in enumerate(self.inputs, start=1):
            items.append({"name": inp.name, "id": i, "visible": inp.visible, "locked": False, "rot": 0.0,
                          "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
                          "bounds_type": 0, "bounds_align": 0, "bounds": {"x": 0.0, "y": 0.0},
                          "crop_left": 0, "crop_top": 0, "crop_right": 0, "crop_bottom": 0})
            sources.append({"id": inp.kind, "versioned_id": inp.kind, "name": inp.name, "enabled": True,
                            "settings": inp.settings, "filters": inp.filters, "mixers": 0, "volume": 1.0})
        sources.insert(0, {"id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": True,
                           "settings": {"items": items, "id_counter": len(items), "custom_size": False}})
        scripts = [{"path": str(SCRIPT), "settings": {}}] if self.load_script else []
        if self.reload_helper:
            scripts.append({"path": str(RELOAD_HELPER), "settings": {}})
        if self.probe:
            scripts.append({"path": str(PROBE_HELPER), "settings": {}})
        (base / "basic" / "scenes" / "m2fp.json").write_text(json.dumps({
            "name": "m2fp", "current_scene": "Scene", "current_program_scene": "Scene",
            "scene_order": [{"name": "Scene"}], "sources": sources, "groups": [], "transitions": [],
            "current_transition": "Fade", "transition_duration": 300,
            "modules": {"scripts-tool": scripts},
        }, indent=1))
        return cfg

    # ------------------------------------------------------------------ processes
    def start(self, timeout_s: float = 60.0) -> "ObsProcess":
        cfg = self.write_config()
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                                      "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(w)
        with os.fdopen(r) as f:
            self.display = ":" + f.readline().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "PYTHON", "VIRTUAL_ENV"))}
        env.update(PATH=CLEAN_PATH, DISPLAY=self.display, XDG_CONFIG_HOME=str(cfg), LIBGL_ALWAYS_SOFTWARE="1",
                   M2FP_OBS_STATS=str(self.stats_path))
        env.update(self.extra_env)
        self.obs_log = open(self.dir / "obs_stdout.txt", "wb")
        self.obs = subprocess.Popen(obs_command("--disable-shutdown-check", "--multi", "--disable-updater",
                                                "--verbose", "--collection", "m2fp", "--profile", "m2fp",
                                                cwd=str(self.dir)),
                                    env=env, cwd=str(self.dir), stdout=self.obs_log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.client = self._connect(timeout_s)
        return self

    def _connect(self, timeout_s: float) -> Any:
        import obsws_python
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.obs is not None and self.obs.poll() is not None:
                raise RuntimeError(f"OBS exited with {self.obs.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.ws_port), timeout=0.5):
                    pass
                return obsws_python.ReqClient(host="127.0.0.1", port=self.ws_port, password="", timeout=30)
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.3)
        raise TimeoutError(f"obs-websocket did not answer within {timeout_s} s ({last}):\n{self.log_tail()}")

    def stop(self, close_timeout_s: float = 30.0) -> None:
        """Quit OBS as a user does (close its main window), then stop Xvfb.

        A signal is only the fallback: OBS 29's SIGINT handler closes the window from inside the
        signal handler, which deadlocks when the signal lands while OBS's main thread is writing to
        the X server (libxcb's lock is held by the interrupted ``writev``).  Closing the window goes
        through Qt's event loop instead, so shutdown runs where OBS expects it.
        """
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client = None
        obs = self.obs
        if obs is not None and obs.poll() is None:
            why = self._close_main_window()
            if why is None:
                try:
                    obs.wait(close_timeout_s)
                except subprocess.TimeoutExpired:
                    why = f"OBS did not exit within {close_timeout_s:.0f} s of closing its main window"
                    self._dump_hang(obs.pid)
            if why is not None:
                self._terminate(obs, why)
        if self.xvfb is not None and self.xvfb.poll() is None:
            self.xvfb.terminate()
            try:
                self.xvfb.wait(5)
            except subprocess.TimeoutExpired:
                self.xvfb.kill()
                self.xvfb.wait(5)
        if getattr(self, "obs_log", None):
            self.obs_log.close()

    def _close_main_window(self) -> str | None:
        """Send WM_DELETE_WINDOW to OBS's main window; None when sent, else why it could not be.

        There is no window manager on the Xvfb display, so this client does what one would do for
        a click on the title bar's close button: a ``WM_PROTOCOLS`` ClientMessage to the window.
        (``xdotool windowclose`` destroys the window instead, and ``wmctrl -c`` needs a window manager.)
        """
        assert self.obs is not None
        try:
            from Xlib import X, display, protocol  # type: ignore[import-untyped]  # python-xlib ships no stubs
            from Xlib.error import DisplayError, XError  # type: ignore[import-untyped]
        except ImportError:
            return "python-xlib is not installed (pip install -e .[test])"
        try:
            d = display.Display(self.display)
        except (DisplayError, OSError) as exc:
            return f"cannot open the display {self.display}: {exc}"
        try:
            win = self._main_window(d)
            if win is None:
                return "OBS's main window was not found on the display"
            protocols = d.intern_atom("WM_PROTOCOLS")
            delete = d.intern_atom("WM_DELETE_WINDOW")
            if delete not in (win.get_wm_protocols() or []):
                return "OBS's main window does not take WM_DELETE_WINDOW"
            ev = protocol.event.ClientMessage(window=win, client_type=protocols,
                                              data=(32, [delete, X.CurrentTime, 0, 0, 0]))
            win.send_event(ev, event_mask=X.NoEventMask)
            d.sync()
            _log.info("OBS: WM_DELETE_WINDOW sent to window 0x%x", win.id)
            return None
        except XError as exc:
            return f"X error while closing OBS's window: {exc}"
        finally:
            d.close()

    def _main_window(self, d: Any, timeout_s: float = 10.0) -> Any:
        """The top-level window of our OBS process titled "OBS …" (its main window), waiting for it to map."""
        from Xlib import X
        pid_atom = d.intern_atom("_NET_WM_PID")
        utf8 = d.intern_atom("UTF8_STRING")
        name_atom = d.intern_atom("_NET_WM_NAME")
        assert self.obs is not None
        deadline = time.monotonic() + timeout_s
        while True:
            for win in d.screen().root.query_tree().children:
                pid = win.get_full_property(pid_atom, X.AnyPropertyType)
                if pid is None or not len(pid.value) or int(pid.value[0]) != self.obs.pid:
                    continue
                if win.get_attributes().map_state != X.IsViewable:
                    continue
                name = win.get_full_property(name_atom, utf8)
                title = bytes(name.value).decode("utf-8", "replace") if name is not None else (win.get_wm_name() or "")
                if isinstance(title, bytes):
                    title = title.decode("latin-1")
                if title.startswith("OBS "):
                    return win
            if time.monotonic() > deadline or self.obs.poll() is not None:
                return None
            time.sleep(0.2)

    def _terminate(self, proc: subprocess.Popen, why: str) -> None:
        """The fallback: SIGTERM, then SIGKILL; the reason goes to the test log and next to OBS's log."""
        _log.warning("OBS: %s; sending SIGTERM", why)
        with open(self.dir / "harness.log", "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {why}; SIGTERM\n")
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            _log.warning("OBS: no exit 10 s after SIGTERM; SIGKILL")
            with open(self.dir / "harness.log", "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} no exit after SIGTERM; SIGKILL\n")
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> "ObsProcess":
        return self.start()

    def _dump_hang(self, pid: int) -> None:
        """OBS did not exit after its window was closed: keep every thread's stack (gdb) next to its log."""
        out = self.dir / "obs-hang-backtrace.txt"
        if shutil.which("gdb") is None:
            out.write_text("no backtrace: gdb is not installed")
            return
        try:
            bt = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                                capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            bt = f"no backtrace: {exc}"
        out.write_text(bt)
        _log.warning("OBS: thread stacks of the hung process in %s", out)

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ observation
    def log_text(self) -> str:
        logs = sorted((self.dir / "config" / "obs-studio" / "logs").glob("*.txt"))
        return logs[-1].read_text(errors="replace") if logs else ""

    def wait_log(self, text: str, timeout_s: float = 10.0) -> bool:
        """Whether ``text`` reaches OBS's log within ``timeout_s``.  The script's messages go through
        its timer (m2fp_obs/log.py), so a loaded machine can write them well after the event."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def screenshot(self, source: str) -> np.ndarray:
        """The source as rendered now (filters applied), RGBA uint8."""
        r = self.client.get_source_screenshot(source, "png", None, None, -1)
        data = base64.b64decode(r.image_data.split(",", 1)[1])
        bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if bgra is None:
            raise ValueError(f"OBS sent a screenshot of {source!r} that does not decode as PNG")
        if bgra.ndim == 2:
            bgra = cv2.cvtColor(bgra, cv2.COLOR_GRAY2BGRA)
        elif bgra.shape[2] == 3:
            bgra = cv2.cvtColor(bgra, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)

    def stats(self) -> dict[str, Any]:
        s = self.client.get_stats()
        return {k: getattr(s, k) for k in s.attrs()}

    def plugin_stats(self) -> dict[str, Any]:
        """The filter's own report ($M2FP_OBS_STATS), refreshed by OBS every 0.2 s."""
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def probe_stats(self) -> list[dict[str, Any]]:
        """The probes' report (obs_harness_probe.py), refreshed by OBS every 0.2 s."""
        try:
            return json.loads(Path(str(self.stats_path) + ".probe.json").read_text())["probes"]
        except (OSError, ValueError, KeyError):
            return []

    def reset_plugin_timings(self) -> None:
        """Ask the filter to restart its timing window (it removes the flag file when done)."""
        flag = Path(str(self.stats_path) + ".reset")
        flag.write_text("")
        deadline = time.monotonic() + 5
        while flag.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def reload_script(self, timeout_s: float = 10.0) -> str:
        """Reload the m2fp script inside OBS as Tools → Scripts → Reload does (needs reload_helper)."""
        flag = Path(str(self.stats_path) + ".reload")
        done = Path(str(flag) + ".done")
        done.unlink(missing_ok=True)
        flag.write_text("")
        deadline = time.monotonic() + timeout_s
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the reload helper did not answer")
            time.sleep(0.05)
        time.sleep(0.05)
        return done.read_text()

    def wait_plugin(self, predicate: Any, timeout_s: float, poll_s: float = 0.05) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.plugin_stats()
            for inst in st.get("instances", []):
                if predicate(inst):
                    return inst
            time.sleep(poll_s)
        return None
