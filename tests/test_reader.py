"""Tests for the Qt-free image reader (napari_sperm.io)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_sperm.io import (
    LAZY_ENV_VAR,
    SUPPORTED_SUFFIXES,
    ImageData,
    SpermInputError,
    atomic_write,
    atomic_write_json,
    is_supported,
    read_image,
)
from napari_sperm.io.images import normalise_unit

RNG = np.random.default_rng(12345)


def _grey_stack(frames: int = 5, h: int = 24, w: int = 32, dtype=np.uint16) -> np.ndarray:
    """Stack whose every pixel is unique and whose frame index is recoverable."""
    info = np.iinfo(dtype)
    data = RNG.integers(0, info.max, size=(frames, h, w), dtype=dtype)
    data[:, 0, 0] = np.arange(frames, dtype=dtype)
    return data


def _assert_one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.strip() == message and message
    assert isinstance(err.value, SpermInputError) and isinstance(err.value, ValueError)
    return message


# --------------------------------------------------------------------------- TIFF basics


def test_uint8_grey(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(20, 30), dtype=np.uint8)
    path = tmp_path / "grey8.tif"
    tifffile.imwrite(path, data)
    img = read_image(path)
    assert isinstance(img, ImageData)
    assert isinstance(img.data, np.ndarray) and not img.lazy
    assert img.data.dtype == np.uint8 and img.data.shape == (20, 30)
    np.testing.assert_array_equal(img.data, data)
    assert img.axes == "YX" and img.rgb is False
    assert img.scale is None and img.unit is None
    assert img.source == str(path) and img.frame_names is None


def test_uint16_grey_keeps_dtype(tmp_path: Path) -> None:
    data = RNG.integers(0, 65535, size=(16, 17), dtype=np.uint16)
    path = tmp_path / "grey16.tiff"
    tifffile.imwrite(path, data)
    img = read_image(str(path))
    assert img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data, data)
    assert img.source == str(path)


def test_float32_with_nan_is_kept(tmp_path: Path) -> None:
    data = RNG.random((12, 14)).astype(np.float32)
    data[3, 4] = np.nan
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, data)
    img = read_image(path)
    assert img.data.dtype == np.float32
    assert np.isnan(img.data[3, 4])
    np.testing.assert_array_equal(img.data, data)  # NaNs compare equal here


def test_float64_kept(tmp_path: Path) -> None:
    data = RNG.random((2, 6, 7))
    path = tmp_path / "f64.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    img = read_image(path)
    assert img.data.dtype == np.float64 and img.data.shape == (2, 6, 7)
    np.testing.assert_array_equal(img.data, data)


def test_rgb_tiff(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(10, 12, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    img = read_image(path)
    assert img.rgb is True and img.data.shape == (10, 12, 3)
    assert img.axes.endswith("S") and len(img.axes) == 3
    np.testing.assert_array_equal(img.data, data)


def test_planar_rgb_moves_samples_last(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(3, 10, 12), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate")
    for lazy in (False, True):
        img = read_image(path, lazy=lazy)
        assert img.rgb is True and img.data.shape == (10, 12, 3) and img.axes == "YXS"
        np.testing.assert_array_equal(np.asarray(img.data), np.moveaxis(data, 0, -1))


def test_rgb_multipage_stack(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(4, 10, 12, 3), dtype=np.uint8)
    path = tmp_path / "rgbstack.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    img = read_image(path)
    assert img.rgb is True and img.data.shape == (4, 10, 12, 3)
    assert len(img.axes) == 4 and img.axes.endswith("YXS")
    np.testing.assert_array_equal(img.data, data)


def test_multipage_grey_stack_exact(tmp_path: Path) -> None:
    data = _grey_stack(frames=5)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    img = read_image(path)
    assert img.data.shape == (5, 24, 32) and img.data.dtype == np.uint16
    assert img.rgb is False and len(img.axes) == 3 and img.axes.endswith("YX")
    np.testing.assert_array_equal(img.data, data)


def test_many_samples_are_channels_not_error(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(8, 9, 5), dtype=np.uint8)
    path = tmp_path / "five.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig")
    img = read_image(path)
    assert img.rgb is False
    assert img.data.size == data.size


def test_empty_tiff_is_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(path, np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(SpermInputError) as err:
        read_image(path)
    assert "empty" in _assert_one_line(err)


# --------------------------------------------------------------------------- metadata


def test_imagej_resolution_to_scale(tmp_path: Path) -> None:
    data = _grey_stack(frames=3, h=8, w=9)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(4.0, 4.0),  # 4 pixels per micron
        metadata={"unit": "micron", "spacing": 2.5, "axes": "ZYX"},
    )
    img = read_image(path)
    assert img.axes == "ZYX"
    assert img.unit == "um"
    assert img.scale == pytest.approx((2.5, 0.25, 0.25))
    np.testing.assert_array_equal(img.data, data)


def test_imagej_escaped_micro_unit_and_time_axis(tmp_path: Path) -> None:
    path = tmp_path / "ij_t.tif"
    data = np.zeros((4, 6, 7), np.float32)
    tifffile.imwrite(
        path, data, imagej=True, resolution=(2.0, 4.0), metadata={"unit": "\\u00B5m", "axes": "TYX"}
    )
    img = read_image(path)
    assert img.axes == "TYX" and img.unit == "um"
    assert img.scale == pytest.approx((1.0, 0.25, 0.5))  # (T, Y, X)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("micron", "um"),
        ("µm", "um"),
        ("μm", "um"),
        ("\\u00B5m", "um"),
        ("um", "um"),
        ("pixel", None),
        (None, None),
        ("nm", "nm"),
    ],
)
def test_normalise_unit(raw, expected) -> None:
    assert normalise_unit(raw) == expected


def test_ome_physical_size_to_scale(tmp_path: Path) -> None:
    data = _grey_stack(frames=4, h=8, w=10)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path, data, ome=True, metadata={"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "axes": "TYX"}
    )
    img = read_image(path)
    assert img.axes == "TYX"
    assert img.scale == pytest.approx((1.0, 0.5, 0.5))
    assert img.unit == "um"
    np.testing.assert_array_equal(img.data, data)


# --------------------------------------------------------------------------- lazy


def _assert_lazy_one_frame_per_chunk(img: ImageData, nframes: int) -> None:
    assert img.lazy is True and isinstance(img.data, da.Array)
    assert img.data.chunks[0] == (1,) * nframes
    assert all(len(c) == 1 for c in img.data.chunks[1:])  # a frame is never split
    assert img.data.npartitions == nframes
    assert len(img.data.__dask_graph__()) == nframes  # one read task per frame


def test_lazy_forced_matches_eager(tmp_path: Path) -> None:
    data = _grey_stack(frames=6)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    eager = read_image(path, lazy=False)
    lazy = read_image(path, lazy=True)
    _assert_lazy_one_frame_per_chunk(lazy, 6)
    assert lazy.data.dtype == eager.data.dtype and lazy.data.shape == eager.data.shape
    assert lazy.axes == eager.axes and lazy.rgb == eager.rgb
    computed = lazy.data.compute()
    assert isinstance(computed, np.ndarray) and computed.dtype == np.uint16
    np.testing.assert_array_equal(computed, eager.data)
    np.testing.assert_array_equal(lazy.data[4].compute(), data[4])


def test_lazy_reads_only_on_compute(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    first = _grey_stack(frames=4)
    tifffile.imwrite(path, first, photometric="minisblack")
    lazy = read_image(path, lazy=True)
    second = first[::-1].copy()  # same layout, different pixels
    tifffile.imwrite(path, second, photometric="minisblack")
    np.testing.assert_array_equal(lazy.data.compute(), second)


def test_lazy_compressed_pages(tmp_path: Path) -> None:
    data = _grey_stack(frames=5)
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib")
    lazy = read_image(path, lazy=True)
    _assert_lazy_one_frame_per_chunk(lazy, 5)
    np.testing.assert_array_equal(lazy.data.compute(), data)


def test_lazy_rgb_and_ome(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 255, size=(3, 6, 7, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    img = read_image(tmp_path / "rgb.tif", lazy=True)
    assert img.rgb and img.data.chunks[0] == (1, 1, 1)
    np.testing.assert_array_equal(img.data.compute(), rgb)

    grey = _grey_stack(frames=3, h=5, w=6)
    tifffile.imwrite(tmp_path / "x.ome.tiff", grey, ome=True, metadata={"axes": "TYX"})
    img = read_image(tmp_path / "x.ome.tiff", lazy=True)
    _assert_lazy_one_frame_per_chunk(img, 3)
    np.testing.assert_array_equal(img.data.compute(), grey)


def test_lazy_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _grey_stack(frames=3, h=8, w=8)
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    tiny = read_image(path, lazy_threshold_bytes=16)
    _assert_lazy_one_frame_per_chunk(tiny, 3)
    np.testing.assert_array_equal(tiny.data.compute(), data)
    assert read_image(path, lazy_threshold_bytes=10**9).lazy is False
    assert read_image(path, lazy=False, lazy_threshold_bytes=16).lazy is False

    monkeypatch.setenv(LAZY_ENV_VAR, "100")
    assert read_image(path).lazy is True
    monkeypatch.setenv(LAZY_ENV_VAR, str(10**9))
    assert read_image(path).lazy is False
    monkeypatch.delenv(LAZY_ENV_VAR)
    assert read_image(path).lazy is False  # default: 1/4 of free memory


# --------------------------------------------------------------------------- PNG / JPEG


def test_png_modes(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 255, size=(6, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    assert img.rgb and img.data.shape == (6, 7, 3) and img.axes == "YXS"
    np.testing.assert_array_equal(img.data, rgba[..., :3])

    grey = RNG.integers(0, 255, size=(6, 7), dtype=np.uint8)
    Image.fromarray(grey, "L").convert("LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert not img.rgb and img.data.shape == (6, 7)
    np.testing.assert_array_equal(img.data, grey)

    Image.fromarray(grey, "L").convert("P").save(tmp_path / "pal.png")
    img = read_image(tmp_path / "pal.png")
    assert img.rgb and img.data.shape == (6, 7, 3)

    deep = RNG.integers(0, 65535, size=(6, 7), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    img = read_image(tmp_path / "deep.png")
    assert img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data, deep)


def test_jpeg_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 9, 3), 128, np.uint8)).save(tmp_path / "a.JPG")
    img = read_image(tmp_path / "a.JPG")
    assert img.rgb and img.data.shape == (8, 9, 3) and img.data.dtype == np.uint8
    lazy = read_image(tmp_path / "a.JPG", lazy=True)
    np.testing.assert_array_equal(lazy.data.compute(), img.data)


# --------------------------------------------------------------------------- folders


def _png_folder(folder: Path, names: list[str], shape=(6, 8)) -> None:
    folder.mkdir()
    for name in names:
        value = int("".join(ch for ch in name if ch.isdigit()))
        Image.fromarray(np.full(shape, value, np.uint8)).save(folder / name)


def test_folder_natural_sort(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _png_folder(folder, ["f10.png", "f2.png", "f1.png"])
    (folder / "notes.txt").write_text("ignore me")
    (folder / ".hidden.png").write_bytes(b"not an image")
    (folder / "sub.png").mkdir()
    img = read_image(folder)
    assert img.frame_names == ["f1.png", "f2.png", "f10.png"]
    assert img.data.shape == (3, 6, 8) and img.axes == "TYX" and not img.rgb
    assert [int(v) for v in img.data[:, 0, 0]] == [1, 2, 10]
    assert img.source == str(folder)


def test_folder_lazy_and_tiff_frames(tmp_path: Path) -> None:
    folder = tmp_path / "tifs"
    folder.mkdir()
    frames = _grey_stack(frames=4, h=5, w=6)
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"t{i}.tif", frame)
    eager = read_image(folder)
    np.testing.assert_array_equal(eager.data, frames)
    lazy = read_image(folder, lazy_threshold_bytes=1)
    _assert_lazy_one_frame_per_chunk(lazy, 4)
    np.testing.assert_array_equal(lazy.data.compute(), frames)


@pytest.mark.parametrize("n_files", [1, 3])
def test_folder_of_stack_files_is_one_stack(tmp_path: Path, n_files: int) -> None:
    """A recording saved as one or several multi-page TIFFs: all frames on one axis, in order."""
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = [_grey_stack(frames=5, h=8, w=9) + 10 * i for i in range(n_files)]
    for i, part in enumerate(parts):
        tifffile.imwrite(folder / f"part{i + 1}.tif", part)
    expected = np.concatenate(parts)
    for lazy in (False, True):
        img = read_image(folder, lazy=lazy)
        assert img.axes == "TYX" and img.data.shape == (5 * n_files, 8, 9) and not img.rgb
        np.testing.assert_array_equal(np.asarray(img.data), expected)
        assert img.frame_names[:2] == ["part1.tif#0", "part1.tif#1"]
        assert len(img.frame_names) == 5 * n_files


def test_folder_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    folder.mkdir()
    frames = RNG.integers(0, 255, size=(2, 5, 6, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"c{i}.png")
    img = read_image(folder)
    assert img.rgb and img.axes == "TYXS" and img.data.shape == (2, 5, 6, 3)
    np.testing.assert_array_equal(img.data, frames)


def test_folder_mismatch_names_file(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    _png_folder(folder, ["f1.png", "f2.png"])
    Image.fromarray(np.zeros((7, 8), np.uint8)).save(folder / "f3.png")
    with pytest.raises(SpermInputError) as err:
        read_image(folder)
    message = _assert_one_line(err)
    assert "f3.png" in message and "(7, 8)" in message and "(6, 8)" in message


def test_folder_dtype_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "a1.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(folder / "a2.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(SpermInputError, match="a2.tif"):
        read_image(folder)


def test_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("no frames here")
    with pytest.raises(SpermInputError) as err:
        read_image(folder)
    assert "no " in _assert_one_line(err)


# --------------------------------------------------------------------------- errors


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SpermInputError) as err:
        read_image(tmp_path / "nope.tif")
    assert "nope.tif" in _assert_one_line(err)


def test_text_file_renamed_tif(tmp_path: Path) -> None:
    path = tmp_path / "fake.tif"
    path.write_text("this is just text\nnot a tiff\n")
    with pytest.raises(SpermInputError) as err:
        read_image(path)
    message = _assert_one_line(err)
    assert "fake.tif" in message and "TIFF" in message
    assert err.value.__cause__ is not None  # chained from the tifffile error


def test_garbage_png(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(b"\x89PNG broken")
    with pytest.raises(SpermInputError) as err:
        read_image(path)
    assert err.value.__cause__ is not None and "fake.png" in _assert_one_line(err)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_tiff(tmp_path: Path, compression, lazy) -> None:
    data = _grey_stack(frames=6, h=32, w=32)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, data, photometric="minisblack", compression=compression)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    try:
        img = read_image(path, lazy=lazy)
        np.asarray(img.data)  # computing must not raise a foreign exception either
    except SpermInputError as exc:
        assert "\n" not in str(exc)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "image.bmp"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(SpermInputError) as err:
        read_image(path)
    message = _assert_one_line(err)
    assert ".bmp" in message and ".tif" in message and ".png" in message


def test_is_supported(tmp_path: Path) -> None:
    assert {".tif", ".tiff", ".png", ".jpg", ".jpeg"} <= set(SUPPORTED_SUFFIXES)
    assert is_supported(tmp_path / "a.tif") and is_supported(str(tmp_path / "a.TIFF"))
    assert is_supported(tmp_path / "a.ome.tif") and is_supported(tmp_path / "b.png")
    assert is_supported(tmp_path / "c.jpeg")
    assert not is_supported(tmp_path / "a.txt") and not is_supported(tmp_path / "a.bmp")
    folder = tmp_path / "frames"
    _png_folder(folder, ["f1.png"])
    assert is_supported(folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    assert not is_supported(other)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as fh:
            fh.write(b"new partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]  # temp file removed

    with atomic_write(path) as fh:
        fh.write(b"new contents")
    assert path.read_bytes() == b"new contents"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_atomic_write_json_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "ann.json"
    obj = {"name": "Spermie µ", "ids": [1, 2, 3], "nested": {"x": 0.5, "ok": True, "none": None}}
    atomic_write_json(path, obj)
    text = path.read_text(encoding="utf-8")
    assert "µ" in text and "\n" not in text
    assert json.loads(text) == obj
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text(encoding="utf-8")) == obj
    assert sorted(os.listdir(tmp_path)) == ["ann.json"]
