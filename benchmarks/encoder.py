"""Per-stage timing of the RADSeg encoder (random weights: speed only, never quality).

Stages, each timed alone on the same inputs (median of --repeats after --warmup runs):
  backbone      crops + RADIO forward (SCRA included) of all windows in one batch + stitching
  scra          extra time of SCRA over the plain last-block attention, timed on the real token batch
                of that forward (SCRA attention minus plain attention; part of "backbone")
  scga          SCGA on the stitched map (row blocks)
  align         language adaptor summary head on every patch + normalisation
  probs         100-cos softmax over K classes, upsampling to image size, denoising, labels
  refine_enc    RADIO-SAM's extra encoder pass: whole image at 1024 long side + SAM adaptor
                (the SAM-H decoder itself is not timed: no checkpoint and no segment_anything here)
  total         backbone + scga + align + probs (the predict path without refinement)
  predict       end-to-end encoder.predict, only with --predict (text embeddings cached)

Default run (random-tiny and random-base at 640x480 and the paper's mid resolution 768x576, crop 336,
stride 224, 2 repeats, no warm-up) takes about 3 minutes on 2 CPU cores (3.3 min on a shared VM). Example:
    python benchmarks/encoder.py --out /tmp/encoder_bench.json
    python benchmarks/encoder.py --device cuda --dtype bf16 --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radseg_core.encoder import build_encoder  # noqa: E402

DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_one(model: str, size: tuple[int, int], args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    enc = build_encoder(
        model, device=args.device, dtype=DTYPES[args.dtype], crop=args.crop, stride=args.stride
    )
    w, h = size
    img = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, device=device)
    classes = [f"class {i}" for i in range(args.classes)]
    enc.encode_text(classes)  # per query, not per frame: cached before timing
    x = enc.snap(enc.to_batch(img)[0])
    run = {"repeats": args.repeats, "warmup": args.warmup}

    def t(fn):
        return timed(fn, device, args.repeats, args.warmup)

    backbone = t(lambda: enc.window_features(x))
    scra_ms = scra_overhead(enc, x, device, args)
    feats = enc.window_features(x)
    scga_ms = t(lambda: enc.aggregate(feats))
    agg = enc.aggregate(feats)
    align_ms = t(lambda: enc.align_map(agg))
    aligned = enc.align_map(agg)
    text = enc.encode_text(classes)
    probs_ms = t(lambda: enc.postprocess(enc.class_probs(aligned, text), (h, w)))
    refine_ms = t(lambda: enc.sam_embedding(x[0])) if args.refine else None
    predict_ms = t(lambda: enc.predict(img, classes)) if args.predict else None
    grid = enc.grid(*x.shape[-2:])
    return {
        "model": model,
        "width": w,
        "height": h,
        "windows": grid.num,
        "feature_grid": list(grid.grid),
        "classes": args.classes,
        **run,
        "ms": {
            "backbone": backbone,
            "scra": scra_ms,
            "scga": scga_ms,
            "align": align_ms,
            "probs": probs_ms,
            "total": backbone + scga_ms + align_ms + probs_ms,
            "refine_enc": refine_ms,
            "predict": predict_ms,
        },
    }


def scra_overhead(enc, x: torch.Tensor, device: torch.device, args: argparse.Namespace) -> float:
    """SCRA minus plain attention on the tokens the last block really sees (many repeats: it is cheap)."""
    attn = enc.model.model.blocks[-1].attn
    seen = {}
    hook = enc.model.model.blocks[-1].register_forward_pre_hook(lambda m, a: seen.update(x=m.norm1(a[0])))
    with torch.no_grad():
        enc.window_features(x)
    hook.remove()
    tokens = seen["x"]
    reps = max(5, 5 * args.repeats)
    with torch.no_grad(), enc._autocast():
        plain = timed(lambda: attn.original(tokens), device, reps, 1)
        scra = timed(lambda: attn(tokens), device, reps, 1)
    return scra - plain


def overhead(res: dict) -> float:
    ms = res["ms"]
    return 100.0 * (ms["scra"] + ms["scga"] + ms["align"]) / (ms["backbone"] - ms["scra"])


def print_table(results: list[dict]) -> None:
    cols = ["backbone", "scra", "scga", "align", "probs", "total", "refine_enc", "predict"]
    head = f"{'model':<12} {'size':>8} {'win':>4} " + " ".join(f"{c:>10}" for c in cols) + f" {'ovh%':>6}"
    print(head)
    print("-" * len(head))
    for r in results:
        vals = " ".join(f"{r['ms'][c]:>10.1f}" if r["ms"][c] is not None else f"{'-':>10}" for c in cols)
        print(f"{r['model']:<12} {r['width']}x{r['height']:<4} {r['windows']:>4} {vals} {overhead(r):>6.1f}")
    print(
        "times in ms (median); scra is included in backbone; ovh% = (scra + scga + align) / (backbone - scra)"
    )


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        info["cpu"] = platform.processor()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["random-tiny", "random-base"])
    p.add_argument("--sizes", nargs="+", default=["640x480", "768x576"], help="WxH; 768x576 = paper mid res")
    p.add_argument("--crop", type=int, default=336)
    p.add_argument("--stride", type=int, default=224)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="none", help="autocast dtype")
    p.add_argument("--predict", action="store_true", help="also time end-to-end predict")
    p.add_argument("--no-refine", dest="refine", action="store_false", help="skip the RADIO-SAM encoder pass")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    results = []
    for model in args.models:
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            results.append(bench_one(model, (w, h), args))
            print(f"done {model} {size}", file=sys.stderr, flush=True)
    info = machine()
    info["loadavg_1min_before"] = load_before  # other processes on the machine skew CPU timings
    print(
        f"machine: {info['cpu']} ({info['cpu_count']} cores, {info['torch_threads']} torch threads), "
        f"GPU: {info['cuda'] or 'none'}, torch {info['torch']}, device {args.device}, dtype {args.dtype}"
    )
    print_table(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
