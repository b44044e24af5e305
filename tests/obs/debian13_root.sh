#!/usr/bin/env bash
# A Debian 13 (trixie) root filesystem with its OBS Studio, for running the real-OBS tests against OBS 30 and
# its Python 3.13 from a Debian 12 machine (docs/obs-filter.md, "Debian 12 and 13"):
#
#   tests/obs/debian13_root.sh [ROOT=/srv/trixie]
#   M2FP_OBS_ROOT=/srv/trixie python -m pytest -q tests/obs/test_obs_filter.py tests/obs/test_obs_framesync.py \
#       tests/obs/test_obs_render_count.py
#
# Needs root, debootstrap (apt) and deb.debian.org.  /proc, /sys, /dev, /tmp and this repository are mounted
# at the same paths inside, so the harness's generated configuration, the script and the Xvfb socket are
# seen by the OBS in there; the server and the tests run on this machine.  Run again after a reboot (mounts).
set -euo pipefail
ROOT=${1:-/srv/trixie}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt install debootstrap)" >&2; exit 2; }
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    debootstrap --variant=minbase trixie "$ROOT" http://deb.debian.org/debian
fi
mounted() { mountpoint -q "$ROOT$1"; }
mounted /proc || mount -t proc proc "$ROOT/proc"
mounted /sys || mount --rbind /sys "$ROOT/sys"
mounted /dev || mount --rbind /dev "$ROOT/dev"
mkdir -p "$ROOT/tmp" "$ROOT$REPO"
mounted /tmp || mount --bind /tmp "$ROOT/tmp"
mounted "$REPO" || mount --bind "$REPO" "$ROOT$REPO"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# OBS and obs-websocket, pyzmq for OBS's Python, Mesa's software GL (llvmpipe), as .ci/run installs them
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq \
    --no-install-recommends obs-studio obs-plugins python3-zmq libgl1-mesa-dri libegl-mesa0 libglx-mesa0 xauth \
    x11-utils fonts-dejavu-core >/dev/null"
echo "Debian $(cat "$ROOT/etc/debian_version") in $ROOT: $(chroot "$ROOT" obs --version 2>/dev/null | tail -n 1)"
