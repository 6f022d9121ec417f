"""Colours shared by images, clouds, PLY files and markers."""

from __future__ import annotations

import numpy as np

from radseg_core.visual import heat_colors, label_palette, overlay_labels


def test_palette_is_stable_distinct_and_black_for_ignore():
    p = label_palette(20)
    assert p.shape == (20, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in p}) == 20
    assert np.array_equal(label_palette(5), p[:5])  # the same id keeps its colour whatever the class count


def test_overlay_matches_plain_blend_and_keeps_ignored_pixels():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, (24, 32))
    out = overlay_labels(rgb, labels, alpha=0.55)
    known = labels > 0
    ref = rgb.astype(np.float64)
    ref[known] = 0.45 * ref[known] + 0.55 * label_palette(7)[labels[known]]
    assert np.abs(out.astype(int) - np.rint(ref).astype(int)).max() <= 1
    assert np.array_equal(out[~known], rgb[~known])


def test_overlay_resizes_coarse_labels_and_handles_many_classes():
    rgb = np.zeros((32, 48, 3), np.uint8)
    coarse = np.arange(6).reshape(2, 3)
    out = overlay_labels(rgb, coarse)
    assert out.shape == rgb.shape
    assert np.array_equal(out[:16, :16], np.zeros((16, 16, 3), np.uint8))  # label 0 block untouched
    many = np.full((4, 4), 300)
    assert overlay_labels(np.zeros((4, 4, 3), np.uint8), many).any()


def test_heat_ramp_ends():
    c = heat_colors(np.array([0.0, 0.5, 1.0]))
    assert c[0, 2] > c[0, 0] and c[2, 0] > c[2, 2]  # low blue, high red
    assert heat_colors(np.array([3.0, 3.0])).shape == (2, 3)
