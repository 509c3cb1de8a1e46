"""`napari-sperm batch`: many inputs on dask.distributed, resume, failures, dead workers, CLI."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import distributed
import pytest

from napari_sperm.batch import run_batch
from napari_sperm.batch.jobs import plan_jobs
from napari_sperm.batch.merge import append_dataset
from napari_sperm.cli import main
from napari_sperm.io import SpermInputError


def _load(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _content(path) -> tuple[list, list]:
    ds = _load(path)
    return ds["images"], ds["annotations"]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> list[str]:
    from napari_sperm.synthetic.dataset import write_dataset

    root = tmp_path_factory.mktemp("batch-data")
    write_dataset(root, "phase-high", n_images=3, frames=2, seed=21)
    files = sorted(str(p) for p in (root / "images").glob("*.tif"))
    assert len(files) == 3
    return files


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corrupt") / "x.tif"
    path.write_bytes(b"this is not a TIFF file at all" * 10)
    return str(path)


@pytest.fixture(scope="module")
def client():
    """One 2-worker local cluster shared by every distributed test in this module."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def serial_out(stacks, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    report = run_batch(stacks, out, scheduler="serial")
    assert [r.status for r in report.records] == ["done"] * 3
    return out


def test_names_are_safe_and_collisions_get_a_hash(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x y.ome.tif").write_bytes(b"")
    (tmp_path / "merged.png").write_bytes(b"")
    jobs = plan_jobs(
        [tmp_path / "a" / "x y.ome.tif", tmp_path / "b" / "x y.ome.tif", tmp_path / "merged.png"],
        tmp_path / "out",
        "detect",
    )
    names = [j.name for j in jobs]
    assert names[0].startswith("x_y-") and names[1].startswith("x_y-") and names[0] != names[1]
    assert names[2].startswith("merged-")
    assert jobs[0].output.endswith(".detections.json")


def test_bad_arguments_raise_one_line(tmp_path, stacks):
    with pytest.raises(SpermInputError, match="unknown batch step 'track'"):
        run_batch(stacks, tmp_path, steps="detect,track", scheduler="serial")
    with pytest.raises(SpermInputError, match="no input images"):
        run_batch([], tmp_path, scheduler="serial")
    with pytest.raises(SpermInputError, match="does not exist"):
        run_batch([tmp_path / "missing.tif"], tmp_path, scheduler="serial")


def test_append_dataset_renumbers_without_collisions():
    a = {"images": [{"id": 1, "file_name": "a"}], "annotations": [{"id": 1, "image_id": 1}]}
    b = {
        "images": [{"id": 7, "file_name": "b", "frame": 0}, {"id": 9, "file_name": "b"}],
        "annotations": [{"id": 3, "image_id": 9}, {"id": 4, "image_id": 7}],
    }
    append_dataset(a, b)
    assert [(im["id"], im["file_name"]) for im in a["images"]] == [(1, "a"), (2, "b"), (3, "b")]
    assert [(x["id"], x["image_id"]) for x in a["annotations"]] == [(1, 1), (2, 3), (3, 2)]


def test_distributed_run_equals_serial_run(stacks, serial_out, client, tmp_path):
    report = run_batch(stacks, tmp_path, scheduler=client)
    assert report.ok and [r.status for r in report.records] == ["done"] * 3
    assert len({r.worker for r in report.records}) >= 1
    for rec in report.records:
        name = Path(rec.output).name
        assert _content(tmp_path / name) == _content(serial_out / name)
        info = _load(tmp_path / name)["info"]
        assert info["batch_input"] == str(Path(rec.input).resolve())
        assert rec.frames == 2 and rec.heads > 0
    merged = _load(report.merged)
    assert [im["id"] for im in merged["images"]] == list(range(1, 7))
    assert [a["id"] for a in merged["annotations"]] == list(
        range(1, len(merged["annotations"]) + 1)
    )
    assert [im["file_name"] for im in merged["images"]] == [s for s in stacks for _ in range(2)]
    assert sum(r.heads for r in report.records) == sum(
        a["category_id"] == 2 for a in merged["annotations"]
    )
    assert _load(serial_out / "merged.segmentation.json")["annotations"] == merged["annotations"]


def test_chunked_output_equals_whole_stack_functions(stacks, serial_out, tmp_path):
    import torch

    from napari_sperm.batch.worker import get_detector
    from napari_sperm.detection.files import detect_files
    from napari_sperm.segmentation.files import segment_files

    report = run_batch(
        stacks[:1], tmp_path / "seg1", scheduler="serial", chunk_frames=1, force=True
    )
    name = Path(report.records[0].output).name
    assert _content(tmp_path / "seg1" / name) == _content(serial_out / name)
    det1 = run_batch(stacks[:1], tmp_path / "det1", steps="detect", workers=0, chunk_frames=1)
    assert det1.records[0].output.endswith(".detections.json")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the batch, so floating-point sums agree exactly
    try:
        detector = get_detector(None, "auto")
        ref_det = detect_files(stacks[:1], detector, score_threshold=0.3)
        ref_seg = segment_files(stacks[:1], detector, engine="classic", score_threshold=0.3)
    finally:
        torch.set_num_threads(before)
    ds = _load(det1.records[0].output)
    assert (ds["images"], ds["annotations"]) == (ref_det["images"], ref_det["annotations"])
    assert ds["info"]["device"] == ref_det["info"]["device"]
    assert _content(serial_out / name) == (ref_seg["images"], ref_seg["annotations"])


def test_corrupt_input_fails_alone(stacks, corrupt, client, tmp_path):
    report = run_batch([stacks[0], corrupt, stacks[1]], tmp_path, scheduler=client)
    status = {r.input: r for r in report.records}
    assert status[corrupt].status == "failed" and not report.ok
    assert "x.tif" in status[corrupt].error and "\n" not in status[corrupt].error
    assert not Path(status[corrupt].output).exists()
    for s in stacks[:2]:
        assert status[s].status == "done" and Path(status[s].output).is_file()
    merged = _load(report.merged)
    assert {im["file_name"] for im in merged["images"]} == set(stacks[:2])


def test_rerun_skips_finished_inputs_and_force_redoes_them(stacks, serial_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(serial_out, out, copy_function=shutil.copy2)
    outputs = sorted(out.glob("*.segmentation.json"))
    outputs = [p for p in outputs if not p.name.startswith("merged.")]
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs}
    seen = []
    report = run_batch(
        stacks, out, scheduler="serial", progress=lambda rec, done, total: seen.append(done)
    )
    assert [r.status for r in report.records] == ["skipped"] * 3 and seen == [1, 2, 3]
    assert all(r.frames == 2 and r.heads > 0 for r in report.records)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs} == stamps
    assert (out / "merged.segmentation.json").is_file()
    # other settings: not the same work, so it is redone
    other = run_batch(stacks[:1], out, scheduler="serial", score_threshold=0.5)
    assert other.records[0].status == "done"
    forced = run_batch(stacks[1:], out, scheduler="serial", force=True)
    assert [r.status for r in forced.records] == ["done"] * 2
    for p in outputs[1:]:
        assert p.stat().st_mtime_ns != stamps[p][0]
        assert _content(p) == _content(serial_out / p.name)


def test_cli_batch(stacks, corrupt, client, tmp_path, capsys):
    address = client.scheduler.address
    out = tmp_path / "cli"
    assert main(["batch", *stacks[:2], "-o", str(out), "--scheduler", address]) == 0
    captured = capsys.readouterr()
    assert "status" in captured.out and "sperm" in captured.out and "2 done" in captured.out
    assert "[batch] 2/2" in captured.err
    assert (out / "merged.segmentation.json").is_file()
    code = main(["batch", stacks[0], corrupt, "-o", str(out), "--scheduler", address, "-q"])
    captured = capsys.readouterr()
    assert code == 1 and "skipped" in captured.out and "failed: " in captured.out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no" in err
    assert main(["batch", stacks[0], "-o", str(out), "--steps", "nope"]) == 2
    assert "unknown batch step" in capsys.readouterr().err


def test_batch_survives_a_worker_dying_mid_task(stacks, client, tmp_path):
    marker = tmp_path / "died-once"
    report = run_batch(
        stacks, tmp_path / "out", scheduler=client, _die_once_marker=marker, force=True
    )
    assert marker.exists()  # a worker really did kill itself
    assert [r.status for r in report.records] == ["done"] * 3, report.records
    for rec in report.records:
        assert Path(rec.output).is_file()


def test_stream_writes_what_append_dataset_builds(tmp_path):
    from napari_sperm.batch.stream import CocoStream
    from napari_sperm.coco import new_dataset

    parts = []
    for k in range(3):
        part = new_dataset("part")
        part["images"] = [{"id": 1, "file_name": "s.tif", "frame": k, "width": 4, "height": 3}]
        part["annotations"] = [
            {"id": j + 1, "image_id": 1, "category_id": 2 + j % 2, "bbox": [0, 0, 1, 1]}
            for j in range(k + 1)
        ]
        parts.append(part)
    header = new_dataset("whole")
    expected = json.loads(json.dumps(header))
    stream = CocoStream(tmp_path / "out.json", header)
    for part in parts:
        append_dataset(expected, part)
        stream.add(part)
    assert stream.n_heads == 4
    stream.finish()
    assert json.loads((tmp_path / "out.json").read_text()) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    aborted = CocoStream(tmp_path / "never.json", header)
    aborted.add(parts[0])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_flips_are_settings_passed_recorded_and_checked(stacks, serial_out, tmp_path, capsys):
    import torch

    from napari_sperm.batch.worker import get_detector
    from napari_sperm.cli import build_parser
    from napari_sperm.segmentation.files import segment_files

    out = tmp_path / "one-pass"
    shutil.copytree(serial_out, out, copy_function=shutil.copy2)  # made with the defaults
    report = run_batch(stacks[:1], out, scheduler="serial", flips=1, tail_flips=1)
    assert report.records[0].status == "done"  # other settings: redone, not skipped
    ds = _load(report.records[0].output)
    assert ds["info"]["detector_flips"] == 1 and ds["info"]["tail_flips"] == 1
    assert ds["info"]["batch_settings"]["flips"] == 1
    name = Path(report.records[0].output).name
    assert _content(out / name) != _content(serial_out / name)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = segment_files(
            stacks[:1], get_detector(None, "auto", 1), score_threshold=0.3, tail_flips=1
        )
    finally:
        torch.set_num_threads(before)
    assert _content(out / name) == (ref["images"], ref["annotations"])
    again = run_batch(stacks[:1], out, scheduler="serial", flips=1, tail_flips=1)
    assert again.records[0].status == "skipped"
    with pytest.raises(SpermInputError, match="--tail-flips"):
        run_batch(stacks[:1], out, scheduler="serial", tail_flips=3)
    from napari_sperm.batch.jobs import Settings
    from napari_sperm.detection.detector import DEFAULT_FLIPS
    from napari_sperm.segmentation.tailnet.infer import DEFAULT_FLIPS as DEFAULT_TAIL_FLIPS

    # the literal defaults (kept out of torch-free modules) agree with the networks' own
    defaults = (DEFAULT_FLIPS, DEFAULT_TAIL_FLIPS)
    assert (Settings().flips, Settings().tail_flips) == defaults == (2, 4)
    parse = build_parser().parse_args
    args = parse(["batch", "in.tif", "-o", "out"])
    assert (args.flips, args.tail_flips) == defaults
    with pytest.raises(SystemExit) as exc:
        main(["batch", stacks[0], "-o", str(out), "--flips", "3"])
    assert exc.value.code == 2 and "--flips" in capsys.readouterr().err


def test_refine_boxes_detect_step_equals_detect_and_resumes(stacks, tmp_path):
    import torch

    from napari_sperm.batch.worker import get_detector
    from napari_sperm.cli import build_parser
    from napari_sperm.detection.files import detect_files

    out = tmp_path / "tight"
    plain = run_batch(stacks[:1], out, steps="detect", workers=0, refine_boxes=False)
    assert _load(plain.records[0].output)["info"]["batch_settings"]["refine_boxes"] is False
    tight = run_batch(stacks[:1], out, steps="detect", workers=0)  # fitted boxes: the default
    assert tight.records[0].status == "done"  # other settings: redone, not skipped
    ds = _load(tight.records[0].output)
    assert ds["info"]["refine_boxes"] is True
    assert ds["info"]["batch_settings"]["refine_boxes"] is True
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = detect_files(stacks[:1], get_detector(None, "auto", 2, True), score_threshold=0.3)
    finally:
        torch.set_num_threads(before)
    assert (ds["images"], ds["annotations"]) == (ref["images"], ref["annotations"])
    assert plain.records[0].status == "done"
    again = run_batch(stacks[:1], out, steps="detect", workers=0, refine_boxes=True)
    assert again.records[0].status == "skipped"
    with pytest.raises(SpermInputError, match="--refine-boxes"):
        run_batch(stacks[:1], tmp_path / "seg", scheduler="serial", refine_boxes=True)
    args = build_parser().parse_args(["batch", "in.tif", "-o", "o", "--refine-boxes"])
    assert args.refine_boxes is True
    args = build_parser().parse_args(["batch", "in.tif", "-o", "o", "--no-refine-boxes"])
    assert args.refine_boxes is False
    assert build_parser().parse_args(["batch", "in.tif", "-o", "o"]).refine_boxes is None
