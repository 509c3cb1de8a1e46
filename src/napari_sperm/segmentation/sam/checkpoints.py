"""Where SAM checkpoints come from: resolution order, cache folder and a download helper.

A checkpoint is found, in this order, at

1. the path given explicitly (``checkpoint=...``, the widget's file field, ``--sam-checkpoint``),
2. the environment variable ``NAPARI_SPERM_SAM_CHECKPOINT`` (a file, or a folder holding the
   official file name),
3. the cache folder (:func:`cache_dir`): ``$NAPARI_SPERM_CACHE/sam/`` when that variable is set,
   else ``~/.cache/napari-sperm/sam/`` (``$XDG_CACHE_HOME`` honoured; ``%LOCALAPPDATA%`` on
   Windows), under the official file name.

No checkpoint is shipped. :func:`download_checkpoint` fetches one on a machine that is online.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...io.atomic import atomic_write
from ...io.errors import SpermInputError

__all__ = [
    "CHECKPOINTS",
    "ENV_CACHE",
    "ENV_CHECKPOINT",
    "CheckpointInfo",
    "SamUnavailable",
    "cache_dir",
    "download_checkpoint",
    "normalize_model_type",
    "resolve_checkpoint",
]

ENV_CHECKPOINT = "NAPARI_SPERM_SAM_CHECKPOINT"
ENV_CACHE = "NAPARI_SPERM_CACHE"


@dataclass(frozen=True)
class CheckpointInfo:
    """One official checkpoint.

    Attributes
    ----------
    model_type : str
    filename : str
        The official file name (looked for in folders).
    url : str
    size_mb : int
        Approximate download size.
    md5 : str or None
        MD5 of the official file when known for certain (the SAM file names carry its first six
        hex digits); checked after download.
    sha256 : str or None
        SHA-256 when known for certain; None here: :func:`download_checkpoint` records the SHA-256
        of what it downloaded next to the file (``<file>.sha256``).
    """

    model_type: str
    filename: str
    url: str
    size_mb: int
    md5: str | None = None
    sha256: str | None = None


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
CHECKPOINTS: dict[str, CheckpointInfo] = {
    "vit_b": CheckpointInfo(
        "vit_b",
        "sam_vit_b_01ec64.pth",
        _SAM_URL + "sam_vit_b_01ec64.pth",
        375,
        md5="01ec64d29a2fca3f0661936605ae66f8",
    ),
    "vit_l": CheckpointInfo(
        "vit_l",
        "sam_vit_l_0b3195.pth",
        _SAM_URL + "sam_vit_l_0b3195.pth",
        1250,
        md5="0b3195507c641ddb6910d2bb5adee89c",
    ),
    "vit_h": CheckpointInfo(
        "vit_h",
        "sam_vit_h_4b8939.pth",
        _SAM_URL + "sam_vit_h_4b8939.pth",
        2560,
        md5="4b8939a88964f0f4ff5f5b2642c598a6",
    ),
    "mobile_sam": CheckpointInfo(
        "mobile_sam",
        "mobile_sam.pt",
        "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        39,
    ),
}
_ALIASES = {
    "default": "vit_h",
    "vit-b": "vit_b",
    "vit-l": "vit_l",
    "vit-h": "vit_h",
    "mobilesam": "mobile_sam",
    "mobile-sam": "mobile_sam",
    "vit_t": "mobile_sam",
}


class SamUnavailable(SpermInputError):
    """No usable SAM model (no checkpoint, missing package, unreadable file).

    The message is one line saying where to get a checkpoint and that the classic engine is used
    meanwhile.
    """


def normalize_model_type(model_type: str) -> str:
    """``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or ``"mobile_sam"`` from a name or alias.

    Raises
    ------
    SpermInputError
        For an unknown model type.
    """
    key = str(model_type).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in CHECKPOINTS:
        raise SpermInputError(
            f"Unknown SAM model type {model_type!r}: choose one of {', '.join(CHECKPOINTS)}."
        )
    return key


def cache_dir() -> Path:
    """Folder where checkpoints are cached (not created here).

    Returns
    -------
    Path
        ``$NAPARI_SPERM_CACHE/sam`` if set; else ``<user cache>/napari-sperm/sam`` where the user
        cache is ``%LOCALAPPDATA%`` on Windows, ``$XDG_CACHE_HOME`` or ``~/.cache`` elsewhere.
    """
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root).expanduser() / "sam"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "napari-sperm" / "sam"


def _missing_message(info: CheckpointInfo) -> str:
    return (
        f"No SAM checkpoint for {info.model_type} found: download {info.filename} "
        f"(about {info.size_mb} MB) from {info.url} into {cache_dir()}, or set {ENV_CHECKPOINT} "
        f"to its path, or run napari_sperm.segmentation.sam.download_checkpoint("
        f"'{info.model_type}'); the classic engine is used meanwhile."
    )


def _in_folder(folder: Path, info: CheckpointInfo) -> Path | None:
    candidate = folder / info.filename
    return candidate if candidate.is_file() else None


def resolve_checkpoint(
    model_type: str = "vit_b", checkpoint: str | os.PathLike | None = None
) -> Path:
    """Find the checkpoint file: explicit path, then ``NAPARI_SPERM_SAM_CHECKPOINT``, then cache.

    Parameters
    ----------
    model_type : str
        ``vit_b``, ``vit_l``, ``vit_h`` or ``mobile_sam``.
    checkpoint : path, optional
        Explicit file (or folder holding the official file name); must exist when given.

    Returns
    -------
    Path
        An existing file.

    Raises
    ------
    SamUnavailable
        When no file is found (the message says where to get one).
    """
    info = CHECKPOINTS[normalize_model_type(model_type)]
    for source, value in (
        ("checkpoint", checkpoint),
        (ENV_CHECKPOINT, os.environ.get(ENV_CHECKPOINT)),
    ):
        if value is None or str(value).strip() == "":
            continue
        path = Path(os.fspath(value)).expanduser()
        if path.is_file():
            return path
        if path.is_dir() and (found := _in_folder(path, info)) is not None:
            return found
        what = "folder without " + info.filename if path.is_dir() else "no such file"
        raise SamUnavailable(
            f"SAM checkpoint {str(path)!r} (from {source}) is unusable: {what}. "
            + _missing_message(info)
        )
    found = _in_folder(cache_dir(), info)
    if found is not None:
        return found
    raise SamUnavailable(_missing_message(info))


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def download_checkpoint(
    model_type: str = "vit_b",
    dest: str | os.PathLike | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    chunk_size: int = 1 << 20,
    opener: Callable = urllib.request.urlopen,
) -> Path:
    """Download a checkpoint, streaming to a temporary file that is renamed only when complete.

    Parameters
    ----------
    model_type : str
        Which official checkpoint (sets the URL, file name and known hash).
    dest : path, optional
        Target file, or an existing folder to put the official file name in. Default: the cache
        folder (:func:`cache_dir`, created when needed).
    progress : callable, optional
        Called as ``progress(bytes_done, bytes_total_or_None)`` after every chunk.
    url : str, optional
        Override the URL (mirrors, tests; ``file://`` works).
    sha256, md5 : str, optional
        Expected hashes; default the known ones of the model type. When no hash is known the
        SHA-256 of the download is recorded, not checked.
    chunk_size : int, optional
        Bytes per read.
    opener : callable, optional
        ``urllib.request.urlopen`` or a stand-in with the same call and context-manager protocol.

    Returns
    -------
    Path
        The complete file. Its SHA-256 is written next to it as ``<file>.sha256``.

    Raises
    ------
    SpermInputError
        Network failure or hash mismatch; no partial file is left behind.
    """
    info = CHECKPOINTS[normalize_model_type(model_type)]
    url = url or info.url
    want_sha = (sha256 or (None if url != info.url else info.sha256) or "").lower() or None
    want_md5 = (md5 or (None if (url != info.url or sha256) else info.md5) or "").lower() or None
    target = Path(os.fspath(dest)).expanduser() if dest is not None else cache_dir() / info.filename
    if target.is_dir():
        target = target / info.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
    try:
        with opener(url) as response, atomic_write(target, "wb") as out:
            total, done = _content_length(response), 0
            while chunk := response.read(chunk_size):
                out.write(chunk)
                h_sha.update(chunk)
                h_md5.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            _check_hash("SHA-256", h_sha.hexdigest(), want_sha, url)
            _check_hash("MD5", h_md5.hexdigest(), want_md5, url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, SpermInputError):
            raise
        raise SpermInputError(
            f"Could not download {url} to {target}: {exc}. Download it by hand and put it in "
            f"{target.parent} (or set {ENV_CHECKPOINT})."
        ) from exc
    with atomic_write(target.with_name(target.name + ".sha256"), "w") as side:
        side.write(f"{h_sha.hexdigest()}  {target.name}\n")
    return target


def _check_hash(kind: str, got: str, want: str | None, url: str) -> None:
    if want is not None and got != want:
        raise SpermInputError(
            f"Download of {url} is corrupt ({kind} {got[:12]}... instead of {want[:12]}...): "
            "nothing was saved; try again or download it by hand."
        )
