#!/usr/bin/env bash
# Set up everything napari-sperm needs, idempotently:
#   1. with --gui-test-deps: system libraries for Qt under a virtual display (Debian/Ubuntu, only when
#      missing, as root or with sudo; NAPARI_SPERM_APT=always forces the apt step, as CI does),
#   2. a virtual environment at .venv in this checkout (reused on later runs; re-installed only when
#      pyproject.toml or constraints.txt changed). Nothing is installed into the system Python.
#      Extras: [qt,testing]; with --gui-test-deps (the test command) also [docs], the documentation
#      site's toolchain, since the test suite builds the docs.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libgl1 libegl1 libxkbcommon-x11-0 libdbus-1-3 libfontconfig1 libxcb-icccm4 \
libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxcb-image0 libxcb-render-util0 libxcb-randr0 \
libxcb-shape0 libxcb-xkb1"

want_gui_deps=0
[ "${1:-}" = "--gui-test-deps" ] && want_gui_deps=1

need_apt=0
if [ "$want_gui_deps" = 0 ]; then
  need_apt=0
elif [ "${NAPARI_SPERM_APT:-auto}" = "always" ]; then
  need_apt=1
elif [ "${NAPARI_SPERM_APT:-auto}" = "auto" ] && command -v dpkg-query >/dev/null 2>&1; then
  for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || { need_apt=1; break; }
  done
fi
if [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "[setup] installing system packages for Qt/Xvfb ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating virtual environment .venv ..."
  "$PY" -m venv .venv
fi

# The stamp is "<hash of pyproject.toml + constraints.txt> <extras>". An install with [docs] also
# serves the lean path (demo.sh), so switching between demo.sh and test.sh does not re-install.
extras="qt,testing"
[ "$want_gui_deps" = 1 ] && extras="qt,testing,docs"
stamp_hash="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
stamp_now="$(cat .venv/.setup-stamp 2>/dev/null || true)"
if [ "$stamp_now" != "$stamp_hash qt,testing,docs" ] && [ "$stamp_now" != "$stamp_hash $extras" ]; then
  echo "[setup] installing napari-sperm and its dependencies into .venv (first run takes a few minutes) ..."
  # torch is pinned through constraints.txt: an unpinned resolve pulls GBs of CUDA packages.
  # /opt/wheels holds the CPU build of torch on the project's machines; elsewhere pip uses PyPI.
  FIND_LINKS=()
  [ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
  .venv/bin/python -m pip install -q --disable-pip-version-check "${FIND_LINKS[@]}" \
      -c constraints.txt -e ".[$extras]"
  echo "$stamp_hash $extras" > .venv/.setup-stamp
fi
