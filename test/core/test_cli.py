"""radseg-map / radseg-query / radseg-eval end to end on tiny synthetic inputs with random-tiny weights.

The random model's labels and scores mean nothing; these tests check that every tool runs, writes what
it promises with consistent sizes, and fails cleanly (exit 2, one line) on bad input. The metric path
itself is checked with maps whose labels are known (ground truth → mIoU 1; permuted → lower).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from radseg_core.cli import eval as eval_cli
from radseg_core.cli import map as map_cli
from radseg_core.cli import query as query_cli
from radseg_core.datasets import SyntheticRoom, write_folder
from radseg_core.map_io import load_map, save_map
from radseg_core.voxel_map import VoxelMap

o3d = pytest.importorskip("open3d")

TINY = ["--model", "random-tiny", "--device", "cpu", "--max-frames", "2", "--stride", "12", "--resize", "96",
        "--voxel-size", "0.1", "--no-progress"]


def _png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} is not a readable PNG"
    return img


def _ply_points(path: Path) -> int:
    return len(o3d.t.io.read_point_cloud(str(path)).point.positions)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("map")
    assert map_cli.main(["synthetic-room", "-o", str(out), "--save-every", "1", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def gt_room():
    room = SyntheticRoom(max_frames=2, stride=12)
    pts, labels = room.gt_points()
    return room, pts, labels


def _gt_map(path: Path, pts, labels, classes, permute: np.ndarray | None = None,
            grid: str = "round") -> Path:
    """A probabilities map holding the ground truth itself (one voxel per gt point)."""
    lab = labels.astype(np.int64) - 1
    if permute is not None:
        lab = permute[lab]
    keep = lab >= 0
    vmap = VoxelMap(voxel_size=0.01, mode="probabilities", dim=len(classes), dtype=torch.float32, grid=grid)
    onehot = np.eye(len(classes), dtype=np.float32)[lab[keep]]
    vmap.integrate_points(torch.from_numpy(pts[keep]).float(), torch.from_numpy(onehot))
    vmap.metadata.update(model="random-tiny", classes=list(classes))
    save_map(vmap, path)
    return path


# ------------------------------------------------------------------------------------------- help, errors
@pytest.mark.parametrize("tool", [map_cli, query_cli, eval_cli])
def test_help_exits_zero_with_examples(tool, capsys):
    assert tool.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and tool.PROG in out


@pytest.mark.parametrize("argv, message", [
    (["/no/such/recording.mcap", "-o", "{tmp}"], "does not exist"),
    (["synthetic-room", "-o", "{tmp}", "--model", "no-such-model", "--max-frames", "1"], "unknown model"),
    (["synthetic-room", "-o", "{tmp}", "--classes", " , "], "--classes is empty"),
    (["synthetic-room", "-o", "{tmp}", "--stride", "0"], "positive integer"),
    (["synthetic-room", "-o", "{tmp}", "--max-hits", "-1"], "number >= 0"),
    (["synthetic-room", "-o", "{tmp}", "--max-hits", "nan"], "number >= 0"),
    (["{tmp}", "-o", "{tmp}/out"], "cannot tell what"),
])
def test_map_bad_input_exits_2_without_traceback(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert map_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_map_hit_cap_defaults_to_the_nodes_and_zero_means_exact_averages():
    """Issue #17: radseg-map follows a replaced object as the node does (max_hits 1000); 0 = no cap."""
    from radseg_core.defaults import DEFAULT_MAX_HITS
    from radseg_ros.params import SPECS

    parser = map_cli.build_parser()
    default = map_cli.config_from_args(parser.parse_args(["sample"]), ["floor"])
    assert default.max_hits == DEFAULT_MAX_HITS == SPECS["max_hits"].default == 1000
    assert map_cli.config_from_args(parser.parse_args(["sample", "--max-hits", "0"]), ["floor"]).max_hits is None
    assert map_cli.config_from_args(parser.parse_args(["sample", "--max-hits", "300"]), ["floor"]).max_hits == 300


def test_query_bad_input_exits_2(tmp_path, capsys):
    assert query_cli.main([str(tmp_path / "missing.rsmap"), "chair"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.rsmap"
    bad.write_bytes(b"not a map")
    assert query_cli.main([str(bad), "chair"]) == 2
    err = capsys.readouterr().err
    assert "radseg-query: error:" in err and "Traceback" not in err


def test_eval_unlabelled_input_exits_2(tmp_path, capsys):
    room = SyntheticRoom(n_frames=2, hw=(48, 64))
    folder = write_folder(list(room), tmp_path / "tum")  # no labels written
    assert eval_cli.main([str(folder), "-o", str(tmp_path / "ev"), *TINY]) == 2
    assert "radseg-eval: error:" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- radseg-map
def test_map_writes_everything(mapped):
    summary = json.loads((mapped / "summary.json").read_text())
    for key in ("frames", "voxels", "bytes", "file_bytes", "seconds_per_stage_mean", "classes", "model"):
        assert key in summary
    assert summary["frames"] == 2 and summary["voxels"] > 100 and summary["bytes"] > 0
    assert summary["random_weights"] is True
    assert set(summary["seconds_per_stage_mean"]) >= {"encoder", "integration"}
    vmap = load_map(mapped / "map.rsmap")
    assert len(vmap) == summary["voxels"] and vmap.metadata["model"] == "random-tiny"
    assert _ply_points(mapped / "map.ply") == len(vmap)
    labels_pc = o3d.t.io.read_point_cloud(str(mapped / "map_labels.ply"))
    assert len(labels_pc.point.positions) == len(vmap)
    lab = labels_pc.point.label.numpy().ravel()
    assert lab.min() >= 0 and lab.max() <= len(summary["classes"])
    segs = sorted((mapped / "segmentation").glob("*.png"))
    assert [p.name for p in segs] == ["000000.png", "000001.png"]
    assert _png(segs[0]).shape == (96, 256, 3)  # 96x128 frame: image | labels
    top = _png(mapped / "map_topdown.png")
    assert top.shape[1] == 2 * 640 and top.shape[0] > 100 and top.std() > 5


def test_map_folder_input_probabilities_mode(tmp_path):
    room = SyntheticRoom(n_frames=2, hw=(48, 64))
    folder = write_folder(list(room), tmp_path / "tum")
    out = tmp_path / "out"
    argv = [str(folder), "-o", str(out), "--mode", "probabilities", "--classes", "floor,wall,bed",
            "--no-segmentation", *TINY[:4], "--voxel-size", "0.1", "--no-progress"]
    assert map_cli.main(argv) == 0
    vmap = load_map(out / "map.rsmap")
    assert vmap.mode == "probabilities" and vmap.dim == 3
    assert vmap.metadata["classes"] == ["floor", "wall", "bed"]
    assert not (out / "segmentation").exists()
    assert _ply_points(out / "map_labels.ply") == len(vmap) > 0


# ------------------------------------------------------------------------------------------- radseg-query
def test_query_prints_candidates_and_writes_files(mapped, tmp_path, capsys):
    out = tmp_path / "q"
    assert query_cli.main([str(mapped / "map.rsmap"), "chair", "red bed", "-o", str(out), "--top-k", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "query.json").read_text())
    vmap = load_map(mapped / "map.rsmap")
    centres = vmap.centers().numpy()
    lo, hi = centres.min(0) - vmap.voxel_size, centres.max(0) + vmap.voxel_size
    assert [q["query"] for q in report["queries"]] == ["chair", "red bed"]
    for q in report["queries"]:
        assert 1 <= len(q["candidates"]) <= 3
        for c in q["candidates"]:
            assert set(c) == {"query", "score", "centroid", "extent", "voxels"}
            assert 0.0 <= c["score"] <= 1.0 and c["voxels"] >= 1
            assert np.all(np.asarray(c["centroid"]) >= lo) and np.all(np.asarray(c["centroid"]) <= hi)
        scores = [c["score"] for c in q["candidates"]]
        assert scores == sorted(scores, reverse=True)
    for i in range(2):
        pc = o3d.t.io.read_point_cloud(str(out / f"query_{i}.ply"))
        assert len(pc.point.positions) == len(vmap)
        s = pc.point.score.numpy()
        assert s.min() >= 0.0 and s.max() <= 1.0
    img = _png(out / "query.png")
    assert img.shape[1] == 800 and img.shape[0] > 100


def test_query_probabilities_map_rejects_unknown_class(gt_room, tmp_path, capsys):
    room, pts, labels = gt_room
    path = _gt_map(tmp_path / "gt.rsmap", pts, labels, room.classes)
    assert query_cli.main([str(path), "bed", "--top-k", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    best = report["queries"][0]["candidates"][0]
    assert best["score"] == pytest.approx(1.0)  # one-hot ground truth: a bed voxel scores 1
    assert query_cli.main([str(path), "spaceship"]) == 2
    assert "not classes of this map" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- radseg-eval
def test_eval_runs_pipeline_and_reports(tmp_path, capsys):
    out = tmp_path / "ev"
    assert eval_cli.main(["synthetic-room", "-o", str(out), *TINY]) == 0
    stdout = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in stdout and "mIoU" in stdout and "2D (2 frames)" in stdout
    report = json.loads((out / "eval.json").read_text())
    assert report["random_weights"] is True and report["frames"] == 2 and report["voxels"] > 0
    for key in ("miou_3d", "miou_2d"):
        m = report[key]
        assert 0.0 <= m["miou"] <= 1.0 and 0.0 <= m["fmiou"] <= 1.0 and 0.0 <= m["acc"] <= 1.0
        assert set(m["iou"]) <= set(report["classes"])
    assert (out / "map.rsmap").is_file()


def test_eval_ground_truth_map_scores_one_and_permuted_lower(gt_room, tmp_path, capsys):
    room, pts, labels = gt_room
    K = len(room.classes)
    exact = _gt_map(tmp_path / "gt.rsmap", pts, labels, room.classes)
    # k = 1 on the raw points (not the default k = 5 vote over voxelised gt, which blurs class borders)
    assert eval_cli.main(["synthetic-room", "--max-frames", "2", "--stride", "12", "--map", str(exact),
                          "-o", str(tmp_path / "a"), "--no-progress", "--k", "1", "--no-voxelize-gt"]) == 0
    a = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert a["miou_3d"]["miou"] == pytest.approx(1.0)
    assert a["miou_3d"]["fmiou"] == pytest.approx(1.0) and a["miou_3d"]["acc"] == pytest.approx(1.0)
    assert a["miou_2d"] is None and "not computed" in capsys.readouterr().out
    perm = np.roll(np.arange(K), 1)  # every class renamed to its neighbour
    wrong = _gt_map(tmp_path / "perm.rsmap", pts, labels, room.classes, permute=perm)
    assert eval_cli.main(["synthetic-room", "--max-frames", "2", "--stride", "12", "--map", str(wrong),
                          "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    b = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert b["miou_3d"]["miou"] < 0.2 and b["miou_3d"]["acc"] == pytest.approx(0.0)
    # Class names are matched by name: the same map with its classes listed in another order still scores 1.
    names = list(reversed(room.classes))
    relabel = np.array([names.index(c) for c in room.classes])
    _gt_map(tmp_path / "shuffled.rsmap", pts, labels, names, permute=relabel)
    assert eval_cli.main(["synthetic-room", "--max-frames", "2", "--stride", "12", "--map",
                          str(tmp_path / "shuffled.rsmap"), "-o", str(tmp_path / "c"), "--no-progress",
                          "--k", "1", "--no-voxelize-gt"]) == 0
    c = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert c["miou_3d"]["miou"] == pytest.approx(1.0)
    # A map binned on the other lattice is refused instead of scored half a voxel off.
    floor_map = _gt_map(tmp_path / "floor.rsmap", pts, labels, room.classes, grid="floor")
    assert eval_cli.main(["synthetic-room", "--max-frames", "2", "--stride", "12", "--map", str(floor_map),
                          "-o", str(tmp_path / "d"), "--no-progress"]) == 2
    assert "--grid floor" in capsys.readouterr().err
