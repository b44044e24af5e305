"""Which ``libpython`` PyTriton's Python-backend stub loads, and how to make it ours.

The stub (``triton_python_backend_stub``) is linked against ``libpython3.X.so``
and runs this interpreter's standard library and site-packages.  The dynamic
loader finds the *system* library first (Debian: 3.11.2) even when this
interpreter is another build (pyenv: 3.11.7), and the stub then dies on a
mismatched standard library.  Putting this interpreter's library directory
first on ``LD_LIBRARY_PATH`` (inherited by tritonserver and its stubs) fixes it.
Stdlib only: ``m2fp doctor`` imports it without the extra.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LibpythonCheck:
    ours: Path | None  # this interpreter's shared libpython (None: built without one)
    stub: Path | None  # what the stub resolves with the environment given
    stub_binary: Path | None

    @property
    def ok(self) -> bool:
        return self.ours is not None and self.stub is not None and self.stub.resolve() == self.ours.resolve()


def own_libpython() -> Path | None:
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not libdir or not soname or not soname.endswith(tuple(f".so{s}" for s in ("", ".1.0", ".1"))):
        return None
    path = Path(libdir) / soname
    return path if path.exists() else None


def stub_binary() -> Path | None:
    """The stub PyTriton ships for this Python version (None without nvidia-pytriton)."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("pytriton")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(list(spec.submodule_search_locations)[0]) / "tritonserver" / "python_backend_stubs"
    stub = base / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    return stub if stub.exists() else None


def fixed_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` with this interpreter's library directory first on LD_LIBRARY_PATH."""
    env = dict(os.environ if env is None else env)
    lib = own_libpython()
    if lib is not None:
        parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != str(lib.parent)]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib.parent), *parts])
    return env


def check(env: dict[str, str] | None = None) -> LibpythonCheck:
    """Ask the dynamic loader (``ldd``) which libpython the stub gets under ``env``."""
    stub = stub_binary()
    found: Path | None = None
    if stub is not None:
        try:
            out = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, timeout=20,
                                 env=dict(os.environ if env is None else env)).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        m = re.search(r"libpython\S*\s*=>\s*(\S+)", out)
        if m and m.group(1) != "not":
            found = Path(m.group(1))
    return LibpythonCheck(own_libpython(), found, stub)


def report() -> dict[str, object]:
    """What ``m2fp doctor`` prints about this interpreter (also run inside the Triton venv as JSON)."""
    import importlib.util
    out: dict[str, object] = {"python": sys.executable, "version": sys.version.split()[0]}
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except ImportError:
        out["numpy"] = None
    out["pytriton"] = importlib.util.find_spec("pytriton") is not None
    if out["pytriton"]:
        plain, fixed = check(), check(fixed_environment())
        out.update(ours=str(plain.ours), stub=str(plain.stub), plain_ok=plain.ok, fixed_ok=fixed.ok)
    return out
