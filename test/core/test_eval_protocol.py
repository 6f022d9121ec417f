"""Each rule of the RayFronts ``semseg_eval`` protocol on cases whose numbers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from radseg_core.eval import (
    align_nearest,
    align_voxels,
    compute_semseg_preds,
    labels_from_scores,
    mean_over_scenes,
    miou_2d,
    miou_3d,
    voxel_keys,
    voxelize_labels,
)

WALL, CEILING, CHAIR = 1, 2, 3


def test_ignored_class_is_not_queried_issue_minimal_case():
    # gt [wall, wall]; scores row 0 prefers wall, row 1 prefers ceiling (0.7) over wall (0.3); ignore ceiling
    scores = np.array([[0.9, 0.1], [0.3, 0.7]])
    pts = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    m = miou_3d(pts, [WALL, WALL], pts, None, 2, pred_scores=scores, ignore_labels=[CEILING], k=1)
    # upstream: ceiling is never queried, so row 1 takes wall -> TP 2, FP 0, FN 0 -> IoU 1.0
    assert m.iou[0] == pytest.approx(1.0)
    assert np.isnan(m.iou[1]) and m.miou == pytest.approx(1.0)
    # labels only ("miss" semantics): the ceiling prediction becomes 0 -> TP 1, FN 1 -> 0.5
    lab = miou_3d(pts, [WALL, WALL], pts, [WALL, CEILING], 2, ignore_labels=[CEILING], k=1)
    assert lab.iou[0] == pytest.approx(0.5)


def test_labels_from_scores_threshold_and_ignore():
    s = np.array([[0.05, 0.02, 0.93], [0.6, 0.3, 0.1], [0.08, 0.09, 0.83]])
    np.testing.assert_array_equal(labels_from_scores(s), [3, 1, 3])
    # ignore 3: next best is 1 (0.05), 1 (0.6), 2 (0.09); threshold 0.1 turns 0.05 and 0.09 into 0
    np.testing.assert_array_equal(labels_from_scores(s, [3]), [1, 1, 2])
    np.testing.assert_array_equal(labels_from_scores(s, [3], threshold=0.1), [0, 1, 0])
    with pytest.raises(ValueError, match="every class"):
        labels_from_scores(s, [1, 2, 3])
    with pytest.raises(ValueError, match="outside"):
        labels_from_scores(s, [4])


def test_knn_default_is_five_with_majority_vote():
    # one gt point at the origin; 5 nearest predictions: 1 at 0.1 (chair) then 4 farther (2 wall, 2 ceiling)
    pred = np.array([[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0], [0.4, 0, 0], [0.5, 0, 0], [9, 0, 0]])
    lab = np.array([CHAIR, CEILING, WALL, CEILING, WALL, CHAIR])
    # k=1 -> chair; k=5 -> wall 2, ceiling 2, chair 1: tie wall/ceiling goes to the lowest label (wall)
    assert align_nearest(np.zeros((1, 3)), pred, lab, k=1)[0] == CHAIR
    assert align_nearest(np.zeros((1, 3)), pred, lab)[0] == WALL
    m = miou_3d(np.zeros((1, 3)), [WALL], pred, lab, 3)  # defaults: k=5
    assert m.miou == pytest.approx(1.0)
    m1 = miou_3d(np.zeros((1, 3)), [WALL], pred, lab, 3, k=1)
    assert m1.miou == pytest.approx(0.0)


def test_no_prediction_votes_in_the_knn_mode():
    # three of five neighbours have "nothing above threshold" (0): the point is a miss, as torch.mode would say
    pred = np.array([[0.1 * i, 0, 0] for i in range(1, 6)])
    assert align_nearest(np.zeros((1, 3)), pred, [0, 0, 0, WALL, WALL])[0] == 0


def test_round_grid_versus_floor_grid():
    # 0.04 m with 5 cm voxels: round(0.8) = 1 but floor(0.8) = 0; -0.02: round(-0.4) = 0, floor = -1
    p = np.array([[0.04, 0.0, 0.0], [-0.02, 0.0, 0.0]])
    np.testing.assert_array_equal(voxel_keys(p, 0.05)[:, 0], [1, 0])
    np.testing.assert_array_equal(voxel_keys(p, 0.05, "floor")[:, 0], [0, -1])
    # half-way rounds to even, like torch.round
    np.testing.assert_array_equal(voxel_keys(np.array([[0.5, 1.5, 2.5]]), 1.0)[0], [0, 2, 2])
    with pytest.raises(ValueError, match="grid"):
        voxel_keys(p, 0.05, "ceil")


def test_voxel_alignment_uses_round_grid():
    # gt at x=0.6 (round -> voxel 1, floor -> voxel 0), prediction at x=1.2 (round -> 1, floor -> 1)
    gt, pred = np.array([[0.6, 0, 0]]), np.array([[1.2, 0, 0]])
    g, p = align_voxels(gt, [WALL], pred, [WALL], 1.0)
    assert list(zip(g.tolist(), p.tolist(), strict=True)) == [(WALL, WALL)]  # same voxel: a hit
    g, p = align_voxels(gt, [WALL], pred, [WALL], 1.0, grid="floor")
    assert sorted(zip(g.tolist(), p.tolist(), strict=True)) == [(0, WALL), (WALL, 0)]  # a miss
    assert miou_3d(gt, [WALL], pred, [WALL], 1, align="voxel", voxel_size=1.0).miou == 1.0
    assert miou_3d(gt, [WALL], pred, [WALL], 1, align="voxel", voxel_size=1.0, grid="floor").miou == 0.0


def test_gt_is_voxelized_by_majority_before_knn():
    # three gt points in voxel 0 (wall, wall, chair) -> one gt voxel "wall"; 0 votes too; ties -> lowest label
    keys, lab = voxelize_labels(np.array([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0]]), [WALL, WALL, CHAIR], 0.05)
    assert keys.tolist() == [[0, 0, 0]] and lab.tolist() == [WALL]
    _, lab = voxelize_labels(np.array([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0]]), [0, 0, CHAIR], 0.05)
    assert lab.tolist() == [0]
    _, lab = voxelize_labels(np.array([[0.0, 0, 0], [0.01, 0, 0]]), [CHAIR, WALL], 0.05)
    assert lab.tolist() == [WALL]
    # scoring: the map predicts chair everywhere. Voxelised gt: 1 wall voxel -> IoU(wall) 0, chair absent.
    pts = np.array([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0]])
    m = miou_3d(pts, [WALL, WALL, CHAIR], pts, [CHAIR] * 3, 3)
    np.testing.assert_array_equal(m.tp + m.fn, [1, 0, 0])
    # per point (voxelize_gt=False): wall 2 points (TP 0, FN 2), chair 1 point (TP 1, FP 2) -> IoU 0, 1/3
    m = miou_3d(pts, [WALL, WALL, CHAIR], pts, [CHAIR] * 3, 3, voxelize_gt=False)
    assert m.iou[0] == 0.0 and m.iou[2] == pytest.approx(1 / 3)


def test_fmiou_and_absent_class_by_hand():
    # gt: 3 wall, 1 chair; pred: wall, wall, chair, chair; ceiling predicted nowhere and absent from gt
    gt = np.array([WALL, WALL, WALL, CHAIR])
    pred = np.array([WALL, WALL, CHAIR, CHAIR])
    m = miou_2d(pred, gt, 3)
    # wall TP 2 FN 1 FP 0 -> 2/3; chair TP 1 FP 1 -> 1/2; ceiling absent -> NaN (not 0) and out of the mean
    assert m.iou[0] == pytest.approx(2 / 3) and m.iou[2] == pytest.approx(0.5) and np.isnan(m.iou[1])
    assert m.miou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m.fmiou == pytest.approx(3 / 4 * 2 / 3 + 1 / 4 * 1 / 2)
    # a class predicted but absent from gt: NaN under the RayFronts rule, 0 under the mmseg rule
    m = miou_2d(np.array([WALL, CEILING]), np.array([WALL, WALL]), 2)
    assert np.isnan(m.iou[1]) and m.miou == pytest.approx(0.5)
    m = miou_2d(np.array([WALL, CEILING]), np.array([WALL, WALL]), 2, exclude_absent=False)
    assert m.iou[1] == 0.0 and m.miou == pytest.approx(0.25)


def test_mean_over_scenes_averages_scene_numbers():
    a = miou_2d(np.array([1, 1]), np.array([1, 1]), 1)  # 1.0
    b = miou_2d(np.array([1, 0]), np.array([1, 1]), 1)  # 0.5
    assert mean_over_scenes([a, b])["miou"] == pytest.approx(0.75)


def test_bad_k_raises():
    with pytest.raises(ValueError, match="k must"):
        align_nearest(np.zeros((1, 3)), np.zeros((1, 3)), [1], k=0)


def test_map_predictions_denoise_then_threshold():
    # 3 voxels x 3 classes. Class 3 never reaches 0.5 anywhere -> dropped (prompt denoising).
    p = np.array([[0.6, 0.05, 0.35], [0.2, 0.39, 0.41], [0.15, 0.8, 0.05]])
    # voxel 1: class 3 (0.41) dropped -> class 2 (0.39); voxel 0: class 1; voxel 2: class 2
    np.testing.assert_array_equal(compute_semseg_preds(p, 0.5, 0.1), [1, 2, 2])
    # threshold 0.4: voxel 1's 0.39 -> no prediction
    np.testing.assert_array_equal(compute_semseg_preds(p, 0.5, 0.4), [1, 0, 2])
    # no denoising: voxel 1 keeps class 3
    np.testing.assert_array_equal(compute_semseg_preds(p, 0.0, 0.1), [1, 3, 2])
    assert compute_semseg_preds(np.zeros((0, 3))).shape == (0,)
    # upstream denoises per chunk of voxels: chunks {0, 1} and {2}. In the first, classes 2 (max 0.39) and
    # 3 (0.41) are dropped, so voxel 1 falls back to class 1 (0.2); in the second, classes 1 and 3 go.
    np.testing.assert_array_equal(compute_semseg_preds(p, 0.5, 0.1, chunk_size=2), [1, 1, 2])


def test_negative_labels_are_refused_not_counted_for_the_last_class():
    from radseg_core.eval import voxelize_labels

    with pytest.raises(ValueError, match=">= 0"):
        voxelize_labels(np.zeros((2, 3)), np.array([1, -1]), 0.05)
