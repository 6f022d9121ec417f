"""Benchmark presets end to end on tiny folders laid out like Replica (NICE-SLAM) and ScanNet, plus the
readers' label mappings and the ground-truth lifting, checked by hand. The model is random-tiny: the
numbers only show the pipeline runs and must be labelled as random weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from official_reference import preprocess_image_size

from radseg_core.cli import eval as eval_cli
from radseg_core.datasets import ReplicaDataset, ScanNetDataset
from radseg_core.eval import LabelVoxelizer
from radseg_core.eval_bench import PRESETS_2D, RADSEG_3D

MODEL = ["--model", "random-tiny", "--device", "cpu", "--no-progress"]
H, W = 24, 40
K = np.array([[20.0, 0, W / 2 - 0.5], [0, 20.0, H / 2 - 0.5], [0, 0, 1]])


def _replica(root: Path, n: int = 12) -> Path:
    scene = root / "office0"
    (scene / "results").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(scene / "results" / f"frame{i:06d}.jpg"), rng.integers(0, 255, (H, W, 3), np.uint8))
        cv2.imwrite(str(scene / "results" / f"depth{i:06d}.png"), np.full((H, W), 6554, np.uint16))  # ~1 m
    np.savetxt(scene / "traj.txt", np.tile(np.eye(4).ravel(), (n, 1)))
    info = root / "semantic_info" / "office_0"
    info.mkdir(parents=True)
    classes = [{"id": 0, "name": "undefined"}, {"id": 3, "name": "wall"}, {"id": 7, "name": "chair"},
               {"id": 12, "name": "ceiling"}]
    (info / "info_semantic.json").write_text(json.dumps({"classes": classes}))
    x, y = np.meshgrid(np.linspace(-0.9, 0.9, 19), np.linspace(-0.5, 0.5, 11))
    xyz = np.column_stack([x.ravel(), y.ravel(), np.ones(x.size)])
    ids = np.where(xyz[:, 0] < 0, 3, 7)
    ids[:3] = -1  # unlabelled
    np.savez(scene / "semseg_gt.npz", semseg_gt_xyz=xyz, semseg_gt_label=ids)
    return scene


def test_replica_reader_classes_and_gt(tmp_path):
    scene = _replica(tmp_path)
    ds = ReplicaDataset(scene, stride=11)
    assert ds.classes == ["wall", "chair", "ceiling"]  # sorted by Replica id, id 0 dropped
    assert len(ds) == 2  # frames 0 and 11: frame skip 10 = consume one, drop ten
    xyz, lab = ds.gt_points()
    assert xyz.shape == (209, 3)
    assert set(lab[:3]) == {0} and set(lab[3:]) == {1, 2}  # id 3 -> 1 (wall), 7 -> 2 (chair), -1 -> 0
    assert (lab[3:][xyz[3:, 0] < 0] == 1).all()


def test_replica_without_labels_says_what_is_missing(tmp_path):
    scene = _replica(tmp_path)
    (scene / "semseg_gt.npz").unlink()
    with pytest.raises(NotImplementedError, match="semseg_gt.npz"):
        ReplicaDataset(scene).gt_points()


def test_replica_preset_end_to_end(tmp_path, capsys, monkeypatch):
    root = tmp_path / "Replica"
    _replica(root)
    out = tmp_path / "out"
    from radseg_core.cli import common

    configs = []
    real = common.build_mapper
    monkeypatch.setattr(common, "build_mapper", lambda cfg: configs.append(cfg) or real(cfg))
    rc = eval_cli.main(["replica", str(root), "--preset", "radseg-3d", "--input-size", "32x48", "-o", str(out),
                        "--ignore", "ceiling", *MODEL])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in stdout and "office0" in stdout and "mean" in stdout
    assert "paper" not in stdout  # the paper's numbers are never printed next to random weights
    rep = json.loads((out / "eval.json").read_text())
    assert rep["random_weights"] is True and "nothing about quality" in rep["note"]
    p = rep["preset"]
    assert (p["voxel_size"], p["frame_skip"], p["k"], p["grid"], p["prediction_threshold"]) == (
        0.05, 10, 5, "round", 0.1)
    assert (p["crop"], p["window_stride"], p["rgb_hw"], p["depth_hw"]) == (336, 112, [32, 48], [32, 48])
    assert (p["input_sizing"], p["storage_dtype"], p["min_depth"], p["max_depth"]) == ("official", "float32", 0.0,
                                                                                       "inf")
    assert rep["dtype"] == "float32" and rep["encoder_input_hw"] == [336, 336]  # 32x48 -> 112-multiples, >= crop
    assert rep["ignore"] == ["ceiling"]
    modes = [(s["scene"], s["mode"], s["frames"]) for s in rep["scenes"]]
    assert modes == [("office0", "features", 2), ("office0", "probabilities", 2)]
    for s in rep["scenes"]:
        assert s["voxels"] > 0 and s["gt_voxels"] > 0
        assert "ceiling" not in s["iou"] and 0.0 <= s["miou"] <= 1.0
    assert set(rep["mean"]) == {"features", "probabilities"}
    # what the mapper was built with: the preset, and only the kept classes are queried
    assert [c.mode for c in configs] == ["features", "probabilities"]
    for c in configs:
        assert (c.crop, c.stride, c.prediction_threshold, c.prompt_denoising, c.voxel_size) == (
            336, 112, 0.1, 0.5, 0.05)
        assert (c.input_sizing, c.storage_dtype, c.dtype, c.min_depth, c.max_depth, c.voxel_grid) == (
            "official", "float32", "float32", 0.0, float("inf"), "round")
        assert c.classes == ["wall", "chair"]


def _scannet(root: Path, n: int = 3) -> Path:
    scene = root / "scene0011_00"
    for d in ("color", "depth", "pose", "intrinsic", "label-filt"):
        (scene / d).mkdir(parents=True)
    Kh = np.eye(4)
    Kh[:3, :3] = K
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", Kh)
    np.savetxt(scene / "intrinsic" / "intrinsic_color.txt", Kh)
    lab = np.zeros((H, W), np.uint16)
    lab[:, : W // 2] = 1  # raw id 1 -> nyu40 1 wall
    lab[:, W // 2:] = 40  # raw id 40 -> nyu40 39 otherfurniture (ignored by the preset)
    lab[0, :] = 5  # raw id 5 -> nyu40 5 chair
    for i in range(n):
        cv2.imwrite(str(scene / "color" / f"{i}.jpg"), np.full((H, W, 3), 90 + i, np.uint8))
        cv2.imwrite(str(scene / "depth" / f"{i}.png"), np.full((H, W), 1000, np.uint16))  # 1 m
        np.savetxt(scene / "pose" / f"{i}.txt", np.eye(4))
        cv2.imwrite(str(scene / "label-filt" / f"{i}.png"), lab)
    rows = ["id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class",
            "1\twall\twall\t1\t1\t12\twall\twall", "5\tchair\tchair\t1\t5\t4\tchair\tchair",
            "40\tshelf\tshelf\t1\t39\t6\tshelves\totherfurniture",
            "41\tbox\tbox\t1\t40\t7\tbox\totherprop"]
    (root / "scannetv2-labels.combined.tsv").write_text("\n".join(rows) + "\n")
    return scene


def test_scannet_nyu40_mapping_and_lifted_gt(tmp_path):
    scene = _scannet(tmp_path)
    ds = ScanNetDataset(scene)
    assert ds.classes == ["wall", "chair", "otherfurniture", "otherprop"]  # by nyu40id 1, 5, 39, 40
    lab = ds.labels(0)
    assert lab[5, 0] == 1 and lab[0, 3] == 2 and lab[5, W - 1] == 3
    xyz, g = ds.gt_points(0.05)
    # all pixels at z = 1 m; x = (c - cx) / 20 spans [-0.975, 0.975]: 40 columns, 5 cm voxels
    assert np.allclose(xyz[:, 2], 1.0)
    left = xyz[:, 0] < -0.05
    right = xyz[:, 0] > 0.05
    assert (g[left & (xyz[:, 1] > -0.4)] == 1).all() and (g[right & (xyz[:, 1] > -0.4)] == 3).all()


def _compute_semseg_gt_reference(counts: np.ndarray, kept: list[int]) -> np.ndarray:
    """RayFronts semseg_eval.compute_semseg_gt on per-voxel label counts, restated: ids of ignored classes
    become index 0 (``_init_semseg_mappings`` black list), the voxel feature is the mean one-hot over K + 1
    indices, GTEncoder.encode_labels gives one-hot rows with eps = 1e-10 elsewhere, compute_cos_sim
    normalises both, softmax(100 cos) over the K classes, argmax + 1, 0 below 0.1 (prompt denoising 0)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    idx = torch.zeros(counts.shape[1], dtype=torch.long)
    idx[kept] = torch.arange(1, len(kept) + 1)
    feat = torch.zeros(len(counts), len(kept) + 1, dtype=torch.float64).index_add_(1, idx, counts)
    feat = (feat / feat.sum(1, keepdim=True)).float()
    text = torch.full((len(kept), len(kept) + 1), 1e-10)
    for i in range(len(kept)):
        text[i, i + 1] = 1
    cos = (feat / feat.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).T
    sim = torch.softmax(100 * cos, dim=-1)
    value, pred = sim.max(dim=-1)
    pred = pred + 1
    pred[value < 0.1] = 0
    return np.asarray([0, *kept])[pred.numpy()]


def test_label_voxelizer_follows_compute_semseg_gt():
    # one voxel per pixel: 1 m voxels, pixels 2 m apart; label counts accumulate over frames
    depth = np.ones((1, 4), np.float32)
    Ks = np.array([[0.5, 0, 1.5], [0, 0.5, 0], [0, 0, 1]])
    frames = [np.array([[0, 1, 2, 0]]), np.array([[0, 3, 2, 0]]), np.array([[0, 3, 1, 0]])]
    v = LabelVoxelizer(1.0)
    for lab in frames:
        v.add_frame(depth, Ks, np.eye(4), lab)
    keys, counts = v.counts()
    assert keys[:, 0].tolist() == [-3, -1, 1, 3] and counts.tolist() == [[3, 0, 0, 0], [0, 1, 0, 2], [0, 1, 2, 0],
                                                                          [3, 0, 0, 0]]
    xyz, lab = v.result(num_classes=3)
    # all-unlabelled voxels: uniform 1/3 over 3 classes >= 0.1, so upstream labels them class 1 (!)
    assert lab.tolist() == [1, 3, 2, 1] == _compute_semseg_gt_reference(counts, [1, 2, 3]).tolist()
    _, lab = v.result(num_classes=3, ignore_labels=[3])  # 3 not queried: its points count as unlabelled
    assert lab.tolist() == [1, 1, 2, 1] == _compute_semseg_gt_reference(counts, [1, 2]).tolist()
    # many classes (ScanNet: 37 queried): unlabelled voxels fall below 0.1; unlabelled points never win
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, (500, 41)) * (rng.random((500, 41)) < 0.15)
    counts[:, 0] += rng.integers(0, 12, 500)  # many unlabelled points: the majority in most voxels
    counts[counts.sum(1) == 0, 0] = 1
    ignore = [38, 39, 40]
    # one pixel per point, at depth j + 1 for voxel j (1 m voxels; x, y ~ 0 with a huge focal length)
    depth = (np.repeat(np.arange(500), counts.sum(1)) + 1).astype(np.float32)[None]
    labels = np.concatenate([np.repeat(np.arange(41), c) for c in counts])[None]
    v = LabelVoxelizer(1.0)
    v.add_frame(depth, np.array([[1e9, 0, 0], [0, 1e9, 0], [0, 0, 1]]), np.eye(4), labels)
    assert v.counts()[1].tolist() == counts.tolist()
    _, got = v.result(num_classes=40, ignore_labels=ignore)
    ref = _compute_semseg_gt_reference(counts, [c for c in range(1, 41) if c not in ignore])
    np.testing.assert_array_equal(got, ref)
    majority = counts.argmax(1)
    assert (got != majority).mean() > 0.3 and (got[counts[:, 1:].sum(1) == 0] == 0).all()
    with pytest.raises(ValueError, match="differ"):
        v.add_frame(depth, Ks, np.eye(4), np.zeros((3, 3), int))


def test_scannet_preset_ignores_other_classes_end_to_end(tmp_path, capsys):
    _scannet(tmp_path)
    out = tmp_path / "out"
    rc = eval_cli.main(["scannet", str(tmp_path), "--frame-skip", "0", "--modes", "probabilities",
                        "--input-size", "32x48", "-o", str(out), *MODEL])
    assert rc == 0
    rep = json.loads((out / "eval.json").read_text())
    assert set(rep["ignore"]) == {"otherfurniture", "otherprop"}  # A3: the three "other*" that exist here
    s = rep["scenes"][0]
    assert s["frames"] == 3 and s["mode"] == "probabilities"
    assert set(s["iou"]) <= {"wall", "chair"}
    assert "RANDOM WEIGHTS" in capsys.readouterr().out


def test_3d_presets_equal_the_official_configs():
    """RADSeg evaluation/3d/configs/{replica,scannet}_radseg.yaml + RayFronts semseg_eval / default.yaml."""
    r, s = RADSEG_3D["replica"], RADSEG_3D["scannet"]
    for p in (r, s):
        assert (p.voxel_size, p.frame_skip, p.crop, p.window_stride, p.k) == (0.05, 10, 336, 112, 5)
        assert (p.prediction_threshold, p.prompt_denoising, p.grid, p.chunk_size) == (0.1, 0.5, "round", 10000)
        assert (p.input_sizing, p.storage_dtype, p.min_depth, p.max_depth) == ("official", "float32", 0.0,
                                                                               float("inf"))
        assert p.modes == ("features", "probabilities")
    assert (r.rgb_hw, r.depth_hw, s.rgb_hw, s.depth_hw) == ((640, 1136), (640, 1136), (640, 864), (640, 864))
    assert r.ignore == () and s.ignore == ("otherprop", "otherstructure", "otherfurniture")
    assert r.scenes == ("office0", "office1", "office2", "office3", "office4", "room0", "room1", "room2")
    assert sorted(s.scenes) == sorted(["scene0050_00", "scene0231_01", "scene0378_02", "scene0050_01",
                                       "scene0231_02", "scene0518_00", "scene0011_00", "scene0050_02",
                                       "scene0378_00", "scene0011_01", "scene0231_00", "scene0378_01"])


@pytest.mark.parametrize(("kind", "encoder_hw"), [("replica", (784, 1232)), ("scannet", (672, 896))])
def test_3d_encoder_input_is_the_official_size(kind, encoder_hw):
    """RADSegEncoder._sliding_inference feeds _preprocess_image(img, 112, 336): 784x1232 / 672x896."""
    from radseg_core.encoder import build_encoder

    p = RADSEG_3D[kind]
    enc = build_encoder("random-tiny", crop=p.crop, stride=p.window_stride, input_sizing=p.input_sizing)
    assert enc.input_size(*p.rgb_hw) == encoder_hw
    assert enc.grid(*encoder_hw).num == {"replica": 45, "scannet": 24}[kind]


def test_frames_load_like_rayfronts():
    """RayFronts' loaders: rgb uint8/255 bilinear with antialias, depth nearest-exact, K rows scaled."""
    import torch.nn.functional as F

    from radseg_core.datasets.rayfronts import load_like_rayfronts

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (968, 1296, 3), np.uint8)  # ScanNet colour, resized straight to 640x864
    depth = (rng.integers(0, 4000, (480, 640)) / np.float32(1000)).astype(np.float32)
    K = np.array([[577.6, 0, 319.5], [0, 578.7, 239.5], [0, 0, 1]])
    T = np.eye(4)
    T[:3, 3] = [0.1, 0.2, 0.30000001]
    f = load_like_rayfronts(rgb, depth, K, T, 1.0, (640, 864), (640, 864))
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    ref = F.interpolate(x, size=(640, 864), mode="bilinear", antialias=True)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(f.rgb, ref)
    d = F.interpolate(torch.from_numpy(depth)[None, None], size=(640, 864), mode="nearest-exact")[0, 0].numpy()
    np.testing.assert_array_equal(f.depth, d)
    Kf = torch.tensor(K, dtype=torch.float32)
    Kf[0, :] *= 864 / 640
    Kf[1, :] *= 640 / 480
    np.testing.assert_array_equal(f.K, Kf.double().numpy())  # cx * s, not (cx + 0.5) * s - 0.5
    assert f.T_world_cam[2, 3] == np.float32(0.30000001)


def test_scannet_frame_skip_before_dropping_invalid_poses(tmp_path):
    """RayFronts' ScanNet loader takes frames 0, 11, 22, ... of the recording; frames among those whose
    pose is invalid (-inf) contribute nothing. Dropping invalid frames first would shift every later one."""
    scene = _scannet(tmp_path, n=25)
    for i in (3, 11):
        np.savetxt(scene / "pose" / f"{i}.txt", np.full((4, 4), -np.inf))
    after = ScanNetDataset(scene, stride=11, frame_skip_first=True)
    assert [after.raw_index(i) for i in range(len(after))] == [0, 22] and len(after) == 2
    assert [after._ids[after.raw_index(i)] for i in range(len(after))] == [0, 22]
    before = ScanNetDataset(scene, stride=11)  # the reader's default: valid frames first, then every 11th
    assert [before._ids[before.raw_index(i)] for i in range(len(before))] == [0, 13, 24]


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    assert eval_cli.main(["replica", str(tmp_path / "missing"), *MODEL]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert eval_cli.main(["replica", str(tmp_path), *MODEL]) == 2  # a folder without scenes
    assert "no replica scene folders" in capsys.readouterr().err
    assert eval_cli.main(["replica", str(tmp_path), "--input-size", "8x40", *MODEL]) == 2
    assert "at least 16x16" in capsys.readouterr().err
    root = tmp_path / "R"
    scene = _replica(root)
    assert eval_cli.main(["replica", str(root), "--modes", "voxels", *MODEL]) == 2
    assert "unknown ['voxels']" in capsys.readouterr().err
    assert eval_cli.main(["replica", str(root), "--ignore", "sofa", "-o", str(tmp_path / "o"), *MODEL]) == 2
    assert "sofa" in capsys.readouterr().err
    np.savez(scene / "semseg_gt.npz", semseg_gt_xyz=np.array([[np.nan, 0, 1]]), semseg_gt_label=np.array([3]))
    with pytest.raises(ValueError, match="not finite"):
        ReplicaDataset(scene).gt_points()


def test_cli_modules_import_without_a_cycle():
    """radseg_core.cli.eval dispatches to eval_bench; eval_bench must not import eval back (issue #17)."""
    import ast

    pkg = Path(eval_cli.__file__).parent
    graph = {}
    for f in pkg.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        graph[f.stem] = {n.rsplit(".", 1)[-1] for n in names if n.startswith("radseg_core.cli.")} - {f.stem}

    def reaches(src, dst, seen=()):
        return any(n == dst or (n not in seen and reaches(n, dst, (*seen, n))) for n in graph.get(src, ()))

    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, f"import cycle among radseg_core.cli modules: {cycles}"


# RADSeg evaluation/2d/configs, value by value: {resolution: {dataset: (Resize scale, slide_crop, slide_stride)}}.
# crop 336 / stride 224 come from base_config.py unless the resolution's cfg_*.py overrides them.
OFFICIAL_2D = {
    "low": {"voc": ((2048, 336), 224, 112), "cocostuff": ((2048, 336), 224, 112),
            "context": ((2048, 336), 224, 112), "ade20k": ((2048, 336), 224, 112),
            "cityscapes": ((2048, 560), 224, 112)},
    "mid": {"voc": ((2048, 336), 336, 112), "cocostuff": ((2048, 448), 336, 224),
            "context": ((4096, 576), 336, 224), "ade20k": ((2048, 576), 336, 224),
            "cityscapes": ((2048, 688), 336, 224)},
    "high": {"voc": ((2016, 672), 336, 224), "cocostuff": ((1334, 896), 336, 224),
             "context": ((2016, 672), 336, 224), "ade20k": ((2016, 672), 336, 224),
             "cityscapes": ((2688, 1344), 336, 224)},
}


def test_2d_presets_equal_the_official_configs():
    got = {r: {d: (p.scale, p.crop, p.stride) for d, p in ds.items()} for r, ds in PRESETS_2D.items()}
    assert got == OFFICIAL_2D
    assert all(p.stride == 224 for p in PRESETS_2D["high"].values())  # base_config, not Tab. A.1's 336


def _official_encoder_input(h, w, scale, crop, stride):
    """mmseg Resize(scale, keep_ratio) (mmcv rescale_size), then RADSeg's _preprocess_image."""
    f = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return preprocess_image_size(int(h * f + 0.5), int(w * f + 0.5), stride, crop)


@pytest.mark.parametrize("resolution", ["low", "mid", "high"])
def test_2d_encoder_input_sizes_equal_the_official(resolution):
    """What the encoder is fed for typical images of each benchmark (VOC / Context 500x375, COCO 640x480
    and 640x427, ADE 683x512, Cityscapes 2048x1024), through our resize and the encoder's own sizing."""
    from radseg_core.encoder import build_encoder
    from radseg_core.eval_bench import rescale_size

    sizes = {"voc": [(375, 500), (500, 333)], "context": [(375, 500)], "cocostuff": [(480, 640), (427, 640)],
             "ade20k": [(512, 683), (683, 512)], "cityscapes": [(1024, 2048)]}
    for dataset, p in PRESETS_2D[resolution].items():
        enc = build_encoder("random-tiny", crop=p.crop, stride=p.stride, input_sizing="official")
        for h, w in sizes[dataset]:
            got = enc.input_size(*rescale_size(h, w, p.scale))
            assert got == _official_encoder_input(h, w, *OFFICIAL_2D[resolution][dataset]), (dataset, h, w)
    if resolution == "mid":
        enc = build_encoder("random-tiny", crop=336, stride=224, input_sizing="official")
        assert enc.input_size(*rescale_size(375, 500, (4096, 576))) == (672, 896)  # was 576x768
        assert enc.input_size(*rescale_size(1024, 2048, (2048, 688))) == (896, 1568)  # was 688x1376


def test_paper_figures_tab_a2_and_tab1():
    from radseg_core.eval_bench import PAPER_A2, paper_tab1

    assert PAPER_A2["radseg"]["high"]["voc"] == 84.07 and paper_tab1("radseg", "high", "voc") == 89.28
    assert paper_tab1("radseg", "high", "cityscapes") == 48.79 and paper_tab1("radseg", "low", "ade20k") == 27.16
    assert paper_tab1("radseg+", "high", "context") == 48.59


def test_map_and_eval_cli_take_input_sizing():
    from radseg_core.cli import map as map_cli

    args = map_cli.build_parser().parse_args(["sample", "--input-sizing", "official"])
    assert map_cli.config_from_args(args, ["wall"]).input_sizing == "official"
    assert map_cli.config_from_args(map_cli.build_parser().parse_args(["sample"]), ["wall"]).input_sizing == "snap16"
    assert eval_cli.build_parser().parse_args(["sample", "--input-sizing", "official"]).input_sizing == "official"
