"""The synthetic room mapped from its exact labels (one-hot probabilities), for tests, docs and benchmarks.

With random weights a query is not semantic; a probabilities map built from the ground-truth labels is
what a perfect encoder would give, so goals, masks and objects can be checked against the real layout
and pictured honestly (the pictures say "mapped from ground-truth labels").
"""

from __future__ import annotations

import numpy as np
import torch

from radseg_core.datasets.synthetic_room import ROOM_CLASSES, Box, SyntheticRoom, default_furniture
from radseg_core.geometry import backproject_depth, transform_points
from radseg_core.voxel_map import VoxelMap

VOXEL = 0.05


def room(n_frames: int = 24, hw: tuple[int, int] = (120, 160), boxes: list[Box] | None = None) -> SyntheticRoom:
    return SyntheticRoom(n_frames=n_frames, hw=hw, boxes=boxes)


def empty_room_map(voxel_size: float = VOXEL) -> VoxelMap:
    vm = VoxelMap(voxel_size=voxel_size, mode="probabilities", dim=len(ROOM_CLASSES), dtype=torch.float32)
    vm.metadata.update(classes=list(ROOM_CLASSES), model="random-tiny", frame_id="map")
    return vm


def integrate_labelled(vm: VoxelMap, scene: SyntheticRoom, frames, max_depth: float = 10.0) -> VoxelMap:
    """Every pixel of the frames as a point carrying the one-hot probabilities of its true label."""
    eye = np.eye(vm.dim, dtype=np.float32)
    for i in frames:
        f, lab = scene[i], scene.labels(i)
        pts, rows, cols = backproject_depth(torch.from_numpy(f.depth), f.K, max_depth=max_depth)
        world = transform_points(f.T_world_cam, pts.double())
        onehot = torch.from_numpy(eye[np.maximum(lab[rows.numpy(), cols.numpy()], 1) - 1])
        colors = torch.from_numpy(f.rgb[rows.numpy(), cols.numpy()])
        vm.integrate_points(world, onehot, colors)
    return vm


def room_map(scene: SyntheticRoom | None = None, frames=None) -> VoxelMap:
    scene = scene or room()
    return integrate_labelled(empty_room_map(), scene, range(len(scene)) if frames is None else frames)


def walled_in_furniture(size=(5.0, 4.0, 2.6), gap: float = 1.2) -> list[Box]:
    """The default room with the cabinet's corner fenced off by 1 m walls ``gap`` metres from it (more than
    a standoff plus a robot radius): the camera at 1.5 m sees the cabinet and the floor over the fence."""
    boxes = default_furniture(size)
    X, Y = size[0], size[1]
    cab = next(b for b in boxes if b.cls == "cabinet")
    x0, y0 = cab.lo[0] - gap, cab.lo[1] - gap
    boxes += [Box("wall", (x0, y0, 0.0), (x0 + 0.05, Y, 1.0)),
              Box("wall", (x0, y0, 0.0), (X, y0 + 0.05, 1.0))]
    return boxes
