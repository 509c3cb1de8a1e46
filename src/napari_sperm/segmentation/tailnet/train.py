"""Training of the shipped tail network (run through ``scripts/train_tail_net.py``).

Recipe: synthetic fields of the four default modalities (seeds >= 3_000_000, never used by tests or
benchmarks, which use seeds < 1000) are rendered once into a cache of normalised frames with their
tail masks (the union of every cell's visible flagellum). Each step draws a modality uniformly, a
field, and a square crop centred on a tail pixel (70 %) or anywhere (30 %); the 8 flips/90-degree
rotations, contrast 0.7-1.3, brightness +-0.1, gamma 0.7-1.4 and Gaussian noise up to 0.03. Loss:
binary cross-entropy (positive weight 2) plus soft Dice over the batch. AdamW, one-cycle cosine LR.
Validation: pixel IoU of ``probability >= 0.5`` against the tail masks of fields with seeds
2_000_000+, per modality; the best mean is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...detection.normalize import normalize_frame
from ...synthetic import make_field, modality_names, modality_weights
from .model import DEFAULT_TAIL_ARCH, TailNet

__all__ = [
    "build_cache",
    "choose_threshold",
    "field_arrays",
    "load_cache",
    "pixel_iou",
    "train_tail_net",
]

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)

TRAIN_SEED = 3_000_000
VAL_SEED = 2_000_000


def field_arrays(modality: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic field as the network sees it and its tail mask.

    Returns
    -------
    image : (3, H, W) float16 array
        :func:`~napari_sperm.detection.normalize.normalize_frame` of the field.
    tails : (H, W) bool array
        Union of the visible flagella of all cells.
    """
    f = make_field(modality, seed=seed)
    tails = np.zeros(f.shape, bool)
    for s in f.sperm:
        if s.tail.area:
            s.tail.paste(tails)
    return normalize_frame(f.image).astype(np.float16), tails


def build_cache(
    folder: str | Path, counts: dict[str, int], first_seed: int = TRAIN_SEED, log=print
) -> None:
    """Render ``counts[modality]`` fields per modality into ``folder`` (one ``.npz`` each)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for m_index, modality in enumerate(sorted(counts)):
        for i in range(counts[modality]):
            seed = first_seed + 100_000 * modality_names().index(modality) + i
            path = folder / f"{modality}_{seed}.npz"
            if path.exists():
                continue
            image, tails = field_arrays(modality, seed)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, image=image, tails=tails)
            tmp.replace(path)
        log(f"cache: {modality} {counts[modality]} fields ({m_index + 1}/{len(counts)})")


def load_cache(folder: str | Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The cached fields by modality: lists of ``(image, tails)``."""
    out: dict[str, list] = {}
    for path in sorted(Path(folder).glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        modality = path.name.rsplit("_", 1)[0]
        with np.load(path) as z:
            out.setdefault(modality, []).append((z["image"], z["tails"]))
    return out


def _crop(
    image: np.ndarray, tails: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    _, H, W = image.shape
    if rng.random() < 0.7 and tails.any():
        rows, cols = np.nonzero(tails[::2, ::2])
        k = int(rng.integers(rows.size))
        cy = 2 * int(rows[k]) + int(rng.integers(-size // 3, size // 3 + 1))
        cx = 2 * int(cols[k]) + int(rng.integers(-size // 3, size // 3 + 1))
    else:
        cy, cx = int(rng.integers(H)), int(rng.integers(W))
    y0 = int(np.clip(cy - size // 2, 0, max(0, H - size)))
    x0 = int(np.clip(cx - size // 2, 0, max(0, W - size)))
    img = np.zeros((3, size, size), np.float32)
    msk = np.zeros((size, size), np.float32)
    part = image[:, y0 : y0 + size, x0 : x0 + size]
    img[:, : part.shape[1], : part.shape[2]] = part
    msk[: part.shape[1], : part.shape[2]] = tails[y0 : y0 + size, x0 : x0 + size]
    return img, msk


def _augment(img: np.ndarray, msk: np.ndarray, rng: np.random.Generator):
    k = int(rng.integers(4))
    img, msk = np.rot90(img, k, axes=(1, 2)), np.rot90(msk, k)
    if rng.random() < 0.5:
        img, msk = img[:, :, ::-1], msk[:, ::-1]
    img = np.clip(img, 0.0, 1.5)
    gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    img = np.power(img, gamma)
    img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    sigma = rng.uniform(0.0, 0.03)
    if sigma > 0.003:
        img = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(msk, np.float32)


def _batch(cache, batch: int, size: int, rng: np.random.Generator, mix: dict | None = None):
    mods = sorted(cache)
    p = modality_weights(mods, mix)
    xs, ys = [], []
    for _ in range(batch):
        fields = cache[mods[int(rng.choice(len(mods), p=p))]]
        image, tails = fields[int(rng.integers(len(fields)))]
        img, msk = _augment(*_crop(image, tails, size, rng), rng)
        xs.append(img)
        ys.append(msk)
    x = torch.from_numpy(np.stack(xs)) - 0.5
    y = torch.from_numpy(np.stack(ys))[:, None]
    return x, y


def loss_fn(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 2.0) -> torch.Tensor:
    """Binary cross-entropy (positive weight) plus soft Dice over the batch."""
    bce = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(pos_weight, dtype=logits.dtype)
    )
    p = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (p * target).sum() + 1.0) / (p.sum() + target.sum() + 1.0)
    return bce + dice


def pixel_iou(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``prob >= threshold`` against a boolean mask."""
    pred = prob >= threshold
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


@torch.no_grad()
def _validate(model: TailNet, val) -> dict[str, float]:
    from .infer import probability_from_normalised

    model.eval()
    out = {}
    for modality, fields in sorted(val.items()):
        out[modality] = float(
            np.mean(
                [
                    pixel_iou(probability_from_normalised(model, img.astype(np.float32)), t)
                    for img, t in fields
                ]
            )
        )
    model.train()
    return out


@torch.no_grad()
def choose_threshold(model: TailNet, val) -> tuple[float, dict[str, float]]:
    """The probability threshold with the best mean pixel IoU over the validation modalities.

    Returns
    -------
    threshold : float
    ious : dict
        Mean IoU per modality at that threshold.
    """
    from .infer import probability_from_normalised

    model.eval()
    probs = {
        m: [(probability_from_normalised(model, img.astype(np.float32)), t) for img, t in fields]
        for m, fields in sorted(val.items())
    }
    best = (-1.0, 0.5, {})
    for thr in THRESHOLDS:
        ious = {m: float(np.mean([pixel_iou(p, t, thr) for p, t in pt])) for m, pt in probs.items()}
        mean = float(np.mean(list(ious.values())))
        if mean > best[0]:
            best = (mean, thr, ious)
    return best[1], best[2]


def train_tail_net(
    cache: dict,
    val: dict,
    *,
    steps: int = 3000,
    batch: int = 8,
    size: int = 160,
    lr: float = 3e-3,
    seed: int = 0,
    val_every: int = 250,
    arch: dict | None = None,
    mix: dict[str, float] | None = None,
    init: TailNet | None = None,
    log: Callable[[str], None] = print,
    pos_weight: float = 2.0,
) -> tuple[TailNet, dict]:
    """Train a :class:`TailNet`; returns the best model by validation IoU and a report.

    ``mix`` weighs how often each modality is drawn (default: equally); ``init`` continues from
    a model (its architecture wins over ``arch``) instead of starting from scratch.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = init if init is not None else TailNet(**(arch or DEFAULT_TAIL_ARCH))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 20)

    def lr_at(i: int) -> float:
        if i < warm:
            return lr * (i + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm)))

    best, best_state, history = -1.0, None, []
    t0 = time.perf_counter()
    running = 0.0
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        x, y = _batch(cache, batch, size, rng, mix)
        loss = loss_fn(model(x), y, pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if i else value
        if (i + 1) % val_every == 0 or i + 1 == steps:
            ious = _validate(model, val)
            mean = float(np.mean(list(ious.values())))
            history.append({"step": i + 1, "loss": running, "val_iou": ious, "mean": mean})
            log(
                f"step {i + 1}/{steps} loss {running:.4f} val IoU "
                + " ".join(f"{k} {v:.3f}" for k, v in ious.items())
                + f" mean {mean:.3f} ({time.perf_counter() - t0:.0f} s)"
            )
            if mean > best:
                best = mean
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    threshold, at_threshold = choose_threshold(model, val)
    log(
        f"threshold {threshold}: val IoU "
        + " ".join(f"{k} {v:.3f}" for k, v in at_threshold.items())
    )
    report = {
        "steps": steps,
        "batch": batch,
        "crop": size,
        "lr": lr,
        "seed": seed,
        "mix": mix,
        "pos_weight": pos_weight,
        "continued": init is not None,
        "seconds": time.perf_counter() - t0,
        "best_mean_val_iou": best,
        "threshold": threshold,
        "val_iou_at_threshold": at_threshold,
        "history": history,
    }
    return model, report
