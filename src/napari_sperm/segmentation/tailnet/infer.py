"""Tail probability maps from the tail network, and loading its weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...detection.device import resolve_device
from ...detection.flips import FLIPS, check_flips, mean_over_flips, unflip
from ...detection.fused import as_input, inference_copy
from ...detection.normalize import normalize_frame
from ...io.errors import SpermInputError
from ...io.weights import read_model
from .model import MULTIPLE, TailNet

__all__ = [
    "DEFAULT_FLIPS",
    "DEFAULT_TAIL_WEIGHTS",
    "FLIPS",
    "TAIL_WEIGHTS_FORMAT",
    "TailFinder",
    "check_flips",
    "load_tail_net",
    "probability_from_normalised",
    "save_tail_net",
]

DEFAULT_TAIL_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "tailnet.pt"
TAIL_WEIGHTS_FORMAT = "napari-sperm-tailnet"
TILE = 1024
MARGIN = 64


def _bad(path: Path, why: str) -> SpermInputError:
    return SpermInputError(
        f"Cannot load tail-network weights {path}: {why}. Leave the tail network unset to use the "
        "one shipped with napari-sperm, or use --tail-finder ridge."
    )


@torch.no_grad()
def _logits(model: TailNet, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return model(as_input(x))[..., :h, :w]


DEFAULT_FLIPS = 4


def _tiled_probability(model: TailNet, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Tail probability ``(H, W)`` (on the CPU) of one ``(3, H, W)`` input, tiled when large."""
    _, H, W = x.shape
    out = torch.empty((H, W), dtype=torch.float32)
    use_amp = dev.type == "cuda"
    for y0 in range(0, H, TILE):
        for x0 in range(0, W, TILE):
            a0, b0 = max(0, y0 - MARGIN), max(0, x0 - MARGIN)
            a1, b1 = min(H, y0 + TILE + MARGIN), min(W, x0 + TILE + MARGIN)
            tile = x[None, :, a0:a1, b0:b1].to(dev)
            with torch.autocast("cuda", enabled=use_amp):
                logit = _logits(model, tile)
            prob = torch.sigmoid(logit.float())[0, 0].cpu()
            ye, xe = min(H, y0 + TILE), min(W, x0 + TILE)
            out[y0:ye, x0:xe] = prob[y0 - a0 : ye - a0, x0 - b0 : xe - b0]
    return out


@torch.no_grad()
def probability_from_normalised(
    model: TailNet, image: np.ndarray, device: torch.device | str = "cpu", flips: int = 1
) -> np.ndarray:
    """Tail probability ``(H, W)`` float32 of a frame already normalised to ``(3, H, W)``.

    Parameters
    ----------
    model : TailNet
    image : (3, H, W) float array
        From :func:`~napari_sperm.detection.normalize.normalize_frame`.
    device : torch.device or str
    flips : {1, 2, 4, 8}
        The network runs on this many flipped copies of the frame (identity; half turn; row and
        column flips; the same on the transposed frame) and their probabilities, flipped back, are
        averaged. The average is steadier at the tails' edges; time grows in proportion. With 4 or
        8 the result flips exactly with the frame.

    Frames larger than 1024 px on a side run in overlapping tiles (64 px margins), so memory stays
    bounded; each tile contributes only its core.
    """
    flips = check_flips(flips, "tail-network flips")
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)) - 0.5
    dev = torch.device(device)
    (prob,) = mean_over_flips(
        lambda xf, transform: (unflip(_tiled_probability(model, xf, dev), transform),), x, flips
    )
    return prob.numpy()


def save_tail_net(model: TailNet, path: str | Path, config: dict) -> None:
    """Write weights in the shipped format (fp16 tensors, ``config`` with ``arch``)."""
    from ...io.atomic import atomic_write

    ckpt = {
        "format": TAIL_WEIGHTS_FORMAT,
        "version": 1,
        "config": config,
        "state_dict": {
            k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()
        },
    }
    with atomic_write(path, "wb") as fh:
        torch.save(ckpt, fh)


class TailFinder:
    """A loaded tail network on one device (see :func:`load_tail_net`)."""

    def __init__(
        self,
        model: TailNet,
        config: dict,
        device: torch.device,
        path: Path | None,
        flips: int = DEFAULT_FLIPS,
    ):
        self.flips = check_flips(flips, "tail-network flips")
        self.model = model.to(device).eval()
        # what inference runs: batch norm folded in, channels-last on the CPU (same outputs)
        self.net = inference_copy(self.model, device)
        self.config = config
        self.device = device
        self.path = path
        self.threshold = float(config.get("threshold", 0.5))
        low = config.get("low_threshold")
        self.low_threshold = None if low is None else float(low)

    def probability(self, image: np.ndarray, flips: int | None = None) -> np.ndarray:
        """Tail probability ``(H, W)`` float32 of one grey or RGB frame of any real dtype.

        ``flips`` (default: the finder's :attr:`flips`): see :func:`probability_from_normalised`.
        """
        return probability_from_normalised(
            self.net, normalize_frame(image), self.device, self.flips if flips is None else flips
        )

    def with_flips(self, flips: int) -> TailFinder:
        """The same network (shared, not copied) averaging over ``flips`` flipped copies."""
        out = copy.copy(self)
        out.flips = check_flips(flips, "tail-network flips")
        return out


_CACHE: dict[tuple[str, float, str], TailFinder] = {}


def load_tail_net(
    weights: str | Path | None = None, device: str = "auto", flips: int = DEFAULT_FLIPS
) -> TailFinder:
    """Load the tail network (``None``: the one shipped with the package); cached per file.

    ``flips``: how many flipped copies of each frame its probability is averaged over (see
    :func:`probability_from_normalised`).
    """
    flips = check_flips(flips, "tail-network flips")
    path = Path(weights) if weights is not None else DEFAULT_TAIL_WEIGHTS
    dev = resolve_device(device)
    if not path.is_file():
        raise _bad(path, "no such file" if not path.exists() else "not a file")
    key = (str(path.resolve()), path.stat().st_mtime, str(dev))
    if key not in _CACHE:
        config, model = read_model(path, TAIL_WEIGHTS_FORMAT, _bad, TailNet)
        _CACHE[key] = TailFinder(model, config, dev, path)
    finder = _CACHE[key]
    return finder if finder.flips == flips else finder.with_flips(flips)
