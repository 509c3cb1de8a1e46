"""Loading SAM (vit_b / vit_l / vit_h, MobileSAM when installed) and a tiny random SAM for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from ...detection.device import resolve_device
from .checkpoints import SamUnavailable, normalize_model_type, resolve_checkpoint
from .compat import import_mobile_sam, import_segment_anything

__all__ = ["MODEL_TYPES", "SamHandle", "load_sam", "tiny_sam"]

MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "mobile_sam")


@dataclass
class SamHandle:
    """A SAM model ready for prompting.

    Attributes
    ----------
    predictor : segment_anything.SamPredictor
        Holds the model and the current image embedding.
    model_type : str
        ``vit_b``, ``vit_l``, ``vit_h``, ``mobile_sam`` or ``tiny`` (random test model).
    device : torch.device
    img_size : int
        Input size of the image encoder (1024 for the published models); images are resized so the
        longer side has this length.
    checkpoint : Path or None
        File the weights came from; None for random weights.
    """

    predictor: object
    model_type: str
    device: torch.device
    img_size: int
    checkpoint: Path | None = None
    extras: dict = field(default_factory=dict)

    @property
    def model(self) -> torch.nn.Module:
        """The ``Sam`` module."""
        return self.predictor.model

    def __repr__(self) -> str:
        src = self.checkpoint.name if self.checkpoint else "random weights"
        return (
            f"SamHandle({self.model_type}, {src}, device={self.device}, img_size={self.img_size})"
        )


def _registry(model_type: str):
    """``sam_model_registry`` of segment_anything, or of mobile_sam for ``mobile_sam``."""
    if model_type == "mobile_sam":
        mobile = import_mobile_sam()
        if mobile is None:
            raise SamUnavailable(
                "MobileSAM needs the mobile_sam package (pip install mobilesam-mirror); "
                "use model type vit_b/vit_l/vit_h, or the classic engine is used meanwhile."
            )
        return mobile.sam_model_registry, mobile.SamPredictor, "vit_t"
    sa = import_segment_anything()
    return sa.sam_model_registry, sa.SamPredictor, model_type


def _load_state(model: torch.nn.Module, path: Path, model_type: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and key errors all mean "unusable"
        reason = " ".join(str(exc).split())[:160]
        raise SamUnavailable(
            f"SAM checkpoint {str(path)!r} cannot be loaded as {model_type} ({reason}): check the "
            "model type matches the file, or download it again; the classic engine is used "
            "meanwhile."
        ) from exc


def load_sam(
    model_type: str = "vit_b",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
) -> SamHandle:
    """Build a SAM model from its checkpoint and wrap it in a predictor.

    Parameters
    ----------
    model_type : str
        ``vit_b`` (375 MB, fastest of the published ones), ``vit_l``, ``vit_h`` (CS3's choice,
        2.5 GB) or ``mobile_sam`` (needs the ``mobile_sam`` package).
    checkpoint : path, optional
        Checkpoint file; default resolved by
        :func:`~napari_sperm.segmentation.sam.checkpoints.resolve_checkpoint` (environment
        variable, then cache folder).
    device : str or torch.device, optional
        ``"auto"`` (cuda, else mps, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

    Returns
    -------
    SamHandle

    Raises
    ------
    SamUnavailable
        No checkpoint found, missing package, or a file that does not load as ``model_type``.
    SpermInputError
        Unknown model type or unavailable device.
    """
    key = normalize_model_type(model_type)
    dev = resolve_device(device)
    path = resolve_checkpoint(key, checkpoint)
    registry, predictor_cls, entry = _registry(key)
    model = registry[entry](checkpoint=None)
    _load_state(model, path, key)
    model.to(dev).eval()
    return SamHandle(predictor_cls(model), key, dev, int(model.image_encoder.img_size), path)


def tiny_sam(
    seed: int = 0, device: str | torch.device | None = "cpu", img_size: int = 256
) -> SamHandle:
    """A tiny SAM with random weights, built from ``segment_anything.modeling`` (tests, timing).

    ViT encoder of depth 2 and width 64 at ``img_size`` (default 256, a 16 x 16 embedding) and the
    standard prompt encoder and mask decoder (4.8 M parameters). Its masks are meaningless; it
    exercises the plumbing in milliseconds.

    Parameters
    ----------
    seed : int, optional
        Seed of the random weights (the global torch RNG is left as it was).
    device : str or torch.device, optional
    img_size : int, optional
        Encoder input size, a multiple of 16.

    Returns
    -------
    SamHandle
        ``model_type == "tiny"``, ``checkpoint is None``.
    """
    sa = import_segment_anything()
    m = sa.modeling
    dev = resolve_device(device)
    embed_size = img_size // 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = m.ImageEncoderViT(
            img_size=img_size,
            patch_size=16,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=4.0,
            out_chans=256,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        )
        prompt = m.PromptEncoder(
            embed_dim=256,
            image_embedding_size=(embed_size, embed_size),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        )
        decoder = m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        )
        model = m.Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)
    model.to(dev).eval()
    return SamHandle(sa.SamPredictor(model), "tiny", dev, img_size, None)
