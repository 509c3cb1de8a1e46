"""Pick the torch device the detector runs on."""

from __future__ import annotations

import torch

from ..io.errors import SpermInputError

__all__ = ["available_devices", "resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except Exception:  # noqa: BLE001  # pragma: no cover - platform specific
        return False


def available_devices() -> list[str]:
    """Device names accepted by :func:`resolve_device`, e.g. ``["auto", "cpu"]``."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if _mps_available():
        out.append("mps")
    return out


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> cuda, else mps, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` as asked.

    Raises
    ------
    SpermInputError
        Unknown or unavailable device (the message lists what is available).
    """
    if isinstance(name, torch.device):
        name = str(name)
    key = (name or "auto").strip().lower()
    avail = available_devices()
    if key == "auto":
        if "cuda" in avail:
            return torch.device("cuda")
        if "mps" in avail:
            return torch.device("mps")
        return torch.device("cpu")
    base = key.split(":", 1)[0]
    if base in avail and base != "auto":
        try:
            dev = torch.device(key)
        except (RuntimeError, ValueError):
            dev = None
        if dev is not None and (
            dev.type != "cuda" or dev.index is None or dev.index < torch.cuda.device_count()
        ):
            return dev
    raise SpermInputError(
        f"Device {name!r} is not available here; choose one of: {', '.join(avail)}."
    )
