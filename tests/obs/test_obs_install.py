"""The Linux installer, as a dry run (a real run was made by hand: see the README), and script syntax."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from obs_harness import obs_available, obs_embedded_python

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "install_scripts"


@pytest.mark.parametrize("name", ["install.sh", "install_macos.sh"])
def test_shell_installers_parse(name):
    r = subprocess.run(["bash", "-n", str(SCRIPTS / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(obs_available() is not None, reason=str(obs_available()))
def test_install_sh_dry_run_finds_obs_python_and_prints_the_script_path(tmp_path):
    home = tmp_path / "m2fp-home"
    r = subprocess.run(["bash", str(SCRIPTS / "install.sh"), "--dry-run"], capture_output=True, text=True,
                       env={**os.environ, "M2FP_HOME": str(home)}, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert f"-m venv {home}/venv" in out and f"pip install -e {REPO}" in out
    obs_py = obs_embedded_python()  # Debian 12: python3.11, Debian 13: python3.13
    assert obs_py is not None, "the obs binary links no libpython found on PATH"
    assert f"OBS uses {obs_py}" in out, out
    assert str(REPO / "obs_plugin" / "m2fp_obs_filter.py") in out
    assert not home.exists(), "a dry run changes nothing"


def test_install_sh_rejects_unknown_options():
    r = subprocess.run(["bash", str(SCRIPTS / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
