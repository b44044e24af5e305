"""``m2fp doctor``: is everything in place for the OBS filter?  Says what is missing and how to fix it.

Checks, in the order a user meets them: OBS installed (and its version), the
Python OBS embeds, pyzmq importable by *that* Python, the script's own imports
under that Python, the server importable here, the script path to add in
Tools → Scripts (and whether OBS already lists it), and optionally a running
server.
"""
from __future__ import annotations

import argparse
import configparser
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "obs_plugin" / "m2fp_obs_filter.py"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--obs-python", default=None,
                   help="the Python OBS uses (default: found from OBS's scripting module or its settings)")
    p.add_argument("--server", default=None, help="also check a running server at this address")


# --------------------------------------------------------------------------- OBS
def find_obs() -> tuple[str | None, str]:
    """(executable or app path, version text)."""
    if sys.platform.startswith("win"):
        for base in (os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("ProgramFiles(x86)", "")):
            exe = Path(base) / "obs-studio" / "bin" / "64bit" / "obs64.exe"
            if base and exe.exists():
                return str(exe), ""
        return None, ""
    if sys.platform == "darwin":
        app = Path("/Applications/OBS.app")
        plist = app / "Contents" / "Info.plist"
        if plist.exists():
            m = re.search(r"CFBundleShortVersionString</key>\s*<string>([^<]+)", plist.read_text(errors="replace"))
            return str(app), m.group(1) if m else ""
        return None, ""
    exe = shutil.which("obs", path=CLEAN_PATH + os.pathsep + os.environ.get("PATH", ""))
    if exe:
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=15,
                                 env={**os.environ, "PATH": CLEAN_PATH}).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        return exe, out.strip().splitlines()[0] if out.strip() else ""
    if shutil.which("flatpak"):
        r = subprocess.run(["flatpak", "info", "com.obsproject.Studio"], capture_output=True, text=True)
        if r.returncode == 0:
            return "flatpak:com.obsproject.Studio", "Flatpak"
    return None, ""


def obs_config_dir() -> Path:
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA", "")) / "obs-studio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "obs-studio"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "obs-studio"


def find_obs_python(obs: str | None) -> tuple[str | None, str]:
    """(interpreter, how it was found)."""
    if sys.platform.startswith(("win", "darwin")):
        for name in ("user.ini", "global.ini"):  # OBS 31+ keeps it in user.ini
            ini = obs_config_dir() / name
            if not ini.exists():
                continue
            cp = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                cp.read(ini, encoding="utf-8-sig")
            except configparser.Error:
                continue
            home = cp.get("Python", "Path64bit", fallback="") or cp.get("Python", "Path", fallback="")
            if home:
                if sys.platform.startswith("win"):
                    exe = Path(home) / "python.exe"
                else:
                    cands = sorted(c for c in glob.glob(str(Path(home) / "Python.framework" / "Versions" / "3.*"
                                                            / "bin" / "python3.*"))
                                   if re.search(r"python3\.\d+$", c))
                    exe = Path(cands[-1]) if cands else Path(home) / "bin" / "python3"
                return (str(exe) if exe.exists() else None), f"Tools > Scripts > Python Settings ({ini})"
        return None, "Tools > Scripts > Python Settings is not set"
    if obs and obs.startswith("flatpak:"):
        return None, "Flatpak OBS uses its runtime's Python (see docs/obs-filter.md)"
    mods = [m for pattern in ("/usr/lib/obs-scripting", "/usr/lib/*/obs-scripting", "/usr/lib64/obs-scripting",
                              "/usr/local/lib/obs-scripting", "/usr/local/lib/*/obs-scripting")
            for m in glob.glob(pattern + "/_obspython.so")]
    for mod in mods:
        try:
            out = subprocess.run(["ldd", mod], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.search(r"libpython(3\.\d+)", out)
        if m:
            found = shutil.which(f"python{m.group(1)}", path=CLEAN_PATH)
            return found, f"{mod} links libpython{m.group(1)}"
    return None, "OBS's Python scripting module (obs-scripting/_obspython.so) not found"


def run_in(python: str, code: str) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYENV", "VIRTUAL_ENV"))}
    env["PATH"] = CLEAN_PATH if not sys.platform.startswith("win") else env.get("PATH", "")
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if r.returncode == 0:
        return True, r.stdout.strip()
    err = r.stderr.strip().splitlines()
    return False, err[-1] if err else f"exit status {r.returncode}"


def script_listed_in_obs() -> bool | None:
    scenes = obs_config_dir() / "basic" / "scenes"
    if not scenes.is_dir():
        return None
    for f in scenes.glob("*.json"):
        try:
            data = json.loads(f.read_text(errors="replace"))
        except ValueError:
            continue
        for s in (data.get("modules") or {}).get("scripts-tool") or []:
            if Path(str(s.get("path", ""))).name == SCRIPT.name:
                return True
    return False


# --------------------------------------------------------------------------- checks
def checks(args: argparse.Namespace) -> list[Check]:
    out: list[Check] = []
    obs, version = find_obs()
    m = re.search(r"(\d+)\.(\d+)", version)
    too_old = m is not None and int(m.group(1)) < 29
    detail = (f"{obs} {version}".strip() + (" (too old: OBS 29 or newer)" if too_old else "")) if obs else "not found"
    out.append(Check("OBS Studio", obs is not None and not too_old, detail,
                     "install OBS 29 or newer (Debian/Ubuntu: sudo apt install obs-studio)"))
    py, how = (args.obs_python, "--obs-python") if args.obs_python else find_obs_python(obs)
    out.append(Check("OBS's Python", py is not None, f"{py} ({how})" if py else how,
                     "Windows/macOS: install Python 3.12 from python.org and set it in OBS: Tools > Scripts > "
                     "Python Settings (see install_scripts/)"))
    if py:
        ok, detail = run_in(py, "import sys, zmq; print(sys.version.split()[0], 'pyzmq', zmq.__version__, "
                                "'libzmq', zmq.zmq_version())")
        out.append(Check("pyzmq for OBS's Python", ok, detail,
                         "Debian/Ubuntu: sudo apt install python3-zmq; otherwise: "
                         f"{py} -m pip install --user pyzmq"))
        code = (f"import sys; sys.path[:0] = [{str(REPO / 'shared')!r}, {str(REPO / 'obs_plugin')!r}]; "
                "import m2fp_obs.transport, m2fp_obs.settings; print('ok')")
        ok, detail = run_in(py, code)
        out.append(Check("script imports under OBS's Python", ok, detail,
                         "OBS's Python must be 3.8 or newer with pyzmq"))
    try:
        import m2fp_server  # noqa: F401
        server_cmd = shutil.which("m2fp-server")
        out.append(Check("server", True, f"m2fp_server importable; m2fp-server: {server_cmd or 'not on PATH'}"))
    except ImportError as exc:
        out.append(Check("server", False, str(exc), "run install_scripts/install.sh (creates the server venv)"))
    out.append(Check("script to add in OBS", SCRIPT.exists(), str(SCRIPT),
                     "Tools > Scripts > + and pick this file"))
    listed = script_listed_in_obs()
    out.append(Check("script added in OBS", bool(listed),
                     {True: "listed in a scene collection", False: "not listed in any scene collection",
                      None: "no OBS configuration yet"}[listed],
                     f"OBS: Tools > Scripts > + > {SCRIPT}", required=False))
    out.extend(triton_checks())
    if args.server:
        from ..client import MaskClient
        try:
            with MaskClient(args.server, timeout_s=3.0) as c:
                info = c.hello("m2fp-doctor")
            out.append(Check("server reachable", True, f"{args.server}: engine {info['engine']['name']}"))
        except Exception as exc:
            out.append(Check("server reachable", False, f"{args.server}: {exc}",
                             f"start it: m2fp-server --address {args.server}"))
    return out


def triton_checks() -> list[Check]:
    """Optional: the Triton client here, and PyTriton (its own venv) with a libpython matching its stdlib."""
    import importlib.util
    out = [Check("Triton client (-E triton=)", importlib.util.find_spec("tritonclient") is not None,
                 "tritonclient importable" if importlib.util.find_spec("tritonclient") else "not installed",
                 "pip install 'm2fp-obs[triton-client]'", required=False)]
    from ..triton.launch import triton_python
    python = triton_python()
    if python is None:
        out.append(Check("PyTriton (m2fp triton)", False, "no Python with the [triton] extra and numpy<2",
                         "python -m venv .venv-triton && .venv-triton/bin/pip install -e '.[triton]'",
                         required=False))
        return out
    here = str(Path(__file__).resolve().parents[2])  # this tree's m2fp_server, whatever the venv holds
    try:
        r = subprocess.run([python, "-c", "import json; from m2fp_server.triton.libpython import report; "
                                          "print(json.dumps(report()))"], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": here})
        ok, text = r.returncode == 0, (r.stdout if r.returncode == 0 else r.stderr)
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, text = False, str(exc)
    try:
        rep = json.loads(text.strip().splitlines()[-1]) if ok else {}
    except (ValueError, IndexError):
        rep = {}
    if not rep:
        out.append(Check("PyTriton (m2fp triton)", False, f"{python}: {text.strip()[-200:]}",
                         "reinstall the [triton] extra in that venv", required=False))
        return out
    out.append(Check("PyTriton (m2fp triton)", True, f"{python} (Python {rep['version']}, numpy {rep['numpy']})",
                     required=False))
    detail = f"stub loads {rep['stub']}; this Python's is {rep['ours']}"
    if rep.get("plain_ok"):
        out.append(Check("PyTriton libpython", True, detail + " (match)", required=False))
    else:
        out.append(Check("PyTriton libpython", bool(rep.get("fixed_ok")), detail + (
            " (mismatch; m2fp triton puts this Python's library first on LD_LIBRARY_PATH: fixed)"
            if rep.get("fixed_ok") else " (mismatch, no shared libpython to put first)"),
            "use a Python built with --enable-shared (Debian's python3 -m venv works)", required=False))
    return out


def run(args: argparse.Namespace) -> int:
    results = checks(args)
    width = max(len(c.name) for c in results)
    for c in results:
        mark = "ok  " if c.ok else ("MISSING" if c.required else "note")
        print(f"{mark:7} {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"{'':7} {'':<{width}}  -> {c.fix}")
    missing = [c for c in results if c.required and not c.ok]
    print("\nall set: add the script in OBS, then the filter 'M2FP Background' on a source" if not missing
          else f"\n{len(missing)} thing(s) missing (see above)")
    return 1 if missing else 0
