"""``struct obs_source_info``, the enum values and the functions the plugin uses (ctypes) against a libobs header.

The plugin registers its filter with the OBS 29 layout and passes that size; newer
libobs versions only append fields and zero-fill what a plugin does not pass.  So on
whichever OBS this machine has (Debian 12: 29; Debian 13: 30.2) every field we
declare must sit at the offset the C compiler gives it from ``obs-source.h``, our
struct must not be larger than the installed one, every constant we hard-code
must have the header's value and every function we bind must be declared there.
A C program built against the header (libobs-dev) prints the figures.

``M2FP_LIBOBS_CFLAGS`` replaces ``pkg-config --cflags libobs``: it points the
same checks at another OBS's headers, e.g. Debian 13's libobs-dev unpacked with
``dpkg-deb -x`` (docs/obs-filter.md, "Debian 12 and 13").
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "obs_plugin"))

from m2fp_obs import libobs as L  # noqa: E402

#: the constants libobs.py hard-codes, by the name the header gives them
CONSTANTS = ("GS_R8", "GS_RGBA", "GS_ZS_NONE", "GS_DYNAMIC", "GS_CLEAR_COLOR", "GS_BLEND_ZERO", "GS_BLEND_ONE",
             "GS_BLEND_SRCALPHA", "GS_BLEND_INVSRCALPHA", "OBS_NO_DIRECT_RENDERING", "OBS_EFFECT_DEFAULT",
             "OBS_SOURCE_TYPE_FILTER", "OBS_SOURCE_VIDEO", "OBS_TEXT_DEFAULT", "OBS_TEXT_PASSWORD", "OBS_TEXT_INFO",
             "OBS_TEXT_INFO_NORMAL", "OBS_TEXT_INFO_WARNING", "OBS_COMBO_FORMAT_INT", "OBS_GROUP_CHECKABLE",
             "OBS_COMBO_TYPE_LIST", "OBS_COMBO_FORMAT_STRING", "OBS_PATH_FILE", "OBS_GROUP_NORMAL", "LOG_ERROR",
             "LOG_WARNING", "LOG_INFO", "LOG_DEBUG")
HEADERS = "#include <stddef.h>\n#include <stdio.h>\n#include <obs-module.h>\n#include <util/platform.h>\n"


def _cflags() -> list[str] | None:
    if shutil.which("gcc") is None:
        return None
    if os.environ.get("M2FP_LIBOBS_CFLAGS"):
        return shlex.split(os.environ["M2FP_LIBOBS_CFLAGS"])
    if shutil.which("pkg-config") is None:
        return None
    r = subprocess.run(["pkg-config", "--cflags", "libobs"], capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else None


CFLAGS = _cflags()
pytestmark = pytest.mark.skipif(CFLAGS is None, reason="needs gcc, pkg-config and libobs-dev (apt)")


def _run_c(tmp_path: Path, body: str) -> dict[str, str]:
    """Build ``body`` (statements of main) against the header and return its "name value" lines."""
    src = tmp_path / "probe.c"
    src.write_text(HEADERS + "int main(void) {\n" + body + "\n    return 0;\n}\n")
    exe = tmp_path / "probe"
    assert CFLAGS is not None
    build = subprocess.run(["gcc", *CFLAGS, str(src), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr  # a field, constant or function the header lacks fails here
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


def test_every_declared_field_is_at_the_headers_offset(tmp_path):
    names = [name for name, _type in L.obs_source_info._fields_]
    out = _run_c(tmp_path, '    printf("sizeof %zu\\n", sizeof(struct obs_source_info));\n' + "\n".join(
        f'    printf("{n} %zu\\n", offsetof(struct obs_source_info, {n}));' for n in names))
    ours = {name: getattr(L.obs_source_info, name).offset for name in names}
    theirs = {name: int(out[name]) for name in names}
    assert ours == theirs
    assert ctypes.sizeof(L.obs_source_info) <= int(out["sizeof"]), "larger than the installed libobs accepts"


def test_every_hard_coded_constant_has_the_headers_value(tmp_path):
    out = _run_c(tmp_path, "\n".join(f'    printf("{n} %lld\\n", (long long)({n}));' for n in CONSTANTS))
    assert {n: getattr(L, n) for n in CONSTANTS} == {n: int(out[n]) for n in CONSTANTS}


def test_every_bound_function_is_declared_by_the_header(tmp_path):
    names = sorted(L._SIGNATURES)
    out = _run_c(tmp_path, "\n".join(f'    printf("{n} %d\\n", (void *)&{n} != NULL);' for n in names))
    assert sorted(out) == names
