"""Shape and motion of one synthetic sperm cell.

A cell is a head (an ellipse or a pear shape) and a flagellum (midpiece plus principal piece) whose
centreline is integrated from a curvature profile. In a stack the cell swims: the head advances along
its axis, turns slowly, yaws with the beat, and a travelling wave runs down the flagellum.

Coordinates here are image ``(x, y)`` = ``(column, row)`` in pixels and angles are radians measured
from the +x axis towards +y (so they turn clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .modalities import Modality

__all__ = ["SpermShape", "Pose", "sample_shape", "centreline", "advance", "TAIL_STEP"]

TAIL_STEP = 0.5
"""Spacing of centreline samples in pixels (fine enough that rounding keeps them 8-connected)."""


@dataclass(frozen=True)
class SpermShape:
    """Everything about a cell that does not change while it swims."""

    head_length: float
    head_width: float
    pear: float
    """0 for an ellipse; up to about 0.35 for a head that narrows towards the tail."""
    edge_on: bool
    tail_length: float
    midpiece_length: float
    midpiece_width: float
    tail_end_width: float
    curvature_modes: tuple[tuple[float, float, float], ...]
    """(amplitude 1/px, cycles along the tail, phase) of the resting curvature."""
    base_curvature: float
    coil_curvature: float
    """Extra curvature that grows towards the tail end (coiled tails)."""
    motile: bool
    speed: float
    turn_rate: float
    beat_cycles_per_frame: float
    beat_amplitude: float
    beat_wavelength: float


@dataclass(frozen=True)
class Pose:
    """Where a cell is in one frame."""

    x: float
    y: float
    angle: float
    """Direction the head points (anterior), radians."""
    beat_phase: float


def sample_shape(m: Modality, rng: np.random.Generator) -> SpermShape:
    """Draw the fixed shape and motility of one cell for modality ``m``."""
    length = max(0.6 * m.head_length[0], rng.normal(*m.head_length))
    width = max(0.5 * m.head_width[0], rng.normal(*m.head_width))
    width = min(width, 0.95 * length)
    edge_on = bool(rng.random() < m.edge_on_fraction)
    if edge_on:
        width *= rng.uniform(0.35, 0.5)
    pear = float(rng.uniform(0.15, 0.35)) if rng.random() < m.pear_fraction else 0.0
    tail = float(m.tail_length_median * np.exp(rng.normal(0.0, m.tail_length_sigma)))
    tail = max(tail, m.tail_length_min)
    kind = rng.random()
    # Resting curvature: a gentle random bend for all, stronger for "bent", a spiral for "coiled".
    n_modes = 3
    scale = 0.6 / max(tail, 1.0)
    if kind < m.bent_fraction:
        scale = 2.4 / max(tail, 1.0)
    modes = tuple(
        (
            float(rng.normal(0.0, scale)),
            float(rng.uniform(0.5, 2.5)),
            float(rng.uniform(0, 2 * np.pi)),
        )
        for _ in range(n_modes)
    )
    base = float(rng.normal(0.0, 0.4 / max(tail, 1.0)))
    coil = 0.0
    if kind > 1.0 - m.coiled_fraction:
        # Tightly curled end: radius of about 1.5-4 head lengths.
        coil = float(rng.choice([-1.0, 1.0]) / (rng.uniform(1.5, 4.0) * length))
    motile = bool(rng.random() >= m.immotile_fraction) and m.speed[0] > 0
    speed = max(0.3, rng.normal(*m.speed)) if motile else 0.0
    beat = float(rng.uniform(*m.beat_cycles_per_frame)) if motile else 0.0
    return SpermShape(
        head_length=float(length),
        head_width=float(width),
        pear=pear,
        edge_on=edge_on,
        tail_length=tail,
        midpiece_length=float(min(0.12 * tail + 0.8 * length, 0.45 * tail)),
        midpiece_width=m.midpiece_width * float(rng.uniform(0.9, 1.1)),
        tail_end_width=m.tail_end_width * float(rng.uniform(0.85, 1.1)),
        curvature_modes=modes,
        base_curvature=base,
        coil_curvature=coil,
        motile=motile,
        speed=float(speed),
        turn_rate=float(rng.normal(0.0, 0.02)) if motile else 0.0,
        beat_cycles_per_frame=beat,
        beat_amplitude=m.beat_amplitude * float(rng.uniform(0.6, 1.0)) if motile else 0.0,
        beat_wavelength=float(tail * rng.uniform(0.5, 0.9)),
    )


def head_yaw(shape: SpermShape, pose: Pose) -> float:
    """Small side-to-side turn of the head that follows the beat."""
    return 0.12 * shape.beat_amplitude * np.sin(pose.beat_phase)


def head_axis(shape: SpermShape, pose: Pose) -> float:
    """Angle of the head axis in this pose, including the beat yaw."""
    return pose.angle + head_yaw(shape, pose)


def centreline(shape: SpermShape, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Centreline of the flagellum and its width along it.

    Parameters
    ----------
    shape, pose
        The cell and where it is.

    Returns
    -------
    points : (N, 2) float array
        ``(x, y)`` samples every :data:`TAIL_STEP` px from the head's rear end to the tail tip.
    widths : (N,) float array
        Full width of the flagellum at each sample (midpiece wider, tapering towards the tip).
    """
    axis = head_axis(shape, pose)
    n = max(2, int(np.ceil(shape.tail_length / TAIL_STEP)) + 1)
    s = np.linspace(0.0, shape.tail_length, n)
    frac = s / shape.tail_length
    curv = np.full(n, shape.base_curvature)
    for amp, cycles, phase in shape.curvature_modes:
        curv += amp * np.sin(2 * np.pi * cycles * frac + phase)
    curv += shape.coil_curvature * np.clip((frac - 0.45) / 0.55, 0.0, 1.0) ** 1.5
    ds = np.diff(s, prepend=0.0)
    heading = axis + np.pi + np.cumsum(curv * ds)
    if shape.beat_amplitude > 0:
        # Travelling wave of bending angle whose amplitude grows along the flagellum.
        k = 2 * np.pi / shape.beat_wavelength
        heading += shape.beat_amplitude * frac * np.sin(k * s - pose.beat_phase)
    start = np.array([pose.x, pose.y]) - 0.5 * shape.head_length * np.array(
        [np.cos(axis), np.sin(axis)]
    )
    step = np.stack([np.cos(heading), np.sin(heading)], axis=1) * ds[:, None]
    points = start + np.cumsum(step, axis=0)
    mid = s <= shape.midpiece_length
    widths = np.where(
        mid,
        shape.midpiece_width,
        shape.tail_end_width
        + (shape.midpiece_width - shape.tail_end_width)
        * 0.35
        * (1 - (s - shape.midpiece_length) / max(shape.tail_length - shape.midpiece_length, 1.0)),
    )
    return points, widths


def point_at(shape: SpermShape, pose: Pose, arc: float) -> tuple[np.ndarray, float]:
    """Position ``(x, y)`` and tangent angle of the centreline ``arc`` px from the head."""
    pts, _ = centreline(shape, pose)
    i = int(np.clip(round(arc / TAIL_STEP), 1, len(pts) - 2))
    d = pts[i + 1] - pts[i - 1]
    return pts[i], float(np.arctan2(d[1], d[0]))


def advance(shape: SpermShape, pose: Pose, rng: np.random.Generator) -> Pose:
    """Pose one frame later: the head moves along its axis, turns a little, the beat goes on."""
    if not shape.motile:
        return pose
    angle = pose.angle + shape.turn_rate + rng.normal(0.0, 0.03)
    return replace(
        pose,
        x=pose.x + shape.speed * np.cos(angle),
        y=pose.y + shape.speed * np.sin(angle),
        angle=float(angle),
        beat_phase=pose.beat_phase + 2 * np.pi * shape.beat_cycles_per_frame,
    )
