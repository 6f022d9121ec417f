"""Navigation pictures: mask cells are tinted where the mask acts, the goal arrow is drawn along its yaw."""

from __future__ import annotations

import numpy as np

from radseg_core.navigation import Goal, keepout_mask
from radseg_core.navigation.pictures import GOAL_COLOR, KEEPOUT_COLOR, navigation_picture
from radseg_core.types import Candidate


def test_mask_cells_and_goal_arrow_are_drawn_where_they_are():
    xs, ys = np.meshgrid(np.arange(40), np.arange(20))
    ijk = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size, int)], axis=1)
    pts = (ijk + 0.5) * 0.05
    scores = (ijk[:, 0] >= 30).astype(float)[None]  # the right quarter of the floor is kept out
    mask = keepout_mask(ijk, scores, voxel_size=0.05, z_band=(-1, 1), threshold=0.5)
    grey = np.full((len(pts), 3), 90, np.uint8)
    img = navigation_picture(pts, grey, voxel_size=0.05, masks=[mask], width=400)
    red = (img[..., 0] > 150) & (img[..., 1] < 90)
    cols = np.nonzero(red.any(axis=0))[0]
    assert red.sum() > 1000 and cols.min() > 0.7 * img.shape[1]  # tinted: only the right quarter
    assert not (np.abs(img.astype(int) - GOAL_COLOR).sum(axis=2) < 60).any()
    cand = Candidate(0, np.array([1.0, 0.5, 0.0]), np.array([0.2, 0.2, 0.2]), 1.0, 8)
    goal = Goal(0.3, 0.5, 0.0, 0.0, cand, 1.0, 0.6)  # yaw 0: the arrow points along +x (right)
    img = navigation_picture(pts, grey, voxel_size=0.05, goal=goal, width=400)
    green = np.abs(img.astype(int) - GOAL_COLOR).sum(axis=2) < 60
    ys_g, xs_g = np.nonzero(green)
    assert green.sum() > 50 and not (np.abs(img.astype(int) - KEEPOUT_COLOR).sum(axis=2) < 60).any()
    assert xs_g.min() < 0.35 * img.shape[1] < 0.45 * img.shape[1] < xs_g.max()  # from x = 0.3 m to past 0.8 m
