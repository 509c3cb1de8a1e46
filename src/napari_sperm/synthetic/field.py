"""Synthetic sperm fields and stacks with exact ground truth.

:func:`make_field` draws one image, :func:`make_stack` a short video in which the cells swim. Both
return the pixels together with per-cell ground truth: head mask, flagellum mask, boxes and the
flagellum centreline. Overlapping flagella keep their own full masks, so a pixel where two tails
cross belongs to both. The same seed always gives the same result.

Array conventions: images are ``(rows, cols)`` or ``(rows, cols, 3)``; points are ``(row, col)``;
boxes are COCO ``(x, y, width, height)`` in pixels.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace

import numpy as np

from ..progress import drain
from .geometry import Pose, SpermShape, advance, centreline, head_axis, point_at, sample_shape
from .modalities import Modality, get_modality
from .optics import (
    STAIN_ACROSOME,
    STAIN_BACTERIA,
    STAIN_DEBRIS,
    STAIN_MIDPIECE,
    STAIN_NUCLEUS,
    STAIN_TAIL,
    Canvas,
    background_texture,
    expose,
    illumination_field,
)
from .raster import Crop, CropMask, draw_disc_blob, draw_head, draw_polygon_blob, draw_tail

__all__ = [
    "Realism",
    "SpermTruth",
    "SyntheticField",
    "SyntheticStack",
    "iter_stack",
    "make_field",
    "make_stack",
]


@dataclass(frozen=True)
class Realism:
    """Switches for the realism knobs; all on by default.

    ``Realism.clean()`` gives a noise-free, evenly lit, debris-free field for debugging.
    """

    illumination: bool = True
    """Uneven lamp: tilt plus vignette."""
    blur: bool = True
    """Optical point-spread blur."""
    noise: bool = True
    """Shot (Poisson) and read (Gaussian) noise."""
    jpeg: bool = True
    """JPEG compression artefacts, with the modality's probability and quality range."""
    debris: bool = True
    """Round debris, impurities, stain smudges and bacteria chains that are not sperm."""
    edge_on: bool = True
    """Some heads seen edge-on (narrow)."""
    bent_tails: bool = True
    """Strongly bent and coiled flagella."""
    border: bool = True
    """Some cells cut by the image border."""

    @classmethod
    def clean(cls) -> Realism:
        return cls(False, False, False, False, False, False, False, False)


@dataclass
class SpermTruth:
    """Ground truth of one cell in one frame.

    Attributes
    ----------
    sperm_id : int
        Identifier of the cell, stable across the frames of a stack, starting at 1.
    head, tail : CropMask
        Visible head and flagellum (midpiece + principal piece) masks.
    centreline : (N, 2) float array
        Flagellum centreline ``(row, col)`` from the head's rear end to the tip, sampled every
        0.5 px; the whole centreline, including any part outside the frame.
    head_centre : (float, float)
        ``(row, col)`` of the head's centre (may lie outside the frame for a cut cell).
    angle_deg : float
        Direction the head points, degrees from +x (columns) towards +y (rows).
    """

    sperm_id: int
    head: CropMask
    tail: CropMask
    centreline: np.ndarray
    head_centre: tuple[float, float]
    angle_deg: float
    head_length: float
    head_width: float
    edge_on: bool
    motile: bool
    tail_length: float

    def head_box(self) -> tuple[int, int, int, int] | None:
        """Box of the visible head, ``(x, y, w, h)``, or ``None`` if the head is out of frame."""
        return self.head.bbox()

    def tail_box(self) -> tuple[int, int, int, int] | None:
        """Box of the visible flagellum, or ``None``."""
        return self.tail.bbox()

    def sperm_mask(self) -> CropMask:
        """Union of head and flagellum as one mask."""
        parts = [p for p in (self.head, self.tail) if p.mask.size and p.mask.any()]
        if not parts:
            return CropMask.empty()
        r0 = min(p.offset[0] for p in parts)
        c0 = min(p.offset[1] for p in parts)
        r1 = max(p.offset[0] + p.mask.shape[0] for p in parts)
        c1 = max(p.offset[1] + p.mask.shape[1] for p in parts)
        out = np.zeros((r1 - r0, c1 - c0), bool)
        for p in parts:
            pr, pc = p.offset[0] - r0, p.offset[1] - c0
            out[pr : pr + p.mask.shape[0], pc : pc + p.mask.shape[1]] |= p.mask
        return CropMask((r0, c0), out)

    def sperm_box(self) -> tuple[int, int, int, int] | None:
        """Box of the whole visible cell (head plus flagellum), or ``None``."""
        return self.sperm_mask().bbox()

    @property
    def visible(self) -> bool:
        """True when any part of the cell is in the frame."""
        return self.head.area > 0 or self.tail.area > 0


@dataclass
class SyntheticField:
    """One synthetic image and its ground truth.

    Attributes
    ----------
    image : uint8 array
        ``(H, W)`` grey or ``(H, W, 3)`` RGB.
    sperm : list of SpermTruth
        The cells with any visible part.
    crossings : list of (int, int)
        Pairs of sperm ids whose flagellum masks overlap.
    modality, pixel_size_um, seed, frame
        Where the image came from.
    """

    image: np.ndarray
    sperm: list[SpermTruth]
    crossings: list[tuple[int, int]]
    modality: str
    pixel_size_um: float
    seed: int
    frame: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def head_labels(self) -> np.ndarray:
        """Label image of heads (value = sperm id); where heads overlap the later cell shows."""
        return _labels(self.shape, [(t.sperm_id, t.head) for t in self.sperm])

    def tail_labels(self) -> np.ndarray:
        """Label image of flagella (value = sperm id); a crossing pixel shows one of its tails."""
        return _labels(self.shape, [(t.sperm_id, t.tail) for t in self.sperm])


@dataclass
class SyntheticStack:
    """A synthetic video: frames plus ground truth per frame.

    Attributes
    ----------
    images : uint8 array
        ``(F, H, W)`` or ``(F, H, W, 3)``.
    sperm : list of list of SpermTruth
        ``sperm[f]`` is the ground truth of frame ``f``; ids are stable across frames.
    crossings : list of list of (int, int)
        Overlapping flagella per frame.
    """

    images: np.ndarray
    sperm: list[list[SpermTruth]]
    crossings: list[list[tuple[int, int]]]
    modality: str
    pixel_size_um: float
    seed: int
    forced_crossings: list[tuple[int, int]] = field(default_factory=list)
    """Pairs of sperm ids whose tails were placed to cross in the first frame."""

    @property
    def n_frames(self) -> int:
        return int(self.images.shape[0])

    def field(self, frame: int) -> SyntheticField:
        """Frame ``frame`` as a :class:`SyntheticField`."""
        return SyntheticField(
            image=self.images[frame],
            sperm=self.sperm[frame],
            crossings=self.crossings[frame],
            modality=self.modality,
            pixel_size_um=self.pixel_size_um,
            seed=self.seed,
            frame=frame,
        )


def _labels(shape, parts) -> np.ndarray:
    out = np.zeros(shape, np.int32)
    for sid, cm in parts:
        if cm.mask.size:
            cm.paste(out, sid)
    return out


# --------------------------------------------------------------------------------------------------
# Placing the cells
# --------------------------------------------------------------------------------------------------


def _place(
    shape: SpermShape, m: Modality, frame_shape, rng, border: bool, direction: float
) -> Pose:
    h, w = frame_shape
    half = 0.5 * shape.head_length
    if border and rng.random() < m.border_fraction:
        # Head centre within a third of a head length of an edge: the head is cut by the border.
        edge = rng.integers(4)
        # Closer to the edge than half the head's width: the head always shows, but is cut.
        off = rng.uniform(-0.4, 0.4) * shape.head_width
        if edge == 0:
            x, y = rng.uniform(0, w), off
        elif edge == 1:
            x, y = rng.uniform(0, w), h - 1 + off
        elif edge == 2:
            x, y = off, rng.uniform(0, h)
        else:
            x, y = w - 1 + off, rng.uniform(0, h)
    else:
        x = rng.uniform(half, w - 1 - half)
        y = rng.uniform(half, h - 1 - half)
    if m.alignment > 0:
        # Along the smear, either way round.
        angle = rng.vonmises(direction, m.alignment) + np.pi * rng.integers(2)
    else:
        angle = rng.uniform(-np.pi, np.pi)
    return Pose(float(x), float(y), float(angle), float(rng.uniform(0, 2 * np.pi)))


def _tail_polyline(shape: SpermShape, pose: Pose) -> np.ndarray:
    return centreline(shape, pose)[0][::4]


def _place_all(shapes, m: Modality, frame_shape, rng, border: bool, direction: float) -> list[Pose]:
    """Place every cell; some retry until their tail keeps clear of the tails placed before."""
    poses: list[Pose] = []
    placed: list[np.ndarray] = []
    for s in shapes:
        avoid = placed and rng.random() < m.crossing_avoidance
        pose = _place(s, m, frame_shape, rng, border, direction)
        line = _tail_polyline(s, pose)
        if avoid:
            others = np.concatenate(placed)
            clearance = 2.0 * m.midpiece_width + 2.0
            for _ in range(15):
                d = np.min(np.hypot(*(line[:, None, :] - others[None, :, :]).transpose(2, 0, 1)))
                if d > clearance:
                    break
                pose = _place(s, m, frame_shape, rng, border, direction)
                line = _tail_polyline(s, pose)
        poses.append(pose)
        placed.append(line)
    return poses


def _head_in_frame(shape: SpermShape, pose: Pose, frame_shape) -> bool:
    h, w = frame_shape
    r = 0.4 * shape.head_width
    return -r <= pose.x <= w - 1 + r and -r <= pose.y <= h - 1 + r


def _cross(
    shapes: list[SpermShape],
    poses: list[Pose],
    i: int,
    j: int,
    angle_range_deg: tuple[float, float],
    frame_shape,
    rng: np.random.Generator,
    tries: int = 40,
) -> bool:
    """Move cell ``j`` rigidly so its flagellum crosses the flagellum of cell ``i``.

    The crossing point lies on the visible part of ``i``'s flagellum; the angle between the two
    tangents there is drawn from ``angle_range_deg``. Returns False if no placement keeps ``j``'s head
    in the frame.
    """
    h, w = frame_shape
    si, sj = shapes[i], shapes[j]
    pts_i, _ = centreline(si, poses[i])
    margin = 3 * si.midpiece_width + 2
    n = len(pts_i)
    k = np.arange(n)
    ok = (
        (k > 0.15 * n)
        & (k < 0.85 * n)
        & (pts_i[:, 0] >= margin)
        & (pts_i[:, 0] <= w - 1 - margin)
        & (pts_i[:, 1] >= margin)
        & (pts_i[:, 1] <= h - 1 - margin)
    )
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return False
    reach = 0.6 * min(h, w)  # keep j's head within reach of the crossing point
    for _ in range(tries):
        c = int(rng.choice(candidates))
        p = pts_i[c]
        d = pts_i[min(c + 2, n - 1)] - pts_i[max(c - 2, 0)]
        tang_i = float(np.arctan2(d[1], d[0]))
        arc_j = rng.uniform(0.1, 0.6) * min(sj.tail_length, reach)
        base = replace(poses[j], x=0.0, y=0.0, angle=0.0)
        q, tang_j = point_at(sj, base, arc_j)
        alpha = np.deg2rad(rng.uniform(*angle_range_deg)) * rng.choice([-1.0, 1.0])
        rot = tang_i + alpha - tang_j
        c, s = np.cos(rot), np.sin(rot)
        qx, qy = c * q[0] - s * q[1], s * q[0] + c * q[1]
        cand = replace(poses[j], x=float(p[0] - qx), y=float(p[1] - qy), angle=float(rot))
        if _head_in_frame(sj, cand, frame_shape):
            poses[j] = cand
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Debris
# --------------------------------------------------------------------------------------------------


@dataclass
class _Debris:
    crop: Crop
    od: np.ndarray
    phase: float


def _make_debris(m: Modality, frame_shape, rng, enabled: bool) -> list[_Debris]:
    if not enabled:
        return []
    h, w = frame_shape
    out: list[_Debris] = []
    lo, hi = m.debris_radius
    for _ in range(int(rng.integers(m.n_debris[0], m.n_debris[1] + 1))):
        r = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        crop = draw_polygon_blob(rng.uniform(0, w), rng.uniform(0, h), r, rng, frame_shape)
        if crop.coverage.size == 0:
            continue
        if m.optics == "stained":
            od = STAIN_DEBRIS * rng.uniform(0.1, 0.6) * rng.uniform(0.7, 1.3, 3).astype(np.float32)
            out.append(_Debris(crop, od, 0.0))
        else:
            # Round cells and droplets: mostly phase-dark, some phase-bright, a little absorbing.
            phase = rng.uniform(0.3, 0.9) * (1 if rng.random() < 0.75 else -0.6)
            od = np.array([rng.uniform(0.0, 0.15) * m.head_strength], np.float32)
            out.append(_Debris(crop, od, float(phase)))
    for _ in range(int(rng.integers(m.n_bacteria_chains[0], m.n_bacteria_chains[1] + 1))):
        # A chain of small rods/cocci along a gently curving path.
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.uniform(0, 2 * np.pi)
        size = rng.uniform(2.0, 3.5) * (m.head_width[0] / 53.0) ** 0.3
        for _ in range(int(rng.integers(3, 12))):
            radii = np.full(12, size) * (
                1 + 0.6 * np.abs(np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)))
            )
            crop = draw_disc_blob(x, y, radii, frame_shape, phase0=-ang)
            if crop.coverage.size:
                od = STAIN_BACTERIA if m.optics == "stained" else np.array([0.3], np.float32)
                out.append(_Debris(crop, od * rng.uniform(0.7, 1.1), 0.5))
            ang += rng.normal(0, 0.25)
            x += 3.2 * size * np.cos(ang)
            y += 3.2 * size * np.sin(ang)
    return out


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _draw_cell(canvas: Canvas, m: Modality, shape: SpermShape, pose: Pose, sid: int) -> SpermTruth:
    fs = canvas.shape
    head, axial = draw_head(shape, pose, fs)
    tail, midpiece, pts = draw_tail(shape, pose, fs)
    if tail.coverage.size:
        if m.optics == "stained":
            canvas.absorb(tail, STAIN_TAIL * m.tail_strength, tail.coverage * (1 - midpiece))
            canvas.absorb(tail, STAIN_MIDPIECE * m.tail_strength, tail.coverage * midpiece)
        else:
            weight = tail.coverage * (1.0 + 0.35 * midpiece)
            canvas.retard(tail, m.tail_strength, weight)
            canvas.absorb(tail, [0.12 * m.tail_strength], weight)
    if head.coverage.size:
        nucleus = np.clip(0.5 - 1.6 * axial, 0.0, 1.0)  # 1 at the back, 0 at the front cap
        if m.optics == "stained":
            canvas.absorb(head, STAIN_NUCLEUS * m.head_strength, head.coverage * nucleus)
            canvas.absorb(head, STAIN_ACROSOME * m.head_strength, head.coverage * (1 - nucleus))
        else:
            canvas.retard(head, 0.9 * m.head_strength, head.coverage * (0.85 + 0.15 * nucleus))
            canvas.absorb(head, [0.2 * m.head_strength], head.coverage * (0.7 + 0.3 * nucleus))
    return SpermTruth(
        sperm_id=sid,
        head=head.as_mask(),
        tail=tail.as_mask(),
        centreline=pts[:, ::-1].copy(),
        head_centre=(float(pose.y), float(pose.x)),
        angle_deg=float(np.rad2deg(head_axis(shape, pose))),
        head_length=shape.head_length,
        head_width=shape.head_width,
        edge_on=shape.edge_on,
        motile=shape.motile,
        tail_length=shape.tail_length,
    )


def _crossing_pairs(truths: list[SpermTruth]) -> list[tuple[int, int]]:
    """Pairs of ids whose tail masks share a pixel (box test first, then masks)."""
    tails = [t for t in truths if t.tail.area > 0]
    if len(tails) < 2:
        return []
    boxes = np.array(
        [
            (
                t.tail.offset[0],
                t.tail.offset[1],
                t.tail.offset[0] + t.tail.mask.shape[0],
                t.tail.offset[1] + t.tail.mask.shape[1],
            )
            for t in tails
        ]
    )
    out = []
    for a in range(len(tails)):
        cand = (
            np.flatnonzero(
                (boxes[a + 1 :, 0] < boxes[a, 2])
                & (boxes[a + 1 :, 2] > boxes[a, 0])
                & (boxes[a + 1 :, 1] < boxes[a, 3])
                & (boxes[a + 1 :, 3] > boxes[a, 1])
            )
            + a
            + 1
        )
        ta = tails[a].tail
        for b in cand:
            tb = tails[b].tail
            r0 = max(ta.offset[0], tb.offset[0])
            c0 = max(ta.offset[1], tb.offset[1])
            r1 = min(ta.offset[0] + ta.mask.shape[0], tb.offset[0] + tb.mask.shape[0])
            c1 = min(ta.offset[1] + ta.mask.shape[1], tb.offset[1] + tb.mask.shape[1])
            sa = ta.mask[
                r0 - ta.offset[0] : r1 - ta.offset[0], c0 - ta.offset[1] : c1 - ta.offset[1]
            ]
            sb = tb.mask[
                r0 - tb.offset[0] : r1 - tb.offset[0], c0 - tb.offset[1] : c1 - tb.offset[1]
            ]
            if (sa & sb).any():
                ia, ib = tails[a].sperm_id, tails[b].sperm_id
                out.append((min(ia, ib), max(ia, ib)))
    return sorted(out)


def iter_stack(
    modality: str | Modality = "phase-high",
    n_frames: int = 20,
    seed: int = 0,
    n_sperm: int | None = None,
    crossings: int | None = None,
    crossing_angle_deg: tuple[float, float] = (20.0, 90.0),
    realism: Realism | None = None,
) -> Generator[tuple[int, int], None, SyntheticStack]:
    """Generate a synthetic stack frame by frame, yielding ``(frames_done, n_frames)``.

    The generator's return value (``StopIteration.value``, or the result of ``yield from``) is the
    :class:`SyntheticStack`; long-running callers use it to report progress and to cancel between
    frames. Parameters as for :func:`make_stack`.
    """
    m = get_modality(modality) if isinstance(modality, str) else modality
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    realism = realism or Realism()
    if not realism.edge_on:
        m = replace(m, edge_on_fraction=0.0)
    if not realism.bent_tails:
        m = replace(m, bent_fraction=0.0, coiled_fraction=0.0)
    lo, hi = crossing_angle_deg
    if not 0 <= lo <= hi <= 180:
        raise ValueError(
            f"crossing_angle_deg must satisfy 0 <= low <= high <= 180, got {crossing_angle_deg}"
        )

    root = np.random.SeedSequence(seed)
    pop_rng, scene_rng, motion_rng, *frame_seeds = (
        np.random.default_rng(s) for s in root.spawn(3 + n_frames)
    )
    fs = m.shape
    n = int(pop_rng.integers(m.n_sperm[0], m.n_sperm[1] + 1)) if n_sperm is None else int(n_sperm)
    if n < 0:
        raise ValueError(f"n_sperm must be >= 0, got {n}")
    shapes = [sample_shape(m, pop_rng) for _ in range(n)]
    direction = float(pop_rng.uniform(-np.pi, np.pi))
    poses = _place_all(shapes, m, fs, pop_rng, realism.border, direction)

    if crossings is None:
        crossings = 0
        if pop_rng.random() < m.crossing_probability:
            crossings = 1 + int(pop_rng.random() < 0.4)
    forced: list[tuple[int, int]] = []
    if n >= 2 and crossings > 0:
        # Each crossing moves a cell not yet used onto the visible tail of another; pairs whose
        # first tail has no visible stretch are skipped. Cells are reused once all are taken.
        used: set[int] = set()
        for _ in range(crossings):
            for _attempt in range(2 * n):
                free = [k for k in range(n) if k not in used] or list(range(n))
                if len(free) < 2:
                    free = list(range(n))
                i, j = (int(v) for v in pop_rng.choice(free, size=2, replace=False))
                if _cross(shapes, poses, i, j, (lo, hi), fs, pop_rng):
                    forced.append((min(i, j) + 1, max(i, j) + 1))
                    used.update((i, j))
                    break

    debris = _make_debris(m, fs, scene_rng, realism.debris)
    illum = illumination_field(fs, m.illumination, scene_rng) if realism.illumination else None
    texture = background_texture(fs, scene_rng, 40.0) if realism.debris else None
    blur = float(scene_rng.uniform(*m.blur_sigma)) if realism.blur else 0.0
    use_jpeg = realism.jpeg and scene_rng.random() < m.jpeg_probability
    quality = (
        int(scene_rng.integers(m.jpeg_quality[0], m.jpeg_quality[1] + 1)) if use_jpeg else None
    )

    images, truth, overlaps = [], [], []
    for f in range(n_frames):
        if f > 0:
            poses = [advance(s, p, motion_rng) for s, p in zip(shapes, poses)]
        canvas = Canvas(fs, 3 if m.rgb else 1)
        if texture is not None:
            if m.optics == "stained":
                canvas.od += (0.035 * (texture + 1.0))[..., None] * np.array(
                    [0.8, 1.0, 0.6], np.float32
                )
            else:
                canvas.phase += 0.04 * texture
        for d in debris:
            canvas.absorb(d.crop, d.od)
            if d.phase:
                canvas.retard(d.crop, d.phase)
        frame_truth = []
        for k, (s, p) in enumerate(zip(shapes, poses)):
            t = _draw_cell(canvas, m, s, p, k + 1)
            if t.visible:
                frame_truth.append(t)
        images.append(expose(canvas, m, illum, blur, realism.noise, quality, frame_seeds[f]))
        truth.append(frame_truth)
        overlaps.append(_crossing_pairs(frame_truth))
        yield f + 1, n_frames
    return SyntheticStack(
        images=np.stack(images),
        sperm=truth,
        crossings=overlaps,
        modality=m.name,
        pixel_size_um=m.pixel_size_um,
        seed=seed,
        forced_crossings=forced,
    )


def make_stack(
    modality: str | Modality = "phase-high",
    n_frames: int = 20,
    seed: int = 0,
    n_sperm: int | None = None,
    crossings: int | None = None,
    crossing_angle_deg: tuple[float, float] = (20.0, 90.0),
    realism: Realism | None = None,
) -> SyntheticStack:
    """Generate a synthetic video of swimming sperm with ground truth for every frame.

    Parameters
    ----------
    modality
        A modality name (``"stained"``, ``"phase-low"``, ``"phase-high"``, ``"brightfield"``) or a
        :class:`~napari_sperm.synthetic.Modality`.
    n_frames
        Number of frames (1 for a still field).
    seed
        Random seed; the same seed gives the same stack, pixel for pixel.
    n_sperm
        Number of cells with their head in the first frame; drawn from the modality's range if None.
    crossings
        Number of flagellum crossings to force in the first frame (more may happen by chance); by
        default drawn from the modality's crossing probability (one or two when it fires).
    crossing_angle_deg
        Range of the angle between two forced-crossing flagella, degrees (0 = parallel).
    realism
        Which realism knobs are on (all by default).

    Returns
    -------
    SyntheticStack
    """
    return drain(
        iter_stack(modality, n_frames, seed, n_sperm, crossings, crossing_angle_deg, realism)
    )


def make_field(
    modality: str | Modality = "stained",
    seed: int = 0,
    n_sperm: int | None = None,
    crossings: int | None = None,
    crossing_angle_deg: tuple[float, float] = (20.0, 90.0),
    realism: Realism | None = None,
) -> SyntheticField:
    """Generate one synthetic still image with ground truth.

    Same parameters as :func:`make_stack` without ``n_frames``.

    Returns
    -------
    SyntheticField
    """
    stack = make_stack(modality, 1, seed, n_sperm, crossings, crossing_angle_deg, realism)
    return stack.field(0)
