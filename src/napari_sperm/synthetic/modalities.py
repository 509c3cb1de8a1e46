"""Imaging modalities the synthetic generator imitates.

Each :class:`Modality` is a plain record of the numbers that make a synthetic field look like one kind
of real microscopy image: frame size, how many sperm, how big their heads are, how long and wide their
flagella are, what the optics do to them, and how much noise and compression the camera adds.

The targets were measured on real public images (see ``docs/synthetic.md``):

- ``stained``: brightfield, colour, 100x oil. 1280x1024 RGB, light background with stain debris and
  bacteria chains; dark purple heads about 88x53 px; blue-grey flagellum 3-5 px wide, median about
  440 px long, often leaving the field; 4-14 sperm; about half the fields have crossing tails.
- ``phase-low``: phase contrast, grey, low magnification video. 640x480; dark heads about 10x10 px with
  bright halos; faint tails; 100-500 sperm; crossing tails everywhere.
- ``phase-high``: phase contrast, grey, high magnification. 640x480; heads about 31x40 px; 19-55 sperm.
- ``brightfield``: plain brightfield, grey, unstained; low-contrast heads and tails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HELD_OUT_MODALITIES",
    "Modality",
    "MODALITIES",
    "get_modality",
    "modality_names",
    "modality_weights",
    "parse_modality_mix",
]


@dataclass(frozen=True)
class Modality:
    """Numbers that describe one imaging modality for the generator.

    Lengths are in pixels, angles in radians unless the name says otherwise. Ranges are
    ``(low, high)`` for a uniform draw; ``(mean, sd)`` pairs are named so.
    """

    name: str
    description: str
    shape: tuple[int, int]
    """Frame size as (rows, columns)."""
    rgb: bool
    optics: str
    """``"stained"`` (colour absorbance), ``"phase"`` (phase contrast halo) or ``"brightfield"``."""
    pixel_size_um: float
    n_sperm: tuple[int, int]
    head_length: tuple[float, float]
    """(mean, sd) of the head's long axis."""
    head_width: tuple[float, float]
    """(mean, sd) of the head's short axis, seen flat."""
    pear_fraction: float
    """Share of heads that are pear shaped (tapered towards the tail)."""
    edge_on_fraction: float
    """Share of heads seen edge-on (much narrower)."""
    tail_length_median: float
    tail_length_sigma: float
    """Log-normal spread of the full flagellum length."""
    tail_length_min: float
    midpiece_width: float
    tail_end_width: float
    bent_fraction: float
    coiled_fraction: float
    border_fraction: float
    """Share of sperm placed so the head is cut by the image border."""
    crossing_probability: float
    """Chance that a field gets at least one forced tail crossing (more happen by chance)."""
    crossing_avoidance: float
    """Share of cells placed (by retrying) so their tail does not cross tails already placed;
    stained smears spread cells out, so only about half their fields show crossings."""
    alignment: float
    """Von Mises concentration of head directions around a field-wide direction (0 = random).
    Smearing a stained slide pulls cells along the smear, so their tails cross less often."""
    n_debris: tuple[int, int]
    debris_radius: tuple[float, float]
    n_bacteria_chains: tuple[int, int]
    # Optics and camera.
    background: tuple[float, ...]
    """Background brightness, one value per channel (0-255)."""
    head_strength: float
    tail_strength: float
    halo_sigma: float
    halo_strength: float
    blur_sigma: tuple[float, float]
    illumination: float
    """Peak relative brightness change of the illumination gradient."""
    photons: float
    """Photons at full scale; smaller means more shot noise."""
    read_noise: float
    jpeg_probability: float
    jpeg_quality: tuple[int, int]
    # Motion in stacks (per frame).
    speed: tuple[float, float]
    """(mean, sd) of head advance per frame for motile sperm."""
    immotile_fraction: float
    beat_cycles_per_frame: tuple[float, float]
    beat_amplitude: float
    """Largest bending angle of the beat wave at the tail end, radians."""


MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            name="stained",
            description="brightfield, stained colour smear, 100x oil",
            shape=(1024, 1280),
            rgb=True,
            optics="stained",
            pixel_size_um=0.05,
            n_sperm=(4, 14),
            head_length=(88.0, 6.0),
            head_width=(53.0, 4.0),
            pear_fraction=0.3,
            edge_on_fraction=0.08,
            tail_length_median=800.0,
            tail_length_sigma=0.45,
            tail_length_min=120.0,
            midpiece_width=5.0,
            tail_end_width=3.0,
            bent_fraction=0.35,
            coiled_fraction=0.1,
            border_fraction=0.15,
            crossing_probability=0.5,
            crossing_avoidance=0.9,
            alignment=2.0,
            n_debris=(8, 30),
            debris_radius=(3.0, 28.0),
            n_bacteria_chains=(2, 10),
            background=(236.0, 226.0, 234.0),
            head_strength=1.0,
            tail_strength=1.0,
            halo_sigma=0.0,
            halo_strength=0.0,
            blur_sigma=(0.7, 1.4),
            illumination=0.10,
            photons=900.0,
            read_noise=1.5,
            jpeg_probability=0.6,
            jpeg_quality=(70, 95),
            speed=(0.0, 0.0),
            immotile_fraction=1.0,
            beat_cycles_per_frame=(0.0, 0.0),
            beat_amplitude=0.0,
        ),
        Modality(
            name="phase-low",
            description="phase contrast, grey, low magnification video frames",
            shape=(480, 640),
            rgb=False,
            optics="phase",
            pixel_size_um=0.5,
            n_sperm=(100, 500),
            head_length=(10.5, 1.0),
            head_width=(9.0, 0.8),
            pear_fraction=0.15,
            edge_on_fraction=0.1,
            tail_length_median=70.0,
            tail_length_sigma=0.3,
            tail_length_min=25.0,
            midpiece_width=1.6,
            tail_end_width=1.0,
            bent_fraction=0.35,
            coiled_fraction=0.08,
            border_fraction=0.05,
            crossing_probability=1.0,
            crossing_avoidance=0.0,
            alignment=0.0,
            n_debris=(5, 25),
            debris_radius=(2.0, 9.0),
            n_bacteria_chains=(0, 0),
            background=(128.0,),
            head_strength=1.0,
            tail_strength=0.28,
            halo_sigma=2.5,
            halo_strength=2.4,
            blur_sigma=(0.6, 1.0),
            illumination=0.18,
            photons=220.0,
            read_noise=2.5,
            jpeg_probability=1.0,
            jpeg_quality=(55, 85),
            speed=(2.5, 1.0),
            immotile_fraction=0.3,
            beat_cycles_per_frame=(0.12, 0.3),
            beat_amplitude=0.7,
        ),
        Modality(
            name="phase-high",
            description="phase contrast, grey, high magnification",
            shape=(480, 640),
            rgb=False,
            optics="phase",
            pixel_size_um=0.125,
            n_sperm=(19, 55),
            head_length=(40.0, 3.0),
            head_width=(31.0, 2.5),
            pear_fraction=0.2,
            edge_on_fraction=0.12,
            tail_length_median=260.0,
            tail_length_sigma=0.35,
            tail_length_min=70.0,
            midpiece_width=3.2,
            tail_end_width=2.0,
            bent_fraction=0.35,
            coiled_fraction=0.08,
            border_fraction=0.12,
            crossing_probability=0.8,
            crossing_avoidance=0.0,
            alignment=0.0,
            n_debris=(3, 12),
            debris_radius=(4.0, 22.0),
            n_bacteria_chains=(0, 0),
            background=(120.0,),
            head_strength=1.0,
            tail_strength=0.45,
            halo_sigma=5.5,
            halo_strength=2.2,
            blur_sigma=(0.8, 1.4),
            illumination=0.15,
            photons=400.0,
            read_noise=2.0,
            jpeg_probability=0.7,
            jpeg_quality=(65, 90),
            speed=(6.0, 2.5),
            immotile_fraction=0.25,
            beat_cycles_per_frame=(0.1, 0.25),
            beat_amplitude=0.6,
        ),
        Modality(
            name="brightfield",
            description="plain brightfield, grey, unstained",
            shape=(768, 1024),
            rgb=False,
            optics="brightfield",
            pixel_size_um=0.15,
            n_sperm=(10, 40),
            head_length=(32.0, 2.5),
            head_width=(22.0, 2.0),
            pear_fraction=0.2,
            edge_on_fraction=0.1,
            tail_length_median=300.0,
            tail_length_sigma=0.35,
            tail_length_min=80.0,
            midpiece_width=2.8,
            tail_end_width=1.8,
            bent_fraction=0.35,
            coiled_fraction=0.08,
            border_fraction=0.12,
            crossing_probability=0.6,
            crossing_avoidance=0.3,
            alignment=0.0,
            n_debris=(5, 20),
            debris_radius=(3.0, 20.0),
            n_bacteria_chains=(0, 3),
            background=(196.0,),
            head_strength=0.55,
            tail_strength=0.3,
            halo_sigma=2.5,
            halo_strength=0.45,
            blur_sigma=(0.8, 1.6),
            illumination=0.12,
            photons=600.0,
            read_noise=2.0,
            jpeg_probability=0.5,
            jpeg_quality=(70, 95),
            speed=(4.0, 2.0),
            immotile_fraction=0.3,
            beat_cycles_per_frame=(0.1, 0.25),
            beat_amplitude=0.6,
        ),
    )
}


HELD_OUT_MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            name="phase-negative",
            description="negative phase contrast, grey, 20x: bright heads with a dark halo",
            shape=(480, 640),
            rgb=False,
            optics="phase",
            pixel_size_um=0.25,
            n_sperm=(15, 45),
            head_length=(22.0, 2.0),
            head_width=(16.0, 1.5),
            pear_fraction=0.2,
            edge_on_fraction=0.1,
            tail_length_median=150.0,
            tail_length_sigma=0.3,
            tail_length_min=45.0,
            midpiece_width=2.4,
            tail_end_width=1.5,
            bent_fraction=0.35,
            coiled_fraction=0.08,
            border_fraction=0.1,
            crossing_probability=0.7,
            crossing_avoidance=0.0,
            alignment=0.0,
            n_debris=(3, 15),
            debris_radius=(3.0, 14.0),
            n_bacteria_chains=(0, 0),
            background=(70.0,),
            head_strength=0.6,
            tail_strength=0.4,
            halo_sigma=4.0,
            halo_strength=-2.0,
            blur_sigma=(0.7, 1.2),
            illumination=0.15,
            photons=300.0,
            read_noise=2.0,
            jpeg_probability=0.6,
            jpeg_quality=(65, 90),
            speed=(4.0, 2.0),
            immotile_fraction=0.3,
            beat_cycles_per_frame=(0.1, 0.25),
            beat_amplitude=0.6,
        ),
    )
}
"""Modalities kept OUT of the default detector's training: the retraining benchmark
(``benchmarks/retrain.py``) measures how the shipped model does on them zero-shot and after
fine-tuning. A negative halo strength turns the phase optics around (negative phase contrast)."""


def modality_names() -> list[str]:
    """Names of the modalities the generator knows, in a stable order."""
    return list(MODALITIES)


def parse_modality_mix(text: str, names: list[str] | None = None) -> dict[str, float] | None:
    """Modality sampling weights from ``"brightfield=2,stained=0.8"`` (None when ``text`` is empty).

    Parameters
    ----------
    text : str
        Comma-separated ``name=weight`` items; modalities not named keep weight 1.
    names : list of str, optional
        The modalities allowed (default: :func:`modality_names`).

    Raises
    ------
    ValueError
        An unknown modality, a weight that is not a number >= 0, or every weight 0.
    """
    allowed = list(names) if names is not None else modality_names()
    out: dict[str, float] = {}
    for item in (i for i in text.split(",") if i):
        name, _, value = item.partition("=")
        if name not in allowed:
            raise ValueError(f"unknown modality {name!r} in mix {text!r}; use {sorted(allowed)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"modality weight {item!r} is not name=number") from None
        if not out[name] >= 0:
            raise ValueError(f"modality weights must be >= 0, got {item!r}")
    if out and not any(out.get(m, 1.0) > 0 for m in allowed):
        raise ValueError(f"mix {text!r} gives every modality weight 0")
    return out or None


def modality_weights(names: list[str], mix: dict[str, float] | None) -> np.ndarray:
    """Probabilities of drawing each of ``names`` under ``mix`` (unnamed modalities weigh 1).

    Returns
    -------
    (len(names),) float array summing to 1
    """
    w = np.array([float((mix or {}).get(m, 1.0)) for m in names])
    return w / w.sum()


def get_modality(name: str) -> Modality:
    """Return the :class:`Modality` called ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a known modality; the message lists the known ones.
    """
    if name in HELD_OUT_MODALITIES:
        return HELD_OUT_MODALITIES[name]
    try:
        return MODALITIES[name]
    except KeyError:
        known = ", ".join([*MODALITIES, *HELD_OUT_MODALITIES])
        raise ValueError(f"unknown modality {name!r}; choose one of: {known}") from None
