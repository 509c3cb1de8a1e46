"""Write synthetic images and their ground truth as a COCO dataset folder.

Layout of ``OUT_DIR``::

    images/<modality>_0001.png      one file per still field (grey or RGB PNG), or
    images/<modality>_0001.tif      one ImageJ multi-page TIFF per stack (frames > 1)
    annotations.json                ground truth in the project's COCO schema (napari_sperm.coco)
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from .. import __version__
from ..coco import mask_annotation, new_dataset
from ..io.atomic import atomic_write, atomic_write_json
from ..io.errors import SpermInputError
from .field import Realism, SyntheticField, make_stack
from .modalities import get_modality

__all__ = ["write_dataset", "field_annotations", "image_seed"]

CENTRELINE_STRIDE = 4
"""Keep every 4th centreline sample (one every 2 px) in the COCO attributes."""


def image_seed(seed: int, index: int) -> int:
    """Seed of image ``index`` of a dataset made with ``seed`` (independent streams per image)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def field_annotations(
    fld: SyntheticField, image_id: int, first_ann_id: int
) -> list[dict[str, Any]]:
    """COCO annotations (sperm, head, tail per visible cell) for one synthetic frame.

    Parameters
    ----------
    fld
        The frame and its ground truth.
    image_id
        Id of the frame's ``images`` entry.
    first_ann_id
        Id given to the first annotation; the rest follow consecutively.

    Returns
    -------
    list of dict
    """
    anns: list[dict[str, Any]] = []
    full = np.zeros(fld.shape, bool)
    nid = first_ann_id

    def add(cm, category, attrs):
        nonlocal nid
        if cm.area == 0:
            return
        cm.paste(full, True)
        anns.append(mask_annotation(full, nid, image_id, category, attrs))
        cm.paste(full, False)
        nid += 1

    for t in fld.sperm:
        base = {"sperm_id": t.sperm_id}
        add(t.sperm_mask(), "sperm", {**base, "edge_on": t.edge_on, "motile": t.motile})
        add(t.head, "head", dict(base))
        line = t.centreline[::CENTRELINE_STRIDE][:, ::-1]  # (x, y) like the rest of COCO
        add(
            t.tail,
            "tail",
            {
                **base,
                "centreline": [round(float(v), 2) for v in line.ravel()],
                "length": round(t.tail_length, 2),
            },
        )
    return anns


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_write(path) as fh:
        Image.fromarray(image).save(fh, format="PNG")


def _write_stack(path: Path, images: np.ndarray, pixel_size_um: float) -> None:
    rgb = images.ndim == 4
    buf = io.BytesIO()  # tifffile wants a named file; build in memory, then write atomically
    tifffile.imwrite(
        buf,
        images,
        imagej=True,
        photometric="rgb" if rgb else "minisblack",
        resolution=(1.0 / pixel_size_um, 1.0 / pixel_size_um),
        metadata={"axes": "TYXS" if rgb else "TYX", "unit": "um"},
    )
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def write_dataset(
    out_dir: str | os.PathLike,
    modality: str = "phase-high",
    n_images: int = 1,
    frames: int = 1,
    seed: int = 0,
    n_sperm: int | None = None,
    crossings: int | None = None,
    realism: Realism | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate synthetic images and write them with COCO ground truth.

    Parameters
    ----------
    out_dir
        Folder to write; created if needed. Must not already hold ``annotations.json`` unless
        ``overwrite`` is True.
    modality
        ``stained``, ``phase-low``, ``phase-high`` or ``brightfield``.
    n_images
        Number of fields (or stacks, when ``frames`` > 1).
    frames
        Frames per stack; 1 writes still PNG fields, more writes multi-page TIFF stacks.
    seed
        Dataset seed; image ``i`` uses :func:`image_seed` ``(seed, i)``.
    n_sperm, crossings, realism
        Passed to :func:`~napari_sperm.synthetic.make_stack`.
    overwrite
        Replace an existing dataset in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after each image.

    Returns
    -------
    Path
        The written ``annotations.json``.
    """
    m = get_modality(modality)
    if n_images < 1:
        raise SpermInputError(f"--n-images must be at least 1 (got {n_images}).")
    if frames < 1:
        raise SpermInputError(f"--frames must be at least 1 (got {frames}).")
    out = Path(out_dir)
    ann_path = out / "annotations.json"
    if ann_path.exists() and not overwrite:
        raise SpermInputError(
            f"'{out}' already holds a dataset (annotations.json); choose another folder or pass --force."
        )
    if out.exists() and not out.is_dir():
        raise SpermInputError(f"'{out}' exists and is not a folder; choose a folder to write into.")
    suffix = ".png" if frames == 1 else ".tif"
    targets = [out / "images" / f"{m.name}_{i + 1:04d}{suffix}" for i in range(n_images)]
    clash = next((t for t in targets if t.exists()), None)
    if clash is not None and not overwrite:
        raise SpermInputError(f"'{clash}' already exists; choose another folder or pass --force.")
    (out / "images").mkdir(parents=True, exist_ok=True)

    ds = new_dataset(
        f"napari-sperm synthetic {m.name} data",
        version=__version__,
        date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        modality=m.name,
        seed=int(seed),
        generator="napari_sperm.synthetic",
    )
    image_id, ann_id = 1, 1
    for i in range(n_images):
        s = image_seed(seed, i)
        stack = make_stack(m, frames, s, n_sperm=n_sperm, crossings=crossings, realism=realism)
        rel = targets[i].relative_to(out).as_posix()
        if frames == 1:
            _write_png(targets[i], stack.images[0])
        else:
            _write_stack(targets[i], stack.images, m.pixel_size_um)
        for f in range(frames):
            fld = stack.field(f)
            entry = {
                "id": image_id,
                "file_name": rel,
                "width": int(fld.shape[1]),
                "height": int(fld.shape[0]),
                "modality": m.name,
                "pixel_size_um": m.pixel_size_um,
                "seed": s,
            }
            if frames > 1:
                entry["frame"] = f
            ds["images"].append(entry)
            anns = field_annotations(fld, image_id, ann_id)
            ds["annotations"].extend(anns)
            ann_id += len(anns)
            image_id += 1
        if progress is not None:
            progress(i + 1, n_images)
    atomic_write_json(ann_path, ds)
    return ann_path
