"""Free-space clearing on exact rendered scenes (issue #22), through the real ``integrate_frame`` path.

A removed object must leave nothing above the floor layer (before #22 a 0.5 m box seen from 0.55 m left
its bottom 15-20 cm); a static room, grazing and thin surfaces included, keeps its voxels and labels.
Frames are ray-cast boxes (``radseg_core.datasets.change_scene``) with one-hot label features, 5 cm voxels,
``free_space_decay`` 0.5. Views are the 640 x 480 field of view (f = 525 px) at half resolution to keep CI
quick; benchmarks/free_space_designs.py runs the full resolution and the grid of heights, distances, sizes.
"""

import math

import numpy as np
import pytest
import torch

from radseg_core.datasets.change_scene import arc_poses, look_at, one_hot, room, view
from radseg_core.datasets.synthetic_room import ROOM_CLASSES, Box
from radseg_core.query import query_map
from radseg_core.voxel_map import VoxelMap, pack_keys, unpack_keys

pytestmark = pytest.mark.usefixtures("one_torch_thread")


HW = (240, 320)
SIZE = (8.0, 6.0, 3.0)
DEPTH = {"min_depth": 0.1, "max_depth": 8.0}
OBJ = ROOM_CLASSES.index("cabinet")
BOX = Box("cabinet", (7.013 - 0.5, 2.762, 0.0), (7.013, 3.262, 0.5))  # 0.5 m cube, off the 5 cm lattice
BOX_CENTRE = np.array([6.763, 3.012, 0.25])


def new_map(decay: float = 0.5, **kw) -> VoxelMap:
    vm = VoxelMap(mode="probabilities", dim=len(ROOM_CLASSES), free_space_decay=decay, **kw)
    vm.metadata["classes"] = list(ROOM_CLASSES)
    return vm


def integrate(maps, scene, poses) -> None:
    for T in poses:
        frame, labels = view(scene, T)
        fmap = one_hot(labels)
        for vm in maps:
            vm.integrate_frame(frame, fmap, **DEPTH)


def issue_poses(height: float) -> list[np.ndarray]:
    """The issue's views: 16 cameras 2-3 m from the box on a 30 degree arc, looking at it."""
    poses = []
    for i in range(16):
        a = math.radians(180 + 30 * (i / 15 - 0.5))
        d = 2.0 + (i % 4) / 3
        poses.append(look_at(BOX_CENTRE + [d * math.cos(a), d * math.sin(a), height - BOX_CENTRE[2]], BOX_CENTRE))
    return poses


def object_keys_above_floor(vm: VoxelMap) -> torch.Tensor:
    """Keys of the voxels labelled as the object whose z index is >= 1 (above the floor layer, z < 5 cm)."""
    return vm.keys()[(vm.labels() == OBJ) & (vm.voxel_indices()[:, 2] >= 1)]


def assert_static(vm: VoxelMap, plain: VoxelMap, max_loss: float = 0.005, held_object: torch.Tensor | None = None,
                  same_frames: VoxelMap | None = None) -> None:
    """At most ``max_loss`` of the plain map's voxels lost, each with a same-label neighbour left (a sliver
    on a voxel boundary, not a hole in the surface), and no label changed against a map of the same frames
    without clearing (``same_frames``, default ``plain``), except in voxels that held the removed object
    (keys ``held_object``: the floor layer under it follows only with a hit cap)."""
    ref = dict(zip(plain.keys().tolist(), plain.labels().tolist(), strict=True))
    got = dict(zip(vm.keys().tolist(), vm.labels().tolist(), strict=True))
    assert len(ref) > 1000
    lost = [k for k in ref if k not in got]
    assert len(lost) <= max_loss * len(ref), (len(lost), len(ref))
    if lost:
        offsets = torch.tensor([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
        near = pack_keys((unpack_keys(torch.tensor(lost))[:, None, :] + offsets).reshape(-1, 3)).reshape(len(lost), -1)
        holes = [k for k, row in zip(lost, near.tolist(), strict=True) if not any(got.get(m) == ref[k] for m in row)]
        assert not holes, f"{len(holes)} voxels lost with no same-label neighbour left"
    if same_frames is not None:
        ref = dict(zip(same_frames.keys().tolist(), same_frames.labels().tolist(), strict=True))
    skip = set() if held_object is None else set(held_object.tolist())
    assert all(ref[k] == lab for k, lab in got.items() if k not in skip), "labels changed"


@pytest.mark.parametrize("height", [0.55, 1.2])
def test_removed_box_leaves_no_stump_near_the_floor(height):
    """The issue's case: before #22, 49 of 224 voxels (0.55 m) and 55 of 316 (1.2 m) stayed, up to 17.5 cm."""
    vm, plain_b, plain_ab = new_map(), new_map(decay=0.0), new_map(decay=0.0)
    poses = issue_poses(height)
    integrate([vm, plain_ab], room([BOX], size=SIZE, hw=HW), poses)
    box, held = object_keys_above_floor(vm), vm.keys()[vm.labels() == OBJ]
    assert box.numel() > 150
    integrate([vm, plain_b, plain_ab], room([], size=SIZE, hw=HW), poses)
    left = torch.isin(vm.keys(), box)
    assert int(left.sum()) <= 0.02 * box.numel(), (int(left.sum()), box.numel(), vm.centers()[left][:, 2].max())
    assert_static(vm, plain_b, held_object=held, same_frames=plain_ab)  # what the views without it see stays


def test_removed_box_seen_from_new_poses_only_goes():
    vm, plain_b, plain_ab = new_map(), new_map(decay=0.0), new_map(decay=0.0)
    integrate([vm, plain_ab], room([BOX], size=SIZE, hw=HW), issue_poses(0.55)[::2])
    box, held = object_keys_above_floor(vm), vm.keys()[vm.labels() == OBJ]
    assert box.numel() > 150
    other_side = arc_poses(BOX_CENTRE, 2.3, 1.3, 8, azimuth_deg=230.0)  # another side, another height
    integrate([vm, plain_b, plain_ab], room([], size=SIZE, hw=HW), other_side)
    assert int(torch.isin(vm.keys(), box).sum()) <= 0.02 * box.numel()
    assert_static(vm, plain_b, held_object=held, same_frames=plain_ab)


def test_probability_query_finds_nothing_where_the_removed_box_stood():
    """Above the floor the box is cleared; the floor layer it shared with the floor turns to floor as new
    floor hits outweigh the old ones, which needs a hit cap (issue #13): without one the layer stays
    'cabinet' (checked here too) and a query finds a flat candidate."""
    capped, uncapped = new_map(max_hits=50), new_map()
    poses = issue_poses(0.55)
    integrate([capped, uncapped], room([BOX], size=SIZE, hw=HW), poses)
    assert [c.voxels > 50 for c in query_map(capped, ["cabinet"]).candidates] == [True]
    integrate([capped, uncapped], room([], size=SIZE, hw=HW), poses)
    lo, hi = np.array(BOX.lo) - 0.05, np.array(BOX.hi) + 0.05

    def where_it_stood(vm):
        return [c for c in query_map(vm, ["cabinet"]).candidates if np.all((c.centroid > lo) & (c.centroid < hi))]

    assert where_it_stood(capped) == []
    flat = where_it_stood(uncapped)
    assert flat and all(c.extent[2] <= 0.1 for c in flat)  # only the floor layer is left without a cap


def test_person_walking_through_leaves_nothing_and_erodes_nothing():
    n = 16
    cams = [look_at([3.0, 3.0 + 0.01 * (i % 3), 1.2], [7.0, 3.0, 0.8]) for i in range(n + 6)]
    vm, plain, same_frames = new_map(), new_map(decay=0.0), new_map(decay=0.0)
    for i in range(n):  # a 0.4 x 0.3 x 1.7 m person crossing the view 3 m away, 0.2 m per frame
        person = Box("cabinet", (6.0, 1.4 + 0.2 * i, 0.0), (6.3, 1.8 + 0.2 * i, 1.7))
        integrate([vm, same_frames], room([person], size=SIZE, hw=HW), cams[i : i + 1])
    assert int(object_keys_above_floor(vm).numel()) > 200
    held = vm.keys()[vm.labels() == OBJ]
    empty = room([], size=SIZE, hw=HW)
    integrate([vm, same_frames], empty, cams[n:])
    integrate([plain], empty, cams)  # the room as all these views see it without the person
    assert object_keys_above_floor(vm).numel() == 0
    assert_static(vm, plain, held_object=held, same_frames=same_frames)


def furniture() -> list[Box]:
    """A table (4 cm top at 0.72-0.76 m, 4 cm legs) and a chair (4 cm seat and back), off the lattice
    in x and y; the seat top (0.5 m) and the back's top (0.95 m) lie on voxel boundaries."""
    x, y = 3.013, 2.012
    boxes = [Box("table", (x, y, 0.72), (x + 1.4, y + 0.8, 0.76))]
    boxes += [Box("table", (x + dx, y + dy, 0.0), (x + dx + 0.04, y + dy + 0.04, 0.72))
              for dx in (0.02, 1.34) for dy in (0.02, 0.74)]
    x, y = 3.513, 3.212
    boxes += [Box("chair", (x + dx, y + dy, 0.0), (x + dx + 0.04, y + dy + 0.04, 0.45))
              for dx in (0.0, 0.36) for dy in (0.0, 0.36)]
    boxes += [Box("chair", (x, y, 0.45), (x + 0.4, y + 0.4, 0.5)),
              Box("chair", (x, y + 0.4, 0.5), (x + 0.4, y + 0.44, 0.95))]
    return boxes


def test_thin_table_top_and_chair_back_seen_edge_on_stay():
    table = np.array([3.713, 2.412, 0.74])
    above = [look_at([table[0] - 1.6 + 0.1 * i, table[1] - 1.2 + 0.15 * i, 1.5], table) for i in range(6)]
    edge_on = [look_at([table[0] - 2.5, table[1] - 0.3 + 0.15 * i, h], [table[0], table[1], h])
               for i, h in enumerate((0.74, 0.76, 0.78, 0.73, 0.72, 0.75))]  # table-top height, just above/below
    back = np.array([3.713, 3.632, 0.72])
    along_back = [look_at([back[0] - 2.0 - 0.1 * i, back[1] + 0.02 * (i - 2), 0.6 + 0.1 * (i % 3)], back)
                  for i in range(6)]  # in the plane of the chair back
    vm, plain = new_map(), new_map(decay=0.0)
    integrate([vm, plain], room(furniture(), size=SIZE, hw=HW), above + edge_on + along_back)
    labels = plain.labels()
    assert int(((labels == ROOM_CLASSES.index("table")) | (labels == ROOM_CLASSES.index("chair"))).sum()) > 500
    assert_static(vm, plain)


def test_floor_seen_at_grazing_angles_from_half_a_metre_stays():
    poses = []
    for i in range(16):  # walking along the room at 0.5 m, pitched 0-8 degrees down: rays meet the floor at 1-14 deg
        p = math.radians(8.0 * (i % 5) / 4)
        eye = np.array([0.5 + 0.1 * i, 3.0 + 0.05 * math.sin(i), 0.5])
        poses.append(look_at(eye, eye + [math.cos(p), 0.0, -math.sin(p)]))
    vm, plain = new_map(), new_map(decay=0.0)
    integrate([vm, plain], room([], size=SIZE, hw=HW), poses)
    assert_static(vm, plain)
