"""Navigation benchmark: goal, mask and object-list cost per call on a ~1M-voxel map, as ratios to a query.

Scene: an office floor of square rooms (1 m walls with door gaps) on a seen floor, each room with two
chairs, a table and a cabinet (box surfaces), grown until the map holds ``--voxels`` voxels (default 1M).
Two maps of that scene, both as the node holds them behind ``SemanticMapper``:

* probabilities mode, 8 classes (one-hot): a query is reading a column, so navigation's own work shows;
* features mode, 768-d fp16 with the aligned query cache (``cache_aligned``, the desktop preset): each
  label's voxels carry its random prototype plus noise, a linear 768 -> 1152 stand-in head aligns them and
  texts are the aligned prototypes (random weights: costs only, nothing semantic). Filling the cache and
  the cloud-label cache (one pass of the head over the map) is set-up, reported apart.

Per call, CPU time of this process with one torch thread (other jobs on the machine do not distort it),
best of ``--repeats``: ``query`` (``SemanticMapper.query``, one text), ``goal`` (``goal_for``: that query
plus the standing space and goal choice), ``masks`` (``masks_for`` with one keepout and one speed text:
one two-text query plus the projections), ``query x2`` (the two-text query alone), ``objects``
(``objects_for`` with the classes: cloud labels plus connected groups and id matching).

Usage: ``python benchmarks/navigation.py [--voxels 1000000] [--out docs/bench/navigation_cpu.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radseg_core.navigation import NavSettings, goal_for, masks_for, objects_for  # noqa: E402
from radseg_core.pipeline import MapperConfig, SemanticMapper  # noqa: E402
from radseg_core.voxel_map import pack_keys  # noqa: E402

CLASSES = ["floor", "wall", "chair", "table", "cabinet", "bed", "door", "plant"]
S = 0.05
ROOM = 6.0  # metres between walls
D, TEXT_DIM = 768, 1152


def box_shell(lo, hi) -> np.ndarray:
    """Integer voxels on the surface of the box [lo, hi) (metres)."""
    a, b = np.floor(np.asarray(lo) / S).astype(int), np.floor(np.asarray(hi) / S).astype(int)
    g = np.stack(np.meshgrid(*[np.arange(a[i], b[i]) for i in range(3)], indexing="ij"), -1).reshape(-1, 3)
    edge = (g == a).any(axis=1) | (g == b - 1).any(axis=1)
    return g[edge]


def office(target: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) voxel indices and (N,) class indices of an office floor with about ``target`` voxels."""
    rooms = 1
    while True:
        ijk, lab = [], []
        side = rooms * ROOM
        n = int(side / S)
        fx, fy = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ijk.append(np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size, int)], 1))
        lab.append(np.zeros(fx.size, int))
        for r in range(rooms + 1):  # walls 1 m high along x and y, a 1 m door gap in each room side
            c = int(r * ROOM / S) - (1 if r == rooms else 0)
            along = np.arange(n)
            along = along[(along * S) % ROOM > 1.0]
            z = np.arange(1, 21)
            a, zz = np.meshgrid(along, z, indexing="ij")
            ijk.append(np.stack([np.full(a.size, c), a.ravel(), zz.ravel()], 1))
            ijk.append(np.stack([a.ravel(), np.full(a.size, c), zz.ravel()], 1))
            lab += [np.ones(a.size, int)] * 2
        for rx in range(rooms):
            for ry in range(rooms):
                ox, oy = rx * ROOM, ry * ROOM
                for name, lo, hi in (("table", (2.0, 2.0, 0.70), (3.4, 2.8, 0.76)),
                                     ("chair", (2.2, 1.2, 0.05), (2.65, 1.65, 0.95)),
                                     ("chair", (2.8, 3.2, 0.05), (3.25, 3.65, 0.95)),
                                     ("cabinet", (5.2, 4.0, 0.05), (5.7, 5.0, 1.8))):
                    v = box_shell((ox + lo[0], oy + lo[1], lo[2]), (ox + hi[0], oy + hi[1], hi[2]))
                    ijk.append(v)
                    lab.append(np.full(len(v), CLASSES.index(name)))
        ijk, lab = np.concatenate(ijk), np.concatenate(lab)
        ijk, first = np.unique(ijk, axis=0, return_index=True)
        if len(ijk) >= target or rooms > 40:
            return ijk, lab[first]
        rooms += 1


class StandInEncoder:
    """What SemanticMapper needs of an encoder, for features-mode costs: a linear 768 -> 1152 head and texts
    that are the aligned prototypes of the classes (others: random). Random weights, nothing semantic."""

    model_name = "stand-in"
    feature_dim = D

    def __init__(self, prototypes: torch.Tensor, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.head = torch.randn(D, TEXT_DIM, generator=g) / D**0.5
        self.prototypes = prototypes
        self.prompt_denoising, self.prediction_thresh = 0.5, 0.0

    def align(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.head

    def encode_text(self, labels: list[str]) -> torch.Tensor:
        rows = []
        for t in labels:
            if t in CLASSES:
                rows.append(self.align(self.prototypes[CLASSES.index(t)][None])[0])
            else:
                rows.append(torch.randn(TEXT_DIM, generator=torch.Generator().manual_seed(hash(t) % 2**31)))
        return F.normalize(torch.stack(rows), dim=1)


def build(mode: str, ijk: np.ndarray, lab: np.ndarray) -> tuple[SemanticMapper, float]:
    """A mapper holding the scene; returns it and the set-up seconds of its caches (features mode)."""
    n = len(ijk)
    g = torch.Generator().manual_seed(1)
    protos = torch.randn(len(CLASSES), D, generator=g)
    cfg = MapperConfig(model="stand-in", device="cpu", mode=mode, classes=list(CLASSES),
                       cache_aligned=mode == "features", storage_dtype="float16")
    enc = StandInEncoder(protos)
    if mode == "probabilities":
        enc.feature_dim = len(CLASSES)
    m = SemanticMapper(cfg, encoder=enc)
    lab_t = torch.from_numpy(lab)
    if mode == "probabilities":
        values = F.one_hot(lab_t, len(CLASSES)).half()
    else:
        noise = torch.randn(65536, D, generator=g).half()
        values = torch.empty(n, D, dtype=torch.float16)
        for lo in range(0, n, 65536):
            hi = min(lo + 65536, n)
            values[lo:hi] = protos[lab_t[lo:hi]].half() + 0.3 * noise[: hi - lo]
    keys = pack_keys(torch.from_numpy(ijk))
    m.map._restore(keys, values, torch.full((n, 3), 128.0).half(), torch.ones(n), torch.ones(n, dtype=torch.int32),
                   1)
    t = time.process_time()
    if mode == "features":
        m.query(["chair"], top_k=1)  # fills the aligned cache
        m.cloud()  # ... and the cloud labels
    return m, time.process_time() - t


def best_cpu(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return 1e3 * min(times)


def run(mode: str, ijk, lab, repeats: int) -> dict:
    m, setup = build(mode, ijk, lab)
    settings = NavSettings()
    robot = (ROOM / 2 - 1.0, ROOM / 2)  # in the first room
    goal = goal_for(m, "cabinet", robot, settings)
    assert goal.goal is not None, goal.message
    objects_for(m, None, settings)  # the first call builds the registry; later calls match against it
    row = {
        "mode": mode, "voxels": len(m), "setup_s": setup,
        "query_ms": best_cpu(lambda: m.query(["cabinet"], top_k=5), repeats),
        "goal_ms": best_cpu(lambda: goal_for(m, "cabinet", robot, settings), repeats),
        "query2_ms": best_cpu(lambda: m.query(["chair", "table"], top_k=5), repeats),
        "masks_ms": best_cpu(lambda: masks_for(m, ["chair"], ["table"], settings), repeats),
        "objects_ms": best_cpu(lambda: objects_for(m, None, settings), repeats),
        "objects": len(objects_for(m, None, settings)),
        "goal_message": goal.message,
    }
    row["goal_over_query"] = row["goal_ms"] / row["query_ms"]
    row["masks_over_query2"] = row["masks_ms"] / row["query2_ms"]
    row["objects_over_query"] = row["objects_ms"] / row["query_ms"]
    print(f"{mode:13s} {row['voxels']:9d} {row['query_ms']:9.0f} {row['goal_ms']:9.0f} ({row['goal_over_query']:4.2f}x)"
          f" {row['query2_ms']:9.0f} {row['masks_ms']:9.0f} ({row['masks_over_query2']:4.2f}x)"
          f" {row['objects_ms']:9.0f} ({row['objects_over_query']:5.2f}x)  objects {row['objects']}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["probabilities", "features"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ijk, lab = office(args.voxels)
    print(f"office floor: {len(ijk)} voxels, {np.bincount(lab, minlength=len(CLASSES)).tolist()} per class")
    print(f"{'mode':13s} {'voxels':>9s} {'query ms':>9s} {'goal ms':>9s}         {'query2 ms':>9s} "
          f"{'masks ms':>9s}         {'objects ms':>9s}")
    rows = [run(mode, ijk, lab, args.repeats) for mode in args.modes]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                       "CPU time of the process", "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
