#!/usr/bin/env bash
# m2fp-obs installer for macOS (OBS.app from obsproject.com; Apple silicon or Intel).
#
#   install_scripts/install_macos.sh            install
#   install_scripts/install_macos.sh --dry-run  only say what would be done
#
# 1. finds OBS.app and the newest Python it can load (OBS 29.0: 3.10; 29.1-30.0: 3.11; 30.1+: 3.12);
# 2. uses that Python from python.org (/Library/Frameworks/Python.framework) and installs pyzmq into it;
# 3. installs the inference server into a venv: $M2FP_HOME/venv (default ~/Library/Application Support/m2fp-obs);
# 4. prints what to set in OBS (Tools > Scripts > Python Settings) and the exact script path.
# Not tested on macOS by the project's CI (it runs on Linux); please report problems.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
M2FP_HOME="${M2FP_HOME:-$HOME/Library/Application Support/m2fp-obs}"
VENV="$M2FP_HOME/venv"
SCRIPT="$REPO/obs_plugin/m2fp_obs_filter.py"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

# shellcheck source=install_scripts/steps.sh
. "$REPO/install_scripts/steps.sh"  # say, run

# ---------------------------------------------------------------- 1. OBS and its Python version
say "OBS Studio"
APP="/Applications/OBS.app"
PY_MINOR=12
if [ -d "$APP" ]; then
    VERSION="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$APP/Contents/Info.plist" 2>/dev/null || echo "")"
    echo "    found $APP ${VERSION:+(version $VERSION)}"
    MAJOR="${VERSION%%.*}"; REST="${VERSION#*.}"; MINOR="${REST%%.*}"
    if [ -n "$MAJOR" ] && [ "$MAJOR" -lt 29 ] 2>/dev/null; then
        echo "OBS $VERSION is too old: the filter needs OBS 29 or newer" >&2; exit 1
    fi
    if [ "$MAJOR" = "29" ] && [ "$MINOR" = "0" ]; then PY_MINOR=10
    elif [ "$MAJOR" = "29" ] || { [ "$MAJOR" = "30" ] && [ "$MINOR" = "0" ]; }; then PY_MINOR=11
    fi
else
    echo "    OBS.app not found in /Applications; assuming a recent OBS (Python 3.12)"
fi
PY_VER="3.$PY_MINOR"

# ---------------------------------------------------------------- 2. python.org Python + pyzmq
say "Python $PY_VER for OBS"
FRAMEWORKS="/Library/Frameworks"
OBS_PY="$FRAMEWORKS/Python.framework/Versions/$PY_VER/bin/python$PY_VER"
if [ ! -x "$OBS_PY" ]; then
    echo "    Python $PY_VER from python.org is not installed: get the macOS 64-bit universal2 installer from"
    echo "    https://www.python.org/downloads/macos/ and run this script again."
    echo "    (Homebrew's Python only works with OBS 31.1 or newer: set /opt/homebrew/opt/python@$PY_VER/Frameworks)"
    exit 1
fi
echo "    $OBS_PY"
run "$OBS_PY" -m pip install --upgrade pyzmq

# ---------------------------------------------------------------- 3. server venv
say "inference server -> $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    run mkdir -p "$M2FP_HOME"
    run "$OBS_PY" -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --upgrade pip
run "$VENV/bin/python" -m pip install -e "$REPO"

# ---------------------------------------------------------------- 4. where things are
say "done"
echo
echo "  In OBS: Tools > Scripts > Python Settings > $FRAMEWORKS   (then restart OBS)"
echo "  Script to add in OBS (Tools > Scripts > +):"
echo "      $SCRIPT"
echo "  The filter starts the server itself (address on 127.0.0.1, nothing listening). By hand:"
echo "      \"$VENV/bin/m2fp-server\""
echo "  Then: a source > Filters > + > 'M2FP Background'."
echo
if [ "$DRY" -eq 0 ]; then
    "$VENV/bin/m2fp" doctor --obs-python "$OBS_PY" || true
fi
