"""``radseg-eval replica|scannet PATH`` and ``radseg-eval 2d DATASET ROOT``: the paper's benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radseg_core.cli import common

PROG = "radseg-eval"


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 640x1136, got {text!r}") from None
    if h < 16 or w < 16 or h % 16 or w % 16:
        raise argparse.ArgumentTypeError(f"HxW must be multiples of 16 (the patch size), got {text}")
    return h, w


def build_parser_3d(kind: str) -> argparse.ArgumentParser:
    from radseg_core.eval_bench import RADSEG_3D

    p0 = RADSEG_3D[kind]
    p = common.make_parser(
        f"{PROG} {kind}",
        f"Map and score {kind} scenes with RADSeg's 3D settings (Tab. 2, appendix A3): per-scene and mean "
        "mIoU / f-mIoU for feature and probability aggregation. Flags override single settings.",
        f"example:\n  {PROG} {kind} ~/data/{'Replica' if kind == 'replica' else 'scannet/scans'} "
        "--preset radseg-3d -o out/" + kind)
    p.add_argument("path", metavar="PATH", help=f"one {kind} scene folder, or a folder of scenes")
    p.add_argument("--preset", default="radseg-3d", choices=["radseg-3d"], help="settings (docs/eval.md)")
    p.add_argument("-o", "--out-dir", default=f"radseg_eval_{kind}", help="output directory (created)")
    p.add_argument("--scenes", default=None,
                   help=f"comma-separated scene folder names (default: the paper's {', '.join(p0.scenes)})")
    p.add_argument("--modes", default=None, help="features,probabilities (default: both)")
    p.add_argument("--ignore", default=None, help="extra comma-separated classes to ignore")
    p.add_argument("--ignore-mode", default="not-queried", choices=["not-queried", "miss"])
    p.add_argument("--k", type=common.positive_int, default=None, help=f"nearest voxels voted (preset {p0.k})")
    p.add_argument("--grid", default=None, choices=["round", "floor"], help=f"voxel grid (preset {p0.grid})")
    p.add_argument("--voxel-size", type=common.positive_float, default=None,
                   help=f"voxel edge in metres (preset {p0.voxel_size})")
    p.add_argument("--frame-skip", type=int, default=None,
                   help=f"frames dropped after each used one (preset {p0.frame_skip}: every 11th frame)")
    p.add_argument("--input-size", type=_hw, default=None,
                   help=f"encoder input HxW (preset {p0.input_hw[0]}x{p0.input_hw[1]})")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"prediction threshold (preset {p0.prediction_threshold})")
    p.add_argument("--max-frames", type=common.positive_int, default=None, help="frames per scene (checks)")
    p.add_argument("--save-maps", action="store_true", help="write OUT_DIR/<scene>_<mode>.rsmap")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_model_args(p)
    return p


def main_3d(kind: str, args: argparse.Namespace) -> int:
    from radseg_core.eval_bench import RADSEG_3D, preset_with, run_3d
    from radseg_core.pipeline import MapperConfig

    preset = preset_with(
        RADSEG_3D[kind], k=args.k, grid=args.grid, voxel_size=args.voxel_size, frame_skip=args.frame_skip,
        input_hw=args.input_size, prediction_threshold=args.threshold,
        scenes=tuple(common.parse_classes(args.scenes)) if args.scenes else None,
        modes=tuple(common.parse_classes(args.modes)) if args.modes else None)
    bad = [m for m in preset.modes if m not in ("features", "probabilities")]
    if bad:
        raise common.CLIError(f"--modes: unknown {bad}; use features and/or probabilities")
    if preset.frame_skip < 0:
        raise common.CLIError("--frame-skip must be >= 0")

    def make_config(classes, mode):
        return MapperConfig(model=args.model, lang_model=args.lang, text_model_path=args.text_model_path,
                            device=args.device, dtype=args.dtype, mode=mode, classes=classes,
                            crop=preset.crop, stride=preset.window_stride,
                            prediction_threshold=preset.prediction_threshold,
                            prompt_denoising=preset.prompt_denoising, voxel_size=preset.voxel_size,
                            max_depth=preset.max_depth, voxel_grid=preset.grid,
                            free_space_decay=0.0,  # RayFronts' maps bin on its grid and never clear
                            **common.backend_options(args))

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    random = common.is_random(args.model)
    run = run_3d(kind, args.path, preset, make_config=make_config, build_mapper=common.build_mapper,
                 model=args.model, random_weights=random, extra_ignore=common.parse_classes(args.ignore) or [],
                 ignore_mode=args.ignore_mode, max_frames=args.max_frames, show_progress=not args.no_progress,
                 out_dir=out_dir if args.save_maps else None)
    report = run.as_dict()
    report["ignore_mode"] = args.ignore_mode
    from radseg_core.cli.eval import _clean

    common.write_json(out_dir / "eval.json", _clean(report))
    print(f"{kind}, preset {args.preset}: {len(run.classes)} classes, ignored {run.ignore or 'none'}, "
          f"k={preset.k}, {preset.voxel_size} m voxels, frame skip {preset.frame_skip}, "
          f"input {preset.input_hw[0]}x{preset.input_hw[1]}, window {preset.crop}/{preset.window_stride}")
    print(run.table())
    if random:
        print(f"\nNOTE: model '{args.model}' has RANDOM WEIGHTS: these numbers are meaningless (pipeline check).")
        common.random_banner(args.model)
    print(f"\nwrote {out_dir / 'eval.json'}", file=sys.stderr)
    return 0


def build_parser_2d() -> argparse.ArgumentParser:
    from radseg_core.datasets.seg2d import DATASETS_2D

    p = common.make_parser(
        f"{PROG} 2d",
        "2D zero-shot segmentation mIoU on a benchmark's validation split with RADSeg's per-dataset "
        "settings (Tab. 1 / A.1: shorter side, window, stride; background ignored).",
        f"example:\n  {PROG} 2d voc ~/data/VOCdevkit --preset mid -o out/voc")
    p.add_argument("dataset", choices=DATASETS_2D)
    p.add_argument("root", metavar="ROOT", help="dataset folder in MMSegmentation's layout (docs/eval.md)")
    p.add_argument("--preset", default="mid", choices=["low", "mid", "high"], help="resolution standard")
    p.add_argument("-o", "--out-dir", default="radseg_eval_2d", help="output directory (created)")
    p.add_argument("--max-images", type=common.positive_int, default=None, help="first N images (checks)")
    p.add_argument("--class-names", default=None,
                   help="text file, one prompt name per line in class order (e.g. the paper's name files)")
    p.add_argument("--threshold", type=float, default=0.0, help="best probability below it = no prediction")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_model_args(p)
    return p


def main_2d(args: argparse.Namespace) -> int:
    from radseg_core.cli.eval import _clean
    from radseg_core.datasets.seg2d import open_seg2d
    from radseg_core.eval_bench import PAPER_2D, PRESETS_2D, run_2d
    from radseg_core.pipeline import MapperConfig

    ds = open_seg2d(args.dataset, args.root, max_images=args.max_images)
    names = list(ds.classes)
    if args.class_names:
        names = [s.strip() for s in Path(args.class_names).read_text().splitlines() if s.strip()]
        if len(names) != len(ds.classes):
            raise common.CLIError(f"--class-names has {len(names)} names, {args.dataset} has {len(ds.classes)}")
    s = PRESETS_2D[args.preset][args.dataset]
    cfg = MapperConfig(model=args.model, lang_model=args.lang, text_model_path=args.text_model_path,
                       device=args.device, dtype=args.dtype, mode="probabilities", classes=names,
                       crop=s.crop, stride=s.stride, **common.backend_options(args))
    mapper = common.build_mapper(cfg)

    def encode(rgb):
        return mapper.encoder.predict(rgb, names).probs

    m = run_2d(ds, encode=encode, short=s.short, threshold=args.threshold, show_progress=not args.no_progress,
               desc=f"{args.dataset} {args.preset}")
    random = common.is_random(args.model)
    out_dir = Path(args.out_dir)
    report = {"dataset": args.dataset, "root": str(args.root), "preset": args.preset,
              "settings": {"short_side": s.short, "crop": s.crop, "stride": s.stride}, "images": len(ds),
              "model": args.model, "random_weights": random, "miou_2d": m.as_dict()}
    if random:
        report["note"] = "random weights: these numbers say the pipeline runs, nothing about quality"
    else:
        report["paper_tab1_radseg_base"] = PAPER_2D[args.preset][args.dataset]
    common.write_json(out_dir / "eval.json", _clean(report))
    print(f"{args.dataset} ({len(ds)} images), preset {args.preset}: shorter side {s.short}, "
          f"window {s.crop}/{s.stride}")
    print(m.table())
    if random:
        print(f"\nNOTE: model '{args.model}' has RANDOM WEIGHTS: these numbers are meaningless (pipeline check).")
        common.random_banner(args.model)
    else:
        print(f"paper (Tab. 1, RADSeg base, {args.preset}): {PAPER_2D[args.preset][args.dataset]:.2f} mIoU")
    print(f"\nwrote {out_dir / 'eval.json'}", file=sys.stderr)
    return 0
