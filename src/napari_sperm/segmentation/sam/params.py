"""Settings of the SAM cascade (:func:`~napari_sperm.segmentation.sam.cascade.iter_sam_cascade`).

Every length is relative to the typical head length (the median longer side of the detector's head
boxes) or to the tail width derived from it, so the same defaults work at any magnification. CS3's
fixed pixel values (for 720x540 stained images, head length about 50 px) are quoted for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CASCADE_MODES", "REEMBED_CHOICES", "SamCascadeParams"]

CASCADE_MODES = ("prompted", "amg")
REEMBED_CHOICES = ("never", "once", "each_round")


@dataclass(frozen=True)
class SamCascadeParams:
    """How the SAM cascade finds heads and single tails.

    Attributes
    ----------
    max_rounds : int
        Most tail rounds (CS3: at most 6 cascade rounds after its first passes).
    min_rounds : int
        Rounds run even when a round accepts nothing new (1: stop at the first round that adds
        nothing). Benchmarks set it to ``max_rounds`` to run the published number of AMG passes.
    reembed : {"never", "once", "each_round"}
        When the image embedding is recomputed in ``prompted`` mode. ``"once"`` (default): the heads
        are painted over with local background and the image is embedded a second time, so SAM sees
        only the thin structures when tail prompts are decoded; later rounds reuse that embedding
        and subtract accepted tails from the decoded masks (2 embeddings per frame). ``"never"``: one
        embedding; heads are handled by negative point prompts and subtraction. ``"each_round"``:
        accepted tails are painted over and the image re-embedded before every round (as CS3 does,
        1 + rounds embeddings; slow on CPU).
    head_length_px : float or None
        Typical head length; None: the median longer side of the boxes (or ``default_head_length_px``
        without boxes).
    default_head_length_px : float
        Head length used when there are no boxes.
    tail_width_ratio : float
        Tail width as a fraction of the head length (as the classic engine); at least
        ``min_tail_width_px``.
    min_tail_width_px : float
        Smallest tail width, pixels.
    head_margin_ratio : float
        A head mask is kept inside its box grown by this fraction of the box size on every side.
    min_head_fill : float
        A head mask covering less than this fraction of its box counts as "SAM found nothing".
    head_erase_ratio : float
        Heads are painted over after growing them by this many tail widths (their blurred rim).
    prompt_spacing_ratio : float
        Positive points of one tail prompt are placed along a thin structure this many head lengths
        apart (CS3 uses every pixel of a piece).
    max_points_per_prompt : int
        Most positive points per tail prompt.
    min_branch_ratio : float
        Pieces of the remaining thin structures shorter than this many head lengths get no prompt.
    batch_size : int
        Prompts decoded per mask-decoder forward pass (memory, not the number of calls).
    min_length_ratio : float
        Single-tail test: the centreline must be at least this many head lengths long.
    max_width_ratio : float
        Single-tail test: mean width (area / centreline length) at most this many tail widths.
    speck_fraction : float
        Single-tail test: pieces smaller than this fraction of the largest piece are dropped as
        specks before counting pieces (one piece must remain).
    max_gap_ratio : float
        Single-tail test: two pieces at most this many head lengths apart count as one tail cut by
        something lying across it (a head); CS3 allows 25 px. 0: one piece only.
    spur_ratio : float
        Skeleton spurs shorter than this many head lengths are pruned before counting endpoints
        (CS3: 25 px).
    kink_arm_ratio : float
        The bend at a centreline point is measured between the points this many head lengths before
        and after it along the line (CS3: 10 px); at least 3 px.
    kink_end_ratio : float
        Points closer than this many head lengths to an end are not tested for kinks (CS3: 30 px).
    min_bend_angle_deg : float
        Smallest allowed angle (degrees, 180 = straight) at any tested point (CS3: 130).
    max_shared_fraction : float
        A tail may share at most this fraction of its pixels with tails accepted before it (they
        cross); a mask sharing more repeats an accepted tail and is dropped.
    residual_min_ratio : float
        Residual pieces (tail-like pixels not explained by accepted tails) shorter than this many
        head lengths are dropped.
    amg_points_per_side : int
        ``amg`` mode: prompt grid of the automatic mask generator (CS3: 32, i.e. 1,024 prompts).
    amg_points_per_batch : int
        ``amg`` mode: prompts per decoder pass (SAM default 64).
    amg_pred_iou_thresh, amg_stability_score_thresh : float
        ``amg`` mode: SAM's mask filters (published defaults 0.88, 0.95).
    amg_box_nms_thresh : float
        ``amg`` mode: NMS between masks (published 0.7).
    amg_max_area_fraction : float
        ``amg`` mode: masks larger than this fraction of the frame are dropped (CS3: 100,000 px of
        720 x 540, about 0.26).
    amg_head_iou : float
        ``amg`` mode: a mask is the head of a box when its IoU with the box is at least this.
    """

    max_rounds: int = 4
    min_rounds: int = 1
    reembed: str = "once"
    head_length_px: float | None = None
    default_head_length_px: float = 30.0
    tail_width_ratio: float = 0.07
    min_tail_width_px: float = 1.5
    head_margin_ratio: float = 0.25
    min_head_fill: float = 0.05
    head_erase_ratio: float = 1.5
    prompt_spacing_ratio: float = 1.0
    max_points_per_prompt: int = 3
    min_branch_ratio: float = 0.5
    batch_size: int = 8
    min_length_ratio: float = 1.0
    max_width_ratio: float = 4.0
    speck_fraction: float = 0.1
    max_gap_ratio: float = 0.8
    spur_ratio: float = 0.4
    kink_arm_ratio: float = 0.25
    kink_end_ratio: float = 0.5
    min_bend_angle_deg: float = 130.0
    max_shared_fraction: float = 0.3
    residual_min_ratio: float = 0.5
    amg_points_per_side: int = 32
    amg_points_per_batch: int = 64
    amg_pred_iou_thresh: float = 0.88
    amg_stability_score_thresh: float = 0.95
    amg_box_nms_thresh: float = 0.7
    amg_max_area_fraction: float = 0.26
    amg_head_iou: float = 0.3

    def __post_init__(self) -> None:
        if self.reembed not in REEMBED_CHOICES:
            raise ValueError(f"reembed must be one of {REEMBED_CHOICES}, got {self.reembed!r}")
        if self.max_rounds < 1 or not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError("need 1 <= min_rounds <= max_rounds")
        if self.amg_points_per_side < 1 or self.amg_points_per_batch < 1 or self.batch_size < 1:
            raise ValueError("points_per_side, points_per_batch and batch_size must be >= 1")
        if self.max_points_per_prompt < 1:
            raise ValueError("max_points_per_prompt must be >= 1")
        if not 0 < self.min_bend_angle_deg <= 180:
            raise ValueError("min_bend_angle_deg must be in (0, 180]")
