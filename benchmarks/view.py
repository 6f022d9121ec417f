"""Cost of the browser view (issue #19): mapping frame time with the view on vs off, and the viewer refresh
of a 1M-voxel map.

  .venv/bin/python -P benchmarks/view.py --out docs/bench/view_cpu.json
  .venv/bin/python -P benchmarks/view.py --frames 4 --rounds 1 --voxels 200000      # quick look

Part 1, frame time: radseg-map's own loop (``radseg_core.cli.map.map_dataset``, segmentation images off)
over the sample scene at 640x480 with random-tiny weights, in blocks that alternate view off / view on
(off, on, off, on, ...: drifts of a shared machine hit both), a fresh map per block and the same frames
(rendered before timing). "on" is a started LiveView (rerun child process, page server, logger thread)
fed every frame, as ``radseg-map --view`` does, with no browser connected. Wall ms per frame (the
target is on/off ≤ 1.05), plus CPU ms per frame of this process and of rerun's child, and the load
average (other users of a shared machine). ``--threads N`` sets torch's threads (default: torch's own).

Part 2, refresh: a map of N voxels (default 1M) on a surface, in probabilities mode (7 classes) and with
768-d fp16 features (C-RADIOv3-B), under a started LiveView: the first refresh (every voxel coloured and
sent), then refreshes after updates of 20k voxels (a frame's worth). Per refresh: ms holding the map lock,
ms in all (colours, subset, logging into the SDK), ms until the SDK has sent it to rerun's server
(``flush``), points sent, and the period the view then chooses (lock ≤ 5 %, logger ≤ 25 % of the time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import numpy as np
import psutil
import torch


def view_config(**kw):
    from radseg_core.view import ViewConfig
    from radseg_core.view.rerun_server import free_ports

    page, grpc, web = free_ports(3)
    return ViewConfig(port=page, grpc_port=grpc, web_port=web, **kw)


# ------------------------------------------------------------------ part 1: frame time on vs off
def frame_time(frames: int, rounds: int, mode: str) -> dict:
    from radseg_core.cli import common
    from radseg_core.cli.map import map_dataset
    from radseg_core.pipeline import MapperConfig, SemanticMapper
    from radseg_core.view.live import LiveView

    dataset = common.open_input("sample", max_frames=frames)
    with dataset:
        frame_list = list(dataset)  # rendered once, before any timing
    classes = list(getattr(dataset, "classes", None) or common.DEFAULT_CLASSES)  # as radseg-map chooses
    cfg = MapperConfig(model="random-tiny", device="cpu", mode=mode, classes=classes)
    encoder = common.build_mapper(cfg).encoder
    out_dir = Path(tempfile.mkdtemp(prefix="radseg-bench-view-"))
    blocks = []
    for r in range(rounds):
        for condition in ("off", "on"):
            mapper = SemanticMapper(cfg, encoder=encoder)
            lock = threading.Lock()
            view = None
            if condition == "on":
                view = LiveView(mapper, lock, view_config())
                view.start()
            stamps: list[float] = []
            child = psutil.Process().children()[0] if view is not None else None
            cpu0, child0, load0 = _cpu(psutil.Process()), _cpu(child), os.getloadavg()[0]
            t0 = time.perf_counter()
            map_dataset(frame_list, mapper, out_dir, segmentation=False, show_progress=False,
                        on_frame=_stamping(stamps, view), lock=lock)
            times = np.diff([t0, *stamps]) * 1000.0
            n = len(frame_list)
            extra = {"cpu_ms_per_frame": (_cpu(psutil.Process()) - cpu0) / n * 1000,
                     "child_cpu_ms_per_frame": (_cpu(child) - child0) / n * 1000,
                     "load_average": (load0 + os.getloadavg()[0]) / 2}
            if view is not None:
                extra |= {"frames_sent": view._worker.processed if view._worker else None,
                         "frames_replaced": view._worker.dropped if view._worker else None,
                         "refreshes": view.refreshes, "last_refresh": view.last_refresh}
                view.close()
            blocks.append({"round": r, "view": condition, "voxels": len(mapper), "ms_per_frame": times.tolist(),
                           "mean_ms": float(times.mean()), "median_ms": float(np.median(times)), **extra})
            print(f"  round {r} view {condition:3s}: {times.mean():8.1f} ms/frame mean, "
                  f"{np.median(times):8.1f} median, cpu {extra['cpu_ms_per_frame']:6.1f} ms/frame "
                  f"(+ child {extra['child_cpu_ms_per_frame']:4.1f}), load {extra['load_average']:.1f}, "
                  f"{len(mapper)} voxels", flush=True)
    off = [b["mean_ms"] for b in blocks if b["view"] == "off"]
    on = [b["mean_ms"] for b in blocks if b["view"] == "on"]
    off_all = [t for b in blocks if b["view"] == "off" for t in b["ms_per_frame"]]
    on_all = [t for b in blocks if b["view"] == "on" for t in b["ms_per_frame"]]
    cpu = {c: statistics.mean(b["cpu_ms_per_frame"] + b["child_cpu_ms_per_frame"] for b in blocks if b["view"] == c)
           for c in ("off", "on")}
    return {"mode": mode, "frames": frames, "rounds": rounds, "size": list(frame_list[0].rgb.shape[:2]),
            "torch_threads": torch.get_num_threads(), "cpu_ms_per_frame_off": cpu["off"],
            "cpu_ms_per_frame_on": cpu["on"],
            "load_average": statistics.mean(b["load_average"] for b in blocks),
            "mean_ms_off": statistics.mean(off_all), "mean_ms_on": statistics.mean(on_all),
            "median_ms_off": statistics.median(off_all), "median_ms_on": statistics.median(on_all),
            "ratio_mean": statistics.mean(on_all) / statistics.mean(off_all),
            "ratio_median": statistics.median(on_all) / statistics.median(off_all),
            "ratio_per_round": [a / b for a, b in zip(on, off, strict=True)], "blocks": blocks}


def _cpu(proc) -> float:
    """CPU seconds (user + system) of a process so far; 0 for none."""
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return t.user + t.system


def _stamping(stamps: list[float], view):
    """radseg-map's on_frame with the view (as ``start_view`` makes it) or without, noting when each ends."""
    def on_frame(i, frame, out) -> None:
        if view is not None:
            view.offer(frame, out.labels)
        stamps.append(time.perf_counter())

    return on_frame


# ------------------------------------------------------------------ part 2: refresh of a big map
def surface_map(n: int, mode: str, dim: int, seed: int = 0):
    """A map of about ``n`` voxels on a wavy surface (each voxel hit once), 5 cm voxels."""
    from radseg_core.voxel_map import VoxelMap

    side = int(np.ceil(np.sqrt(n)))
    vm = VoxelMap(voxel_size=0.05, mode=mode, dim=dim, dtype=torch.float16, residual_rows=8192)
    g = torch.Generator().manual_seed(seed)
    step = 100_000
    idx = torch.arange(side * side)[:n]
    for part in idx.split(step):
        x, y = (part // side).float() * 0.05 + 0.025, (part % side).float() * 0.05 + 0.025
        z = torch.round(0.5 * torch.sin(x) * torch.cos(y) / 0.05) * 0.05 + 0.025
        pts = torch.stack([x, y, z], dim=1)
        if mode == "probabilities":
            vals = torch.softmax(torch.randn(len(part), dim, generator=g), dim=1)
        else:
            vals = torch.randn(len(part), dim, generator=g)
        cols = torch.randint(0, 255, (len(part), 3), generator=g).float()
        vm.integrate_points(pts, vals, cols)
    return vm


def refresh_cost(voxels: int, mode: str, dim: int, updates: int, update_size: int) -> dict:
    from radseg_core.view.live import LiveView

    t = time.perf_counter()
    vm = surface_map(voxels, mode, dim)
    build_s = time.perf_counter() - t
    classes = [f"class{i}" for i in range(dim)] if mode == "probabilities" else ["a", "b"]
    holder = types.SimpleNamespace(map=vm, config=types.SimpleNamespace(classes=classes),
                                   memory_stats=lambda: {"map_bytes": vm.nbytes()})
    lock = threading.Lock()
    view = LiveView(holder, lock, view_config())
    view.start()
    view._worker.stop()  # refreshes are driven here, one at a time, instead of by the logger's clock
    rows = []
    try:
        g = torch.Generator().manual_seed(1)
        centres = vm.centers()
        for k in range(updates + 1):
            if k:  # a frame's worth: update_size existing voxels seen again
                pick = torch.randint(0, len(vm), (update_size,), generator=g)
                vals = torch.randn(update_size, dim, generator=g)
                if mode == "probabilities":
                    vals = torch.softmax(vals, dim=1)
                vm.integrate_points(centres[pick], vals)
            r = view.refresh()
            t = time.perf_counter()
            view.rec.flush()
            sent_ms = (time.perf_counter() - t) * 1000.0
            rows.append({"refresh": "first" if k == 0 else f"after {update_size} updated",
                         "lock_ms": r["lock_s"] * 1000, "log_ms": r["log_s"] * 1000, "flush_ms": sent_ms,
                         "recomputed": view._colors.realigned, "drawn": r["drawn"],
                         "next_period_s": view._period(r["lock_s"], r["log_s"])})
            print(f"  {mode:13s} {rows[-1]['refresh']:22s}: snapshot (lock) {rows[-1]['lock_ms']:7.1f} ms, send "
                  f"{rows[-1]['log_ms']:7.1f} ms, flush {sent_ms:7.1f} ms, recomputed {view._colors.realigned}, "
                  f"drawn {r['drawn']}, next in {rows[-1]['next_period_s']:.2f} s", flush=True)
    finally:
        view.close()
    incremental = rows[1:]
    return {"mode": mode, "dim": dim, "voxels": len(vm), "build_s": build_s, "max_points": view.config.max_points,
            "rows": rows,
            "incremental_median": {k: statistics.median(r[k] for r in incremental)
                                   for k in ("lock_ms", "log_ms", "flush_ms", "next_period_s")} if incremental
            else {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=16, help="frames of the sample scene per block")
    ap.add_argument("--rounds", type=int, default=2, help="off/on block pairs per mode")
    ap.add_argument("--modes", default="probabilities,features")
    ap.add_argument("--voxels", type=int, default=1_000_000)
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--update-size", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-frames", action="store_true")
    ap.add_argument("--skip-refresh", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
                               f"threads, python {sys.version.split()[0]}, torch {torch.__version__}",
                    "frame_time": [], "refresh": []}
    if not a.skip_frames:
        for mode in a.modes.split(","):
            print(f"frame time, {mode}: {a.frames} frames x {a.rounds} rounds (off, on)", flush=True)
            result["frame_time"].append(frame_time(a.frames, a.rounds, mode))
    if not a.skip_refresh:
        for mode, dim in (("probabilities", 7), ("features", 768)):
            print(f"refresh, {mode} ({dim}-d), {a.voxels} voxels", flush=True)
            result["refresh"].append(refresh_cost(a.voxels, mode, dim, a.updates, a.update_size))

    print("\n| mode | torch threads | frames x rounds | ms/frame off | ms/frame on | on/off (mean) | on/off (median) "
          "| CPU ms/frame off | CPU ms/frame on | load average |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in result["frame_time"]:
        print(f"| {f['mode']} | {f['torch_threads']} | {f['frames']} x {f['rounds']} | {f['mean_ms_off']:.0f} | "
              f"{f['mean_ms_on']:.0f} | {f['ratio_mean']:.3f} | {f['ratio_median']:.3f} | "
              f"{f['cpu_ms_per_frame_off']:.0f} | {f['cpu_ms_per_frame_on']:.0f} | {f['load_average']:.1f} |")
    print("\n| map | refresh | snapshot ms (map lock) | send ms | flush ms | voxels recoloured | points sent "
          "| next refresh in |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in result["refresh"]:
        for row in r["rows"]:
            print(f"| {r['voxels']:,} voxels, {r['mode']} {r['dim']}-d | {row['refresh']} | {row['lock_ms']:.0f} | "
                  f"{row['log_ms']:.0f} | {row['flush_ms']:.0f} | {row['recomputed']:,} | {row['drawn']:,} | "
                  f"{row['next_period_s']:.1f} s |")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
        print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
