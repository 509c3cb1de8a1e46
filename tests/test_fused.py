"""The inference copies of the networks give the outputs of the trained models."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from napari_sperm.detection import load_detector
from napari_sperm.detection.fused import as_input, inference_copy
from napari_sperm.detection.model import SpermNet
from napari_sperm.segmentation.tailnet import TailNet, load_tail_net
from napari_sperm.synthetic import make_field


def _randomise_batch_norm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine terms, so folding them is really exercised."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def test_folded_copy_matches_and_leaves_the_model_alone():
    for model in (_randomise_batch_norm(SpermNet()), _randomise_batch_norm(TailNet())):
        n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        fast = inference_copy(model, "cpu")
        assert n_bn > 0
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
        # the trainable model keeps its batch norms and its gradients
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn
        assert all(p.requires_grad for p in model.parameters())
        x = torch.rand(2, 3, 96, 128)
        with torch.no_grad():
            ref = model(x)
            out = fast(as_input(x))
        ref = ref if isinstance(ref, tuple) else (ref,)
        out = out if isinstance(out, tuple) else (out,)
        for a, b in zip(ref, out):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (a - b).abs().max()


def test_shipped_networks_give_the_same_results_through_the_copy():
    f = make_field("phase-high", seed=11)
    det = load_detector(None, "cpu")
    fast = det.detect(f.image, 0.3)[0]
    det_slow = load_detector(None, "cpu")
    det_slow.net = det_slow.model  # the network as trained
    slow = det_slow.detect(f.image, 0.3)[0]
    assert len(fast.boxes) == len(slow.boxes) > 10
    np.testing.assert_allclose(fast.boxes, slow.boxes, atol=0.01)
    finder = load_tail_net(device="cpu")
    p_fast = finder.probability(f.image)
    finder_net, finder.net = finder.net, finder.model
    try:
        p_slow = finder.probability(f.image)
    finally:
        finder.net = finder_net
    assert np.abs(p_fast - p_slow).max() < 1e-4
