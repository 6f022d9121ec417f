"""Integration cost of two versions of the voxel map, side by side: alternating runs of the corridor
scene of ``benchmarks/voxel_map.py`` (``bench_integration``) on two source trees, e.g. a worktree of the
commit before a storage change and this checkout.

Usage: ``git worktree add /tmp/before <commit>`` then
``python benchmarks/voxel_map_ab.py --before /tmp/before --after . --frames 200 --rounds 2 --out ab.json``.
Each run is a fresh interpreter with one torch thread; CPU ms per frame (mean, median) and bytes per
voxel at the checkpoints are printed per round (alternating before/after, so drifts of a shared machine
hit both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, statistics, sys
tree, frames = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [tree, tree + "/benchmarks"]
import torch
torch.set_num_threads(1)
import radseg_core, voxel_map as b
assert radseg_core.__file__.startswith(tree), radseg_core.__file__
checkpoints = [frames // 4, frames // 2, 3 * frames // 4, frames]
vm, rows, series = b.bench_integration(frames, checkpoints, 9, set())
print(json.dumps({"rows": rows, "voxels": len(vm),
                  "mean_cpu_ms": statistics.mean(x["cpu_ms"] for x in series),
                  "median_cpu_ms": statistics.median(x["cpu_ms"] for x in series)}))
"""


def run(tree: Path, frames: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tree.resolve()), str(frames)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, default=Path("."))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    results = []
    print(f"{'round':>5} {'tree':>7} {'mean ms':>9} {'median ms':>9} {'B/voxel at checkpoints':>30}")
    for r in range(a.rounds):
        for name, tree in (("before", a.before), ("after", a.after)):
            res = run(tree, a.frames)
            res.update(round=r + 1, tree=name, path=str(tree))
            results.append(res)
            bpv = " ".join(f"{x['bytes_per_voxel']:.0f}" for x in res["rows"])
            print(f"{r + 1:5d} {name:>7} {res['mean_cpu_ms']:9.1f} {res['median_cpu_ms']:9.1f} {bpv:>30}", flush=True)
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
