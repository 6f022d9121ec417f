"""Peak extra memory and time of SCGA at high resolution: row blocks vs the whole N x N matrix at once.

Each variant runs in a fresh process; "extra" is peak resident memory minus the resident memory just
before SCGA (inputs already allocated). CPU here; with --device cuda it reads torch's peak allocator stat.

  .venv/bin/python -P benchmarks/scga_memory.py --out docs/bench/scga_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
from radseg_core.encoder.scga import scga
h, w, c, block, device = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
x = torch.randn(1, c, h // 16, w // 16, device=device)
torch.set_num_threads(2)
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated() / 2**20
else:
    base = rss_mb()
t = time.perf_counter()
y = scga(x, 10.0, block)
if device == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() / 2**20
else:
    peak = rss_mb()
print(json.dumps({"seconds": time.perf_counter() - t, "extra_mb": peak - base, "tokens": x.shape[2] * x.shape[3]}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=1344)
    ap.add_argument("--width", type=int, default=2688)
    ap.add_argument("--channels", type=int, default=768)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    n = (args.height // 16) * (args.width // 16)
    variants = {"row blocks (default, 16M similarities)": 1 << 24, "whole matrix": n * n}
    rows = []
    for name, block in variants.items():
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.height), str(args.width), str(args.channels),
                              str(block), args.device], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"variant": name, **r})
    print(f"SCGA at {args.width}x{args.height} input ({rows[0]['tokens']} tokens, {args.channels}-d), {args.device}")
    print("| variant | extra memory MB | seconds |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['extra_mb']:.0f} | {r['seconds']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"height": args.height, "width": args.width, "device": args.device,
                                        "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
