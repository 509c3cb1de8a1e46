"""Training of the default detector (run through ``scripts/train_detector.py``).

Recipe: synthetic fields of all four modalities (seeds >= 1_000_000) rendered once into a cache of
normalised pyramid levels; random 256 px crops at the level that owns each modality (plus the
neighbouring levels, less often, so the network also learns the true head size there and the
inference-time level gating can reject them), scale jitter 0.8-1.25, the 8 flips/90-degree
rotations, contrast/brightness/gamma and Gaussian noise. Loss: CenterNet penalty-reduced focal loss
on the head-centre heatmap + L1 on the regressions at head centres. AdamW, one-cycle cosine LR.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..synthetic.modalities import modality_weights
from .datacache import MODALITY_LEVELS
from .model import STRIDE, SpermNet
from .targets import make_targets

__all__ = [
    "augmented_crop",
    "collate",
    "focal_loss",
    "optimiser_step",
    "pick_level",
    "reg_loss",
    "sample_batch",
    "train_model",
]

CUT_CELL_WEIGHT = 0.3


def _crop(
    rec: dict, level: int, size: int, rng: np.random.Generator, clip_cells: bool = False
) -> tuple[torch.Tensor, np.ndarray]:
    # a level finer than any cached one (stained at full size) is upsampled from the finest one
    src = level if level in rec["levels"] else min(k for k in rec["levels"] if k > level)
    up = 2 ** (src - level)
    img = rec["levels"][src]
    _, H, W = img.shape
    j = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) * up
    cs = max(16, round(size / j))
    y0 = int(rng.integers(min(0, H - cs), max(0, H - cs) + 1))
    x0 = int(rng.integers(min(0, W - cs), max(0, W - cs) + 1))
    crop = np.zeros((3, cs, cs), np.float32)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(H, y0 + cs), min(W, x0 + cs)
    crop[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[:, sy0:sy1, sx0:sx1]
    t = torch.from_numpy(crop)[None]
    if cs != size:
        t = F.interpolate(
            t, size=(size, size), mode="bilinear", align_corners=False, antialias=cs > size
        )
    f = size / cs
    s = 0.5**src
    b = rec["boxes"].copy()
    b[:, :8] *= s
    b[:, 8] *= s
    b[:, [0, 4]] -= x0
    b[:, [1, 5]] -= y0
    b[:, :9] *= f
    # visible part inside the crop
    hx0, hy0 = np.maximum(b[:, 0], 0), np.maximum(b[:, 1], 0)
    hx1, hy1 = np.minimum(b[:, 0] + b[:, 2], size), np.minimum(b[:, 1] + b[:, 3], size)
    # whole-cell box: NOT clipped to the crop (at inference the whole frame is seen), but cells
    # whose box the crop cuts get a lower whole-cell regression weight (the tail is not visible)
    cut = (
        (b[:, 4] < -0.5)
        | (b[:, 5] < -0.5)
        | (b[:, 4] + b[:, 6] > size + 0.5)
        | (b[:, 5] + b[:, 7] > size + 0.5)
    )
    weight = np.where(cut, CUT_CELL_WEIGHT, 1.0)
    if b.shape[1] > 9:  # datasets without a whole-cell box for some heads (weight 0)
        weight = weight * b[:, 9]
    if clip_cells:  # stage-1 recipe: whole-cell box clipped to the crop, full weight
        qx0, qy0 = np.maximum(b[:, 4], 0), np.maximum(b[:, 5], 0)
        qx1 = np.minimum(b[:, 4] + b[:, 6], size)
        qy1 = np.minimum(b[:, 5] + b[:, 7], size)
        b[:, 4], b[:, 5], b[:, 6], b[:, 7] = qx0, qy0, qx1 - qx0, qy1 - qy0
        weight = np.ones(len(b)) if b.shape[1] <= 9 else b[:, 9].astype(np.float64)
    ok = (hx1 - hx0 >= 1.5) & (hy1 - hy0 >= 1.5)
    out = np.stack(
        [hx0, hy0, hx1 - hx0, hy1 - hy0, b[:, 4], b[:, 5], b[:, 6], b[:, 7], b[:, 8], weight], 1
    )
    return t[0], out[ok].astype(np.float32).reshape(-1, 10)


def _dihedral(
    t: torch.Tensor, b: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    size = t.shape[-1]
    b = b.copy()
    if rng.random() < 0.5:  # transpose
        t = t.transpose(-1, -2)
        b = b[:, [1, 0, 3, 2, 5, 4, 7, 6, 8, 9]]
    if rng.random() < 0.5:  # horizontal flip
        t = t.flip(-1)
        b[:, 0] = size - b[:, 0] - b[:, 2]
        b[:, 4] = size - b[:, 4] - b[:, 6]
    if rng.random() < 0.5:  # vertical flip
        t = t.flip(-2)
        b[:, 1] = size - b[:, 1] - b[:, 3]
        b[:, 5] = size - b[:, 5] - b[:, 7]
    return t, b


def _photometric(t: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    c = float(rng.uniform(0.7, 1.3))
    br = float(rng.uniform(-0.15, 0.15))
    g = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    t = t.clamp(0, 1.5) ** g
    t = (t - 0.5) * c + 0.5 + br
    sigma = float(rng.uniform(0, 0.05))
    if sigma > 0.005:
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        t = t + sigma * torch.randn(t.shape, generator=gen)
    return t


def pick_level(weights: dict[int, float], rng: np.random.Generator) -> int:
    """Draw a pyramid level from ``{level: weight}``."""
    lv = list(weights)
    p = np.asarray([weights[k] for k in lv], np.float64)
    return int(lv[int(rng.choice(len(lv), p=p / p.sum()))])


def augmented_crop(
    rec: dict, level: int, size: int, rng: np.random.Generator, clip_cells: bool = False
) -> tuple[torch.Tensor, np.ndarray]:
    """A random crop of ``rec`` at ``level``: scale jitter, dihedral flips, photometric jitter."""
    t, b = _crop(rec, level, size, rng, clip_cells)
    t, b = _dihedral(t, b, rng)
    return _photometric(t, rng), b


def collate(samples: list[tuple[torch.Tensor, np.ndarray]], size: int):
    """Stack crops and build their targets: ``(x, heat, ind, reg, mask, weight)`` tensors."""
    imgs, heats, inds, regs, masks, wts = [], [], [], [], [], []
    for t, b in samples:
        tg = make_targets(b, (size // STRIDE, size // STRIDE))
        imgs.append(t)
        heats.append(torch.from_numpy(tg["heat"]))
        inds.append(torch.from_numpy(tg["ind"]))
        regs.append(torch.from_numpy(tg["reg"]))
        masks.append(torch.from_numpy(tg["mask"]))
        wts.append(torch.from_numpy(tg["weight"]))
    return (
        torch.stack(imgs).contiguous(),
        torch.stack(heats),
        torch.stack(inds),
        torch.stack(regs),
        torch.stack(masks),
        torch.stack(wts),
    )


def sample_batch(
    cache: dict[str, list[dict]],
    batch: int,
    size: int,
    rng: np.random.Generator,
    clip_cells: bool = False,
    mix: dict[str, float] | None = None,
):
    """A training batch for the default recipe: modality, field and level drawn at random.

    ``mix`` weighs how often each modality is drawn (default: equally).
    """
    mods = sorted(cache)
    # Without a mix, draw as the shipped stages 1 and 2 were trained (same random stream).
    weights = modality_weights(mods, mix) if mix else None
    samples = []
    for _ in range(batch):
        if weights is None:
            mod = mods[int(rng.integers(len(mods)))]
        else:
            mod = mods[int(rng.choice(len(mods), p=weights))]
        rec = cache[mod][int(rng.integers(len(cache[mod])))]
        level = pick_level(MODALITY_LEVELS[mod], rng)
        samples.append(augmented_crop(rec, level, size, rng, clip_cells))
    return collate(samples, size)


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss (alpha 2, beta 4), normalised by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - heat) ** 4 * neg
    n = pos.sum().clamp(min=1)
    return -(pos_loss.sum() + neg_loss.sum()) / n


REG_WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 0.5])


def reg_loss(
    reg_out: torch.Tensor,
    ind: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor | None = None,
):
    n, c, h, w = reg_out.shape
    flat = reg_out.view(n, c, h * w).permute(0, 2, 1)  # n, hw, c
    pred = flat.gather(1, ind[..., None].expand(-1, -1, c))
    l1 = F.smooth_l1_loss(pred, target, reduction="none", beta=0.1) * REG_WEIGHTS
    if weight is not None:
        l1 = l1 * weight
    return (l1.sum(-1) * mask).sum() / mask.sum().clamp(min=1)


def optimiser_step(model: SpermNet, opt: torch.optim.Optimizer, batch) -> tuple[float, float]:
    """One step on a :func:`collate` batch (already on the model's device).

    Returns
    -------
    (heatmap loss, box regression loss) as floats
    """
    x, heat, ind, reg, mask, wt = batch
    ho, ro = model(x)
    lf = focal_loss(ho, heat)
    lr_ = reg_loss(ro, ind, reg, mask, wt)
    loss = lf + lr_
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return float(lf.item()), float(lr_.item())


def train_model(
    cache: dict[str, list[dict]],
    iterations: int,
    batch: int = 16,
    size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    arch: dict | None = None,
    log=print,
    init_state: dict | None = None,
    clip_cells: bool = False,
    mix: dict[str, float] | None = None,
) -> SpermNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SpermNet(**(arch or {}))
    if init_state is not None:
        model.load_state_dict(init_state)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = min(200, iterations // 10)

    def lr_at(i: int) -> float:
        if i < warm:
            return lr * (i + 1) / warm
        return (
            lr * 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, iterations - warm))) + lr * 0.01
        )

    model.train()
    t0 = time.time()
    run_f = run_r = 0.0
    for it in range(iterations):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        lf, lr_ = optimiser_step(model, opt, sample_batch(cache, batch, size, rng, clip_cells, mix))
        run_f = 0.98 * run_f + 0.02 * lf if it else lf
        run_r = 0.98 * run_r + 0.02 * lr_ if it else lr_
        if (it + 1) % 50 == 0 or it + 1 == iterations:
            el = time.time() - t0
            log(
                f"it {it + 1}/{iterations} focal {run_f:.3f} reg {run_r:.3f} lr {lr_at(it):.2e} "
                f"{el:.0f}s ({el / (it + 1):.2f}s/it)"
            )
    model.eval()
    return model
