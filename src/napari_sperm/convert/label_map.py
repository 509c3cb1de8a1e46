"""Label maps: which labels of a foreign dataset are our ``sperm``, ``head`` and ``tail``.

The text form is the one ``--category-map`` uses elsewhere (:mod:`napari_sperm.category_map`):
``NAME=target`` pairs separated by whitespace or commas, several names sharing a target when they
are joined by commas (``"Acrosome,Nucleus,Vacuole=head Midpiece,Tail=tail"`` or
``"Acrosome=head,Tail=tail"``). Names are compared case-insensitively with surrounding whitespace
stripped and may contain inner spaces (``"sperm head=head"``); ``sperm``, ``head`` and ``tail`` map
to themselves without being listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..category_map import parse_category_map
from ..coco import CATEGORY_IDS
from ..io.errors import SpermInputError
from .common import ConvertSummary

__all__ = ["LabelMap", "UnknownLabels", "parse_label_map"]


def _key(label: object) -> str:
    return str(label).strip().lower()


@dataclass(frozen=True)
class LabelMap:
    """Source label -> our category name.

    Attributes
    ----------
    mapping : dict
        Lower-cased, stripped label -> ``"sperm"``, ``"head"`` or ``"tail"``.
    """

    mapping: dict[str, str] = field(default_factory=dict)

    def target(self, label: object) -> str | None:
        """Our category for ``label``, or None when the map does not know it.

        Parameters
        ----------
        label : object
            A label as the source file spells it (any case, surrounding spaces ignored).

        Returns
        -------
        str or None
        """
        key = _key(label)
        if key in self.mapping:
            return self.mapping[key]
        return key if key in CATEGORY_IDS else None


def parse_label_map(spec: str | Sequence[str] | Mapping[str, str] | LabelMap | None) -> LabelMap:
    """Read a label map.

    Parameters
    ----------
    spec : str, sequence of str, mapping, LabelMap or None
        ``"A,B=head C=tail"`` / ``"A=head,B=tail"`` text (a sequence of such texts is merged), a
        ready ``{label: target}`` mapping, or None for "our own names only".

    Returns
    -------
    LabelMap

    Raises
    ------
    SpermInputError
        A target that is not sperm/head/tail, a name without a target, or a name mapped twice.

    Examples
    --------
    >>> parse_label_map("Acrosome,Nucleus=head Tail=tail").target(" NUCLEUS ")
    'head'
    """
    if isinstance(spec, LabelMap):
        return spec
    if isinstance(spec, Mapping):
        out = {}
        for name, target in spec.items():
            t = _key(target)
            if t not in CATEGORY_IDS:
                raise SpermInputError(
                    f"label map: '{name}' maps to '{target}'; use one of sperm, head, tail."
                )
            out[_key(name)] = t
        return LabelMap(out)
    try:
        return LabelMap(parse_category_map(spec))
    except SpermInputError as exc:
        raise SpermInputError(f"--label-map: {exc}") from exc


class UnknownLabels:
    """Counts the labels a map does not know, then stops or drops them.

    Parameters
    ----------
    ignore : bool
        Drop unknown labels (counted in the summary) instead of stopping.
    """

    def __init__(self, ignore: bool) -> None:
        self.ignore = ignore
        self.counts: dict[str, int] = {}
        self._spelling: dict[str, str] = {}

    def add(self, label: object, n: int = 1) -> None:
        """Count ``n`` shapes with an unknown ``label``."""
        key = _key(label)
        self._spelling.setdefault(key, str(label).strip())
        self.counts[key] = self.counts.get(key, 0) + n

    def check(self, summary: ConvertSummary, mapped: Sequence[str] = ()) -> None:
        """Stop with one line naming every unknown label, or record them as dropped.

        Parameters
        ----------
        summary : ConvertSummary
            Gets the dropped counts when ``ignore`` is set.
        mapped : sequence of str
            Labels that were mapped (named in the message so the user sees what was understood).

        Raises
        ------
        SpermInputError
            Unknown labels and ``ignore`` not set.
        """
        if not self.counts:
            return
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if self.ignore:
            for key, n in ordered:
                summary.dropped[self._spelling[key]] = n
            return
        listed = ", ".join(f"'{self._spelling[k]}' ({n})" for k, n in ordered)
        example = self._spelling[ordered[0][0]]
        example = f"'{example}=head'" if " " in example else f"{example}=head"
        known = f" (mapped: {', '.join(sorted(set(mapped)))})" if mapped else ""
        raise SpermInputError(
            f"Unknown labels: {listed}{known}. Say which of sperm, head or tail each one is with "
            f"--label-map (e.g. --label-map {example}), or pass --ignore-unknown to drop them."
        )
