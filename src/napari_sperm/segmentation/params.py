"""Parameters of the classic (no neural network) head and flagellum masks.

Every threshold is relative: to the noise level of the filtered image, to the local contrast of a
head, or to the typical head length, so the same defaults work at any magnification. Lengths that
are not ratios are in pixels and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeadMaskParams", "TailMaskParams", "WEAK_SCORE_THRESHOLD"]

WEAK_SCORE_THRESHOLD = 0.1
"""Default lowest score of a weak head: a head box scoring under the segmentation threshold, kept
only when a tail that no other head took pairs with it (:mod:`~napari_sperm.segmentation.second_pass`)."""

POLARITIES = ("auto", "dark", "bright")


@dataclass(frozen=True)
class TailMaskParams:
    """How :func:`~napari_sperm.segmentation.tail_mask` finds flagellum pixels.

    The flagellum is found as a thin line (ridge) by a bank of oriented, elongated second-derivative
    filters at 1-3 scales, kept where it is darker than both sides, thresholded with hysteresis in
    units of the filter's noise level, and cleaned of blobs, rings and short bits.

    Attributes
    ----------
    polarity : {"auto", "dark", "bright"}
        Whether flagella are darker (brightfield, stained, positive phase contrast) or brighter than
        the background. ``"auto"`` compares the heads with the ring around them when heads are
        given, else uses the sign of the image's strongest thin structures.
    tail_width_ratio : float
        Typical flagellum width (midpiece) as a fraction of the head length; sets the filter scales.
        Human sperm: head about 4.5 um, midpiece about 0.7-1 um wide, blurred by the optics, so
        0.06-0.15; the default 0.07 errs towards thin (a too-thin scale still finds wide tails, a
        too-wide scale loses thin ones).
    min_tail_width_px : float
        Lower bound of the tail width in pixels (optics blur makes nothing thinner than about 1.5 px).
    default_head_length_px : float
        Head length assumed when neither ``head_length`` nor heads are given.
    scales : tuple of float
        Gaussian scales (across the line) of the ridge filter as multiples of the tail width (1-3
        values); each is clipped to at least ``min_sigma_px``.
    min_sigma_px : float
        Smallest Gaussian scale, pixels.
    n_orientations : int
        Number of filter orientations over 180 degrees.
    elongation : float
        Length of the filter along the line as a multiple of its scale across: longer averages more
        noise away on faint tails, shorter follows tighter bends.
    side_distance : float
        For the two-sided test, the background on each side of a line is sampled this many tail
        widths (plus ``side_blur_px``) from the centre.
    side_blur_px : float
        Added to the side distance, pixels: the optics blur widens every line by about 1-2 px.
    side_gate : float
        A line pixel must be darker than *both* sides, the weaker side by at least this fraction of
        the stronger: the inner rim of a dark blob (head, debris) is dark on one side only.
    high_threshold, low_threshold : float
        Hysteresis thresholds of the ridge strength in units of its noise level (a robust standard
        deviation over the frame): a line needs one pixel above ``high`` and is followed down to
        ``low``.
    min_length_ratio : float
        Pieces whose centreline is shorter than this many head lengths are dropped (debris, noise).
    max_thickness_ratio : float
        Pieces thicker on average (area / centreline length) than this many tail widths are dropped
        (blobs, smudges).
    head_margin_ratio : float
        Heads given in ``heads`` are grown by this many tail widths before their pixels are removed
        from the tail mask (their blurred rim responds to the filter).
    width_fraction : float
        A pixel of a found line is kept when its ridge strength is at least this fraction of the
        strongest strength across the line nearby: trims the mask to the visible line width.
    gap_max_ratio : float
        Faint stretches of a tail break it into pieces; two free line ends of different pieces that
        point at each other are joined when within this many head lengths (0: no bridging).
    gap_max_angle_deg : float
        Each end must lie within this angle of the other end's direction.
    gap_min_piece_ratio : float
        Only pieces at least this many head lengths long (and 4 tail widths) are bridged, so noise
        fragments never chain up into false tails.
    gap_min_strength : float
        Mean ridge strength (noise units) along the bridge; below the hysteresis low threshold, so
        faint but real line stretches are joined and empty background is not.
    net_bridge_threshold : float or None
        Tail network only. Where a faint stretch of a tail falls below the network's threshold and
        cuts the tail mask in two, the pieces are joined by the 1-px middle line (skeleton) of the
        pixels above this probability that connect to the mask, kept only where that line joins two separate pieces:
        the pieces themselves are not widened. None: no joining.
    """

    polarity: str = "auto"
    tail_width_ratio: float = 0.07
    min_tail_width_px: float = 1.5
    default_head_length_px: float = 30.0
    scales: tuple[float, ...] = (0.5, 1.0)
    min_sigma_px: float = 1.0
    n_orientations: int = 8
    elongation: float = 2.5
    side_distance: float = 0.5
    side_blur_px: float = 2.0
    side_gate: float = 0.3
    high_threshold: float = 5.0
    low_threshold: float = 2.5
    min_length_ratio: float = 0.8
    max_thickness_ratio: float = 2.5
    head_margin_ratio: float = 1.0
    width_fraction: float = 0.5
    gap_max_ratio: float = 1.0
    gap_max_angle_deg: float = 40.0
    gap_min_strength: float = 1.0
    gap_min_piece_ratio: float = 0.3
    net_bridge_threshold: float | None = 0.3

    def __post_init__(self) -> None:
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if not self.scales or len(self.scales) > 4 or min(self.scales) <= 0:
            raise ValueError(f"scales must be 1-4 positive numbers, got {self.scales}")
        if self.n_orientations < 2 or self.elongation < 1:
            raise ValueError("n_orientations must be >= 2 and elongation >= 1")
        if not 0 < self.low_threshold <= self.high_threshold:
            raise ValueError("thresholds must satisfy 0 < low_threshold <= high_threshold")
        if self.net_bridge_threshold is not None and not 0 < self.net_bridge_threshold < 1:
            raise ValueError(
                f"net_bridge_threshold must be between 0 and 1 (or None), got {self.net_bridge_threshold}"
            )


@dataclass(frozen=True)
class HeadMaskParams:
    """How :func:`~napari_sperm.segmentation.head_masks` outlines a head inside its box.

    The box is enlarged a little; the background level is the median of a ring around the box, the
    head level a high percentile of the darkness in the box's inner ellipse, and the head is every
    pixel darker (or brighter) than ``level_fraction`` of the way from background to head, the
    connected piece at the box centre (with the pieces of the same head a lighter band cut off), holes
    filled, with thin attachments (the tail) opened away.

    Attributes
    ----------
    polarity : {"auto", "dark", "bright"}
        Whether heads are darker or brighter than the background; ``"auto"`` decides per box from
        the inner ellipse against the ring.
    margin_ratio : float
        The box is enlarged by this fraction of its size on every side for the mask (detector boxes
        are not pixel tight).
    ring_ratio : float
        Outer edge of the background ring, as a fraction of the box size beyond the box.
    smooth_ratio : float
        Gaussian smoothing before thresholding, as a fraction of the box's shorter side (at least
        ``min_smooth_px``): noise in faint brightfield heads must not cut the outline.
    min_smooth_px, max_smooth_px : float
        Bounds of the smoothing sigma in pixels.
    level_fraction : float
        Threshold position between background (0) and head level (1). Well below 0.5: the head
        level is a high percentile (the darkest part), a lighter acrosome cap and the centre of a
        large phase-contrast head (whose contrast fades inwards) must still count as head.
    head_percentile : float
        Percentile of the darkness inside the inner ellipse taken as the head level.
    open_ratio : float
        Radius of the opening that cuts the attached tail, as a fraction of the box's shorter side.
    clip_to_box : bool
        Keep the mask inside the enlarged box only (True) or allow it anywhere in the crop.
    join_inside_fraction : float
        A thresholded piece besides the centre one joins the head when at least this fraction of its
        pixels lies in the ellipse inscribed in the box; the head is then the convex hull of its
        pieces. This mends heads cut in two by a lighter band or by the edge of a head lying over
        them. A value above 1 keeps the centre piece only.
    """

    polarity: str = "auto"
    margin_ratio: float = 0.1
    ring_ratio: float = 0.5
    smooth_ratio: float = 0.04
    min_smooth_px: float = 0.6
    max_smooth_px: float = 3.0
    level_fraction: float = 0.3
    head_percentile: float = 90.0
    open_ratio: float = 0.12
    clip_to_box: bool = True
    join_inside_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if not 0 < self.level_fraction < 1:
            raise ValueError(f"level_fraction must be in (0, 1), got {self.level_fraction}")
        if not self.join_inside_fraction > 0:
            raise ValueError(f"join_inside_fraction must be > 0, got {self.join_inside_fraction}")
