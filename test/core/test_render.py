"""Orthographic map pictures: projection, z-buffer, markers, legend, PNG round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from radseg_core.render import BACKGROUND, Marker, OrthoCamera, render_map, save_png, splat

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_top_view_axes_and_size():
    pts = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    cam = OrthoCamera(pts, view="top", width=224, margin=12)
    assert cam.width == 224 and cam.height == 12 * 2 + 100  # 2 m wide -> 100 px/m, 1 m tall
    uv, depth = cam.project(np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 1.0, 3.0]]))
    np.testing.assert_allclose(uv[0], [12, 112])  # origin: left, bottom
    np.testing.assert_allclose(uv[1], [212, 12])  # +x right, +y up
    assert depth[2] < depth[0]  # higher z is nearer the top-down viewer


def test_oblique_at_90_degrees_is_top_down():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (50, 3))
    top = OrthoCamera(pts, view="top", width=300)
    obl = OrthoCamera(pts, view="oblique", width=300, azimuth_deg=0.0, elevation_deg=90.0)
    np.testing.assert_allclose(obl.project(pts)[0], top.project(pts)[0], atol=1e-6)
    np.testing.assert_allclose(obl.project(pts)[1], top.project(pts)[1], atol=1e-6)


def test_oblique_rotation_is_orthonormal():
    cam = OrthoCamera(np.zeros((2, 3)) + [[0, 0, 0], [1, 1, 1]], view="oblique", azimuth_deg=-60, elevation_deg=30)
    np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(cam.R) == pytest.approx(1.0)


def test_zbuffer_nearest_point_wins_regardless_of_order():
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    for order in ([0, 1, 2], [1, 0, 2]):
        cols = np.array([RED, GREEN, BLUE], np.uint8)[order]
        cam = OrthoCamera(pts, width=100, margin=10)
        img, zbuf = splat(cam, pts[order], cols, radius_px=2, shade=False)
        u, v = np.round(cam.project(pts[:1])[0][0]).astype(int)
        assert tuple(img[v, u]) == GREEN  # z = 1 covers z = 0 seen from above
        assert zbuf[v, u] == pytest.approx(-1.0)
        assert tuple(img[1, 1]) == BACKGROUND and np.isinf(zbuf[1, 1])


def test_render_map_markers_and_legend():
    g = np.stack(np.meshgrid(np.arange(0, 2, 0.05), np.arange(0, 1, 0.05), [0.0]), -1).reshape(-1, 3)
    cols = np.full((len(g), 3), 90, np.uint8)
    plain = render_map(g, cols, voxel_size=0.05, width=400, shade=False)
    assert plain.shape[1] == 400 and plain.dtype == np.uint8
    centre = plain[plain.shape[0] // 2, 200]
    assert tuple(centre) == (90, 90, 90)  # splats cover the grid without holes
    marked = render_map(g, cols, voxel_size=0.05, width=400, shade=False,
                        markers=[Marker(np.array([1.0, 0.5, 0.0]), np.array([0.4, 0.4, 0.1]), "1:chair", RED)],
                        legend=[("heat", None), ("chair", RED)])
    assert marked.shape[0] > plain.shape[0]  # the legend gets a strip of its own
    assert (np.all(marked == RED, axis=-1)).sum() > 50  # box outline and centre dot in the marker colour


def test_render_empty_map_and_png_round_trip(tmp_path):
    img = render_map(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), width=120)
    assert img.shape[1] == 120 and np.all(img == BACKGROUND)
    path = save_png(tmp_path / "sub" / "x.png", img)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, img)


def test_bad_view_rejected():
    with pytest.raises(ValueError, match="view"):
        OrthoCamera(np.zeros((1, 3)), view="side")
