"""Memory of the heads/tails label volumes the widgets build for a whole stack.

    .venv/bin/python benchmarks/label_volume_memory.py [FRAMES]   # default 1200 frames of 480x640

For each way of holding the volume (in RAM, as the widgets did before; disk-backed, as they do now
for lazy or large stacks) a fresh process allocates a ``(FRAMES, 480, 640)`` int32 volume, writes
one synthetic frame of labels into every frame in turn (what the Segment widget does with each
frame's result), and reads it back frame by frame (what export does). Every 50 frames it samples the
process's anonymous resident memory (``RssAnon``: memory the system cannot take back without
swapping) and its file-backed resident memory (``RssFile``: pages of the mapped scratch file, which
the system drops under pressure and re-reads when needed). It prints the largest increase of each
over the start, and the time.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
from napari_sperm._napari.label_volume import new_label_volume
from napari_sperm.synthetic import make_field

mode, n = sys.argv[1], int(sys.argv[2])
fld = make_field("phase-high", seed=3)
lab = fld.head_labels().astype(np.int32)
def rss():
    f = dict(l.split(":", 1) for l in open("/proc/self/status") if l.startswith("Rss"))
    return int(f["RssAnon"].split()[0]) / 1024, int(f["RssFile"].split()[0]) / 1024

a0, f0 = rss()
peak = [0.0, 0.0]
def sample():
    a, f = rss()
    peak[0], peak[1] = max(peak[0], a - a0), max(peak[1], f - f0)

t0 = time.perf_counter()
shape = (n, *lab.shape)
vol = np.zeros(shape, np.int32) if mode == "memory" else new_label_volume(shape, threshold=0)
for k in range(n):
    vol[k] = lab
    if k % 50 == 0:
        sample()
total = 0
for k in range(n):
    total += int(vol[k].max())
    if k % 50 == 0:
        sample()
sample()
print(json.dumps({"mb": vol.nbytes / 1e6, "anon": peak[0], "file": peak[1], "s": time.perf_counter() - t0}))
"""


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1200
    print(f"{n} frames of 480x640 int32 labels")
    for mode in ("memory", "disk-backed"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(n)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {mode:<12} volume {r['mb']:6.0f} MB  largest increase: anonymous {r['anon']:6.0f} MB, "
            f"file-backed {r['file']:6.0f} MB  write + read {r['s']:5.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
