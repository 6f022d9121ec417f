"""Segmentation metrics on cases small enough to count by hand."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from radseg_core.eval import (
    ConfusionMatrix,
    align_nearest,
    align_voxels,
    miou_2d,
    miou_3d,
    nearest_neighbours,
)


def test_2d_hand_counted():
    # gt: four pixels of class 1, two of class 2, one ignore; pred makes one 1->2 error and one 2->0 miss
    gt = np.array([1, 1, 1, 1, 2, 2, 0])
    pred = np.array([1, 1, 1, 2, 2, 0, 2])
    m = miou_2d(pred, gt, num_classes=3, classes=["a", "b", "c"])
    # class 1: TP 3, FN 1, FP 0 -> 3/4 ; class 2: TP 1, FP 1 (the 1->2 error), FN 1 (the miss) -> 1/3
    np.testing.assert_array_equal(m.tp, [3, 1, 0])
    np.testing.assert_array_equal(m.fp, [0, 1, 0])
    np.testing.assert_array_equal(m.fn, [1, 1, 0])
    assert m.iou[0] == pytest.approx(0.75)
    assert m.iou[1] == pytest.approx(1 / 3)
    assert np.isnan(m.iou[2])  # absent from gt: excluded from the mean
    assert m.miou == pytest.approx((0.75 + 1 / 3) / 2)
    assert m.fmiou == pytest.approx(4 / 6 * 0.75 + 2 / 6 * (1 / 3))
    assert m.acc == pytest.approx(4 / 6)  # the gt=0 pixel predicted 2 is not counted anywhere
    assert set(m.per_class()) == {"a", "b"}
    assert "mIoU" in m.table()


def test_predicted_but_absent_class():
    gt = np.array([1, 1, 1, 1])
    pred = np.array([1, 1, 3, 3])
    m = miou_2d(pred, gt, num_classes=3)
    assert m.miou == pytest.approx(0.5)  # class 3 absent from gt: excluded (RayFronts)
    m2 = miou_2d(pred, gt, num_classes=3, exclude_absent=False)  # mmseg: union > 0 counts
    assert m2.iou[2] == 0.0
    assert m2.miou == pytest.approx(0.25)


def test_ignore_labels_remove_class_from_both_sides():
    gt = np.array([1, 1, 2, 2, 3])
    pred = np.array([2, 1, 2, 2, 2])
    m = miou_2d(pred, gt, num_classes=3, ignore_labels=[2])
    # class 2 removed: gt 2 pixels are skipped, predictions of 2 become misses (0)
    np.testing.assert_array_equal(m.tp, [1, 0, 0])
    np.testing.assert_array_equal(m.fn, [1, 0, 1])
    assert np.isnan(m.iou[1])
    assert m.miou == pytest.approx((0.5 + 0.0) / 2)


def test_accumulation_equals_concatenation():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 5, size=(6, 7)) for _ in range(3)]
    gts = [rng.integers(0, 5, size=(6, 7)) for _ in range(3)]
    a = miou_2d(preds, gts, num_classes=4)
    b = miou_2d(np.concatenate([p.ravel() for p in preds]), np.concatenate([g.ravel() for g in gts]), 4)
    np.testing.assert_array_equal(a.tp, b.tp)
    assert a.miou == pytest.approx(b.miou)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="0..2"):
        ConfusionMatrix(2).update(np.array([3]), np.array([1]))
    with pytest.raises(ValueError, match="size"):
        ConfusionMatrix(2).update(np.array([1, 1]), np.array([1]))


def test_3d_nearest_alignment():
    gt_pts = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    gt_lab = np.array([1, 1, 2, 2])
    pred_pts = np.array([[0.1, 0, 0], [1.9, 0, 0], [3.2, 0, 0]])
    pred_lab = np.array([1, 2, 1])
    # gt 1 at x=1 is nearest to the x=1.9 prediction (2): a miss; gt 2 at x=3 gets the 1 at 3.2: a miss
    np.testing.assert_array_equal(align_nearest(gt_pts, pred_pts, pred_lab, k=1), [1, 2, 2, 1])
    m = miou_3d(gt_pts, gt_lab, pred_pts, pred_lab, num_classes=2, k=1)
    assert m.iou[0] == pytest.approx(1 / 3)  # TP 1, FN 1, FP 1
    assert m.iou[1] == pytest.approx(1 / 3)
    # a distance cap turns far matches into "no prediction"
    capped = align_nearest(gt_pts, pred_pts, pred_lab, k=1, max_distance=0.5)
    np.testing.assert_array_equal(capped, [1, 0, 2, 1])


def test_3d_knn_mode_and_empty_map():
    gt_pts = np.zeros((1, 3))
    pred_pts = np.array([[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0], [5, 0, 0]])
    pred_lab = np.array([2, 3, 3, 1])
    assert align_nearest(gt_pts, pred_pts, pred_lab, k=1)[0] == 2
    assert align_nearest(gt_pts, pred_pts, pred_lab, k=3)[0] == 3
    assert align_nearest(gt_pts, np.zeros((0, 3)), np.zeros(0, int))[0] == 0
    m = miou_3d(gt_pts, [1], np.zeros((0, 3)), np.zeros(0, int), num_classes=1)
    assert m.miou == 0.0


def test_3d_voxel_alignment():
    vs = 1.0
    gt_pts = np.array([[0.5, 0.5, 0.5], [0.6, 0.5, 0.5], [0.7, 0.5, 0.5], [1.5, 0.5, 0.5]])
    gt_lab = np.array([1, 1, 2, 2])  # voxel (0,0,0): majority 1; voxel (1,0,0): 2
    pred_pts = np.array([[0.2, 0.2, 0.2], [5.5, 0.5, 0.5]])
    pred_lab = np.array([1, 2])  # voxel (1,0,0) unmapped -> miss; voxel (5,0,0) has no gt -> ignored
    g, p = align_voxels(gt_pts, gt_lab, pred_pts, pred_lab, vs, grid="floor")
    pairs = sorted(zip(g.tolist(), p.tolist(), strict=True))
    assert pairs == [(0, 2), (1, 1), (2, 0)]
    m = miou_3d(gt_pts, gt_lab, pred_pts, pred_lab, 2, align="voxel", voxel_size=vs, grid="floor")
    np.testing.assert_allclose(m.iou, [1.0, 0.0])
    assert m.fmiou == pytest.approx(0.5)


def test_nearest_neighbours_fallback_matches_kdtree(monkeypatch):
    rng = np.random.default_rng(1)
    pts, q = rng.normal(size=(300, 3)), rng.normal(size=(50, 3))
    d_ref, i_ref = nearest_neighbours(q, pts, k=2)
    real_import = builtins.__import__

    def no_scipy(name, *a, **kw):
        if name.startswith("scipy"):
            raise ImportError("no scipy")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    d, i = nearest_neighbours(q, pts, k=2)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-9)
