"""The ``napari-sperm convert`` subcommand: declared by :func:`add_convert_parser`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io.atomic import atomic_write_json
from ..io.errors import SpermInputError
from . import FORMATS, convert

__all__ = ["add_convert_parser", "run_convert"]

_DESCRIPTION = (
    "Bring an existing dataset into the napari-sperm COCO schema (categories 1 sperm, 2 head, "
    "3 tail; attributes.sperm_id links the parts of a cell) and write it to OUT.json, with image "
    "file names relative to OUT.json's folder. "
    "--from yolo: images (files or folders) with YOLO/darknet .txt labels next to them or in the "
    "labels/ folder beside images/; class names from --classes, --names or a classes.txt, "
    "obj.names or data.yaml found near the inputs; heads are paired with the smallest whole-cell "
    "box containing their centre. "
    "--from labelme: labelme .json files (or folders); shapes sharing a group_id form one cell, "
    "the others are paired by geometry (a tail shape whose end lies within --join-distance of a "
    "head shape). "
    "--from coco-parts: COCO files whose categories are sperm parts (acrosome, nucleus, midpiece, "
    "...); parts are grouped by --group-key or by geometry. "
    "A cell's head parts become one head (union mask, RLE), its tail parts one tail, and a sperm "
    "box holds them all. --label-map says which labels are sperm, head or tail, e.g. "
    "'Acrosome,Nucleus=head Midpiece,Tail=tail'; labels it does not know stop the conversion "
    "with a list of them unless --ignore-unknown drops them."
)


def add_convert_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``convert`` subcommand to the ``napari-sperm`` subparsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser (its ``func`` default is :func:`run_convert`).
    """
    p = sub.add_parser(
        "convert",
        help="convert YOLO, labelme or COCO part annotations into the napari-sperm COCO schema",
        description=_DESCRIPTION,
    )
    p.add_argument(
        "--from",
        dest="source_format",
        required=True,
        choices=FORMATS,
        metavar="|".join(FORMATS),
        help="the format of the inputs",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files or folders (searched recursively): images for yolo, .json files otherwise",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.json", help="COCO file to write")
    p.add_argument(
        "--classes",
        metavar="a,b",
        help="yolo: class names in index order, e.g. head,sperm (wins over any names file)",
    )
    p.add_argument(
        "--names",
        metavar="FILE",
        help="yolo: names file, one class name per line (obj.names) or a YAML file with names:",
    )
    p.add_argument(
        "--label-map",
        action="append",
        metavar="MAP",
        help="which labels are sperm, head or tail, e.g. 'Acrosome,Nucleus=head Tail=tail' or "
        "'A=head,B=tail'; case-insensitive; sperm, head and tail map to themselves; may be repeated",
    )
    p.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="drop shapes whose label the map does not know (counted in the summary) instead of "
        "stopping",
    )
    p.add_argument(
        "--line-width",
        type=float,
        default=None,
        metavar="PX",
        help="labelme: width of line and linestrip shapes (and points) in pixels (default: 3)",
    )
    p.add_argument(
        "--join-distance",
        type=float,
        default=None,
        metavar="PX",
        help="labelme, coco-parts: largest gap between the end of an ungrouped tail part and the "
        "part it joins (default: 5)",
    )
    p.add_argument(
        "--group-key",
        metavar="KEY",
        help="coco-parts: annotation field naming a part's cell, a dotted path such as "
        "attributes.cell_id (default: the first of attributes.sperm_id, attributes.group_id, "
        "attributes.track_id, group_id that the annotations have)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT.json if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")
    p.set_defaults(func=run_convert)
    return p


_ONLY_FOR = {
    "classes": ("--classes", ("yolo",)),
    "names": ("--names", ("yolo",)),
    "line_width": ("--line-width", ("labelme",)),
    "join_distance": ("--join-distance", ("labelme", "coco-parts")),
    "group_key": ("--group-key", ("coco-parts",)),
}


def run_convert(args: argparse.Namespace) -> int:
    """Run ``napari-sperm convert`` with parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add_convert_parser` made.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    SpermInputError
        OUT.json exists without ``--force``, an option that does not apply to the format, or any
        problem with the inputs (one line each).
    """
    out = Path(args.output)
    if out.is_dir():
        raise SpermInputError(f"'{out}' is a folder; give the .json file to write with -o.")
    if out.exists() and not args.force:
        raise SpermInputError(f"'{out}' already exists; choose another -o file or pass --force.")
    fmt = args.source_format
    options = {}
    for name, (flag, formats) in _ONLY_FOR.items():
        value = getattr(args, name)
        if value is None:
            continue
        if fmt not in formats:
            raise SpermInputError(
                f"{flag} does not apply to --from {fmt}; it is for --from {' or '.join(formats)}."
            )
        options[name] = value
    ds, summary = convert(
        fmt,
        args.inputs,
        label_map=args.label_map,
        ignore_unknown=args.ignore_unknown,
        output=out,
        **options,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, ds)
    if not args.quiet:
        for note in summary.notes:
            print(f"napari-sperm convert: note: {note}", file=sys.stderr)
    print(f"{summary.text()} Wrote {out}.")
    return 0
