"""The sample sequence is one real metric scene seen from a loop of poses: check its geometry and files."""

from __future__ import annotations

import numpy as np
import pytest

from radseg_core.datasets import open_dataset
from radseg_core.datasets.sample import (
    MOTORCYCLE_CALIB,
    MotorcycleSample,
    depth_to_cloud,
    export_sample,
    load_motorcycle,
    render_points,
    world_from_cam0,
)
from radseg_core.eval import nearest_neighbours


@pytest.fixture(scope="module")
def original():
    return load_motorcycle()


def test_disparity_to_metric_depth(original):
    rgb, depth, K = original
    assert rgb.shape == (500, 741, 3) and rgb.dtype == np.uint8 and depth.shape == (500, 741)
    c = MOTORCYCLE_CALIB
    assert K[0, 0] == c["f"] and K[0, 2] == c["cx"] and K[1, 2] == c["cy"]
    # disparity 40 px (quarter resolution) -> Z = 193.001 mm * 994.978 / (40 + 31.086) = 2.7014 m
    from radseg_core.datasets.sample import _skimage_data_dir

    disp = np.load(_skimage_data_dir() / "motorcycle_disp.npz")["arr_0"]
    v, u = np.argwhere(np.isfinite(disp))[len(disp) * 200]
    expected = c["baseline_mm"] * c["f"] / (disp[v, u] + c["doffs"]) / 1000
    assert depth[v, u] == pytest.approx(expected, rel=1e-6)
    assert c["baseline_mm"] * c["f"] / (40 + c["doffs"]) / 1000 == pytest.approx(2.7014, abs=1e-4)
    valid = depth > 0
    assert 0.85 < valid.mean() < 1.0 and not valid[~np.isfinite(disp)].any()
    assert depth[valid].min() > 2.0 and depth[valid].max() < 5.1  # the scene is ~2-5 m away


def test_identity_render_reproduces_original(original):
    rgb, depth, K = original
    pts, cols = depth_to_cloud(depth, K, rgb)
    r, d = render_points(pts, cols, K, depth.shape, np.eye(4))
    valid = depth > 0
    np.testing.assert_allclose(d[valid], depth[valid], rtol=1e-6)
    assert (d[~valid] == 0).all()
    np.testing.assert_array_equal(r[valid], rgb[valid])


def test_zbuffer_keeps_nearest():
    K = np.array([[10.0, 0, 1.0], [0, 10.0, 1.0], [0, 0, 1]])
    pts = np.array([[0.0, 0, 2.0], [0.0, 0, 1.0], [0.0, 0, 3.0]])  # all on the centre pixel's ray
    cols = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3]], np.uint8)
    r, d, lab = render_points(pts, cols, K, (3, 3), np.eye(4), values=np.array([7, 8, 9]))
    assert d[1, 1] == 1.0 and (r[1, 1] == 2).all() and lab[1, 1] == 8
    assert (d > 0).sum() == 1


def test_rendered_views_agree_with_original_cloud():
    ds = MotorcycleSample(n_frames=6, width=320)
    assert len(ds) == 6 and ds.hw == (216, 320)
    cloud, _ = ds.cloud()
    np.testing.assert_allclose(ds[0].T_world_cam, world_from_cam0())
    prev = None
    for f in ds:
        assert f.rgb.shape == (216, 320, 3) and f.depth.dtype == np.float32
        valid = f.depth > 0
        assert valid.mean() > 0.6
        pts, _ = depth_to_cloud(f.depth, f.K)
        world = pts @ f.T_world_cam[:3, :3].T + f.T_world_cam[:3, 3]
        d, _ = nearest_neighbours(world[::7], cloud)
        # pixel quantisation of a 320-wide view at ~3 m is ~3.5 mm laterally
        assert np.median(d) < 0.004 and d.max() < 0.015
        if prev is not None:  # a smooth loop: small, non-zero steps
            step = np.linalg.norm(f.T_world_cam[:3, 3] - prev[:3, 3])
            assert 0.01 < step < 0.4
        prev = f.T_world_cam
    assert not np.allclose(ds[1].depth, ds[0].depth)


def test_export_folder_and_bag_roundtrip(tmp_path):
    paths = export_sample(tmp_path, n_frames=3, width=160)
    ref = MotorcycleSample(n_frames=3, width=160)
    folder, bag = open_dataset(paths["folder"]), open_dataset(paths["bag"])
    assert len(folder) == len(bag) == 3
    for a, b, c in zip(ref, folder, bag, strict=True):
        for x in (b, c):
            np.testing.assert_array_equal(x.rgb, a.rgb)
            np.testing.assert_allclose(x.depth, a.depth, atol=5e-4)
            np.testing.assert_allclose(x.K, a.K)
            np.testing.assert_allclose(x.T_world_cam, a.T_world_cam, atol=1e-7)
            assert x.stamp == pytest.approx(a.stamp)
    bag.close()
    mtime = (paths["folder"] / "camera.json").stat().st_mtime_ns
    assert export_sample(tmp_path, n_frames=3, width=160) == paths  # cached: nothing rewritten
    assert (paths["folder"] / "camera.json").stat().st_mtime_ns == mtime


def test_export_regenerates_on_new_settings(tmp_path):
    export_sample(tmp_path, bag=False, n_frames=2, width=80)
    assert len(open_dataset(tmp_path / "motorcycle")) == 2
    export_sample(tmp_path, bag=False, n_frames=3, width=80)
    assert len(open_dataset(tmp_path / "motorcycle")) == 3
