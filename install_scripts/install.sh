#!/usr/bin/env bash
# m2fp-obs installer for Linux (distribution OBS packages; Flatpak OBS: see the notes printed at the end).
#
#   install_scripts/install.sh            install the server venv and pyzmq for OBS's Python
#   install_scripts/install.sh --dry-run  only say what would be done
#
# 1. the inference server goes into a venv:  $M2FP_HOME/venv  (default ~/.local/share/m2fp-obs)
# 2. pyzmq goes into the Python OBS embeds (found from OBS's scripting module; Debian/Ubuntu: apt python3-zmq)
# 3. prints the exact script path to add in OBS (Tools > Scripts > +), then runs `m2fp doctor`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
M2FP_HOME="${M2FP_HOME:-$HOME/.local/share/m2fp-obs}"
VENV="$M2FP_HOME/venv"
SCRIPT="$REPO/obs_plugin/m2fp_obs_filter.py"
CLEAN_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DRY=0
EXTRAS=""

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --dry-run   --extras m2fp   (adds the M2FP engine's extra; installs CPU torch)"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --extras) EXTRAS="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=install_scripts/steps.sh
. "$REPO/install_scripts/steps.sh"  # say, run

# ---------------------------------------------------------------- 1. server venv
say "inference server -> $VENV"
PY=""
for cand in python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        PY="$(command -v "$cand")"; break
    fi
done
if [ -z "$PY" ]; then
    echo "the server needs Python 3.10 or newer (Debian/Ubuntu: sudo apt install python3 python3-venv)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv --help >/dev/null 2>&1; then
        echo "python venv module missing (Debian/Ubuntu: sudo apt install python3-venv)" >&2
        exit 1
    fi
    run mkdir -p "$M2FP_HOME"
    run "$PY" -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --upgrade pip
if [ -n "$EXTRAS" ]; then
    # a bare `torch` requirement may pull CUDA wheels (GBs): take the CPU build explicitly
    run "$VENV/bin/python" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    run "$VENV/bin/python" -m pip install -e "$REPO[$EXTRAS]"
else
    run "$VENV/bin/python" -m pip install -e "$REPO"
fi

# ---------------------------------------------------------------- 2. pyzmq for OBS's Python
say "pyzmq for the Python OBS embeds"
OBS_BIN="$(PATH="$CLEAN_PATH:$PATH" command -v obs || true)"
OBS_PY=""
FLATPAK=0
if [ -n "$OBS_BIN" ]; then
    for mod in /usr/lib/obs-scripting/_obspython.so /usr/lib/*/obs-scripting/_obspython.so \
               /usr/lib64/obs-scripting/_obspython.so /usr/local/lib/obs-scripting/_obspython.so \
               /usr/local/lib/*/obs-scripting/_obspython.so; do
        [ -e "$mod" ] || continue
        ver="$(ldd "$mod" | sed -n 's/.*libpython\(3\.[0-9]*\).*/\1/p' | head -n1)"
        if [ -n "$ver" ]; then OBS_PY="$(PATH="$CLEAN_PATH" command -v "python$ver" || true)"; break; fi
    done
    if [ -z "$OBS_PY" ]; then
        echo "    OBS is installed but its Python scripting module was not found:"
        echo "    Debian/Ubuntu: sudo apt install obs-studio (the distribution package has Python scripting)"
    fi
elif command -v flatpak >/dev/null 2>&1 && flatpak info com.obsproject.Studio >/dev/null 2>&1; then
    FLATPAK=1
else
    echo "    OBS Studio not found (Debian/Ubuntu: sudo apt install obs-studio); skipping this step"
fi

zmq_ok() { env -i PATH="$CLEAN_PATH" HOME="$HOME" "$1" -c 'import zmq' >/dev/null 2>&1; }
if [ -n "$OBS_PY" ]; then
    echo "    OBS uses $OBS_PY ($("$OBS_PY" --version 2>&1))"
    if zmq_ok "$OBS_PY"; then
        echo "    pyzmq already importable there"
    else
        SYS_PY="$(PATH="$CLEAN_PATH" command -v python3 || true)"
        if command -v apt-get >/dev/null 2>&1 && [ "$(readlink -f "$SYS_PY")" = "$(readlink -f "$OBS_PY")" ]; then
            SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
            run $SUDO apt-get install -y python3-zmq
        else
            run "$OBS_PY" -m pip install --user pyzmq
        fi
        if [ "$DRY" -eq 0 ] && ! zmq_ok "$OBS_PY"; then
            echo "    pyzmq is still not importable by $OBS_PY; install it for that interpreter by hand" >&2
            exit 1
        fi
    fi
fi

# ---------------------------------------------------------------- 3. where things are
say "done"
echo
echo "  Script to add in OBS (Tools > Scripts > +):"
echo "      $SCRIPT"
echo "  The filter starts the server itself (address on 127.0.0.1, nothing listening). By hand:"
echo "      $VENV/bin/m2fp-server"
echo "  Then: a source > Filters > + > 'M2FP Background'."
if [ "$FLATPAK" -eq 1 ]; then
    echo
    echo "  Flatpak OBS embeds its runtime's Python, which has no pip. Unpack a pyzmq wheel matching that"
    echo "  Python into ~/.var/app/com.obsproject.Studio/m2fp-site and start OBS with"
    echo "      flatpak override --user --env=PYTHONPATH=\$HOME/.var/app/com.obsproject.Studio/m2fp-site com.obsproject.Studio"
    echo "  (the sandbox must also see this checkout: flatpak override --user --filesystem=$REPO com.obsproject.Studio)"
fi
echo
if [ "$DRY" -eq 0 ]; then
    "$VENV/bin/m2fp" doctor || true
fi
