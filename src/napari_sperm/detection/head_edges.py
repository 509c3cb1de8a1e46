"""Head box edges placed from the contrast across them (the last step of tight head boxes).

The outline that :mod:`.refine` takes a head box from is a threshold at a fixed fraction of the way
from the background to the head's darkest part. Where that threshold crosses the blurred edge
depends on the blur, on how sharply the outline curves there (an ellipse's pointed end fades more
than its flank) and on a phase-contrast halo, so an outline box edge is often one to three pixels
inside or outside the head's true edge. A head box edge is the line of the head's outermost pixels,
and one pixel matters: on a 10-pixel head it moves the box's IoU by 0.1.

So each edge of an outline box is moved by a whole number of pixels, -3 to +3 (outwards
positive), chosen by a small classifier from the contrast on eight pixel lines across the edge
(four outside, four inside; each line's largest and mean contrast along the edge, in units of the
head level; :func:`~napari_sperm.segmentation.head_boxes.head_outline_boxes` with
``profiles=True``) and from the box's size along and across the edge. The same classifier serves
all four edges (their profiles are taken inwards from each edge, so they look alike). It is a
multilayer perceptron of two hidden layers, trained on synthetic fields of every modality by
``scripts/train_head_edges.py`` and shipped as ``weights/head_edges.npz`` (about 29 kB). See
``docs/model-card.md`` (*Head box edges*).

Its products run in torch, on the CPU, not in numpy. numpy's OpenBLAS keeps its own worker
threads spinning for a while after a product; run between the detector's frames, they took the
cores from the network's threads and nearly doubled every following frame's network time (15-16
to 28-29 ms at 640x480, on 2 cores). Torch's products share the network's thread pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..io.errors import SpermInputError, one_line

__all__ = [
    "DEFAULT_EDGE_MODEL",
    "EdgeModel",
    "edge_features",
    "load_edge_model",
    "place_edges",
    "save_edge_model",
]

DEFAULT_EDGE_MODEL = Path(__file__).with_name("weights") / "head_edges.npz"
"""The shipped edge classifier."""

FORMAT = "napari-sperm head edges 1"
"""Written into every edge model file; :func:`load_edge_model` refuses others."""


@dataclass(frozen=True)
class EdgeModel:
    """A multilayer perceptron that picks each edge's shift.

    Attributes
    ----------
    weights, biases : tuple of float32 arrays
        Layer ``i`` maps ``x`` to ``x @ weights[i] + biases[i]``, with a ReLU between layers.
    max_shift : int
        The last layer has ``2 * max_shift + 1`` outputs, shifts ``-max_shift..max_shift``.
    n_offsets : int
        Pixel lines per profile (the features are ``2 * n_offsets`` contrasts and 2 sizes).
    info : dict
        What the file says about its training.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    max_shift: int
    n_offsets: int
    info: dict

    @property
    def n_features(self) -> int:
        return int(self.weights[0].shape[0])

    def shifts(self, features: np.ndarray) -> np.ndarray:
        """Outward shift in pixels (int array) for each row of ``features``."""
        import torch  # torch, not numpy's OpenBLAS: see the module docstring

        x = np.ascontiguousarray(features, np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features must be (n, {self.n_features}), got {x.shape}")
        if len(x) == 0:
            return np.zeros(0, np.int64)
        t = torch.from_numpy(x)
        with torch.inference_mode():
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                t = torch.addmm(torch.from_numpy(b), t, torch.from_numpy(w))
                if i < len(self.weights) - 1:
                    t.clamp_(min=0)
            return t.argmax(dim=1).numpy().astype(np.int64) - self.max_shift


def edge_features(profiles: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The classifier's input for every edge of every box.

    Parameters
    ----------
    profiles : (n, 4, 2 * k) float array
        From :func:`~napari_sperm.segmentation.head_boxes.head_outline_boxes` (``profiles=True``).
    boxes : (n, 4) float array
        ``[x, y, w, h]`` of the same outline boxes.

    Returns
    -------
    (n * 4, 2 * k + 2) float32 array
        Rows in the order box 0 left, top, right, bottom, box 1 left, ...: the profile, then the
        natural logarithm of the box's size along the edge and across it.
    """
    p = np.asarray(profiles, np.float32)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w, h = np.maximum(b[:, 2], 1.0), np.maximum(b[:, 3], 1.0)
    along = np.stack([h, w, h, w], axis=1)  # the left edge runs over the box's rows
    across = np.stack([w, h, w, h], axis=1)
    sizes = np.log(np.stack([along, across], axis=2)).astype(np.float32)
    return np.concatenate([p, sizes], axis=2).reshape(-1, p.shape[2] + 2)


def place_edges(
    boxes: np.ndarray,
    profiles: np.ndarray,
    frame_shape: tuple[int, int],
    model: EdgeModel | None = None,
) -> np.ndarray:
    """Outline boxes with every edge moved to where the classifier puts the head's edge.

    Parameters
    ----------
    boxes : (n, 4) float array
        ``[x, y, w, h]`` outline boxes (whole pixels).
    profiles : (n, 4, 2 * k) float array
        Their edge profiles (see :func:`edge_features`).
    frame_shape : (rows, cols)
        Boxes stay inside the frame.
    model : EdgeModel, optional
        Default: the shipped classifier.

    Returns
    -------
    (n, 4) float64 array
        The moved boxes, at least one pixel wide and high.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if b.shape[0] == 0:
        return b.copy()
    m = model or load_edge_model()
    s = m.shifts(edge_features(profiles, b)).reshape(-1, 4).astype(np.float64)
    rows, cols = frame_shape[:2]
    x0 = np.clip(b[:, 0] - s[:, 0], 0, cols - 1)
    y0 = np.clip(b[:, 1] - s[:, 1], 0, rows - 1)
    x1 = np.clip(b[:, 0] + b[:, 2] + s[:, 2], x0 + 1, cols)
    y1 = np.clip(b[:, 1] + b[:, 3] + s[:, 3], y0 + 1, rows)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def save_edge_model(path, weights, biases, max_shift: int, n_offsets: int, info: dict) -> None:
    """Write an edge classifier as ``.npz`` (float32 layers plus a JSON ``info`` record)."""
    arrays = {}
    for i, (w, b) in enumerate(zip(weights, biases)):
        arrays[f"w{i}"] = np.asarray(w, np.float32)
        arrays[f"b{i}"] = np.asarray(b, np.float32)
    meta = {"format": FORMAT, "max_shift": int(max_shift), "n_offsets": int(n_offsets), **info}
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_edge_model(path=None) -> EdgeModel:
    """Read an edge classifier (default: the shipped one, read once and kept).

    Raises
    ------
    SpermInputError
        When the file is missing or is not an edge model written by :func:`save_edge_model`.
    """
    if path is None:
        return _load_cached(str(DEFAULT_EDGE_MODEL))
    return _load(str(path))


@lru_cache(maxsize=2)
def _load_cached(path: str) -> EdgeModel:
    return _load(path)


def _load(path: str) -> EdgeModel:
    what = f"Cannot read the head edge model {path!r}"
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"it says format {meta.get('format')!r}, not {FORMAT!r}")
            n = sum(1 for k in z.files if k.startswith("w"))
            weights = tuple(np.asarray(z[f"w{i}"], np.float32) for i in range(n))
            biases = tuple(np.asarray(z[f"b{i}"], np.float32) for i in range(n))
    except FileNotFoundError as exc:
        raise SpermInputError(
            f"{what}: no such file. Reinstall napari-sperm, or pass the file written by "
            "scripts/train_head_edges.py."
        ) from exc
    except Exception as exc:  # zip, key, JSON and format errors alike
        raise SpermInputError(
            f"{what}: {one_line(exc, 160)}. Pass a file written by scripts/train_head_edges.py."
        ) from exc
    max_shift, n_off = int(meta["max_shift"]), int(meta["n_offsets"])
    shapes_ok = n >= 1 and weights[0].shape[0] == 2 * n_off + 2
    shapes_ok = shapes_ok and weights[-1].shape[1] == 2 * max_shift + 1
    shapes_ok = (
        shapes_ok
        and all(w.shape[1] == b.shape[0] for w, b in zip(weights, biases))
        and all(a.shape[1] == c.shape[0] for a, c in zip(weights[:-1], weights[1:]))
    )
    if not shapes_ok:
        raise SpermInputError(f"{what}: its layers do not fit together. Retrain it.")
    info = {k: v for k, v in meta.items() if k not in ("format", "max_shift", "n_offsets")}
    return EdgeModel(weights, biases, max_shift, n_off, info)
