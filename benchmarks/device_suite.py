"""GPU numbers in one run: encoder frames/s, achieved TFLOP/s, integration, clearing, queries, memory.

Run by ``benchmarks/device_suite.sh`` (which runs the ``cuda`` tests first). Needs torch, timm, einops,
transformers, numpy, pyyaml; onnx + onnxscript + onnxruntime for the onnxruntime rows. No ROS, no
project virtual environment: the repository root on PYTHONPATH is enough.

Measured, side by side in this run, on the device given:
  peak        bf16 matmul (8192^3; --quick 1024^3) TFLOP/s: the card's practical limit, measured here
  encoder     frames/s of encode_features on a 640x480 image (windows + RADIO + SCRA + stitching + SCGA)
              for the default and Jetson presets (crop/stride/dtype from config/*.yaml), in fp32, bf16 and
              fp16 autocast, eager vs torch.compile (backbone) vs one CUDA graph (the whole call); plus
              onnxruntime (fp32 graph) where its CUDA execution provider exists (on the CPU: its CPU one).
              FLOPs per frame from torch.utils.flop_counter -> achieved TFLOP/s and fraction of peak.
  integrate   VoxelMap.integrate_frame ms/frame, 640x480 depth (--quick 320x240), 768-d fp16 map, no clearing
  clearing    the same frames with clearing on (free_space_decay 0.5): extra ms per frame (the corridor's
              end wall moves from 6 m to 9 m half way, so the second half has a wall to clear away)
  query       query_map over 1M voxels (--quick 2k), 768-d: aligning chunk by chunk vs the aligned cache
Every row records peak device memory (CUDA: max_memory_allocated; CPU: not measured).
Model: random weights in the C-RADIOv3-B architecture (timm vit_base_patch16_radio_v3; --quick random-tiny):
speed only, never semantic.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "cuda"))

from cuda_scenes import room_frame  # noqa: E402

from radseg_core.compat import patch_torchvision  # noqa: E402

patch_torchvision()

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRESETS = {"default": "radseg.yaml", "jetson": "radseg_jetson_orin.yaml"}


class Clock:
    """Median wall time of a callable on the device (synchronised), and the time budget of the run."""

    def __init__(self, device: torch.device, budget_s: float) -> None:
        self.device, self.start, self.budget = device, time.perf_counter(), budget_s

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def ms(self, fn, repeats: int, warmup: int = 1) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def over(self) -> bool:
        return time.perf_counter() - self.start > self.budget


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def matmul_peak(clock: Clock, n: int, repeats: int) -> dict:
    a = torch.randn(n, n, device=clock.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=clock.device, dtype=torch.bfloat16)
    ms = clock.ms(lambda: a @ b, repeats, warmup=3)
    return {"n": n, "ms": ms, "tflops": 2 * n**3 / ms / 1e9}


def preset(name: str) -> dict:
    import yaml

    params = yaml.safe_load((ROOT / "config" / PRESETS[name]).read_text())["/**/radseg"]["ros__parameters"]
    return {"crop": int(params.get("crop", 336)), "stride": int(params.get("stride", 224)),
            "dtype": params.get("dtype", "auto"), "file": PRESETS[name]}


def frame_flops(enc, img: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        enc.encode_features(img)
    return int(counter.get_total_flops())


def cuda_graph(enc, img: torch.Tensor):
    """encode_features on a static input captured as one CUDA graph; returns replay()."""
    static = img.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            enc.encode_features(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        enc.encode_features(static)
    return graph.replay


def bench_encoder(args, clock: Clock, peak_tflops: float) -> list[dict]:
    """Eager and CUDA-graph rows first, then onnxruntime, then torch.compile (slowest to set up): when the
    time budget runs out, what is skipped is the compile rows."""
    from radseg_core.encoder import build_encoder

    device, rows, encoders = clock.device, [], {}
    img = torch.from_numpy(room_frame(0).rgb).permute(2, 0, 1).contiguous().to(device)
    for pname in PRESETS:
        p = preset(pname)
        enc = build_encoder(args.model, device=str(device), crop=p["crop"], stride=p["stride"], check_autocast=False)
        encoders[pname] = (enc, p, enc.grid(480, 640).num, frame_flops(enc, img))
    for mode in ("eager", "cudagraph", "onnxruntime", "compile"):
        for pname, (enc, p, windows, flops) in encoders.items():
            if args.quick and mode in ("onnxruntime", "compile") and pname != "default":
                continue  # the dry run sets each path up once
            if mode == "onnxruntime":
                rows.append(bench_onnxruntime(args, clock, enc, img, pname, p, windows, flops, peak_tflops))
                continue
            for dname, dtype in DTYPES.items():
                if args.quick and dname == "fp16":
                    continue  # the dry run exercises autocast once (bf16)
                row = {"preset": pname, "crop": p["crop"], "stride": p["stride"], "windows": windows,
                       "dtype": dname, "mode": mode, "preset_dtype": p["dtype"], "gflop_per_frame": flops / 1e9}
                rows.append(row)
                enc.autocast_dtype = dtype
                row.update(time_variant(args, clock, enc, img, mode, flops, peak_tflops))
            enc.autocast_dtype = None
    return rows


def time_variant(args, clock: Clock, enc, img: torch.Tensor, mode: str, flops: int, peak_tflops: float) -> dict:
    from radseg_core.encoder.backends import WindowBackbone

    device = clock.device
    if clock.over():
        return {"skipped": "time budget"}
    if mode == "cudagraph" and device.type != "cuda":
        return {"skipped": "CUDA graphs need a GPU"}
    out: dict = {}
    reset_peak(device)
    try:
        fn = lambda: enc.encode_features(img)  # noqa: E731
        if mode == "compile":
            enc.window_backend = torch.compile(WindowBackbone(enc.model, enc.patch), backend=args.compile_backend)
            t0 = time.perf_counter()
            fn()
            out["compile_s"] = time.perf_counter() - t0
        elif mode == "cudagraph":
            fn = cuda_graph(enc, img)
        ms = clock.ms(fn, args.repeats, warmup=args.warmup)
    except Exception as exc:  # noqa: BLE001 - a failing variant is a result, not the end of the run
        return out | {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    finally:
        enc.window_backend = WindowBackbone(enc.model, enc.patch)
    tflops = flops / ms / 1e9
    return out | {"ms": ms, "fps": 1e3 / ms, "tflops": tflops, "fraction_of_peak": tflops / peak_tflops,
                  "peak_mem_mb": peak_mb(device)}


def bench_onnxruntime(args, clock, enc, img, pname, p, windows, flops, peak_tflops) -> dict:
    row = {"preset": pname, "crop": p["crop"], "stride": p["stride"], "windows": windows, "dtype": "fp32",
           "mode": "onnxruntime", "gflop_per_frame": flops / 1e9}
    try:
        import onnxruntime as ort
    except ImportError:
        return row | {"skipped": "onnxruntime not installed"}
    available = ort.get_available_providers()
    row["providers_available"] = available
    if clock.device.type == "cuda" and "CUDAExecutionProvider" not in available:
        return row | {"skipped": "this onnxruntime has no CUDA execution provider (onnxruntime-gpu has)"}
    if clock.over():
        return row | {"skipped": "time budget"}
    from radseg_core.encoder.backends import WindowBackbone, attach_onnxruntime

    try:
        t0 = time.perf_counter()
        backend = attach_onnxruntime(enc)
        row["export_and_load_s"] = time.perf_counter() - t0
        reset_peak(clock.device)
        ms = clock.ms(lambda: enc.encode_features(img), args.repeats, warmup=args.warmup)
        row.update(ms=ms, fps=1e3 / ms, tflops=flops / ms / 1e9, peak_mem_mb=peak_mb(clock.device),
                   providers=backend.providers, fraction_of_peak=flops / ms / 1e9 / peak_tflops)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        enc.window_backend = WindowBackbone(enc.model, enc.patch)
    return row


def bench_map(args, clock: Clock) -> list[dict]:
    from radseg_core.voxel_map import VoxelMap

    device, rows = clock.device, []
    h, w = (240, 320) if args.quick else (480, 640)
    # the corridor's end wall moves from 6 m to 9 m half way (a door opened): from then on clearing decays
    # and removes the old wall's voxels, not only checks a frustum
    half = args.frames // 2
    frames = [room_frame(i, h=h, w=w, far_wall=6.0 if i < half else 9.0) for i in range(args.frames)]
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(768, 30, 40, generator=gen).to(device) for _ in frames]
    per = {}
    for decay in (0.0, 0.5):
        vmap = VoxelMap(voxel_size=0.05, dim=768, dtype=torch.float16, device=device, free_space_decay=decay)
        reset_peak(device)
        times = []
        for f, fm in zip(frames, feats, strict=True):
            clock.sync()
            t0 = time.perf_counter()
            vmap.integrate_frame(f, fm, max_depth=10.0)
            clock.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        steady = times[len(times) // 4:]  # after the first allocations
        per[decay] = statistics.median(steady)
        rows.append({"what": "integrate" if decay == 0 else "integrate+clearing", "ms": per[decay], "size": f"{w}x{h}",
                     "frames": len(frames), "voxels": len(vmap), "peak_mem_mb": peak_mb(device)})
    rows.append({"what": "clearing", "ms": per[0.5] - per[0.0], "frames": len(frames),
                 "note": "median frame with clearing minus without, same frames"})
    return rows


def bench_query(args, clock: Clock) -> list[dict]:
    from radseg_core.query import AlignedFeatures, query_map
    from radseg_core.voxel_map import VoxelMap

    device, n, dim = clock.device, args.voxels, 768
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(dim, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 1152))
    head = head.to(device).eval()  # SigLIP2 summary head's shape: 768 -> 1152 (random)

    def align(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return head(x.to(device).float())

    vmap = VoxelMap(voxel_size=0.05, dim=dim, dtype=torch.float16, device=device)
    side = int(np.ceil(n ** (1 / 3)))
    for start in range(0, n, 1 << 17):
        idx = torch.arange(start, min(n, start + (1 << 17)), device=device)
        pts = torch.stack([idx // (side * side), (idx // side) % side, idx % side], 1).double() * 0.05 + 0.025
        vmap.integrate_points(pts, torch.randn(len(idx), dim, device=device))
    text = torch.nn.functional.normalize(torch.randn(2, 1152, device=device), dim=1)
    neg = torch.nn.functional.normalize(torch.randn(4, 1152, device=device), dim=1)
    rows = []
    for cached in (False, True):
        if clock.over():
            rows.append({"what": f"query {'cached' if cached else 'align per query'}", "skipped": "time budget"})
            continue
        cache = AlignedFeatures(align) if cached else None

        def run(cache=cache):
            return query_map(vmap, ["a", "b"], text, align=align, negatives=neg, k=5, threshold=0.5,
                             max_candidates=None, cache=cache)

        reset_peak(device)
        first = clock.ms(run, 1, warmup=0)  # with the cache: building it
        ms = clock.ms(run, args.repeats, warmup=0)
        rows.append({"what": "query cached" if cached else "query align per query", "voxels": len(vmap),
                     "ms": ms, "first_ms": first, "peak_mem_mb": peak_mb(device)})
    return rows


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["card"] = props.name
        info["card_memory_gb"] = round(props.total_memory / 2**30, 1)
    else:
        try:
            with open("/proc/cpuinfo") as f:
                info["card"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        except (OSError, StopIteration):
            info["card"] = platform.processor() or "cpu"
    return info


def fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def table(result: dict) -> str:
    m, lines = result["machine"], []
    lines.append(f"**{m['card']}** ({result['device']}), torch {m['torch']}, CUDA {m['cuda']}, "
                 f"onnxruntime {m['onnxruntime']}; model {result['model']} (random weights, speed only); "
                 f"bf16 matmul peak measured {result['peak']['tflops']:.1f} TFLOP/s ({result['peak']['n']}^3)")
    lines += ["", "| preset | windows | dtype | mode | ms/frame | frames/s | TFLOP/s | of peak | peak MB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in result["encoder"]:
        note = r.get("skipped") or r.get("error")
        if note:
            lines.append(f"| {r['preset']} {r['crop']}/{r['stride']} | {r['windows']} | {r['dtype']} | {r['mode']} | "
                         f"{note} | | | | |")
            continue
        lines.append(f"| {r['preset']} {r['crop']}/{r['stride']} | {r['windows']} | {r['dtype']} | {r['mode']} | "
                     f"{r['ms']:.1f} | {r['fps']:.1f} | {r['tflops']:.3g} | {100 * r['fraction_of_peak']:.3g} % | "
                     f"{fmt(r.get('peak_mem_mb'), '.0f')} |")
    size = result["map"][0].get("size", "640x480")
    lines += ["", f"| map ({size} frames, 768-d fp16) | ms | voxels | peak MB |", "|---|---|---|---|"]
    for r in result["map"] + result["query"]:
        if "skipped" in r:
            lines.append(f"| {r['what']} | {r['skipped']} | | |")
            continue
        extra = f" (first, building the cache: {r['first_ms']:.1f})" if r["what"] == "query cached" else ""
        lines.append(f"| {r['what']} | {r['ms']:.2f}{extra} | {r.get('voxels', '-')} | "
                     f"{fmt(r.get('peak_mem_mb'), '.0f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="dry run: random-tiny, 320x240 map frames, 2k-voxel queries, no fp16 rows, "
                        "compile and onnxruntime on the default preset only, 1 repeat")
    p.add_argument("--model", default=None, help="default random-base (random-tiny with --quick)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--frames", type=int, default=None, help="integration frames (default 40, quick 3)")
    p.add_argument("--voxels", type=int, default=None, help="query map size (default 1M, quick 2k)")
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (inductor; quick: eager)")
    p.add_argument("--budget-s", type=float, default=330.0, help="skip what is left after this many seconds")
    p.add_argument("--out", type=Path, default=None, help="JSON results")
    args = p.parse_args(argv)
    q = args.quick
    args.model = args.model or ("random-tiny" if q else "random-base")
    args.repeats = args.repeats or (1 if q else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if q else 2)
    args.frames = args.frames or (3 if q else 40)
    args.voxels = args.voxels or (2_000 if q else 1_000_000)
    args.compile_backend = args.compile_backend or ("eager" if q else "inductor")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device_suite: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    clock = Clock(device, args.budget_s)
    result = {"device": str(device), "model": args.model, "quick": q, "machine": machine(device),
              "args": {k: str(v) for k, v in vars(args).items()}}
    result["peak"] = matmul_peak(clock, 1024 if q else 8192, 3 if q else 10)
    print(f"peak bf16 matmul: {result['peak']['tflops']:.1f} TFLOP/s", file=sys.stderr, flush=True)
    result["map"] = bench_map(args, clock)
    result["query"] = bench_query(args, clock)
    print("map and queries done", file=sys.stderr, flush=True)
    result["encoder"] = bench_encoder(args, clock, result["peak"]["tflops"])
    result["seconds"] = time.perf_counter() - clock.start
    text = table(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        args.out.with_suffix(".md").write_text(text + "\n")
    failed = [r for r in result["encoder"] if "error" in r]
    for r in failed:
        print(f"device_suite: {r['preset']} {r['dtype']} {r['mode']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
