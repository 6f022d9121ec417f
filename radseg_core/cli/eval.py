"""``radseg-eval``: 3D mIoU / f-mIoU of a map and 2D mIoU of its frames against a labelled dataset."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from radseg_core.cli import common

PROG = "radseg-eval"
DESCRIPTION = """\
Evaluate semantic mapping on a labelled RGB-D dataset with the RADSeg / RayFronts protocol.

The dataset's classes are the label set. Each map voxel gets a class: in features mode the argmax over
the classes of softmax(100 cos(aligned voxel feature, class text embedding)); in probabilities mode the
argmax of the stored probabilities (class names are matched to the dataset's by name). Every
ground-truth point takes the label of its nearest voxel (--align nearest, default) or both are
voxelised and compared voxel by voxel (--align voxel). Ground truth 0 is ignored; classes absent from
the ground truth are left out of the mean. 2D mIoU compares each frame's segmentation with its labels
(only when frames are processed, i.e. without --map).

Labelled inputs: "synthetic-room" now; ScanNet / Replica / TUM folders once they carry labels.
Prints the tables and writes OUT_DIR/eval.json (and the map it built, OUT_DIR/map.rsmap).
"""
EPILOG = """\
examples:
  radseg-eval synthetic-room -o out/eval                            # real weights
  radseg-eval synthetic-room --model random-tiny --max-frames 4 -o out/eval   # pipeline check only
  radseg-eval synthetic-room --map out/room/map.rsmap -o out/eval   # score an existing map
  radseg-eval ~/data/scannet/scene0000_00 --stride 10 --align voxel --mode probabilities
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("input", metavar="INPUT", help="labelled dataset path or 'synthetic-room'")
    p.add_argument("--map", default=None, help="evaluate this saved map instead of mapping the frames")
    p.add_argument("-o", "--out-dir", default="radseg_eval", help="output directory (created)")
    p.add_argument("--align", default="nearest", choices=["nearest", "voxel"],
                   help="how ground-truth points meet map voxels (see above)")
    p.add_argument("--max-distance", type=common.positive_float, default=None,
                   help="with --align nearest: voxels farther than this (m) count as misses")
    p.add_argument("--ignore", default=None, help="comma-separated classes left out of the evaluation")
    p.add_argument("--segmentation", action="store_true", help="also write segmentation/ images")
    common.add_input_args(p)
    common.add_model_args(p, default=None)  # None: the map's model with --map, else c-radio_v3-b
    g = p.add_argument_group("mapping")
    g.add_argument("--mode", default="features", choices=["features", "probabilities"])
    g.add_argument("--voxel-size", type=common.positive_float, default=0.05, help="voxel edge in metres")
    g.add_argument("--point-stride", type=common.positive_int, default=1,
                   help="integrate every n-th depth pixel row/column")
    g.add_argument("--max-depth", type=common.positive_float, default=5.0, help="ignore depth beyond this (m)")
    return p


def probability_labels(vmap, map_classes: list[str], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: dataset label (argmax probability, renamed by class name; 0 = none / unknown) and score."""
    if len(vmap) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(map_classes) != vmap.dim:
        raise common.CLIError(f"the map has {vmap.dim} probabilities but names {len(map_classes)} classes")
    probs = vmap.values().float()
    score, best = probs.max(dim=1)
    lut = np.array([0] + [classes.index(n) + 1 if n in classes else 0 for n in map_classes], np.int64)
    raw = np.where(score.numpy() > 0, best.numpy() + 1, 0)
    return lut[raw], score.numpy().astype(np.float32)


def _clean(d):
    """JSON-safe copy: NaN (class absent / undefined) becomes null."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_clean(v) for v in d]
    if isinstance(d, float) and math.isnan(d):
        return None
    return d


def main(argv: list[str] | None = None) -> int:
    args = common.parse(build_parser(), argv)
    return args if isinstance(args, int) else common.run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from radseg_core.eval import ConfusionMatrix, miou_3d

    dataset = common.open_input(args.input, stride=args.stride, max_frames=args.max_frames, resize=args.resize)
    classes = list(getattr(dataset, "classes", None) or [])
    if not classes:
        raise common.CLIError(f"{args.input}: the dataset has no class list, so there is nothing to score")
    try:
        gt_points, gt_labels = dataset.gt_points()
    except NotImplementedError as e:
        raise common.CLIError(f"{args.input}: no ground-truth labelled cloud ({e})") from None
    ignore = common.parse_classes(args.ignore) or []
    unknown = [c for c in ignore if c not in classes]
    if unknown:
        raise common.CLIError(f"--ignore names {unknown}, which are not classes of the dataset ({classes})")
    ignore_ids = [classes.index(c) + 1 for c in ignore]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    K = len(classes)
    report: dict = {"input": str(args.input), "classes": classes, "ignore": ignore, "align": args.align,
                    "gt_points": len(gt_points)}
    metrics_2d = None
    if args.map:
        cfg, vmap = common.mapper_config_from_map(args.map, args.model, args)
        model_name = cfg.model
        report.update(map=str(args.map), mode=cfg.mode, frames=vmap.frames_integrated)
        if cfg.mode == "probabilities":  # no model needed: labels are in the map
            xyz = vmap.centers().numpy()
            labels, _ = probability_labels(vmap, cfg.classes, classes)
            n_vox = len(vmap)
        else:
            mapper = common.build_mapper(cfg)
            mapper.load(args.map)
            mapper.config.classes = classes
            cloud = mapper.cloud()
            xyz, labels, n_vox = cloud["xyz"], cloud["label"], len(mapper.map)
    else:
        from radseg_core.cli.map import map_dataset
        from radseg_core.pipeline import MapperConfig

        model_name = args.model or common.DEFAULT_MODEL
        cfg = MapperConfig(model=model_name, lang_model=args.lang, text_model_path=args.text_model_path,
                           device=args.device, dtype=args.dtype, mode=args.mode, classes=classes,
                           voxel_size=args.voxel_size, point_stride=args.point_stride, max_depth=args.max_depth)
        mapper = common.build_mapper(cfg)
        cm2d = ConfusionMatrix(K, ignore_ids)
        has_2d = True

        def on_frame(i, frame, out):
            nonlocal has_2d
            if not has_2d or out.labels is None:
                has_2d = False
                return
            try:
                gt = dataset.labels(i)
            except NotImplementedError:
                has_2d = False
                return
            pred = out.labels
            if pred.shape != gt.shape:
                import cv2

                pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm2d.update(pred, gt)

        with dataset:
            stats = map_dataset(dataset, mapper, out_dir, segmentation=args.segmentation,
                                show_progress=not args.no_progress, on_frame=on_frame)
        mapper.save(out_dir / "map.rsmap")
        cloud = mapper.cloud()
        xyz, labels, n_vox = cloud["xyz"], cloud["label"], len(mapper.map)
        report.update(mode=args.mode, frames=stats["frames"], seconds_per_stage_mean=stats["seconds_per_stage_mean"])
        if has_2d:
            metrics_2d = cm2d.metrics(classes)
    metrics_3d = miou_3d(gt_points, gt_labels, xyz, labels, K, align=args.align, voxel_size=cfg.voxel_size,
                         max_distance=args.max_distance, ignore_labels=ignore_ids, classes=classes)
    random = common.is_random(model_name)
    report.update(model=model_name, random_weights=random, voxels=n_vox, voxel_size=cfg.voxel_size,
                  miou_3d=metrics_3d.as_dict(), miou_2d=None if metrics_2d is None else metrics_2d.as_dict())
    if random:
        report["note"] = "random weights: these numbers say the pipeline runs, nothing about quality"
    common.write_json(out_dir / "eval.json", _clean(report))
    print(f"3D ({args.align}, {len(gt_points)} ground-truth points, {n_vox} voxels)")
    print(metrics_3d.table())
    if metrics_2d is not None:
        print(f"\n2D ({report['frames']} frames)")
        print(metrics_2d.table())
    else:
        print("\n2D: not computed (" + ("--map given: frames were not processed" if args.map
                                       else "the dataset has no per-frame labels") + ")")
    if random:
        print(f"\nNOTE: model '{model_name}' has RANDOM WEIGHTS: these numbers are meaningless (pipeline check).")
        common.random_banner(model_name)
    print(f"\nwrote {out_dir / 'eval.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
