"""Label volumes for stacks larger than memory: in RAM when small, memory-mapped scratch files
(unlinked at once) when large or when the image is lazy."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_sperm._napari.label_volume import is_disk_backed, new_label_volume


def test_small_volumes_stay_in_memory():
    v = new_label_volume((3, 8, 9))
    assert type(v) is np.ndarray and v.dtype == np.int32 and not v.any()


def test_large_or_lazy_volumes_are_disk_backed_and_leave_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SPERM_SCRATCH", str(tmp_path))
    big = new_label_volume((4, 32, 32), threshold=1000)  # 16 KB > 1000 bytes
    lazy = new_label_volume((2, 8, 8), like=da.zeros((2, 8, 8), chunks=(1, 8, 8)))
    for v in (big, lazy):
        assert is_disk_backed(v) and is_disk_backed(v[1]) and v.dtype == np.int32
        assert not np.asarray(v).any()
        v[1, 2:4, 2:4] = 7  # writable like any array (napari paints into it)
        assert int(v.sum()) == 28 and v[1, 3, 3] == 7 and v[0].max() == 0
    assert list(tmp_path.iterdir()) == []
