"""Benchmark presets and runners that follow the code behind RADSeg's published numbers.

3D (``radseg-eval replica|scannet PATH --preset radseg-3d``): RADSeg's ``evaluation/3d/configs`` run
through RayFronts (the commit RADSeg pins): its loaders, ``SemanticVoxelMap`` and ``scripts/semseg_eval.py``.
2D (``radseg-eval 2d DATASET ROOT --preset mid``): RADSeg's ``evaluation/2d/configs`` and its encoder
code. Every number here names its source; docs/eval.md lists them with file and line. Results of
random-weight models are labelled as such in the table and the JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from radseg_core.eval import (
    ConfusionMatrix,
    SegMetrics,
    compute_semseg_preds,
    mean_over_scenes,
    miou_3d,
    voxel_centres,
    voxel_class_probs,
    voxelize_labels,
)


@dataclass(frozen=True)
class Preset3D:
    """RADSeg's ``evaluation/3d/configs/{replica,scannet}_radseg.yaml`` as RayFronts runs them (docs/eval.md
    gives the file and line of every value)."""

    voxel_size: float = 0.05  # mapping.vox_size
    frame_skip: int = 10  # dataset.frame_skip: consume one frame, drop ten
    crop: int = 336  # encoder.slide_crop
    window_stride: int = 112  # encoder.slide_stride
    rgb_hw: tuple[int, int] = (640, 1136)  # dataset.rgb_resolution (Replica)
    depth_hw: tuple[int, int] = (640, 1136)  # dataset.depth_resolution
    input_sizing: str = "official"  # RADSegEncoder._sliding_inference -> _preprocess_image: 784x1232
    prediction_threshold: float = 0.1  # prediction_thresh
    prompt_denoising: float = 0.5  # prompt_denoising_thresh
    k: int = 5  # k
    grid: str = "round"  # geometry3d.pointcloud_to_sparse_voxels: round(p / vox_size)
    modes: tuple[str, ...] = ("features", "probabilities")  # Tab. 2: both aggregations
    ignore: tuple[str, ...] = ()  # classes_to_ignore
    scenes: tuple[str, ...] = ()  # hydra.sweeper.params dataset.scene_name
    min_depth: float = 0.0  # geometry3d.depth_to_pointcloud keeps finite depth > 0
    max_depth: float = math.inf  # default.yaml depth_limit: -1 (none)
    storage_dtype: str = "float32"  # RayFronts' voxels are float32 tensors
    chunk_size: int = 10000  # semseg_eval chunk_size: prompt denoising runs per chunk of voxels


RADSEG_3D = {
    "replica": Preset3D(scenes=("office0", "office1", "office2", "office3", "office4", "room0", "room1",
                                "room2")),
    "scannet": Preset3D(rgb_hw=(640, 864), depth_hw=(640, 864),
                        ignore=("otherprop", "otherstructure", "otherfurniture"),
                        scenes=("scene0011_00", "scene0011_01", "scene0050_00", "scene0050_01", "scene0050_02",
                                "scene0231_00", "scene0231_01", "scene0231_02", "scene0378_00", "scene0378_01",
                                "scene0378_02", "scene0518_00")),
}
PRESETS_3D = {"radseg-3d": RADSEG_3D}

# Tab. 2 (RADSeg, base model): (features mIoU, f-mIoU, probabilities mIoU, f-mIoU)
PAPER_3D = {"replica": (32.29, 58.96, 32.68, 57.02), "scannet": (36.29, 45.64, 36.41, 46.92)}


@dataclass(frozen=True)
class Preset2D:
    """One dataset at one resolution as RADSeg's ``evaluation/2d/configs`` run it (docs/eval.md gives
    the file and line of every value): mmseg ``Resize(scale=(long cap, short), keep_ratio=True)`` of
    the image, then sliding windows of ``crop`` / ``stride`` over the ``_preprocess_image`` size."""

    scale: tuple[int, int]  # (longer-side cap, shorter side): mmcv's rescale rule, see rescale_size
    crop: int  # slide_crop
    stride: int  # slide_stride

    @property
    def short(self) -> int:
        return min(self.scale)


_LOW = Preset2D((2048, 336), 224, 112)  # low_res_configs/cfg_*.py: slide_stride 112, slide_crop 224
PRESETS_2D: dict[str, dict[str, Preset2D]] = {
    "low": {"voc": _LOW, "cocostuff": _LOW, "context": _LOW, "ade20k": _LOW,
            "cityscapes": Preset2D((2048, 560), 224, 112)},
    # mid_res_configs: crop 336 and stride 224 from base_config.py, except VOC's slide_stride 112
    "mid": {"voc": Preset2D((2048, 336), 336, 112), "cocostuff": Preset2D((2048, 448), 336, 224),
            "context": Preset2D((4096, 576), 336, 224), "ade20k": Preset2D((2048, 576), 336, 224),
            "cityscapes": Preset2D((2048, 688), 336, 224)},
    # high_res_configs override no stride: base_config.py's 224 (Tab. A.1 prints 336)
    "high": {"voc": Preset2D((2016, 672), 336, 224), "cocostuff": Preset2D((1334, 896), 336, 224),
             "context": Preset2D((2016, 672), 336, 224), "ade20k": Preset2D((2016, 672), 336, 224),
             "cityscapes": Preset2D((2688, 1344), 336, 224)},
}
# RADSeg+ coarse_thresh per dataset (configs/datasets/*.py); minimal_area, IoU threshold and mask
# coefficient are sam_refinement's defaults (RefineConfig's)
SAM_COARSE_THRESH = {"voc": 0.2, "cocostuff": 0.05, "context": 0.15, "ade20k": 0.05, "cityscapes": 0.10}

# Tab. A.2, base model: mIoU at each resolution (CTX, VOC, Stuff, ADE, City) -- what a run at one
# resolution reproduces
PAPER_A2 = {
    "radseg": {
        "low": {"context": 44.49, "voc": 87.24, "cocostuff": 29.79, "ade20k": 27.16, "cityscapes": 42.04},
        "mid": {"context": 45.64, "voc": 89.28, "cocostuff": 30.76, "ade20k": 28.96, "cityscapes": 45.35},
        "high": {"context": 45.14, "voc": 84.07, "cocostuff": 29.05, "ade20k": 28.93, "cityscapes": 48.79},
    },
    "radseg+": {
        "low": {"context": 48.23, "voc": 88.69, "cocostuff": 31.66, "ade20k": 29.44, "cityscapes": 45.59},
        "mid": {"context": 48.59, "voc": 90.35, "cocostuff": 32.45, "ade20k": 30.86, "cityscapes": 47.82},
        "high": {"context": 48.01, "voc": 86.17, "cocostuff": 30.40, "ade20k": 30.71, "cityscapes": 50.72},
    },
}


def paper_tab1(method: str, resolution: str, dataset: str) -> float:
    """Tab. 1's figure: the best Tab. A.2 run at or below ``resolution`` (a resolution *limit*)."""
    order = ("low", "mid", "high")
    runs = PAPER_A2[method]
    return max(runs[r][dataset] for r in order[: order.index(resolution) + 1])


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv ``rescale_size`` with a (long, short) tuple (mmseg ``Resize(keep_ratio=True)``): one factor,
    the largest that keeps the longer side <= max(scale) and the shorter side <= min(scale); sides
    rounded half up."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def resize_like_mmseg(rgb: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """The 2D benchmarks' input: :func:`rescale_size` with OpenCV bilinear (mmcv ``imresize``'s
    ``interpolation="bilinear"``, shrinking as well as enlarging)."""
    h, w = rescale_size(rgb.shape[0], rgb.shape[1], scale)
    if (h, w) == rgb.shape[:2]:
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def find_scenes(kind: str, path: Path, wanted: Sequence[str]) -> list[Path]:
    """Scene folders: ``path`` itself when it is one scene, else its sub-folders named in ``wanted``
    (all scene sub-folders when none of those exist), sorted."""
    from radseg_core.datasets import is_replica, is_scannet

    test = is_replica if kind == "replica" else is_scannet
    if test(path):
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    subs = sorted(p for p in path.iterdir() if p.is_dir() and test(p))
    chosen = [p for p in subs if p.name in wanted]
    scenes = chosen or subs
    if not scenes:
        raise FileNotFoundError(f"{path}: no {kind} scene folders inside")
    return scenes


@dataclass
class SceneResult:
    scene: str
    mode: str
    metrics: SegMetrics
    frames: int
    voxels: int
    gt_voxels: int


@dataclass
class Run3D:
    kind: str
    preset: Preset3D
    model: str
    random_weights: bool
    classes: list[str]
    ignore: list[str]
    results: list[SceneResult] = field(default_factory=list)

    def means(self) -> dict[str, dict[str, float]]:
        return {m: mean_over_scenes([r.metrics for r in self.results if r.mode == m]) for m in self.preset.modes}

    def table(self) -> str:
        """Paper Tab. 2 layout: per scene mIoU / f-mIoU for each aggregation, then the mean."""
        modes = self.preset.modes
        head = f"{'scene':<16}" + "".join(f" {m[:13]:>13} {'':>7}" for m in modes)
        sub = f"{'':<16}" + "".join(f" {'mIoU':>13} {'f-mIoU':>7}" for _ in modes)
        rows = [head, sub]
        scenes = list(dict.fromkeys(r.scene for r in self.results))
        by = {(r.scene, r.mode): r.metrics for r in self.results}

        def cell(v):
            return "      -" if v is None or math.isnan(v) else f"{100 * v:7.2f}"

        for s in scenes:
            rows.append(f"{s:<16}" + "".join(
                f" {cell(by[s, m].miou) if (s, m) in by else cell(None):>13} "
                f"{cell(by[s, m].fmiou) if (s, m) in by else cell(None)}" for m in modes))
        means = self.means()
        rows.append(f"{'mean':<16}" + "".join(f" {cell(means[m]['miou']):>13} {cell(means[m]['fmiou'])}"
                                             for m in modes))
        if self.kind in PAPER_3D and not self.random_weights:
            p = PAPER_3D[self.kind]
            rows.append(f"{'paper (Tab. 2)':<16} {p[0]:>13.2f} {p[1]:7.2f} {p[2]:>13.2f} {p[3]:7.2f}")
        return "\n".join(rows)

    def as_dict(self) -> dict:
        out = {"dataset": self.kind, "preset": asdict(self.preset), "model": self.model,
               "random_weights": self.random_weights, "classes": self.classes, "ignore": self.ignore,
               "scenes": [{"scene": r.scene, "mode": r.mode, "frames": r.frames, "voxels": r.voxels,
                           "gt_voxels": r.gt_voxels, **r.metrics.as_dict()} for r in self.results],
               "mean": self.means()}
        if self.random_weights:
            out["note"] = "random weights: these numbers say the pipeline runs, nothing about quality"
        else:
            out["paper_tab2"] = dict(zip(("features_miou", "features_fmiou", "probabilities_miou",
                                          "probabilities_fmiou"), PAPER_3D.get(self.kind, ()), strict=False))
        return out


def rayfronts_centres(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Centres of the round-grid voxels holding ``points`` as RayFronts stores them: ``key.float() *
    vox_size`` in float32 (their rounding decides which of two nearly equidistant voxels is nearer)."""
    keys = torch.round(torch.from_numpy(np.asarray(points, np.float64)) / voxel_size)
    return (keys.to(torch.float32) * voxel_size).double().numpy()


def rayfronts_order(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Permutation sorting voxels by their integer keys row by row (``torch.unique(dim=0)``'s order, in
    which RayFronts keeps its map; its chunked prompt denoising and k-NN depend on it)."""
    keys = np.round(np.asarray(points, np.float64) / voxel_size).astype(np.int64)
    return np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))


def lift_gt_like_rayfronts(frames, num_classes: int, voxel_size: float, grid: str,
                           ignore_labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """ScanNet ground truth as ``semseg_eval.compute_semseg_gt`` builds it from the frames it maps
    (``RayFrontsFrames``): one-hot labels at the rgb size averaged per voxel, then labelled by
    ``LabelVoxelizer``'s rule (unlabelled and ignored classes never win a voxel)."""
    from radseg_core.eval import LabelVoxelizer

    if frames.rgb_hw != frames.depth_hw:
        raise ValueError("the lifted ground truth needs equal rgb and depth resolutions (RayFronts would blend "
                         "one-hot labels bilinearly to the depth size)")
    vox = LabelVoxelizer(voxel_size, grid)
    for i in range(len(frames)):
        f = frames[i]
        vox.add_frame(f.depth, f.K, f.T_world_cam, frames.labels(i))
    return vox.result(num_classes, ignore_labels)


def run_3d(kind: str, path: str | Path, preset: Preset3D, *, make_config: Callable[..., object],
           build_mapper: Callable[[object], object], model: str, random_weights: bool,
           extra_ignore: Sequence[str] = (), ignore_mode: str = "not-queried", max_frames: int | None = None,
           show_progress: bool = True, out_dir: Path | None = None) -> Run3D:
    """Map every scene in every aggregation mode and score it; ``make_config(classes=, mode=)`` gives a
    MapperConfig with the preset applied (the caller owns model options). Frames are loaded, voxels
    ordered and labelled, and ScanNet's ground truth lifted as RayFronts' ``semseg_eval`` does."""
    from radseg_core.cli.common import progress
    from radseg_core.datasets import ReplicaDataset, ScanNetDataset
    from radseg_core.datasets.rayfronts import RayFrontsFrames

    run: Run3D | None = None
    for scene in find_scenes(kind, Path(path), preset.scenes):
        if kind == "replica":
            ds = ReplicaDataset(scene, stride=preset.frame_skip + 1, max_frames=max_frames)
        else:  # RayFronts skips frames by number first; frames without a valid pose are dropped after
            ds = ScanNetDataset(scene, stride=preset.frame_skip + 1, max_frames=max_frames, frame_skip_first=True)
        classes = list(ds.classes or [])
        if not classes:
            raise FileNotFoundError(f"{scene}: no class list (see docs/eval.md for the expected layout)")
        ignore = list(dict.fromkeys([*preset.ignore, *extra_ignore]))
        unknown = [c for c in extra_ignore if c not in classes]
        if unknown:
            raise ValueError(f"--ignore names {unknown}, which are not classes of {scene}")
        ignore = [c for c in ignore if c in classes]
        if run is None:
            run = Run3D(kind, preset, model, random_weights, classes, ignore)
        elif classes != run.classes:
            raise ValueError(f"{scene}: its class list differs from the first scene's")
        ignore_ids = [classes.index(c) + 1 for c in ignore]
        frames = RayFrontsFrames(ds, preset.rgb_hw, preset.depth_hw)
        if kind == "scannet":
            gt_xyz, gt_lab = lift_gt_like_rayfronts(frames, len(classes), preset.voxel_size, preset.grid,
                                                    ignore_ids)
        else:
            gt_xyz, gt_lab = ds.gt_points()
        # RayFronts maps ignored classes to 0 (black list), voxelises the ground truth (one-hot sum, argmax:
        # 0 competes) and keeps float32 centres
        gt_lab = np.where(np.isin(gt_lab, ignore_ids), 0, gt_lab)
        gt_keys, gt_lab = voxelize_labels(gt_xyz, gt_lab, preset.voxel_size, preset.grid)
        gt_xyz = voxel_centres(gt_keys, preset.voxel_size, preset.grid)
        if preset.grid == "round":
            gt_xyz = rayfronts_centres(gt_xyz, preset.voxel_size)
        # not-queried: the map only ever sees the kept classes (RayFronts drops them from the text queries)
        kept = [i for i, c in enumerate(classes) if ignore_mode != "not-queried" or c not in ignore]
        queried = [classes[i] for i in kept]
        lut = np.array([0] + [i + 1 for i in kept], np.int64)  # mapper label j -> dataset label
        for mode in preset.modes:
            mapper = build_mapper(make_config(classes=queried, mode=mode))
            n = 0
            for frame in progress(frames, len(frames), f"{scene.name} {mode}", disable=not show_progress):
                mapper.process(frame)
                n += 1
            xyz = mapper.map.centers(torch.float64).numpy()
            probs = voxel_class_probs(mapper)
            if preset.grid == "round":
                order = rayfronts_order(xyz, preset.voxel_size)
                xyz, probs = rayfronts_centres(xyz[order], preset.voxel_size), probs[order]
            labels = lut[compute_semseg_preds(probs, preset.prompt_denoising, preset.prediction_threshold,
                                              preset.chunk_size)]
            if out_dir is not None:
                mapper.save(Path(out_dir) / f"{scene.name}_{mode}.rsmap")
            m = miou_3d(gt_xyz, gt_lab, xyz, labels, len(classes), k=preset.k, voxel_size=preset.voxel_size,
                        grid=preset.grid, voxelize_gt=False, ignore_labels=ignore_ids, classes=classes)
            run.results.append(SceneResult(scene.name, mode, m, n, len(xyz), len(gt_xyz)))
    assert run is not None
    return run


def preset_with(preset: Preset3D, **overrides) -> Preset3D:
    """Copy with the non-None overrides applied (CLI flags on top of a preset)."""
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def run_2d(dataset, *, encode: Callable[[np.ndarray, tuple[int, int]], object], scale: tuple[int, int],
           show_progress: bool = True, desc: str = "2d") -> SegMetrics:
    """mIoU of ``encode(resized rgb, original (H, W)) -> (H, W) labels`` over a split, RADSeg's 2D path:
    each image is resized as mmseg's ``Resize(scale, keep_ratio=True)`` (:func:`resize_like_mmseg`), the
    encoder scores at the original size ("evaluation resolution ... always remains unchanged"), counts
    are summed over the split and classes with an empty union are left out (mmseg's IoUMetric)."""
    from radseg_core.cli.common import progress

    cm = ConfusionMatrix(len(dataset.classes))
    for i in progress(range(len(dataset)), len(dataset), desc, disable=not show_progress):
        rgb, gt = dataset.image(i), dataset.labels(i)
        if gt.shape != rgb.shape[:2]:
            raise ValueError(f"{desc}: image {i} is {rgb.shape[1]}x{rgb.shape[0]} but its labels are "
                             f"{gt.shape[1]}x{gt.shape[0]}")
        labels = np.asarray(encode(resize_like_mmseg(rgb, scale), gt.shape))
        cm.update(labels, gt)
    return cm.metrics(dataset.classes, exclude_absent=False)
