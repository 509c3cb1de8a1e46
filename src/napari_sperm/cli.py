"""The ``napari-sperm`` command line.

Every subcommand wraps the same core function the napari widgets use. Bad input ends the command
with one readable line on stderr and exit status 2; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .io.errors import SpermInputError

__all__ = ["main", "build_parser"]


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import Realism, write_dataset

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if args.quiet:
            return
        if tty:  # one updating line in a terminal, one line per image in a log
            end = "" if done < total else "\n"
            print(f"\r[synth] {done}/{total} images", end=end, file=sys.stderr)
        else:
            print(f"[synth] {done}/{total} images", file=sys.stderr)

    ann = write_dataset(
        args.out_dir,
        modality=args.modality,
        n_images=args.n_images,
        frames=args.frames,
        seed=args.seed,
        n_sperm=args.n_sperm,
        crossings=args.crossings,
        realism=Realism.clean() if args.clean else None,
        overwrite=args.force,
        progress=progress,
    )
    print(
        f"wrote {args.n_images} {'stack' if args.frames > 1 else 'image'}"
        f"{'s' if args.n_images > 1 else ''} to {ann.parent / 'images'} and ground truth to {ann}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import has_display, open_viewer, run_headless

    if not args.headless and has_display():
        try:
            open_viewer(block=True)
            return 0
        except ImportError as exc:  # napari installed without a Qt binding
            print(
                f"napari-sperm: cannot open napari ({exc}); running headless instead.",
                file=sys.stderr,
            )
    run_headless(args.out)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import read_image

    for path in args.paths:
        img = read_image(path)
        scale = "unknown" if img.scale is None else "x".join(f"{s:g}" for s in img.scale)
        print(
            f"{path}: shape {tuple(img.data.shape)} axes {img.axes} {img.data.dtype}"
            f"{' RGB' if img.rgb else ''}, scale {scale} {img.unit or ''}".rstrip()
            + (", opened lazily" if img.lazy else "")
        )
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .detection.detector import load_detector
    from .detection.files import detect_files
    from .io import atomic_write_json

    out = Path(args.output)
    if out.exists() and not args.force:
        raise SpermInputError(f"'{out}' already exists; choose another -o file or pass --force.")
    refine = True if args.refine_boxes is None else bool(args.refine_boxes)
    detector = load_detector(args.weights, args.device, args.flips, refine)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    ds = detect_files(
        args.inputs,
        detector,
        args.score_threshold,
        args.batch_size,
        log,
        weights=str(args.weights or "default"),
        detector_flips=args.flips,
        refine_boxes=refine,
    )
    atomic_write_json(out, ds)
    n_heads = sum(1 for a in ds["annotations"] if a["category_id"] == 2)
    print(
        f"wrote {len(ds['images'])} frame(s), {n_heads} heads and "
        f"{len(ds['annotations']) - n_heads} whole-cell boxes to {out}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .category_map import map_categories, parse_category_map
    from .evaluation import evaluate_detections, format_report
    from .evaluation_segm import evaluate_segmentation, per_image_table, write_per_image_csv
    from .io import atomic_write_json
    from .io.jsonfile import read_json

    fix = "Pass a COCO .json file (napari-sperm detect/segment output or ground truth)."
    gt = read_json(args.gt, "ground-truth file", fix)
    pred = read_json(args.pred, "prediction file", fix)
    cmap = parse_category_map(args.category_map)
    map_report: dict = {}
    for what, ds in (("ground truth", gt), ("predictions", pred)):
        # A file without a categories list is taken to use napari-sperm's ids (1 sperm, 2 head,
        # 3 tail); a map needs the ground truth's names.
        if isinstance(ds, dict) and ("categories" in ds or (cmap and what == "ground truth")):
            try:
                mapped, rep = map_categories(ds, cmap, drop_unmapped=args.ignore_unknown, what=what)
            except SpermInputError as exc:
                if "--category-map" not in exc.message:
                    raise
                raise SpermInputError(
                    exc.message.rstrip(".") + " (or --ignore-unknown to drop them)."
                ) from exc
            if what == "ground truth":
                gt = mapped
            else:
                pred = mapped
            map_report[what] = rep
    categories = args.categories.split(",") if args.categories else None
    dirs = {"gt_dir": Path(args.gt).parent, "pred_dir": Path(args.pred).parent}
    result = evaluate_detections(
        gt,
        pred,
        **dirs,
        score_threshold=args.score_threshold,
        max_dets=args.max_dets,
        categories=categories,
    )
    segm = None
    if not args.no_segm:
        segm = evaluate_segmentation(
            gt,
            pred,
            **dirs,
            iou_threshold=args.iou_threshold,
            mask_score_threshold=args.mask_score_threshold,
            max_dets=args.max_dets,
            categories=categories,
        )
        result["segm"] = {k: v for k, v in segm.items() if k != "per_image"}
    if cmap or any(rep["dropped"] for rep in map_report.values()):
        result["category_map"] = map_report
    print(format_report(result))
    for what, rep in map_report.items():
        renamed = {k: v for k, v in rep["mapped"].items() if k != v}
        if renamed or rep["dropped"]:
            print(
                f"{what}: "
                + ", ".join(f"{k} -> {v}" for k, v in renamed.items())
                + ("; " if renamed and rep["dropped"] else "")
                + ", ".join(f"dropped {n} {k}" for k, n in rep["dropped"].items())
            )
    if args.per_image or args.json:
        rows = per_image_table(gt, pred, **dirs, score_threshold=args.score_threshold, segm=segm)
        result["per_image"] = rows
        if args.per_image:
            write_per_image_csv(Path(args.per_image), rows)
            print(f"wrote {args.per_image} ({len(rows)} images)")
    if args.json:
        atomic_write_json(Path(args.json), result)
        print(f"wrote {args.json}")
    return 0


def _cmd_tails(args: argparse.Namespace) -> int:
    import dataclasses
    import io
    from pathlib import Path

    import numpy as np
    import tifffile

    from .io import atomic_write, atomic_write_json, read_image
    from .progress import drain
    from .tails.params import Con2DisParams
    from .tails.stack import (
        as_head_labels,
        as_tail_masks,
        clustering_records,
        iter_cluster_stack,
        stack_labels,
    )

    out = Path(args.output)
    for target in filter(None, [out, args.json and Path(args.json)]):
        if target.exists() and not args.force:
            raise SpermInputError(
                f"'{target}' already exists; choose another file or pass --force."
            )
    tails_img = read_image(args.tails, lazy=False)
    if tails_img.rgb:
        raise SpermInputError(
            f"'{args.tails}' is an RGB image; give a label or binary mask of tail pixels."
        )
    masks, is_stack = as_tail_masks(tails_img.data, f"tail mask '{args.tails}'")
    heads = None
    if args.heads:
        heads_img = read_image(args.heads, lazy=False)
        heads = as_head_labels(heads_img.data, masks.shape, f"head labels '{args.heads}'")
    params = Con2DisParams()
    if args.tail_width is not None:
        params = dataclasses.replace(params, tail_width=float(args.tail_width))

    def progress(item: tuple[int, int]) -> None:
        if not args.quiet and is_stack:
            print(f"[tails] frame {item[0]}/{item[1]}", file=sys.stderr)

    results = drain(iter_cluster_stack(masks, heads, params=params), progress)
    labels = stack_labels(results)
    labels = labels if is_stack else labels[0]
    dtype = np.uint16 if labels.max() < 2**16 else np.uint32
    buffer = io.BytesIO()  # tifffile wants a named file; write to memory, then atomically to disk
    tifffile.imwrite(buffer, labels.astype(dtype), compression="zlib")
    with atomic_write(out) as fh:
        fh.write(buffer.getvalue())
    if args.json:
        atomic_write_json(Path(args.json), clustering_records(results, is_stack))
    n = sum(len(r.tails) for r in results)
    paired = sum(1 for r in results for t in r.tails if t.head is not None)
    print(
        f"wrote {n} tails ({paired} paired with a head) in {len(results)} frame(s) to {out}"
        + (f" and their centrelines and merge decisions to {args.json}" if args.json else "")
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .annotations.export import ExportResult, iter_export_coco
    from .annotations.load import load_coco

    stacks, notes = [], []
    for path in args.inputs:
        res = load_coco(path)  # every input is checked before anything is written
        stacks.extend(res.stacks)
        notes.extend(f"{path}: {w}" for w in res.warnings)
    for line in notes:
        print(f"napari-sperm export: note: {line}", file=sys.stderr)
    result = None
    for item in iter_export_coco(
        stacks, args.output, force=args.force, include_empty=args.include_empty
    ):
        if isinstance(item, ExportResult):
            result = item
        elif not args.quiet and sys.stderr.isatty():
            print(f"\rwriting images {item[0]}/{item[1]}", end="", file=sys.stderr)
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    assert result is not None
    print(
        f"wrote {result.path}: {result.n_images} image(s), {result.n_annotations} annotation(s) "
        f"from {len(stacks)} stack(s)"
    )
    return 0


def _load_sam_or_classic(engine: str, model: str, checkpoint, device: str, warn):
    """``("sam", handle)`` when a SAM checkpoint loads, else ``("classic", None)`` with a warning."""
    if engine != "sam":
        return "classic", None
    from .segmentation.sam import SamUnavailable, load_sam

    try:
        return "sam", load_sam(model, checkpoint, device)
    except SamUnavailable as exc:
        warn(str(exc))
        return "classic", None


def _cmd_segment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .detection.detector import load_detector
    from .io import atomic_write_json
    from .segmentation.files import segment_files

    out = Path(args.output)
    if out.exists() and not args.force:
        raise SpermInputError(f"'{out}' already exists; choose another -o file or pass --force.")
    detector = load_detector(args.weights, args.device, args.flips, refine_boxes=False)

    def warn(line: str) -> None:
        print(f"napari-sperm segment: warning: {line}", file=sys.stderr)

    engine, sam = _load_sam_or_classic(
        args.engine, args.sam_model, args.sam_checkpoint, args.device, warn
    )
    finder = "ridge" if args.tail_finder == "ridge" else (args.tail_weights or "net")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    ds = segment_files(
        args.inputs,
        detector,
        engine=engine,
        sam=sam,
        score_threshold=args.score_threshold,
        batch_size=args.batch_size,
        log=log,
        tail_finder=finder,
        tail_flips=args.tail_flips,
        weak_score_threshold=args.weak_score_threshold,
        weights=str(args.weights or "default"),
        detector_flips=args.flips,
        sam_model=args.sam_model if engine == "sam" else None,
    )
    atomic_write_json(out, ds)
    cats = [a["category_id"] for a in ds["annotations"]]
    print(
        f"wrote {len(ds['images'])} frame(s) with {cats.count(2)} heads, {cats.count(3)} tails and "
        f"{cats.count(1)} whole cells ({engine} engine) to {out}"
    )
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import format_table, run_batch

    def progress(rec, done: int, total: int) -> None:
        if args.quiet:
            return
        what = rec.error if rec.status == "failed" else f"{rec.frames} frame(s), {rec.heads} heads"
        print(f"[batch] {done}/{total} {rec.input}: {rec.status}, {what}", file=sys.stderr)

    report = run_batch(
        args.inputs,
        args.output,
        steps=args.steps,
        scheduler=args.scheduler,
        workers=args.workers,
        device=args.device,
        score_threshold=args.score_threshold,
        force=args.force,
        progress=progress,
        weights=args.weights,
        chunk_frames=args.chunk_frames,
        flips=args.flips,
        tail_flips=args.tail_flips,
        refine_boxes=args.refine_boxes,
    )
    print(format_table(report))
    if report.merged:
        print(f"merged outputs: {report.merged}")
    return 0 if report.ok else 1


def _add_detector_options(
    p: argparse.ArgumentParser, threshold: float, threshold_help: str
) -> None:
    """Inputs, output and detector options shared by ``detect`` and ``segment``."""
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT.json", help="COCO file to write")
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="detector weights (default: the shipped model)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    p.add_argument(
        "--score-threshold", type=float, default=threshold, metavar="T", help=threshold_help
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=4,
        metavar="B",
        help="frames per detector batch (default: %(default)s)",
    )
    _add_flips_option(p)
    p.add_argument("--force", action="store_true", help="replace OUT.json if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_flips_option(p: argparse.ArgumentParser) -> None:
    """``--flips``: the detector's flipped copies (``detect``, ``segment``, ``batch``)."""
    p.add_argument(
        "--flips",
        type=int,
        choices=[1, 2, 4, 8],  # detection.flips.FLIPS, detector.DEFAULT_FLIPS (not imported: torch)
        default=2,
        help="detector: average it over this many flipped copies of each frame; steadier head "
        "scores and boxes, at that many times the network's time (default: %(default)s)",
    )


def _add_refine_boxes_option(p: argparse.ArgumentParser, where: str) -> None:
    """``--[no-]refine-boxes``: head boxes fitted to the heads' outlines (``detect``, ``batch``)."""
    p.add_argument(
        "--refine-boxes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit each head box to the head's outline in the image, each edge placed on the "
        "head's edge by a small classifier, and widen its whole-cell box to contain it (on by "
        f"default{where}; some 5-12 ms per frame on the CPU); --no-refine-boxes keeps the "
        "network's own boxes",
    )


def _weak_threshold(text: str) -> float | None:
    """``--weak-score-threshold``: a score in [0, 1], or 'off'."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a score between 0 and 1 or 'off'")
    return value


def _add_tail_flips_option(p: argparse.ArgumentParser) -> None:
    """``--tail-flips``: the tail network's flipped copies (``segment``, ``batch``)."""
    p.add_argument(
        "--tail-flips",
        type=int,
        choices=[1, 2, 4, 8],  # tailnet.infer.FLIPS, DEFAULT_FLIPS (not imported: torch)
        default=4,
        help="tail network: average it over this many flipped copies of each frame; steadier "
        "tail edges, at that many times the network's time; 1 runs it once; not used by "
        "--tail-finder ridge or --engine sam (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate the CLI reference in the docs)."""
    from .synthetic import modality_names

    parser = argparse.ArgumentParser(
        prog="napari-sperm",
        description="Find and outline sperm cells in microscopy images (napari plugin and batch tools).",
    )
    parser.add_argument("--version", action="version", version=f"napari-sperm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "synth",
        help="write synthetic sperm images with exact ground truth (COCO)",
        description="Write synthetic sperm images to OUT_DIR/images/ and their ground truth to "
        "OUT_DIR/annotations.json (COCO: categories 1 sperm, 2 head, 3 tail; RLE masks; "
        "attributes.sperm_id links the parts of a cell). With --frames > 1 each stack is one "
        "multi-page TIFF and every frame gets its own COCO image entry.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    p.add_argument(
        "--modality",
        default="phase-high",
        choices=modality_names(),
        help="kind of microscopy to imitate (default: %(default)s)",
    )
    p.add_argument(
        "--n-images",
        type=int,
        default=1,
        metavar="N",
        help="number of fields or stacks (default: %(default)s)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=1,
        metavar="F",
        help="frames per stack; 1 writes still PNG fields (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed (default: %(default)s)"
    )
    p.add_argument(
        "--n-sperm",
        type=int,
        default=None,
        metavar="K",
        help="sperm per field (default: drawn from the modality's range)",
    )
    p.add_argument(
        "--crossings",
        type=int,
        default=None,
        metavar="C",
        help="tail crossings to force per field (default: drawn from the modality)",
    )
    p.add_argument(
        "--clean",
        action="store_true",
        help="no noise, blur, debris, uneven light or compression (debugging)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing dataset in OUT_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled sample data",
        description="With a display: open napari with the sample phase-contrast stack and the "
        "plugin's widgets. Without one (or with --headless): run the pipeline on the sample data "
        "and write its outputs under --out.",
    )
    p.add_argument(
        "--out", default="demo-output", help="output folder when headless (default: %(default)s)"
    )
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "detect",
        help="detect sperm heads and whole cells; write COCO predictions",
        description="Detect sperm in image files (TIFF stacks, PNG, JPEG) or folders of them and write "
        "a COCO dataset of boxes: one image entry per frame (file_name as given, frame index for stack "
        "frames), category 2 head and 1 sperm (whole cell), score, and attributes.sperm_id linking a "
        "head to its cell.",
    )
    _add_detector_options(
        p,
        0.05,
        "keep detections scoring at least T; keep it low for AP evaluation (default: %(default)s)",
    )
    _add_refine_boxes_option(p, "")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser(
        "evaluate",
        help="score COCO predictions against ground truth (box and mask AP, centre recall, IoU)",
        description="Match images by file_name (and frame) and print, per category, COCO AP50, "
        "AP[.5:.95] and AR@100 (pycocotools), plus a centre-distance precision/recall/F1 at "
        "--score-threshold that does not punish a 2 px error on a 10 px head. When both files "
        "have masks for a category, also print mask (segm) AP50, AP and AR and the matched-instance "
        "IoU (median and mean over one-to-one matched masks, with matched/missed/false counts). "
        "Ground truth that names its categories differently is mapped with --category-map.",
    )
    p.add_argument("--gt", required=True, metavar="GT.json", help="ground-truth COCO file")
    p.add_argument(
        "--pred", required=True, metavar="PRED.json", help="predictions (COCO with scores)"
    )
    p.add_argument("--json", metavar="OUT.json", help="also write the numbers to this file")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        metavar="T",
        help="operating point for the centre-distance scores (default: %(default)s)",
    )
    p.add_argument(
        "--max-dets",
        type=int,
        default=100,
        metavar="N",
        help="detections per image for AR; raise it for dense fields (default: %(default)s)",
    )
    p.add_argument(
        "--categories",
        metavar="NAMES",
        help="comma-separated categories to score, e.g. head,sperm "
        "(default: those the predictions contain)",
    )
    p.add_argument(
        "--category-map",
        action="append",
        metavar="MAP",
        help="map the files' category names onto sperm/head/tail, e.g. "
        "'Nucleus=head Flagellum,Midpiece=tail' (repeatable; applied to both files)",
    )
    p.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="drop annotations of categories that are not sperm/head/tail and not mapped, "
        "instead of stopping",
    )
    p.add_argument(
        "--per-image",
        metavar="OUT.csv",
        help="write a per-image table (counts, centre recall/precision, mask IoU) as CSV",
    )
    p.add_argument(
        "--no-segm", action="store_true", help="do not score masks even when both files have them"
    )
    p.add_argument(
        "--iou-threshold",
        type=float,
        default=0.1,
        metavar="T",
        help="smallest mask IoU of a matched pair for the matched-instance IoU "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--mask-score-threshold",
        type=float,
        default=0.0,
        metavar="S",
        help="leave masks scoring below S out of the matched-instance IoU; mask AP uses all "
        "(default: %(default)s)",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "segment",
        help="detect, segment heads and tails, split tails (Con2Dis); write COCO masks",
        description="Detect sperm in image files or folders, outline every head, find the tails "
        "(classic engine: tail network or ridge filter; or the SAM cascade with a checkpoint), split crossing tails and pair "
        "them with heads (Con2Dis), and write COCO with RLE masks for sperm (1), head (2) and tail "
        "(3), every part linked to its cell by attributes.sperm_id.",
    )
    _add_detector_options(p, 0.3, "segment heads scoring at least T (default: %(default)s)")
    p.add_argument(
        "--weak-score-threshold",
        type=_weak_threshold,
        default=0.1,  # segmentation.params.WEAK_SCORE_THRESHOLD (not imported: scipy, skimage)
        metavar="W",
        help="also detect heads scoring from W up to T and keep one only when a tail that no "
        "other head took leads to it; 'off' keeps only heads at T (default: %(default)s)",
    )
    p.add_argument(
        "--engine",
        choices=["classic", "sam"],
        default="classic",
        help="classic needs no weights; sam needs a checkpoint and falls back to classic "
        "with a warning when none is found (default: %(default)s)",
    )
    p.add_argument(
        "--sam-checkpoint",
        metavar="PATH",
        default=None,
        help="SAM checkpoint file (default: $NAPARI_SPERM_SAM_CHECKPOINT, then the cache folder)",
    )
    p.add_argument(
        "--sam-model",
        choices=["vit_b", "vit_l", "vit_h", "mobile_sam"],
        default="vit_b",
        help="SAM model type of the checkpoint (default: %(default)s)",
    )
    p.add_argument(
        "--tail-finder",
        choices=["net", "ridge"],
        default="net",
        help="how the classic engine finds tail pixels: net, the small tail network shipped with "
        "the package (CPU is fine), or ridge, an oriented ridge filter with no network "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--tail-weights",
        metavar="PATH",
        default=None,
        help="other tail-network weights for --tail-finder net (default: the shipped ones)",
    )
    _add_tail_flips_option(p)
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser(
        "batch",
        help="detect (and segment) many files in parallel on dask.distributed, with resume",
        description="Run detect or detect+segment on many image files or folders in parallel: one "
        "task per input on a local cluster of --workers processes (default) or on a running dask "
        "scheduler (--scheduler tcp://host:8786). Writes OUT_DIR/<name>.segmentation.json (or "
        ".detections.json) per input and OUT_DIR/merged.<...>.json with all of them (ids "
        "renumbered). Inputs already done are skipped unless --force; a failing input is reported "
        "and the others go on (exit status 1 if any failed).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of frames")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument(
        "--steps",
        default="detect,segment",
        metavar="STEPS",
        help="detect, or detect,segment (default: %(default)s)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask scheduler, or 'serial' for no dask "
        "(default: start a local cluster)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="worker processes of the local cluster; 0 runs serially (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        metavar="T",
        help="keep and segment detections scoring at least T (default: %(default)s)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="detector weights (default: the shipped model)",
    )
    p.add_argument(
        "--chunk-frames",
        type=int,
        default=16,
        metavar="K",
        help="frames of a stack held in memory at a time (default: %(default)s)",
    )
    _add_flips_option(p)
    _add_tail_flips_option(p)
    _add_refine_boxes_option(p, " with --steps detect")
    p.add_argument("--force", action="store_true", help="redo inputs that already have an output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "export",
        help="package COCO annotations with their images as one self-contained COCO dataset",
        description="Read COCO files (napari-sperm detections, segmentations, ground truth, earlier "
        "exports, or any COCO set whose category names are sperm/head/tail) and the images they "
        "name, and write OUT/images/<stack>_<frame>.tif (one file per annotated frame) plus "
        "OUT/annotations.json: fixed categories, masks as compressed RLE, bbox and area from the "
        "mask, attributes sperm_id/score/reviewed. Several inputs go into one file without id "
        "collisions. Malformed files stop with a list of every problem before anything is written.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN.json", help="COCO JSON file(s)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="export folder")
    p.add_argument(
        "--force", action="store_true", help="replace an existing OUT_DIR/annotations.json"
    )
    p.add_argument(
        "--include-empty", action="store_true", help="also export frames with no annotation"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_export)

    from .convert.cli import add_convert_parser

    add_convert_parser(sub)

    p = sub.add_parser(
        "tails",
        help="split merged or crossing tails and pair them with heads (Con2Dis)",
        description="Read a tail mask (TIFF; 2-D or a stack; every label > 0 is a tail pixel), "
        "split it into single tails by connectivity, conformity and distance (Con2Dis), pair each "
        "tail with a head from --heads, and write a label TIFF in which a paired tail carries its "
        "head's id (the sperm id) and an unpaired one a fresh id above every head id.",
    )
    p.add_argument("tails", metavar="TAILS.tif", help="tail mask or label image (TIFF)")
    p.add_argument(
        "--heads", metavar="HEADS.tif", help="head label image of the same size (ids = sperm ids)"
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="tail labels to write")
    p.add_argument(
        "--json",
        metavar="OUT.json",
        help="also write every tail's centreline (x, y), its head and the merge decisions",
    )
    p.add_argument(
        "--tail-width",
        type=float,
        default=None,
        metavar="PX",
        help="tail width in pixels; thresholds scale with it (default: estimated from the mask)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_tails)

    p = sub.add_parser(
        "info",
        help="describe image files or folders as napari-sperm reads them",
        description="Print shape, axes, data type, pixel size and whether the data opens lazily.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="TIFF/OME-TIFF/PNG/JPEG file or folder of frames"
    )
    p.set_defaults(func=_cmd_info)

    from .training.cli import add_train_parser

    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-sperm`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("napari-sperm: interrupted", file=sys.stderr)
        return 130
    except (SpermInputError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"napari-sperm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback wall
        if args.debug:
            raise
        print(
            f"napari-sperm {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for details and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
