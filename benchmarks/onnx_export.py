"""ONNX export: fidelity and speed of onnxruntime against torch on the same windows (random weights).

Per model: export time and size, max |onnxruntime - torch| over the windows of one 640x480 frame at the
configured crop/stride (default 336/224: 6 windows, one batch), and the median time of both on that batch,
timed in turns in this run (ratio = torch / onnxruntime, > 1: onnxruntime faster). Both run float32 on the
CPU (onnxruntime's CPU execution provider, torch's own kernels), same thread count.

Models: random-tiny, and checkpoints in the released C-RADIOv3-B and -L shapes (ViT-B/16 768-d 12 blocks,
ViT-L/16 1024-d 24 blocks, CPE, registers, the v3 teachers' heads) built through RADIO's own code from a
NVlabs/RADIO checkout (--radio, or $RADSEG_RADIO_REPO, or the fetched mirror radio_fixtures finds).
The B and L rows are too slow for CI (writing the L checkpoint and exporting it take minutes on 2 cores);
CI checks random-tiny and B at 224 px (test/core/test_onnx_export.py). Exit status 1 if any row exceeds
the 1e-4 tolerance.

  python benchmarks/onnx_export.py --out docs/bench/onnx_cpu.json            # tiny, b, l
  python benchmarks/onnx_export.py --models tiny b --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "core"))

from radseg_core.compat import patch_torchvision  # noqa: E402

patch_torchvision()

from radseg_core.encoder import build_encoder  # noqa: E402
from radseg_core.encoder.backends import OnnxRuntimeWindows, WindowBackbone  # noqa: E402
from radseg_core.export import export_onnx  # noqa: E402

TOL = 1e-4
SHAPES = {  # the released backbones' timm shapes (as benchmarks/model_memory.py)
    "b": dict(vit="vit_base_patch16_224", vit_kwargs=dict(embed_dim=768, depth=12, num_heads=12)),
    "l": dict(vit="vit_large_patch16_224", vit_kwargs=dict(embed_dim=1024, depth=24, num_heads=16)),
}


def alternating_ms(fns, repeats: int) -> list[float]:
    """Median ms of each callable, timed in turns (a, b, a, b, ...) so load on a shared machine hits both."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(ts) for ts in times]


def build(name: str, work: Path, radio: Path | None, crop: int, stride: int):
    if name == "tiny":
        return build_encoder("random-tiny", crop=crop, stride=stride, check_autocast=False), "random-tiny"
    from radio_fixtures import radio_checkout, write_text_model

    from radseg_core.model import RadioSpec
    from radseg_core.model.replica_checkpoint import write_radio_checkpoint

    repo = radio or radio_checkout(work)
    if repo is None:
        raise SystemExit("no NVlabs/RADIO checkout: pass --radio <dir> (git clone https://github.com/NVlabs/RADIO)")
    text = work / "text"
    if not (text / "google/siglip2-so400m-patch16-naflex" / "config.json").is_file():
        write_text_model(text / "google/siglip2-so400m-patch16-naflex", 1152)
    ckpt = work / f"c-radio_v3-{name}_random_half.pth.tar"
    if not ckpt.is_file():
        write_radio_checkpoint(ckpt, repo, mlp_hidden=1536, **SHAPES[name])
    spec = RadioSpec(f"c-radio_v3-{name}", repo_dir=str(repo), checkpoint=str(ckpt), text_model_dir=str(text))
    return build_encoder(spec, crop=crop, stride=stride, check_autocast=False), f"C-RADIOv3-{name.upper()} shape"


def bench(name: str, args: argparse.Namespace, work: Path) -> dict:
    t0 = time.perf_counter()
    enc, label = build(name, work, args.radio, args.crop, args.stride)
    build_s = time.perf_counter() - t0
    info = export_onnx(enc, work / f"{name}.onnx")
    unit = WindowBackbone(enc.model, enc.patch).eval()
    t0 = time.perf_counter()
    ort = OnnxRuntimeWindows(info.path, torch.device("cpu"), fallback=None, threads=torch.get_num_threads())
    session_s = time.perf_counter() - t0
    img = torch.rand(1, 3, 480, 640, generator=torch.Generator().manual_seed(0))
    from radseg_core.encoder.windows import crop_windows

    grid = enc.grid(480, 640)
    windows = crop_windows(img, grid)
    with torch.no_grad():
        ref = unit(windows)
        got = ort(windows)
        diff = float((got - ref).abs().max())
        torch_ms, ort_ms = alternating_ms([lambda: unit(windows), lambda: ort(windows)], args.repeats)
    return {"model": label, "feature_dim": enc.feature_dim, "window": list(info.window), "windows": grid.num,
            "build_s": build_s, "export_s": info.seconds, "session_s": session_s, "onnx_mb": info.bytes / 2**20,
            "max_abs_diff": diff, "max_abs_value": float(ref.abs().max()), "within_tolerance": diff <= TOL,
            "torch_ms": torch_ms, "onnxruntime_ms": ort_ms, "torch_over_onnxruntime": torch_ms / ort_ms,
            "repeats": args.repeats}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["tiny", "b", "l"], choices=["tiny", "b", "l"])
    p.add_argument("--radio", type=Path, default=os.environ.get("RADSEG_RADIO_REPO"))
    p.add_argument("--crop", type=int, default=336)
    p.add_argument("--stride", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", type=Path, default=None, help="checkpoints and exports (default: temp dir)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="radseg-onnx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = []
    for name in args.models:
        rows.append(bench(name, args, work))
        print(f"done {name}", file=sys.stderr, flush=True)
    import onnxruntime

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "loadavg_1min_before": load}
    print(f"machine: {cpu} ({info['cpu_count']} cores, {info['torch_threads']} threads), torch {info['torch']}, "
          f"onnxruntime {info['onnxruntime']} (CPU EP), fp32, {args.crop}/{args.stride} windows of 640x480")
    print("| model | windows | export s | .onnx + .data MB | max abs diff | torch ms | onnxruntime ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['windows']} x {r['window'][0]} | {r['export_s']:.1f} | {r['onnx_mb']:.0f} | "
              f"{r['max_abs_diff']:.1e} | {r['torch_ms']:.0f} | {r['onnxruntime_ms']:.0f} | "
              f"{r['torch_over_onnxruntime']:.2f}x |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                        "results": rows}, indent=2))
    bad = [r["model"] for r in rows if not r["within_tolerance"]]
    if bad:
        print(f"beyond {TOL}: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
