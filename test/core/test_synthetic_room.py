"""The synthetic room: analytic depth and labels at known places, and a consistent labelled cloud."""

from __future__ import annotations

import numpy as np
import pytest

from radseg_core.datasets import open_dataset
from radseg_core.datasets.sample import depth_to_cloud
from radseg_core.datasets.synthetic_room import Box, SyntheticRoom
from radseg_core.eval import miou_2d, miou_3d, nearest_neighbours


def look(eye, fwd) -> np.ndarray:
    """Optical pose at ``eye`` looking along ``fwd`` (not vertical)."""
    fwd = np.asarray(fwd, float) / np.linalg.norm(fwd)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    T = np.eye(4)
    T[:3, :3] = np.stack([right, np.cross(fwd, right), fwd], axis=1)
    T[:3, 3] = eye
    return T


@pytest.fixture(scope="module")
def room():
    return open_dataset("synthetic-room", n_frames=6, hw=(36, 48))


def test_known_depths_and_labels():
    room = SyntheticRoom(n_frames=1, hw=(9, 11))
    H, W = room.hw
    c = (H // 2, W // 2)  # odd size: the centre pixel is the principal point, i.e. the optical axis
    np.testing.assert_array_equal(room.K[:2, 2], [c[1], c[0]])
    # facing the x = 5 wall from x = 3 at 1 m height, between the bed (y < 1.5) and the cabinet (y > 2.8)
    rgb, depth, lab = room.render(look([3.0, 2.2, 1.0], [1, 0, 0]))
    assert depth[c] == pytest.approx(2.0) and lab[c] == room.label_of("wall")
    # straight at the cabinet (x in [4.5, 5], y in [2.8, 3.8], up to 1.9 m)
    _, depth, lab = room.render(look([3.0, 3.3, 1.0], [1, 0, 0]))
    assert depth[c] == pytest.approx(1.5) and lab[c] == room.label_of("cabinet")
    # steeply down onto the floor and onto the bed top (0.55 m)
    _, depth, lab = room.render(look([2.5, 2.0, 1.5], [1e-3, 0, -1]))
    assert depth[c] == pytest.approx(1.5, rel=1e-5) and lab[c] == room.label_of("floor")
    _, depth, lab = room.render(look([4.0, 0.7, 1.5], [1e-3, 0, -1]))
    assert depth[c] == pytest.approx(0.95, rel=1e-5) and lab[c] == room.label_of("bed")
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)


def test_frames_labels_and_classes(room):
    assert room.classes[0] == "wall" and len(room) == 6
    seen = set()
    for i, f in enumerate(room):
        lab = room.labels(i)
        assert lab.shape == f.depth.shape and lab.min() >= 1 and lab.max() <= len(room.classes)
        assert np.isfinite(f.depth).all() and (f.depth > 0).all()  # a closed room: every ray hits
        seen |= set(np.unique(lab).tolist())
    assert {room.label_of(n) for n in ("wall", "floor", "table", "bed", "cabinet")} <= seen
    # a perfect prediction scores 1; the labels really are the per-pixel truth used by eval
    m = miou_2d([room.labels(i) for i in range(len(room))], [room.labels(i) for i in range(len(room))],
                len(room.classes))
    assert m.miou == 1.0


def test_gt_cloud_matches_rendered_surfaces(room):
    pts, labs = room.gt_points()
    all_pts, _ = room.gt_points(observed_only=False)
    assert 0 < len(pts) < len(all_pts)
    # nothing sampled inside a solid: the floor under the cabinet is gone
    cab = room.boxes[[b.cls for b in room.boxes].index("cabinet")]
    under = np.all((all_pts >= np.array(cab.lo) + 1e-3) & (all_pts <= np.array(cab.hi) - 1e-3), axis=1)
    assert not under.any()
    for i in (0, 3):
        f, lab = room[i], room.labels(i)
        cam, _ = depth_to_cloud(f.depth, f.K)
        world = cam @ f.T_world_cam[:3, :3].T + f.T_world_cam[:3, 3]
        v, u = np.nonzero(f.depth > 0)
        d, j = nearest_neighbours(world, pts)
        assert np.median(d) < room.gt_spacing and d.max() < 2 * room.gt_spacing
        assert (labs[j[:, 0]] == lab[v, u]).mean() > 0.97
    # the labelled cloud evaluated against itself, through the voxel path, is perfect
    m = miou_3d(pts, labs, pts, labs, len(room.classes), align="voxel", voxel_size=0.05)
    assert m.miou == pytest.approx(1.0)


def test_custom_boxes_and_occlusion():
    room = SyntheticRoom(n_frames=1, hw=(24, 32), boxes=[Box("table", (3.5, 1.5, 0.0), (4.0, 2.5, 1.0))])
    T = look([2.0, 2.0, 0.5], [1, 0, 0])
    room.poses = [T]
    behind = np.array([[5.0, 2.0, 0.5], [5.0, 3.5, 0.5]])  # wall behind the table / beside it
    np.testing.assert_array_equal(room.visible(behind), [False, True])
    with pytest.raises(ValueError, match="not one of"):
        SyntheticRoom(boxes=[Box("sofa", (0, 0, 0), (1, 1, 1))])


def test_resize_applies_to_frames_and_labels():
    room = SyntheticRoom(n_frames=2, hw=(24, 32), resize=12)
    f, lab = room[1], room.labels(1)
    assert f.rgb.shape == (12, 16, 3) and f.depth.shape == (12, 16) and lab.shape == (12, 16)
    assert f.K[0, 0] == pytest.approx(SyntheticRoom(n_frames=2, hw=(24, 32)).K[0, 0] / 2)
