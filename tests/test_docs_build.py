"""The documentation site builds with MkDocs in strict mode (every warning is an error).

Strict mode catches broken links and anchors, missing images, pages left out of the navigation and
docstrings that mkdocstrings cannot parse. The build is offline (no plugin fetches anything). On top
of a clean build: the command-line page lists every subcommand of the real argument parser, and the
API page shows the docstrings of every object it names.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # Offline: any attempt to fetch something (an inventory, a font) goes to a dead proxy and fails
    # the strict build. NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner.
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    env.update(http_proxy=dead, https_proxy=dead, NO_PROXY="", no_proxy="")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return out


def _text(path: Path) -> str:
    """The visible text of an HTML page, whitespace collapsed."""
    page = path.read_text(encoding="utf-8")
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_every_page_is_built(site):
    for md in sorted((ROOT / "docs").glob("*.md")):
        name = "" if md.stem == "index" else md.stem
        assert (site / name / "index.html").is_file(), md.name


def test_cli_page_lists_every_subcommand(site):
    from napari_sperm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    text = _text(site / "cli" / "index.html")
    assert "cli-reference" not in page  # the marker was replaced
    assert sub.choices, "the parser has no subcommands?"
    for name, subparser in sub.choices.items():
        assert f'id="napari-sperm-{name}"' in page, f"no section for `napari-sperm {name}`"
        assert f"napari-sperm {name} [-h]" in text, f"no usage line for `napari-sperm {name}`"
        for action in subparser._actions:
            for option in action.option_strings:
                assert option in text, f"`napari-sperm {name}`: option {option} not on the page"
        first = " ".join((subparser.description or "").split()[:6])
        assert first in text, f"`napari-sperm {name}`: description missing"


def test_api_page_renders_docstrings(site):
    from napari_sperm.detection import load_detector
    from napari_sperm.synthetic import make_field

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_docs_examples import api_targets
    finally:
        sys.path.pop(0)

    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    text = _text(site / "api" / "index.html")
    targets = api_targets((ROOT / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(targets) >= 10
    for identifier, members in targets:
        assert f'id="{identifier}"' in page, f"{identifier} is not rendered"
        for member in members:
            assert re.search(rf'id="[\w.]*\.{re.escape(member)}"', page), f"{identifier}.{member}"
    squeezed = re.sub(r"\s+", "", text)
    for func in (load_detector, make_field):
        first_line = func.__doc__.strip().splitlines()[0].replace("``", "")
        assert re.sub(r"\s+", "", first_line) in squeezed, f"{func.__name__}: docstring missing"
    assert "Parameters" in text and "Returns" in text  # numpy sections became tables
    assert ":func:" not in text and ":class:" not in text  # Sphinx roles rendered (hook)


def test_widgets_page_covers_every_dock_widget():
    import yaml

    manifest = yaml.safe_load((ROOT / "src" / "napari_sperm" / "napari.yaml").read_text())
    names = [w["display_name"] for w in manifest["contributions"]["widgets"]]
    headings = re.findall(r"^## (.+?)\s*$", (ROOT / "docs" / "widgets.md").read_text(), re.M)
    missing = [n for n in names if n not in headings]
    assert not missing, f"docs/widgets.md has no section for {missing}"
