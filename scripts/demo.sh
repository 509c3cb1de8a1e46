#!/usr/bin/env bash
# Set up (first run only) and run the main job on the bundled sample data:
#  - with a display: napari opens with the sample phase-contrast stack and the plugin's widgets;
#  - without one: the headless pipeline runs on the sample and writes its outputs to demo-output/.
# Extra arguments go to `napari-sperm demo` (e.g. --headless, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/napari-sperm demo "$@"
