#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, GUI tests included (pytest-xvfb starts a
# virtual display). Extra arguments go to pytest, e.g. ./scripts/test.sh -k synthetic
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --gui-test-deps
.venv/bin/npe2 validate napari-sperm --imports
exec .venv/bin/python -m pytest "$@"
