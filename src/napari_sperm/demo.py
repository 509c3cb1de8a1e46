"""The main job on the bundled sample data, with or without a display.

With a display, :func:`open_viewer` opens napari with the sample stack loaded and the plugin's widgets
docked. Without one, :func:`run_headless` runs the headless pipeline on the same sample and writes its
outputs: the sample stacks with their ground truth, the shipped detector's COCO predictions on
them and how those score against the ground truth. Masks are added as segmentation lands.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .io.errors import SpermInputError
from .sample_data import SAMPLE_SEED
from .synthetic import write_dataset

__all__ = ["DEMO_DATASETS", "run_headless", "open_viewer", "has_display", "widget_names"]

DEMO_DATASETS = {
    # folder name: (modality, frames, forced crossings)
    "phase-contrast": ("phase-high", 20, None),
    "stained": ("stained", 1, 1),
}


def has_display() -> bool:
    """True when a graphical session is available (X11/Wayland, or macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _owned_by_demo(folder: Path) -> bool:
    """True if ``folder`` holds nothing, or only a dataset this demo wrote earlier."""
    ann = folder / "annotations.json"
    if not ann.exists():
        return True
    try:
        info = json.loads(ann.read_text(encoding="utf-8")).get("info", {})
    except (OSError, ValueError):
        return False
    return info.get("generator") == "napari_sperm.synthetic" and info.get("seed") == SAMPLE_SEED


def run_headless(out_dir: str | os.PathLike = "demo-output", log=print) -> dict[str, Path]:
    """Run the headless pipeline on the sample data and write its outputs.

    Parameters
    ----------
    out_dir
        Output folder. A previous demo output there is replaced; anything else is left alone and
        stops the run with an error.
    log
        Called with one line per step.

    Returns
    -------
    dict
        Folder name -> path of its ``annotations.json``.
    """
    out = Path(out_dir)
    for name in DEMO_DATASETS:  # check every folder first: all or nothing is written
        if not _owned_by_demo(out / name):
            raise SpermInputError(
                f"'{out / name}' holds a dataset the demo did not write; pass another --out folder."
            )
    written: dict[str, Path] = {}
    for name, (modality, frames, crossings) in DEMO_DATASETS.items():
        folder = out / name
        log(
            f"[demo] generating the {modality} sample ({frames} frame{'s' if frames > 1 else ''}) ..."
        )
        ann = write_dataset(
            folder,
            modality=modality,
            n_images=1,
            frames=frames,
            seed=SAMPLE_SEED,
            crossings=crossings,
            overwrite=True,
        )
        written[name] = ann
        log(f"[demo]   images:       {folder / 'images'}")
        log(f"[demo]   ground truth: {ann}")
    _detect_and_score(written, log)
    _segment(written, log)
    _export(written, log)
    log(f"[demo] done: outputs are under {out.resolve()}")
    return written


def _detect_and_score(written: dict[str, Path], log) -> None:
    """Detect sperm on each sample with the shipped model; write and score COCO predictions."""
    from .detection.detector import load_detector
    from .detection.files import detect_files
    from .evaluation import evaluate_detections, format_report
    from .io import atomic_write_json

    detector = load_detector(None, "auto")
    for name, ann in list(written.items()):
        folder = ann.parent
        log(f"[demo] detecting sperm in the {name} sample on {detector.device} ...")
        pred = detect_files([folder / "images"], detector, score_threshold=0.05, weights="default")
        pred_path = folder / "detections.json"
        atomic_write_json(pred_path, pred)
        gt = json.loads(ann.read_text(encoding="utf-8"))
        result = evaluate_detections(gt, pred, gt_dir=folder, max_dets=300)
        atomic_write_json(folder / "detection-scores.json", result)
        written[f"{name} detections"] = pred_path
        log(f"[demo]   detections:   {pred_path}")
        for line in format_report(result).splitlines():
            log(f"[demo]     {line}")


def _segment(written: dict[str, Path], log) -> None:
    """Segment heads and tails of every sample (classic engine, Con2Dis); write COCO masks."""
    from .detection.detector import load_detector
    from .io import atomic_write_json
    from .segmentation.files import segment_files

    detector = load_detector(None, "auto")
    for name in [k for k in written if not k.endswith(" detections")]:
        folder = written[name].parent
        log(f"[demo] segmenting heads and tails in the {name} sample (classic engine) ...")
        ds = segment_files([folder / "images"], detector, engine="classic", weights="default")
        path = folder / "segmentation.json"
        atomic_write_json(path, ds)
        written[f"{name} segmentation"] = path
        cats = [a["category_id"] for a in ds["annotations"]]
        paired = sum(
            1 for a in ds["annotations"] if a["category_id"] == 2 and a["attributes"]["paired"]
        )
        log(
            f"[demo]   segmentation: {path} ({cats.count(2)} heads, {paired} with a tail, "
            f"{cats.count(3)} tails)"
        )


def _export(written: dict[str, Path], log) -> None:
    """Package each sample's segmentation with its frames as a self-contained COCO export."""
    from .annotations.export import export_coco
    from .annotations.load import load_coco

    for name in [k for k in written if k.endswith(" segmentation")]:
        seg = written[name]
        result = export_coco(load_coco(seg).stacks, seg.parent / "export", force=True)
        written[name.replace("segmentation", "export")] = result.path
        log(
            f"[demo]   export:       {result.path} ({result.n_images} images, "
            f"{result.n_annotations} annotations; File > Open it in napari to correct)"
        )


DOCKED = ["Sperm workflow", "Cluster tails (Con2Dis)"]


def widget_names() -> list[str]:
    """Display names of the plugin's dock widgets, as the npe2 manifest lists them."""
    import npe2

    manifest = npe2.PluginManager.instance().get_manifest("napari-sperm")
    return [w.display_name for w in manifest.contributions.widgets or []]


def open_viewer(viewer=None, block: bool = True):
    """Open napari with the sample phase-contrast stack and the *Sperm workflow* dock (plus Con2Dis).

    Parameters
    ----------
    viewer : napari.Viewer, optional
        Viewer to fill; a new one is opened if None.
    block
        Run the Qt event loop until the window is closed.

    Returns
    -------
    napari.Viewer
    """
    import napari

    if viewer is None:
        viewer = napari.Viewer(title="napari-sperm")
    viewer.open_sample("napari-sperm", "phase_stack")
    for display_name in DOCKED:
        viewer.window.add_plugin_dock_widget("napari-sperm", display_name)
    if block:
        napari.run()
    return viewer
