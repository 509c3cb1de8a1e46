"""Write one input's COCO output as it is produced, so memory does not grow with the detections.

Each chunk's images and annotations are renumbered (ids continue from 1 across chunks, exactly as
:func:`~.merge.append_dataset` would) and appended as JSON lines to two scratch files beside the
output. :meth:`CocoStream.finish` then writes the final JSON atomically, streaming those lines
between the header fields, and removes the scratch files; :meth:`CocoStream.abort` only removes
them. The parsed result equals the dataset ``append_dataset`` would have built in memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..io import atomic_write
from .merge import count_heads, renumbered

__all__ = ["CocoStream"]


class CocoStream:
    """A COCO file built chunk by chunk.

    Parameters
    ----------
    path : path
        The final JSON file.
    header : dict
        ``info``, ``licenses``, ``categories`` (and empty ``images`` / ``annotations``, ignored).
    """

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]):
        self.path = Path(path)
        self.header = {k: v for k, v in header.items() if k not in ("images", "annotations")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._parts = {
            key: self.path.with_name(f".{self.path.name}.{key}.part")
            for key in ("images", "annotations")
        }
        self._files = {key: open(p, "w", encoding="utf-8") for key, p in self._parts.items()}
        self.n_images = 0
        self.n_annotations = 0
        self.n_heads = 0

    def add(self, part: dict[str, Any]) -> None:
        """Append ``part``'s images and annotations with ids continuing from the previous parts."""
        images, anns = renumbered(part, self.n_images, self.n_annotations)
        for key, entries in (("images", images), ("annotations", anns)):
            out = self._files[key]
            for entry in entries:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.n_images += len(images)
        self.n_annotations += len(anns)
        self.n_heads += count_heads({"annotations": anns})

    def finish(self) -> Path:
        """Write the final JSON (atomically) and remove the scratch files."""
        for fh in self._files.values():
            fh.close()
        order = ["info", "licenses", "images", "annotations", "categories"]
        keys = [k for k in order if k in self.header or k in self._parts]
        keys += [k for k in self.header if k not in keys]
        with atomic_write(self.path, "w") as out:
            out.write("{")
            for n, key in enumerate(keys):
                out.write(("" if n == 0 else ", ") + json.dumps(key) + ": ")
                if key in self._parts:
                    out.write("[")
                    with open(self._parts[key], encoding="utf-8") as lines:
                        for k, line in enumerate(lines):
                            out.write(("" if k == 0 else ", ") + line.rstrip("\n"))
                    out.write("]")
                else:
                    out.write(json.dumps(self.header[key], ensure_ascii=False))
            out.write("}")
        self._remove()
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (the final file is not touched)."""
        for fh in self._files.values():
            fh.close()
        self._remove()

    def _remove(self) -> None:
        for p in self._parts.values():
            try:
                p.unlink()
            except FileNotFoundError:
                pass
