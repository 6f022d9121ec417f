"""``radseg-eval``: 3D mIoU / f-mIoU of a map and 2D mIoU of its frames against a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from radseg_core.cli import common

PROG = "radseg-eval"
DESCRIPTION = """\
Evaluate semantic mapping on a labelled RGB-D dataset with the RADSeg / RayFronts protocol.

The dataset's classes are the label set. Each map voxel gets a class: in features mode the argmax over
the classes of softmax(100 cos(aligned voxel feature, class text embedding)); in probabilities mode the
argmax of the stored probabilities (class names are matched to the dataset's by name). Defaults follow
RayFronts' semseg_eval (used for RADSeg's 3D table): the ground truth is voxelised on the round grid,
each ground-truth voxel takes the majority label of its k = 5 nearest map voxels (--align nearest) or
both are compared voxel by voxel (--align voxel); --ignore'd classes are never queried; ground truth 0
is ignored; classes absent from the ground truth are left out of the mean. 2D mIoU compares each
frame's segmentation with its labels (only when frames are processed, i.e. without --map).

Benchmarks with the paper's settings (see docs/eval.md):
  radseg-eval replica PATH [--preset radseg-3d]      Replica (NICE-SLAM layout), Tab. 2
  radseg-eval scannet PATH [--preset radseg-3d]      ScanNet (SensReader export), Tab. 2
  radseg-eval 2d {voc,context,ade20k,cityscapes,cocostuff} ROOT [--preset low|mid|high]   Tab. 1

Labelled inputs: "synthetic-room"; Replica / ScanNet folders with labels (docs/eval.md).
Prints the tables and writes OUT_DIR/eval.json (and the map it built, OUT_DIR/map.rsmap).
"""
EPILOG = """\
examples:
  radseg-eval synthetic-room -o out/eval                            # real weights
  radseg-eval synthetic-room --model random-tiny --max-frames 4 -o out/eval   # pipeline check only
  radseg-eval synthetic-room --map out/room/map.rsmap -o out/eval   # score an existing map
  radseg-eval ~/data/scannet/scene0000_00 --stride 10 --align voxel --mode probabilities
  radseg-eval replica ~/data/Replica --preset radseg-3d -o out/replica        # RADSeg Tab. 2 settings
  radseg-eval 2d voc ~/data/VOCdevkit --preset mid -o out/voc                  # RADSeg Tab. 1 settings
"""


def add_protocol_args(p: argparse.ArgumentParser) -> None:
    """One flag per rule of the 3D protocol (defaults: RayFronts semseg_eval)."""
    g = p.add_argument_group("3D protocol (defaults: RayFronts semseg_eval)")
    g.add_argument("--k", type=common.positive_int, default=None,
                   help="nearest map voxels voted per ground-truth voxel (default 5, every published config)")
    g.add_argument("--grid", default="round", choices=["round", "floor"],
                   help="voxel grid: round(p/s) as RayFronts (default) or floor(p/s)")
    g.add_argument("--no-voxelize-gt", action="store_true",
                   help="score ground-truth points one by one instead of voxelising them first")
    g.add_argument("--ignore-mode", default="not-queried", choices=["not-queried", "miss"],
                   help="ignored classes are left out of the queries (default, upstream) or their "
                        "predictions count as misses")
    g.add_argument("--threshold", type=float, default=None,
                   help="prediction threshold: best probability below it = no prediction (default: the "
                        "mapper's, 0.1 in presets)")
    g.add_argument("--exclude-absent", default="gt", choices=["gt", "union"],
                   help="classes left out of the mean: absent from the ground truth (RayFronts, default) "
                        "or with an empty union (mmseg)")


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
    add_protocol_args(p)
    common.add_input_args(p)
    common.add_model_args(p, default=None)  # None: the map's model with --map, else c-radio_v3-b
    g = p.add_argument_group("mapping")
    g.add_argument("--mode", default="features", choices=["features", "probabilities"])
    g.add_argument("--voxel-size", type=common.positive_float, default=0.05, help="voxel edge in metres")
    g.add_argument("--point-stride", type=common.positive_int, default=1,
                   help="integrate every n-th depth pixel row/column")
    g.add_argument("--max-depth", type=common.positive_float, default=5.0, help="ignore depth beyond this (m)")
    common.add_input_sizing_arg(g)
    return p


def probability_labels(vmap, map_classes: list[str | None], classes: list[str], threshold: float = 0.0,
                       prompt_denoising: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: dataset label and score, labelled as RayFronts labels probability maps: the averaged
    probabilities of the map's classes that are dataset classes (None / unknown names are not queried;
    they only add to the vector's length) against one-hot class embeddings, softmax(100 cos), then
    ``compute_semseg_preds`` (chunked prompt denoising, 0 below ``threshold``); renamed by name."""
    from radseg_core.eval import compute_semseg_preds, onehot_class_probs

    if len(vmap) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(map_classes) != vmap.dim:
        raise common.CLIError(f"the map has {vmap.dim} probabilities but names {len(map_classes)} classes")
    probs = vmap.values().float().numpy()
    lut = np.array([classes.index(n) + 1 if n in classes else 0 for n in map_classes], np.int64)
    queried = lut > 0
    if not queried.any():
        raise common.CLIError("none of the map's classes is a class of the dataset")
    other = np.sqrt((probs[:, ~queried].astype(np.float64) ** 2).sum(1))  # same length, never a class
    scores = onehot_class_probs(probs[:, queried], other)
    raw = compute_semseg_preds(scores, prompt_denoising, threshold)
    best = np.nan_to_num(scores.max(axis=1), nan=0.0)
    return np.concatenate([[0], lut[queried]])[raw], best.astype(np.float32)


def _map_labels(mapper, args) -> np.ndarray:
    """Voxel labels over the mapper's classes, RayFronts ``compute_semseg_preds`` (chunked prompt
    denoising, then the prediction threshold)."""
    from radseg_core.eval import compute_semseg_preds, voxel_class_probs

    return compute_semseg_preds(voxel_class_probs(mapper), mapper.config.prompt_denoising, args.threshold or 0.0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("replica", "scannet", "2d"):
        from radseg_core.cli import eval_bench as bench

        kind = argv[0]
        parser = bench.build_parser_2d() if kind == "2d" else bench.build_parser_3d(kind)
        args = common.parse(parser, argv[1:])
        if isinstance(args, int):
            return args
        return common.run(PROG, lambda: bench.main_2d(args) if kind == "2d" else bench.main_3d(kind, args))
    args = common.parse(build_parser(), argv)
    return args if isinstance(args, int) else common.run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from radseg_core.eval import ConfusionMatrix, miou_3d

    dataset = common.open_input(args.input, stride=args.stride, max_frames=args.max_frames, resize=args.resize)
    classes = list(getattr(dataset, "classes", None) or [])
    if not classes:
        raise common.CLIError(f"{args.input}: the dataset has no class list, so there is nothing to score")
    ignore = common.parse_classes(args.ignore) or []
    unknown = [c for c in ignore if c not in classes]
    if unknown:
        raise common.CLIError(f"--ignore names {unknown}, which are not classes of the dataset ({classes})")
    ignore_ids = [classes.index(c) + 1 for c in ignore]
    try:  # lifted ground truth (ScanNet) leaves ignored classes out of its queries, as RayFronts
        from radseg_core.datasets import ScanNetDataset

        lifted = isinstance(dataset, ScanNetDataset)
        gt_points, gt_labels = dataset.gt_points(ignore_labels=tuple(ignore_ids)) if lifted else dataset.gt_points()
    except NotImplementedError as e:
        raise common.CLIError(f"{args.input}: no ground-truth labelled cloud ({e})") from None
    # not-queried: the mapper only knows the kept classes; its label j maps back to lut[j]
    kept = [i for i, c in enumerate(classes) if args.ignore_mode != "not-queried" or c not in ignore]
    queried = [classes[i] for i in kept]
    lut = np.array([0] + [i + 1 for i in kept], np.int64)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    K = len(classes)
    if args.k is not None and args.align == "voxel":
        raise common.CLIError("--k applies to --align nearest (voxel alignment is RayFronts' k = 0)")
    report: dict = {"input": str(args.input), "classes": classes, "ignore": ignore, "align": args.align,
                    "gt_points": len(gt_points)}
    metrics_2d = None
    if args.map:
        cfg, vmap = common.mapper_config_from_map(args.map, args.model, args)
        if vmap.grid != args.grid:  # centres of one lattice scored on the other are off by half a voxel
            raise common.CLIError(
                f"{args.map} was binned on the {vmap.grid} grid; evaluate it with --grid {vmap.grid} "
                f"(or rebuild the map with the {args.grid} grid)")
        model_name = cfg.model
        report.update(map=str(args.map), mode=cfg.mode, frames=vmap.frames_integrated)
        if cfg.mode == "probabilities":  # no model needed: labels are in the map
            xyz = vmap.centers().numpy()
            kept = [c if c in queried else None for c in cfg.classes]
            labels, _ = probability_labels(vmap, kept, classes, threshold=args.threshold or 0.0,
                                           prompt_denoising=cfg.prompt_denoising)
            n_vox = len(vmap)
        else:
            mapper = common.build_mapper(cfg)
            mapper.load(args.map)
            mapper.config.classes = queried
            xyz, labels, n_vox = mapper.map.centers().numpy(), lut[_map_labels(mapper, args)], len(mapper.map)
    else:
        from radseg_core.cli.map import map_dataset
        from radseg_core.pipeline import MapperConfig

        model_name = args.model or common.DEFAULT_MODEL
        cfg = MapperConfig(model=model_name, lang_model=args.lang, text_model_path=args.text_model_path,
                           device=args.device, dtype=args.dtype, mode=args.mode, classes=queried,
                           voxel_size=args.voxel_size, point_stride=args.point_stride, max_depth=args.max_depth,
                           voxel_grid=args.grid, free_space_decay=0.0,  # the protocol's lattice, no clearing
                           input_sizing=args.input_sizing, **common.backend_options(args))
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
            pred = lut[out.labels.astype(np.int64)]
            if pred.shape != gt.shape:
                import cv2

                pred = cv2.resize(pred.astype(np.int32), (gt.shape[1], gt.shape[0]),
                                  interpolation=cv2.INTER_NEAREST)
            cm2d.update(pred, gt)

        with dataset:
            stats = map_dataset(dataset, mapper, out_dir, segmentation=args.segmentation,
                                show_progress=not args.no_progress, on_frame=on_frame)
        mapper.save(out_dir / "map.rsmap")
        xyz, labels, n_vox = mapper.map.centers().numpy(), lut[_map_labels(mapper, args)], len(mapper.map)
        report.update(mode=args.mode, frames=stats["frames"], seconds_per_stage_mean=stats["seconds_per_stage_mean"])
        if has_2d:
            metrics_2d = cm2d.metrics(classes)
    k = args.k or 5
    metrics_3d = miou_3d(gt_points, gt_labels, xyz, labels, K, align=args.align, voxel_size=cfg.voxel_size,
                         k=k, grid=args.grid, voxelize_gt=not args.no_voxelize_gt,
                         max_distance=args.max_distance, ignore_labels=ignore_ids, classes=classes,
                         exclude_absent=args.exclude_absent == "gt")
    report.update(protocol={"k": k, "grid": args.grid, "voxelize_gt": not args.no_voxelize_gt,
                            "ignore_mode": args.ignore_mode, "exclude_absent": args.exclude_absent})
    random = common.is_random(model_name)
    report.update(model=model_name, random_weights=random, voxels=n_vox, voxel_size=cfg.voxel_size,
                  miou_3d=metrics_3d.as_dict(), miou_2d=None if metrics_2d is None else metrics_2d.as_dict())
    if random:
        report["note"] = "random weights: these numbers say the pipeline runs, nothing about quality"
    common.write_json(out_dir / "eval.json", common.json_safe(report))
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
