"""``struct obs_source_info`` as the plugin declares it (ctypes) against the installed libobs header.

The plugin registers its filter with the OBS 29 layout and passes that size; newer
libobs versions only append fields and zero-fill what a plugin does not pass.  So on
whichever OBS this machine has (Debian 12: 29; Debian 13: newer) every field we
declare must sit at the offset the C compiler gives it from ``obs-source.h``, and
our struct must not be larger than the installed one.  A C program built against
the installed header (libobs-dev) prints the offsets.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_obs import libobs as L  # noqa: E402


def _cflags() -> list[str] | None:
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        return None
    r = subprocess.run(["pkg-config", "--cflags", "libobs"], capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else None


CFLAGS = _cflags()
pytestmark = pytest.mark.skipif(CFLAGS is None, reason="needs gcc, pkg-config and libobs-dev (apt)")


def test_every_declared_field_is_at_the_installed_headers_offset(tmp_path):
    names = [name for name, _type in L.obs_source_info._fields_]
    lines = "\n".join(f'    printf("{n} %zu\\n", offsetof(struct obs_source_info, {n}));' for n in names)
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <obs-module.h>\nint main(void) {\n"
                   '    printf("sizeof %zu\\n", sizeof(struct obs_source_info));\n' + lines + "\n    return 0;\n}\n")
    exe = tmp_path / "layout"
    assert CFLAGS is not None
    build = subprocess.run(["gcc", *CFLAGS, str(src), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr  # a field we declare that the header lacks fails here
    out = dict(line.split() for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                       check=True).stdout.splitlines())
    ours = {name: getattr(L.obs_source_info, name).offset for name in names}
    theirs = {name: int(out[name]) for name in names}
    assert ours == theirs
    assert ctypes.sizeof(L.obs_source_info) <= int(out["sizeof"]), "larger than the installed libobs accepts"
