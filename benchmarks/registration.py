"""Cost of registering unaligned depth into the colour camera, per frame, against the map's own work.

A RealSense without ``align_depth`` sends depth at its own size (e.g. 848x480) with its own intrinsics;
``register_depth`` reprojects it into the colour image (e.g. 1280x720 or 640x480). This prints the median
milliseconds per frame for common size pairs (and the ratio to the same frame's plain back-projection,
which the mapper does anyway) and writes the rows as JSON. Takes a few seconds on 2 CPU cores.
    python benchmarks/registration.py --out /tmp/registration_bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radseg_core.geometry import backproject_depth  # noqa: E402
from radseg_core.registration import register_depth  # noqa: E402

PAIRS = [((480, 848), (720, 1280)), ((480, 848), (480, 640)), ((480, 640), (480, 640)), ((240, 424), (480, 640))]


def K_for(hw: tuple[int, int], hfov_deg: float) -> np.ndarray:
    f = hw[1] / 2 / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0, (hw[1] - 1) / 2], [0, f, (hw[0] - 1) / 2], [0, 0, 1.0]])


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    T = np.eye(4)
    T[0, 3] = -0.015  # D435: colour 15 mm beside the depth imager
    rows = []
    for d_hw, c_hw in PAIRS:
        depth = rng.uniform(0.3, 6.0, d_hw).astype(np.float32)
        depth[rng.random(d_hw) < 0.1] = 0  # holes, as real depth has
        K_d, K_c = K_for(d_hw, 87.0), K_for(c_hw, 69.0)
        reg = median_ms(lambda: register_depth(depth, K_d, d_hw, K_c, c_hw, T), args.repeats)  # noqa: B023
        d_t, K_t = torch.from_numpy(depth), torch.from_numpy(K_d)
        bp = median_ms(lambda: backproject_depth(d_t, K_t), args.repeats)  # noqa: B023
        rows.append({"depth_hw": d_hw, "colour_hw": c_hw, "register_ms": reg, "backproject_ms": bp,
                     "ratio": reg / bp if bp > 0 else None})
    print(f"{'depth':>10} {'colour':>10} {'register ms':>12} {'backproject ms':>15} {'ratio':>6}")
    for r in rows:
        print(f"{'x'.join(map(str, r['depth_hw'][::-1])):>10} {'x'.join(map(str, r['colour_hw'][::-1])):>10} "
              f"{r['register_ms']:12.1f} {r['backproject_ms']:15.1f} {r['ratio']:6.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                              "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
