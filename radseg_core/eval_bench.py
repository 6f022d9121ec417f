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

from radseg_core.eval import (
    ConfusionMatrix,
    SegMetrics,
    compute_semseg_preds,
    mean_over_scenes,
    miou_3d,
    voxel_class_probs,
)
from radseg_core.geometry import scale_intrinsics
from radseg_core.types import Frame


@dataclass(frozen=True)
class Preset3D:
    """RADSeg 3D settings (A3 "Implementation details", RayFronts semseg configs)."""

    voxel_size: float = 0.05  # A3: "5cm voxels"
    frame_skip: int = 10  # A3: "A frame skip of 10"; RayFronts: consume 1, drop 10 -> every 11th frame
    crop: int = 336  # GUIDE §4: 3D eval used windows 336 / stride 112
    window_stride: int = 112
    input_hw: tuple[int, int] = (640, 1136)  # A3: shorter side 640, snapped to the patch: 640x1136 Replica
    prediction_threshold: float = 0.1  # RayFronts prediction_thresh 0.1
    prompt_denoising: float = 0.5  # RayFronts prompt_denoising_thresh 0.5
    k: int = 5  # RayFronts k: 5 in every published config
    grid: str = "round"  # geometry3d.pointcloud_to_sparse_voxels
    modes: tuple[str, ...] = ("features", "probabilities")  # Tab. 2: both aggregations
    ignore: tuple[str, ...] = ()  # A3: Replica all 101 classes; ScanNet ignores the three "other*"
    scenes: tuple[str, ...] = ()
    max_depth: float = 20.0  # RayFronts' semantic voxel map has no depth cap; 20 m is beyond both sensors


RADSEG_3D = {
    "replica": Preset3D(scenes=("office0", "office1", "office2", "office3", "office4", "room0", "room1",
                                "room2")),
    "scannet": Preset3D(input_hw=(640, 864), ignore=("otherprop", "otherstructure", "otherfurniture"),
                        scenes=("scene0011_00", "scene0050_00", "scene0231_00", "scene0378_00",
                                "scene0518_00")),
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


def resize_exact(frame: Frame, hw: tuple[int, int]) -> Frame:
    """Frame whose rgb is resampled to exactly ``hw`` (K per axis), so the encoder sees the paper's input
    size (e.g. ScanNet 640x864) without snapping it again. Depth keeps its native pixels (RayFronts keeps
    depth at the sensor's resolution and samples features there); the mapper relates the two through K."""
    H, W = frame.rgb.shape[:2]
    if tuple(hw) == (H, W):
        return frame
    interp = cv2.INTER_AREA if hw[0] < H else cv2.INTER_LINEAR
    rgb = cv2.resize(frame.rgb, (hw[1], hw[0]), interpolation=interp)
    return Frame(rgb=rgb, depth=frame.depth, K=scale_intrinsics(frame.K, (H, W), tuple(hw)),
                 T_world_cam=frame.T_world_cam, stamp=frame.stamp, frame_id=frame.frame_id)


class _Resized:
    """Dataset view whose frames are resized to ``hw`` (keeps len() for the progress bar)."""

    def __init__(self, ds, hw):
        self.ds, self.hw = ds, hw

    def __len__(self) -> int:
        return len(self.ds)

    def __iter__(self):
        for f in self.ds:
            yield resize_exact(f, self.hw)


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


def run_3d(kind: str, path: str | Path, preset: Preset3D, *, make_config: Callable[..., object],
           build_mapper: Callable[[object], object], model: str, random_weights: bool,
           extra_ignore: Sequence[str] = (), ignore_mode: str = "not-queried", max_frames: int | None = None,
           show_progress: bool = True, out_dir: Path | None = None) -> Run3D:
    """Map every scene in every aggregation mode and score it; ``make_config(classes=, mode=)`` gives a
    MapperConfig with the preset applied (the caller owns model options)."""
    from radseg_core.cli.common import progress
    from radseg_core.datasets import ReplicaDataset, ScanNetDataset

    reader = ReplicaDataset if kind == "replica" else ScanNetDataset
    run: Run3D | None = None
    for scene in find_scenes(kind, Path(path), preset.scenes):
        ds = reader(scene, stride=preset.frame_skip + 1, max_frames=max_frames)
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
        if kind == "scannet":
            gt_xyz, gt_lab = ds.gt_points(preset.voxel_size, preset.grid)
        else:
            gt_xyz, gt_lab = ds.gt_points()
        ignore_ids = [classes.index(c) + 1 for c in ignore]
        # not-queried: the map only ever sees the kept classes (RayFronts drops them from the text queries)
        kept = [i for i, c in enumerate(classes) if ignore_mode != "not-queried" or c not in ignore]
        queried = [classes[i] for i in kept]
        lut = np.array([0] + [i + 1 for i in kept], np.int64)  # mapper label j -> dataset label
        for mode in preset.modes:
            mapper = build_mapper(make_config(classes=queried, mode=mode))
            frames = _Resized(ds, preset.input_hw)
            n = 0
            for frame in progress(frames, len(frames), f"{scene.name} {mode}", disable=not show_progress):
                mapper.process(frame)
                n += 1
            xyz = mapper.map.centers().numpy()
            labels = lut[compute_semseg_preds(voxel_class_probs(mapper), preset.prompt_denoising,
                                              preset.prediction_threshold)]
            if out_dir is not None:
                mapper.save(Path(out_dir) / f"{scene.name}_{mode}.rsmap")
            m = miou_3d(gt_xyz, gt_lab, xyz, labels, len(classes), k=preset.k,
                        voxel_size=preset.voxel_size, grid=preset.grid, ignore_labels=ignore_ids, classes=classes)
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
