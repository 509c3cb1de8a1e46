"""Parameters of Con2Dis tail clustering.

Every length is a multiple of the tail width ``w`` (estimated from the mask, or given), so the same
defaults work on 1-px phase-contrast tails and on 5-px stained ones. The few floors in pixels keep the
rules meaningful when ``w`` is about one pixel; they are named ``*_px``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Con2DisParams"]


@dataclass(frozen=True)
class Con2DisParams:
    """Thresholds of :func:`~napari_sperm.tails.cluster_tails`, all with defaults.

    Lengths are in units of the tail width ``w`` unless the name ends in ``_px``; angles in degrees.
    """

    tail_width: float | None = None
    """Tail width in pixels; ``None`` estimates it as mask area / skeleton length (median over
    connected components, weighted by length)."""

    # Connectivity
    min_component_length: float = 4.0
    """Connected components whose skeleton is shorter than this (x ``w``) are not tails."""
    min_length_px: float = 8.0
    """Floor, in pixels, for ``min_component_length`` and ``min_tail_length``."""
    max_component_width: float = 3.0
    """Components thicker than this (area / skeleton length, x ``w``) are blobs, not tails."""
    spur_length: float = 1.5
    """Skeleton branches with a free end shorter than this (x ``w``, at least 2 px) are pruned."""
    hub_merge_length: float = 2.5
    """Junctions joined by a skeleton piece shorter than this (x ``w``) form one crossing hub."""

    # Conformity (directions at piece ends)
    junction_skip: float = 1.0
    """Skeleton near a junction bends towards it; the end fit skips this much (x ``w``)."""
    fit_length: float = 6.0
    """Arc length (x ``w``, at least ``fit_length_px``) of skeleton fitted for an end direction."""
    fit_length_px: float = 8.0
    """Floor, in pixels, of the fitted arc length."""

    # Matching through junctions
    max_bend_deg: float = 40.0
    """Two piece ends continue each other through a junction only if they bend less than this."""
    lateral_weight_deg: float = 20.0
    """Cost, in degrees, of one ``w`` of sideways offset between the two fitted end lines."""
    max_lateral: float = 2.0
    """Largest sideways offset (x ``w``, plus 15 % of the distance between the fits) accepted."""
    trace_fit_length: float = 8.0
    """Arc length (x ``w``, at least ``fit_length_px``) over which a path traced from a head is
    fitted for its direction, and over which each way on through a hub is fitted."""
    share_cost_deg: float = 15.0
    """Extra cost (deg) for a path from a head to continue into a piece another head's path uses."""
    open_exit_cost_deg: float | None = 5.0
    """Where a path would share the exit that an earlier path took from the same hub while another
    exit of that hub stays unused by every path, the earlier path moves to the unused exit (and the
    later one takes the freed exit alone) when that raises the earlier path's cost by less than
    ``share_cost_deg`` plus this: two tails that meet at a shallow crossing usually leave it by
    different ways, and an exit no head's path takes ends up an unpaired tail. ``None`` turns the
    swap off."""
    curvature_weight: float = 1.0
    """Share of a path's steady bend carried on through a hub: where its last three fitted
    stretches (``trace_fit_length`` each) turn at rates that agree within
    ``curvature_tolerance``, each exit is scored against the direction the path reaches at the
    exit (turned by the mean of the path's and the exit's turn rates times the distance between
    their fits), not against the path's last direction. At a shallow crossing of two curved tails
    the right way on can bend more than the wrong one. Wavy or short paths are scored straight on.
    0 turns this off."""
    curvature_tolerance: float = 0.25
    """Largest spread of the three turn rates, as a share of the largest (plus 0.001 rad/px), for
    a path to count as bending steadily."""
    shared_max_split_deg: float = 60.0
    """At a Y junction, two branches closer in direction than this may both continue the stem (a
    shallow crossing where two tails run together for a while)."""
    typical_length_factor: float | None = 1.0
    """Past this multiple of the typical tail length (the median skeleton length of the paths traced
    from heads, in a first pass) a path goes on through a hub only where the way on costs at most
    ``late_max_cost_deg`` (bend, offset and sharing); it may still jump a gap. A tail whose end
    touches another tail then stops there instead of running on along the other tail. The second
    tracing pass runs only where the rule changes something. ``None`` turns the rule off."""
    late_max_cost_deg: float = 10.0
    """Largest cost (deg) of a way on for a path past ``typical_length_factor``."""
    typical_length_min_paths: int = 5
    """Fewest head paths from which the typical length is taken; with fewer the rule is off."""
    shared_max_length: float = 60.0
    """Longest stem (x ``w``) that two tails may share in a shallow crossing."""

    # Distance (gap bridging)
    gap_length: float = 18.0
    """Free tail ends closer than this (x ``w``, at least 4 px) may be bridged. Long enough to carry
    a tail across a head it passes under (about ten tail widths) or a faint stretch the tail finder
    missed (brightfield tails fade in places); the bend limit keeps unrelated ends apart."""
    gap_max_bend_deg: float = 35.0
    """A bridge must leave and enter both ends within this angle of their directions."""

    # Output
    min_tail_length: float = 4.0
    """Tail instances shorter than this (x ``w``, at least ``min_length_px``) are dropped."""

    # Pairing with heads
    pair_max_gap: float = 3.0
    """A tail end pairs with a head only if it lies within this (x ``w``, at least 3 px) plus
    ``pair_rear_fraction`` x head length of the head's mask."""
    pair_rear_fraction: float = 0.35
    """Share of the head length added to the pairing distance (a head's rear may be hidden under
    another head)."""
    pair_max_angle_deg: float = 50.0
    """Largest angle between the tail's end direction and the way into the head (towards its centre,
    and along its major axis where the head is elongated and inside the frame)."""

    def replace(self, **changes) -> Con2DisParams:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise TypeError(f"unknown Con2DisParams field(s): {', '.join(sorted(bad))}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Con2DisParams(**values)
