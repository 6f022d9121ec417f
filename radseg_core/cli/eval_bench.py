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
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"HxW must be at least 16x16, got {text}")
    return h, w


def build_parser_3d(kind: str) -> argparse.ArgumentParser:
    from radseg_core.eval_bench import RADSEG_3D

    p0 = RADSEG_3D[kind]
    p = common.make_parser(
        f"{PROG} {kind}",
        f"Map and score {kind} scenes as RADSeg's evaluation/3d/configs/{kind}_radseg.yaml runs them through "
        "RayFronts (Tab. 2): frames loaded and resized as RayFronts' loaders, the official encoder input size, "
        "fp32, RayFronts' voxel order, labels and ground truth; per-scene and mean mIoU / f-mIoU for feature "
        "and probability aggregation. Flags override single settings (docs/eval.md lists every value).",
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
                   help=f"rgb and depth resolution HxW the frames are resized to (preset {p0.rgb_hw[0]}x"
                        f"{p0.rgb_hw[1]}); the encoder input follows from it")
    p.add_argument("--input-sizing", default=None, choices=["official", "snap16"],
                   help=f"encoder input size rule (preset {p0.input_sizing}: RADSeg's _preprocess_image)")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"prediction threshold (preset {p0.prediction_threshold})")
    p.add_argument("--max-frames", type=common.positive_int, default=None, help="frames per scene (checks)")
    p.add_argument("--save-maps", action="store_true", help="write OUT_DIR/<scene>_<mode>.rsmap")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_model_args(p)
    p.set_defaults(dtype="float32")  # the configs' amp: false
    return p


def main_3d(kind: str, args: argparse.Namespace) -> int:
    from radseg_core.eval_bench import RADSEG_3D, preset_with, run_3d
    from radseg_core.pipeline import MapperConfig

    preset = preset_with(
        RADSEG_3D[kind], k=args.k, grid=args.grid, voxel_size=args.voxel_size, frame_skip=args.frame_skip,
        rgb_hw=args.input_size, depth_hw=args.input_size, input_sizing=args.input_sizing,
        prediction_threshold=args.threshold,
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
                            min_depth=preset.min_depth, max_depth=preset.max_depth, voxel_grid=preset.grid,
                            input_sizing=preset.input_sizing, storage_dtype=preset.storage_dtype,
                            free_space_decay=0.0,  # RayFronts' maps bin on its grid and never clear
                            **common.backend_options(args))

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    random = common.is_random(args.model)
    run = run_3d(kind, args.path, preset, make_config=make_config, build_mapper=common.build_mapper,
                 model=args.model, random_weights=random, extra_ignore=common.parse_classes(args.ignore) or [],
                 ignore_mode=args.ignore_mode, max_frames=args.max_frames, show_progress=not args.no_progress,
                 out_dir=out_dir if args.save_maps else None)
    from radseg_core.encoder.windows import snap_size, stride_size

    h, w = (stride_size(*preset.rgb_hw, preset.window_stride, preset.crop) if preset.input_sizing == "official"
            else snap_size(*preset.rgb_hw))
    report = run.as_dict()
    report.update(ignore_mode=args.ignore_mode, dtype=args.dtype, encoder_input_hw=[h, w])
    common.write_json(out_dir / "eval.json", common.json_safe(report))
    print(f"{kind}, preset {args.preset}: {len(run.classes)} classes, ignored {run.ignore or 'none'}, "
          f"k={preset.k}, {preset.voxel_size} m voxels, frame skip {preset.frame_skip}, "
          f"frames {preset.rgb_hw[0]}x{preset.rgb_hw[1]} (encoder input {h}x{w}, {preset.input_sizing}), "
          f"window {preset.crop}/{preset.window_stride}, {args.dtype}, {preset.storage_dtype} voxels")
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
        "2D zero-shot segmentation mIoU on a benchmark's validation split as RADSeg's evaluation/2d configs "
        "run it: mmseg resize (cv2 bilinear) to the preset's scale, windows over the official input size, "
        "the official class names, fp32, probabilities upsampled once to the original size, argmax with no "
        "threshold; background ignored. docs/eval.md lists every value with its source.",
        f"example:\n  {PROG} 2d voc ~/data/VOCdevkit --preset mid -o out/voc\n"
        f"  {PROG} 2d ade20k ~/data/ADEChallengeData2016 --preset high --sam-refine "
        "--sam-checkpoint ~/sam_vit_h_4b8939.pth")
    p.add_argument("dataset", choices=DATASETS_2D)
    p.add_argument("root", metavar="ROOT", help="dataset folder in MMSegmentation's layout (docs/eval.md)")
    p.add_argument("--preset", default="mid", choices=["low", "mid", "high"], help="resolution standard")
    p.add_argument("-o", "--out-dir", default="radseg_eval_2d", help="output directory (created)")
    p.add_argument("--max-images", type=common.positive_int, default=None, help="first N images (checks)")
    p.add_argument("--class-names", default="official",
                   help="prompt names: official (RADSeg's configs/cls_*.txt, default), dataset (the "
                        "benchmark's own names), or a text file with one name per line in class order")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="best probability strictly below it = no prediction (default 0: none, as the reference)")
    p.add_argument("--input-sizing", default="official", choices=["official", "snap16"],
                   help="encoder input size (default official: RADSeg's _preprocess_image)")
    p.add_argument("--sam-refine", action="store_true", help="RADSeg+ (RADIO-SAM refinement)")
    p.add_argument("--sam-checkpoint", default=None, help="SAM ViT-H checkpoint for --sam-refine")
    p.add_argument("--sam-prompt-frame", default="official", choices=["official", "exact"],
                   help="RADSeg+ prompt scaling (default official, as RADSeg's sam_refinement)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_model_args(p)
    p.set_defaults(dtype="float32")  # the configs' amp=False
    return p


def class_names_2d(dataset: str, choice: str, classes: list[str]) -> list[str]:
    """Prompt names for ``--class-names`` (see the parser)."""
    from radseg_core.datasets.seg2d import official_class_names, read_class_names

    if choice == "official":
        return official_class_names(dataset)
    if choice == "dataset":
        return list(classes)
    try:
        names = read_class_names(choice)
    except OSError as e:
        raise common.CLIError(f"--class-names {choice}: {e.strerror or e}") from None
    if len(names) != len(classes):
        raise common.CLIError(f"--class-names has {len(names)} names, {dataset} has {len(classes)}")
    return names


def main_2d(args: argparse.Namespace) -> int:
    from radseg_core.datasets.seg2d import open_seg2d
    from radseg_core.eval_bench import PAPER_A2, PRESETS_2D, SAM_COARSE_THRESH, paper_tab1, rescale_size, run_2d
    from radseg_core.pipeline import MapperConfig

    if args.sam_refine and not args.sam_checkpoint:
        raise common.CLIError("--sam-refine needs --sam-checkpoint (sam_vit_h_4b8939.pth, see docs/encoder.md)")
    ds = open_seg2d(args.dataset, args.root, max_images=args.max_images)
    names = class_names_2d(args.dataset, args.class_names, list(ds.classes))
    s = PRESETS_2D[args.preset][args.dataset]
    cfg = MapperConfig(model=args.model, lang_model=args.lang, text_model_path=args.text_model_path,
                       device=args.device, dtype=args.dtype, mode="probabilities", classes=names,
                       crop=s.crop, stride=s.stride, input_sizing=args.input_sizing, denoised_pixels="argmax",
                       prediction_threshold=args.threshold, prompt_denoising=0.5,
                       sam_refine=args.sam_refine, sam_checkpoint=args.sam_checkpoint,
                       sam_coarse_thresh=SAM_COARSE_THRESH[args.dataset], sam_prompt_frame=args.sam_prompt_frame,
                       **common.backend_options(args))
    mapper = common.build_mapper(cfg)

    def encode(rgb, hw):
        return mapper.encoder.predict(rgb, names, size=hw).labels.cpu().numpy()

    m = run_2d(ds, encode=encode, scale=s.scale, show_progress=not args.no_progress,
               desc=f"{args.dataset} {args.preset}")
    random = common.is_random(args.model)
    method = "radseg+" if args.sam_refine else "radseg"
    h0, w0 = ds.image(0).shape[:2]
    resized = rescale_size(h0, w0, s.scale)
    out_dir = Path(args.out_dir)
    report = {"dataset": args.dataset, "root": str(args.root), "preset": args.preset, "method": method,
              "settings": {"scale": list(s.scale), "short_side": s.short, "crop": s.crop, "stride": s.stride,
                           "input_sizing": args.input_sizing, "dtype": args.dtype, "threshold": args.threshold,
                           "class_names": args.class_names,
                           **({"sam_coarse_thresh": cfg.sam_coarse_thresh, "sam_prompt_frame": args.sam_prompt_frame}
                              if args.sam_refine else {})},
              "first_image": {"original": [h0, w0], "resized": list(resized),
                              "encoder_input": list(mapper.encoder.input_size(*resized))},
              "images": len(ds), "model": args.model, "random_weights": random, "miou_2d": m.as_dict()}
    a2 = PAPER_A2[method][args.preset][args.dataset]
    t1 = paper_tab1(method, args.preset, args.dataset)
    if random:
        report["note"] = "random weights: these numbers say the pipeline runs, nothing about quality"
    else:
        report[f"paper_tab_a2_{method}_base"] = a2
        report[f"paper_tab1_{method}_base"] = t1
    common.write_json(out_dir / "eval.json", common.json_safe(report))
    print(f"{args.dataset} ({len(ds)} images), preset {args.preset}: resize to scale {s.scale[0]}x{s.scale[1]} "
          f"(first image {w0}x{h0} -> {resized[1]}x{resized[0]}, encoder input "
          f"{report['first_image']['encoder_input'][1]}x{report['first_image']['encoder_input'][0]}), "
          f"window {s.crop}/{s.stride}, {args.dtype}{', RADSeg+' if args.sam_refine else ''}")
    print(m.table())
    if random:
        print(f"\nNOTE: model '{args.model}' has RANDOM WEIGHTS: these numbers are meaningless (pipeline check).")
        common.random_banner(args.model)
    else:
        print(f"paper (Tab. A.2, {method} base, {args.preset} resolution): {a2:.2f} mIoU")
        print(f"note: Tab. 1 reports the best run at or below this resolution: {t1:.2f}")
    print(f"\nwrote {out_dir / 'eval.json'}", file=sys.stderr)
    return 0
