"""The documentation's screenshot script runs: every picture of ``scripts/screenshots.py``.

Each picture is taken into a temporary folder from a real, shown napari window (pytest-xvfb gives
the display) by the script's own code, then checked: the PNG exists, has the window's size and is
not blank. ``xvfb-run -a .venv/bin/python scripts/screenshots.py`` writes the same pictures into
``docs/images/``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshots.py"


def _load_script():
    name = "napari_sperm_docs_screenshots"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


screenshots = _load_script()


@pytest.mark.parametrize("name", list(screenshots.SHOTS))
def test_screenshot(name, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    path = screenshots.take(name, viewer, tmp_path)
    assert path == tmp_path / name and path.is_file()
    with Image.open(path) as img:
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"), dtype=float)
    # the window's size (docks can only make it taller); allow for a window manager's rounding
    assert abs(width - screenshots.WINDOW[0]) <= 16, img.size
    assert height >= screenshots.WINDOW[1] - 16, img.size
    # not blank: the canvas shows an image with structure, not one flat colour
    assert pixels.std() > 10
    canvas = pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    assert canvas.std() > 10
    assert len(np.unique(canvas.reshape(-1, 3)[::97], axis=0)) > 50
