"""Inference copies of the networks: batch norm folded into the convolutions, channels-last on CPU.

Both networks (the detector, :mod:`.model`, and the tail network,
:mod:`napari_sperm.segmentation.tailnet`) are built from convolution + batch-norm pairs. In
inference the batch norm is a fixed per-channel scale and shift, so it can be folded into the
convolution's weights and bias; the output is the same up to float rounding. On the CPU the
channels-last memory layout lets PyTorch's convolution kernels run 1.5-2.5 times faster on these
small depthwise-separable networks (``benchmarks/detect_speed.py``). The trainable model is left as
it is; only the copy is changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["as_input", "fold_batch_norm", "inference_copy"]


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d`` followed by a ``BatchNorm2d`` in a ``Sequential`` into one ``Conv2d``.

    Parameters
    ----------
    model : nn.Module
        A model in eval mode; it is changed in place.

    Returns
    -------
    nn.Module
        ``model``, with each folded batch norm replaced by ``nn.Identity``.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def inference_copy(model: nn.Module, device: torch.device | str) -> nn.Module:
    """An eval-mode copy of ``model`` on ``device`` for inference only.

    Batch norm is folded into the convolutions; on the CPU the copy's weights are channels-last
    (feed it channels-last inputs, see :func:`as_input`).

    Parameters
    ----------
    model : nn.Module
        The (trainable) model; it is not changed.
    device : torch.device or str

    Returns
    -------
    nn.Module
    """
    dev = torch.device(device)
    fast = fold_batch_norm(copy.deepcopy(model).eval()).to(dev)
    for p in fast.parameters():
        p.requires_grad_(False)
    if dev.type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def as_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` laid out for a model from :func:`inference_copy` (channels-last on the CPU)."""
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
