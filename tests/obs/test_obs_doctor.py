"""`m2fp doctor` on this machine (OBS and python3-zmq installed) and with a Python lacking pyzmq."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from obs_harness import obs_available

REPO = Path(__file__).resolve().parents[2]


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "doctor", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(obs_available() is not None, reason=str(obs_available()))
def test_doctor_finds_obs_its_python_and_pyzmq():
    r = doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("ok") and "OBS Studio" in line for line in lines), r.stdout
    assert "pyzmq for OBS's Python" in r.stdout and "MISSING" not in r.stdout
    assert str(REPO / "obs_plugin" / "m2fp_obs_filter.py") in r.stdout


def test_doctor_names_what_is_missing_for_a_python_without_pyzmq(tmp_path):
    env_dir = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(env_dir)  # isolated: no pyzmq
    python = env_dir / "bin" / "python"
    r = doctor("--obs-python", str(python))
    assert r.returncode == 1
    missing = [line for line in r.stdout.splitlines() if line.startswith("MISSING")]
    assert any("pyzmq for OBS's Python" in line for line in missing), r.stdout
    assert "pip install --user pyzmq" in r.stdout or "python3-zmq" in r.stdout
    assert "1 thing(s) missing" in r.stdout or "2 thing(s) missing" in r.stdout
