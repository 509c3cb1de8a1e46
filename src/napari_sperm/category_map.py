"""Map another dataset's COCO categories onto ours (``sperm``, ``head``, ``tail``).

Public datasets name their classes differently ("Nucleus", "Flagellum", "Sperm cell"...). A
category map says which of their names is which of ours, e.g. ``Nucleus=head Flagellum,Tail=tail``;
:func:`parse_category_map` reads it from the command line and :func:`map_categories` rewrites a
dataset so that its ``categories`` are exactly :data:`napari_sperm.coco.CATEGORIES`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .coco import CATEGORIES, CATEGORY_IDS
from .io.errors import SpermInputError

__all__ = ["parse_category_map", "map_categories"]

_TARGETS = ", ".join(CATEGORY_IDS)
# "=" followed by the target word; the target ends at a comma, whitespace or the end of the text.
_PAIR = re.compile(r"=\s*([^\s,=]*)")


def _parse_one(text: str, out: dict[str, str]) -> None:
    pos = 0
    for m in _PAIR.finditer(text):
        sources = [s.strip().lower() for s in text[pos : m.start()].split(",")]
        sources = [s for s in sources if s]
        target_raw = m.group(1)
        target = target_raw.strip().lower()
        if not sources:
            raise SpermInputError(
                f"category map '{text.strip()}': no source category name before '={target_raw}'; "
                "write NAME=sperm|head|tail."
            )
        if target not in CATEGORY_IDS:
            raise SpermInputError(
                f"category map '{text.strip()}': unknown target category '{target_raw}'; "
                f"use one of {_TARGETS}."
            )
        for s in sources:
            if out.get(s, target) != target:
                raise SpermInputError(
                    f"category map: '{s}' is mapped to both {out[s]} and {target}; "
                    "map each category once."
                )
            out[s] = target
        pos = m.end()
    rest = text[pos:].strip(" \t\r\n,")
    if rest:
        raise SpermInputError(
            f"category map '{text.strip()}': '{rest}' has no target; write NAME=sperm|head|tail."
        )


def parse_category_map(spec: str | Sequence[str] | None) -> dict[str, str]:
    """Read a category map from its command-line form.

    Parameters
    ----------
    spec : str, sequence of str or None
        ``NAME=target`` pairs separated by commas or whitespace; several source names may share
        one target (``"A,B=head C=tail"``). A sequence holds several such strings (a repeated
        command-line option) and they are merged. Source names may contain inner spaces
        (``"sperm head=head"``); targets are ``sperm``, ``head`` or ``tail``.

    Returns
    -------
    dict
        Lower-cased, stripped source name -> target name; empty for ``None`` or an empty spec.

    Raises
    ------
    SpermInputError
        A target that is not one of ours, a name without a target, or a source mapped to two
        different targets.

    Examples
    --------
    >>> parse_category_map("Nucleus=head, Flagellum,Midpiece=tail")
    {'nucleus': 'head', 'flagellum': 'tail', 'midpiece': 'tail'}
    """
    if spec is None:
        return {}
    parts = [spec] if isinstance(spec, str) else list(spec)
    out: dict[str, str] = {}
    for part in parts:
        if not isinstance(part, str):
            raise SpermInputError(f"category map: expected text like NAME=head, got {part!r:.60}.")
        _parse_one(part, out)
    return out


def map_categories(
    dataset: dict,
    mapping: dict[str, str],
    *,
    drop_unmapped: bool = False,
    what: str = "dataset",
) -> tuple[dict, dict]:
    """Rewrite a COCO dataset onto the categories ``sperm`` (1), ``head`` (2) and ``tail`` (3).

    Parameters
    ----------
    dataset : dict
        COCO dataset with a ``categories`` list; it is not modified.
    mapping : dict
        Source category name (any case) -> ``"sperm"``, ``"head"`` or ``"tail"``, as
        :func:`parse_category_map` returns it. A source category already named ``sperm``, ``head``
        or ``tail`` (any case) maps to itself unless the mapping says otherwise; names the dataset
        does not have are ignored (one map serves ground truth and predictions).
    drop_unmapped : bool
        Drop the annotations of categories that map to nothing (and count them) instead of
        raising.
    what : str
        How to name the dataset in error messages (``"ground truth"``, ``"predictions"``).

    Returns
    -------
    dataset : dict
        A new dataset: same top-level entries (images copied shallowly), ``categories`` equal to
        :data:`napari_sperm.coco.CATEGORIES` and annotations (shallow copies) with our
        ``category_id``.
    report : dict
        ``{"mapped": {source_name: target_name}, "dropped": {source_name: n_annotations}}``.

    Raises
    ------
    SpermInputError
        No ``categories`` list, an annotation whose category is not listed, or annotations of
        unmapped categories without ``drop_unmapped``.
    """
    if not isinstance(dataset, dict):
        raise SpermInputError(f"{what}: not a COCO dataset (expected a JSON object).")
    cats = dataset.get("categories")
    if not isinstance(cats, list):
        raise SpermInputError(
            f"{what}: no 'categories' list, so its category ids cannot be read; "
            "add the COCO categories entry."
        )
    norm: dict[str, str] = {}
    for k, v in (mapping or {}).items():
        target = str(v).strip().lower()
        if target not in CATEGORY_IDS:
            raise SpermInputError(
                f"category map: unknown target category '{v}' for '{k}'; use one of {_TARGETS}."
            )
        norm[str(k).strip().lower()] = target

    target_of: dict[Any, str | None] = {}  # source category id -> our name (None: unmapped)
    name_of: dict[Any, str] = {}
    mapped: dict[str, str] = {}
    for c in cats:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise SpermInputError(f"{what}: a category entry lacks 'id' or 'name': {c!r:.80}")
        name = str(c["name"])
        key = name.strip().lower()
        target = norm.get(key, key if key in CATEGORY_IDS else None)
        if c["id"] in target_of and name_of[c["id"]] != name:
            raise SpermInputError(
                f"{what}: category id {c['id']} is used by both '{name_of[c['id']]}' and '{name}'."
            )
        target_of[c["id"]] = target
        name_of[c["id"]] = name
        if target is not None:
            mapped[name] = target

    anns = dataset.get("annotations", [])
    if not isinstance(anns, list):
        raise SpermInputError(f"{what}: 'annotations' is not a list.")
    counts: dict[Any, int] = {}
    for a in anns:
        if not isinstance(a, dict) or "category_id" not in a:
            ident = a.get("id", "?") if isinstance(a, dict) else "?"
            raise SpermInputError(f"{what}: annotation {ident} has no category_id.")
        cid = a["category_id"]
        if cid not in target_of:
            raise SpermInputError(
                f"{what}: annotation {a.get('id', '?')} has category_id {cid!r}, which is not in "
                f"its categories ({', '.join(str(k) for k in target_of) or 'none'})."
            )
        counts[cid] = counts.get(cid, 0) + 1

    unmapped = {cid: n for cid, n in counts.items() if target_of[cid] is None}
    dropped: dict[str, int] = {}
    for cid, n in unmapped.items():
        dropped[name_of[cid]] = dropped.get(name_of[cid], 0) + n
    if dropped and not drop_unmapped:
        listed = ", ".join(
            f"'{name}' ({n} annotation{'s' if n != 1 else ''})" for name, n in dropped.items()
        )
        raise SpermInputError(
            f"{what}: categories not mapped to {_TARGETS}: {listed}; "
            "pass --category-map NAME=sperm|head|tail."
        )

    new_anns = []
    for a in anns:
        target = target_of[a["category_id"]]
        if target is None:
            continue
        b = dict(a)
        b["category_id"] = CATEGORY_IDS[target]
        new_anns.append(b)
    out = dict(dataset)
    if isinstance(dataset.get("images"), list):
        out["images"] = [dict(im) if isinstance(im, dict) else im for im in dataset["images"]]
    out["annotations"] = new_anns
    out["categories"] = [dict(c) for c in CATEGORIES]
    return out, {"mapped": mapped, "dropped": dropped}
