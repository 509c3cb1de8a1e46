"""Reading the project's own weights files (detector, tail network): one format check for both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["read_weights", "read_model"]


def read_weights(path: Path, fmt: str, bad: Callable[[Path, str], Exception]) -> tuple[dict, dict]:
    """Load a ``{"format", "version": 1, "config", "state_dict"}`` file written by napari-sperm.

    Parameters
    ----------
    path : Path
        The file.
    fmt : str
        The expected ``format`` tag (e.g. ``"napari-sperm-detector"``).
    bad : callable
        ``bad(path, why)`` builds the exception raised for each problem, so every caller keeps its
        own wording and hint.

    Returns
    -------
    config : dict
    state_dict : dict
        Floating-point tensors as float32 (files store fp16).
    """
    import torch

    if not path.is_file():
        raise bad(path, "no such file" if not path.exists() else "not a file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise bad(path, f"not a readable weights file ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise bad(path, f"not a {fmt} file")
    if ckpt.get("version") != 1:
        raise bad(path, f"unsupported version {ckpt.get('version')!r}")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise bad(path, "no state_dict in the file")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return dict(ckpt.get("config") or {}), state


def read_model(
    path: Path, fmt: str, bad: Callable[[Path, str], Exception], model_cls: Callable[..., object]
) -> tuple[dict, object]:
    """:func:`read_weights`, then build ``model_cls(**config["arch"])`` and load the weights into it.

    Returns
    -------
    config : dict
    model : torch.nn.Module
        On the CPU, in whatever mode ``model_cls`` builds it.
    """
    config, state = read_weights(path, fmt, bad)
    try:
        model = model_cls(**config.get("arch", {}))
        model.load_state_dict(state)
    except Exception as exc:
        raise bad(path, f"weights do not fit the network ({type(exc).__name__})") from exc
    return config, model
