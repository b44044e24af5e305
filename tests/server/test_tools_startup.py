"""Tools out of the product's way: `m2fp --help` imports no subcommand, and a bench step that takes too
long is stopped and reported instead of hanging."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

PROBE = """
import sys
from m2fp_server.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = [m for m in ("numpy", "cv2", "zmq", "torch", "m2fp_server.cli.serve", "m2fp_server.server")
         if m in sys.modules]
print("HEAVY " + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_import_no_subcommand_and_no_heavy_package(argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60)
    assert "m2fp" in r.stdout  # the help text or the version was printed
    line = [x for x in r.stdout.splitlines() if x.startswith("HEAVY")][0]
    assert line == "HEAVY ", line


def test_a_subcommand_gets_its_own_options() -> None:
    r = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "bench", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--clients" in r.stdout and "--models" in r.stdout


def test_a_bench_step_over_its_time_bound_is_stopped_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    from m2fp_server.bench.m2fp import _Steps
    steps = _Steps(timeout_s=0.5)
    t = time.perf_counter()
    # a real step (torch's matrix-multiply peak) in its own process: far longer than half a second
    out = steps.run("matrix-multiply peak", {"kind": "peak", "threads": 1, "repeats": 5, "bf16": False})
    assert out is None and steps.skipped == ["matrix-multiply peak"]
    assert time.perf_counter() - t < 30  # stopped, not waited for
    printed = capsys.readouterr().out
    assert "matrix-multiply peak ..." in printed and "stopped after 0.5 s: skipped" in printed
