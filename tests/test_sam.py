"""SAM engine: torchvision shim, checkpoints, tiny random SAM end to end, real checkpoint if any."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from napari_sperm.io.errors import SpermInputError
from napari_sperm.segmentation.sam import (
    CHECKPOINTS,
    ENV_CACHE,
    ENV_CHECKPOINT,
    CascadeResult,
    SamCascadeParams,
    SamUnavailable,
    compat,
    download_checkpoint,
    import_segment_anything,
    iter_sam_cascade,
    load_sam,
    resolve_checkpoint,
    sam_cascade,
    tail_test_settings,
    tiny_sam,
)
from napari_sperm.segmentation.sam.tailtest import TailTestSettings, single_tail_test
from napari_sperm.synthetic import CropMask, make_field

# ---------------------------------------------------------------------------------- shim


def test_import_segment_anything_gives_predictor():
    sa = import_segment_anything()
    assert hasattr(sa, "SamPredictor") and hasattr(sa, "SamAutomaticMaskGenerator")
    if not compat.torchvision_usable():
        # Stand-ins are gone again: nothing else in the process sees a fake torchvision.
        assert not any(
            compat._is_stub(m) for n, m in sys.modules.items() if n.startswith("torchvision")
        )


def test_stubs_leave_working_torchvision_alone(monkeypatch):
    monkeypatch.setattr(compat, "torchvision_usable", lambda: True)
    before = dict(sys.modules)
    with compat.torchvision_stubs() as active:
        assert active is False
        assert "torchvision.ops.boxes" not in sys.modules or sys.modules.get(
            "torchvision.ops.boxes"
        ) is before.get("torchvision.ops.boxes")


_PROBE = """
import sys
sys.path.insert(0, {root!r})
from napari_sperm.segmentation.sam.compat import import_segment_anything
sa = import_segment_anything()
import segment_anything.utils.transforms as T
print(sa.SamPredictor.__name__, T.resize.__module__, sorted(n for n in sys.modules if n.startswith("torchvision")))
"""


def _fake_torchvision(root, broken: bool) -> None:
    pkg = root / "torchvision"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "transforms").mkdir()
    if broken:  # what the CUDA wheel does next to the CPU torch
        (pkg / "__init__.py").write_text(
            "import torchvision.ops\nraise RuntimeError('operator torchvision::nms does not exist')\n"
        )
    else:
        (pkg / "__init__.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "boxes.py").write_text(
        "from napari_sperm.segmentation.sam.compat import nms, batched_nms, box_area\n"
    )
    (pkg / "transforms" / "__init__.py").write_text("")
    (pkg / "transforms" / "functional.py").write_text(
        "def resize(img, size, *a, **k):\n    return img.resize(size[::-1])\n"
        "def to_pil_image(x, mode=None):\n    from PIL import Image\n    return Image.fromarray(x)\n"
    )


@pytest.mark.parametrize("broken", [True, False])
def test_shim_with_broken_or_working_torchvision(tmp_path, broken):
    import subprocess

    _fake_torchvision(tmp_path, broken)
    code = _PROBE.format(root=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split(maxsplit=2)
    assert out[0] == "SamPredictor"
    if broken:  # our stand-ins were used and are gone again; the broken modules were dropped
        assert out[1] == "napari_sperm.segmentation.sam.compat" and out[2].strip() == "[]"
    else:  # the working torchvision is used and sys.modules is left as it is
        assert out[1] == "torchvision.transforms.functional"
        assert "'torchvision.ops.boxes'" in out[2]


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            lt = np.maximum(boxes[i, :2], boxes[j, :2])
            rb = np.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None))
            a = np.prod(boxes[i, 2:] - boxes[i, :2])
            b = np.prod(boxes[j, 2:] - boxes[j, :2])
            if inter / (a + b - inter) <= thr:
                rest.append(j)
        order = rest
    return keep


def test_shim_nms_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 100, (60, 2))
        wh = rng.uniform(5, 40, (60, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        scores = rng.uniform(size=60)
        got = compat.nms(torch.tensor(boxes), torch.tensor(scores), 0.5).tolist()
        assert got == _greedy_nms(boxes, scores, 0.5)
    idxs = torch.tensor(rng.integers(0, 3, 60))
    kept = compat.batched_nms(torch.tensor(boxes), torch.tensor(scores), idxs, 0.5).tolist()
    for c in range(3):
        sel = np.flatnonzero(idxs.numpy() == c)
        want = {int(sel[k]) for k in _greedy_nms(boxes[sel], scores[sel], 0.5)}
        assert {k for k in kept if idxs[k] == c} == want
    assert compat.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_shim_resize_matches_pil():
    arr = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    ours = np.array(compat.resize(compat.to_pil_image(arr), (64, 91)))
    pil = np.array(Image.fromarray(arr).resize((91, 64), Image.BILINEAR))
    assert np.array_equal(ours, pil)
    assert compat.resize(compat.to_pil_image(arr), 74).size == (106, 74)
    box = torch.tensor([[0.0, 0.0, 2.0, 3.0]])
    assert compat.box_area(box).item() == 6.0


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    return tmp_path


def test_resolution_order(clean_env, monkeypatch):
    tmp = clean_env
    name = CHECKPOINTS["vit_b"].filename
    cached = tmp / "cache" / "sam" / name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"c")
    assert resolve_checkpoint("vit_b") == cached
    env_file = tmp / "env.pth"
    env_file.write_bytes(b"e")
    monkeypatch.setenv(ENV_CHECKPOINT, str(env_file))
    assert resolve_checkpoint("vit_b") == env_file
    explicit = tmp / "explicit.pth"
    explicit.write_bytes(b"x")
    assert resolve_checkpoint("vit_b", explicit) == explicit
    folder = tmp / "folder"
    folder.mkdir()
    (folder / name).write_bytes(b"f")
    assert resolve_checkpoint("vit_b", folder) == folder / name
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp / "gone.pth"))
    with pytest.raises(SamUnavailable, match=ENV_CHECKPOINT):
        resolve_checkpoint("vit_b")


def test_missing_checkpoint_message(clean_env):
    with pytest.raises(SamUnavailable) as err:
        load_sam("vit_b", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and isinstance(err.value, SpermInputError)
    for part in (
        "sam_vit_b_01ec64.pth",
        "https://dl.fbaipublicfiles.com",
        ENV_CHECKPOINT,
        "classic",
    ):
        assert part in msg
    with pytest.raises(SpermInputError, match="Unknown SAM model type"):
        resolve_checkpoint("vit_x")


def test_download_good_and_bad_hash(clean_env):
    tmp = clean_env
    src = tmp / "weights.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    seen = []
    dest = tmp / "out" / "w.pth"
    got = download_checkpoint(
        "vit_b",
        dest,
        progress=lambda d, t: seen.append((d, t)),
        url=src.as_uri(),
        sha256=digest,
        chunk_size=65536,
    )
    assert got == dest and dest.read_bytes() == payload
    assert (tmp / "out" / "w.pth.sha256").read_text().startswith(digest)
    assert seen[-1] == (len(payload), len(payload)) and len(seen) == 5
    bad = tmp / "bad" / "w.pth"
    with pytest.raises(SpermInputError, match="corrupt"):
        download_checkpoint("vit_b", bad, url=src.as_uri(), sha256="0" * 64)
    assert not bad.parent.exists() or list(bad.parent.iterdir()) == []
    with pytest.raises(SpermInputError, match="Could not download"):
        download_checkpoint("vit_b", bad, url=(tmp / "missing").as_uri())
    assert list(bad.parent.iterdir()) == []
    # Default destination is the cache folder under the official name; then it resolves.
    (tmp / CHECKPOINTS["mobile_sam"].filename).write_bytes(payload)
    path = download_checkpoint(
        "mobile_sam", url=(tmp / CHECKPOINTS["mobile_sam"].filename).as_uri()
    )
    assert resolve_checkpoint("mobile_sam") == path


def test_bad_checkpoint_file_is_unavailable(clean_env):
    bad = clean_env / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SamUnavailable, match="cannot be loaded"):
        load_sam("vit_b", bad, device="cpu")


# ------------------------------------------------------------------------------- cascade


@pytest.fixture(scope="module")
def field():
    fld = make_field("phase-high", seed=1, n_sperm=4)
    boxes = np.array([t.head_box() for t in fld.sperm if t.head_box()], float)
    return fld, boxes


@pytest.fixture(scope="module")
def sam():
    return tiny_sam(seed=0)


def _check_result(res: CascadeResult, shape, n_boxes, mode):
    assert isinstance(res, CascadeResult) and res.mode == mode
    assert len(res.heads) == n_boxes
    assert all(isinstance(h, CropMask) for h in res.heads + res.tails)
    assert res.residual.shape == shape and res.residual.dtype == bool
    assert res.decoder_calls > 0 and res.embeddings >= 1 and res.rounds >= 1
    assert res.seconds > 0


def test_prompted_cascade_end_to_end(field, sam):
    fld, boxes = field
    steps = []
    gen = iter_sam_cascade(fld.image, boxes, sam)
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            res = stop.value
            break
    _check_result(res, fld.shape, len(boxes), "prompted")
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    assert all(b[0] >= a[0] for a, b in zip(steps, steps[1:]))
    assert res.embeddings <= 2  # one, plus one after heads are painted over
    assert res.decoder_calls >= len(boxes)  # one box prompt per head, then tail prompts


def test_prompted_reembed_choices_and_rgb(field, sam):
    fld, boxes = field
    rgb = np.repeat(fld.image[..., None].astype(np.float32) / 255, 3, axis=-1)
    never = sam_cascade(rgb, boxes, sam, params=SamCascadeParams(reembed="never"))
    _check_result(never, fld.shape, len(boxes), "prompted")
    assert never.embeddings == 1
    none = sam_cascade(fld.image, np.zeros((0, 4)), sam)
    assert none.heads == [] and none.residual.shape == fld.shape


def test_amg_cascade_and_call_counts(field, sam):
    fld, boxes = field
    p = SamCascadeParams(
        amg_points_per_side=6,
        amg_pred_iou_thresh=0.0,
        amg_stability_score_thresh=0.0,
        max_rounds=2,
        min_rounds=2,
    )
    amg = sam_cascade(fld.image, boxes, sam, mode="amg", params=p)
    _check_result(amg, fld.shape, len(boxes), "amg")
    assert amg.rounds == 2 and amg.embeddings == 2 and amg.decoder_calls == 2 * 36
    prompted = sam_cascade(fld.image, boxes, sam)
    assert prompted.decoder_calls * 2 < amg.decoder_calls


def test_generator_can_be_cancelled(field, sam):
    fld, boxes = field
    gen = iter_sam_cascade(fld.image, boxes, sam)
    assert next(gen)[0] == 0
    next(gen)
    gen.close()  # cancel between steps: hooks are removed
    assert not sam.model.mask_decoder._forward_pre_hooks
    assert not sam.model.image_encoder._forward_pre_hooks


def test_bad_inputs(field, sam):
    fld, boxes = field
    with pytest.raises(SpermInputError, match="mode"):
        sam_cascade(fld.image, boxes, sam, mode="grid")
    with pytest.raises(SpermInputError, match="boxes"):
        sam_cascade(fld.image, np.zeros((3, 3)), sam)
    with pytest.raises(SpermInputError):
        sam_cascade(np.zeros((2, 4, 5, 6)), boxes, sam)


def test_single_tail_test_shapes():
    from scipy import ndimage as ndi
    from skimage.draw import disk, line

    s = TailTestSettings(30, 6, 8, 8, 15)
    curve = np.zeros((100, 100), bool)
    t = np.linspace(0, 1, 300)
    curve[(20 + 60 * t).astype(int), (10 + 70 * t + 10 * np.sin(3 * t)).astype(int)] = True
    curve = ndi.binary_dilation(curve)
    assert single_tail_test(curve, s).ok
    y = curve.copy()
    y[line(50, 50, 50, 95)] = True
    assert single_tail_test(y, s).reason == "endpoints"
    v = np.zeros((100, 100), bool)
    v[line(10, 10, 80, 50)] = True
    v[line(80, 50, 10, 90)] = True
    assert single_tail_test(ndi.binary_dilation(v), s).reason == "kink"
    blob = np.zeros((100, 100), bool)
    blob[disk((50, 50), 20)] = True
    assert not single_tail_test(blob, s).ok
    two = np.zeros((100, 100), bool)
    two[10:12, 5:50] = two[60:62, 5:50] = True
    assert single_tail_test(two, s).reason == "pieces"
    cut = curve.copy()
    cut[45:52] = False  # something lying across the tail
    assert single_tail_test(cut, s).reason == "pieces"
    assert single_tail_test(cut, replace(s, max_gap_px=12)).ok


def test_tail_test_scales_with_resolution():
    small, big = tail_test_settings(30.0), tail_test_settings(60.0)
    assert big.min_length_px == 2 * small.min_length_px
    assert big.kink_arm_px == 2 * small.kink_arm_px and big.max_gap_px == 2 * small.max_gap_px
    assert big.max_width_px == 2 * small.max_width_px


# ------------------------------------------------------------------------- real checkpoint


def _real_checkpoint():
    reasons = []
    for model_type in ("vit_b", "mobile_sam", "vit_l", "vit_h"):
        try:
            return model_type, resolve_checkpoint(model_type)
        except SpermInputError as exc:
            reasons.append(str(exc))
    return None, reasons[0]


@pytest.mark.slow
def test_real_checkpoint_end_to_end(field):
    model_type, found = _real_checkpoint()
    if model_type is None:
        pytest.skip(f"no SAM checkpoint on this machine: {found}")
    fld, boxes = field
    try:
        handle = load_sam(model_type, found, device="auto")
    except SamUnavailable as exc:
        pytest.skip(str(exc))
    res = sam_cascade(fld.image, boxes, handle)
    _check_result(res, fld.shape, len(boxes), "prompted")
    assert sum(h.area > 0 for h in res.heads) >= len(boxes) // 2


# ------------------------------------------------------------- oracle SAM (logic, not SAM)


class _Decoder(torch.nn.Module):
    def forward(self, **kwargs):
        return None


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder = torch.nn.Identity()
        self.mask_decoder = _Decoder()


class _Identity:
    @staticmethod
    def apply_coords(coords, size):
        return coords

    @staticmethod
    def apply_boxes(boxes, size):
        return boxes


class _OraclePredictor:
    """Answers every prompt with the ground-truth mask it points at (tests the cascade's logic)."""

    def __init__(self, fld):
        self.model = _Model()
        self.device = torch.device("cpu")
        self.transform = _Identity()
        self.heads = [t.head.to_full(fld.shape) for t in fld.sperm]
        self.tails = [t.tail.to_full(fld.shape) for t in fld.sperm if t.tail.mask.size]
        self.original_size = fld.shape

    def set_image(self, image):
        self.original_size = image.shape[:2]
        self.model.image_encoder(torch.zeros(1, 3, 4, 4))

    def _answer(self, coords, labels, box):
        if box is not None:
            x0, y0, x1, y1 = box
            for m in self.heads:
                r, c = np.nonzero(m)
                if r.size and x0 <= c.mean() <= x1 and y0 <= r.mean() <= y1:
                    return m
            return np.zeros(self.original_size, bool)
        pos = coords[labels == 1].astype(int)
        best, hits = np.zeros(self.original_size, bool), 0
        for m in self.tails:
            near = np.pad(m, 3)
            n = sum(near[r : r + 7, c : c + 7].any() for c, r in pos)
            if n > hits:
                best, hits = m, n
        return best

    def predict_torch(self, point_coords, point_labels, boxes, multimask_output=True):
        b = len(boxes) if boxes is not None else len(point_coords)
        self.model.mask_decoder(sparse_prompt_embeddings=torch.zeros(b, 1, 1))
        out = []
        for i in range(b):
            box = boxes[i].numpy() if boxes is not None else None
            pc = point_coords[i].numpy() if point_coords is not None else None
            pl = point_labels[i].numpy() if point_labels is not None else None
            m = self._answer(pc, pl, box)
            out.append(np.stack([np.zeros_like(m), m, np.zeros_like(m)]))
        scores = torch.tensor([[0.1, 0.9, 0.2]] * b)  # best is index 1, not masks[0]
        return torch.as_tensor(np.array(out)), scores, None


def test_prompted_cascade_logic_with_oracle():
    from napari_sperm.segmentation.sam.model import SamHandle

    fld = make_field("phase-high", seed=3, n_sperm=6)
    boxes = np.array([t.head_box() for t in fld.sperm if t.head_box()], float)
    handle = SamHandle(_OraclePredictor(fld), "oracle", torch.device("cpu"), 1024)
    res = sam_cascade(fld.image, boxes, handle)
    # Heads: the best-scoring output (index 1) is the true head.
    assert sum(h.area > 0 for h in res.heads) == len(boxes)
    # Some true single tails are found, each essentially one ground-truth tail.
    assert len(res.tails) >= 3
    truth = [t.tail.to_full(fld.shape) for t in fld.sperm if t.tail.mask.size]
    for tail in res.tails:
        m = tail.to_full(fld.shape)
        assert max((m & t).sum() / m.sum() for t in truth) > 0.8
    assert not any(
        (t.to_full(fld.shape) & res.residual).any() for t in res.tails
    )  # residual excludes accepted tails
    assert res.embeddings == 2 and res.decoder_calls >= len(boxes) + len(res.tails)


def test_mobile_sam_when_installed(tmp_path, field):
    if compat.import_mobile_sam() is None:
        pytest.skip("mobile_sam is not installed (pip install mobilesam-mirror)")
    ms = compat.import_mobile_sam()
    assert not any(n.startswith("timm") and compat._is_stub(m) for n, m in sys.modules.items())
    path = tmp_path / "mobile_sam.pt"
    torch.save(ms.sam_model_registry["vit_t"](checkpoint=None).state_dict(), path)
    handle = load_sam("mobile_sam", path, device="cpu")
    fld, boxes = field
    res = sam_cascade(fld.image, boxes, handle, params=SamCascadeParams(reembed="never"))
    _check_result(res, fld.shape, len(boxes), "prompted")
    assert res.embeddings == 1
