"""Our 3D metric against a plain re-statement of RayFronts' semseg_eval in torch (written from its
semantics: round-grid one-hot voxelisation of the gt, k-NN + torch.mode, one-hot TP/FP/FN counting,
nanmean / nansum), on random clouds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radseg_core.eval import miou_3d


def _reference(gt_xyz, gt_lab, pred_xyz, pred_lab, num_classes, vox, k):
    gt_xyz, pred_xyz = torch.as_tensor(gt_xyz), torch.as_tensor(pred_xyz)
    gt_lab, pred_lab = torch.as_tensor(gt_lab), torch.as_tensor(pred_lab)
    n = num_classes + 1  # index 0 = ignore
    # load_externel_semseg_gt: one-hot, pointcloud_to_sparse_voxels(round, "sum"), argmax
    keys = torch.round(gt_xyz / vox).long()
    uk, inv = torch.unique(keys, dim=0, return_inverse=True)
    votes = torch.nn.functional.one_hot(gt_lab, n).double()
    onehot = torch.zeros(len(uk), n, dtype=torch.float64).index_add_(0, inv, votes)
    gt_vx, gt_l = uk.double() * vox, onehot.argmax(-1)
    # align_labels_with_knn: k nearest (BallTree) -> torch.mode
    idx = torch.cdist(gt_vx, pred_xyz).topk(k, dim=1, largest=False).indices
    aligned = torch.mode(pred_lab[idx], dim=-1).values
    # eval_gt_pred
    p1, g1 = torch.nn.functional.one_hot(aligned, n).bool(), torch.nn.functional.one_hot(gt_l, n).bool()
    valid = (gt_l != 0).unsqueeze(-1)
    tp = (g1 & p1 & valid).sum(0)[1:].double()
    fp = (~g1 & p1 & valid).sum(0)[1:].double()
    fn = (g1 & ~p1 & valid).sum(0)[1:].double()
    iou = tp / (tp + fp + fn)
    freq = tp + fn
    iou[freq == 0] = torch.nan
    return float(torch.nanmean(iou)), float(torch.nansum(freq / freq.sum() * iou)), iou.numpy()


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_random_clouds(seed):
    rng = np.random.default_rng(seed)
    K = 5
    gt_xyz = rng.uniform(0, 1, (400, 3))
    gt_lab = rng.integers(0, K + 1, 400)
    pred_xyz = rng.uniform(0, 1, (300, 3))
    pred_lab = rng.integers(0, K + 1, 300)
    miou, fmiou, iou = _reference(gt_xyz, gt_lab, pred_xyz, pred_lab, K, 0.1, 5)
    m = miou_3d(gt_xyz, gt_lab, pred_xyz, pred_lab, K, voxel_size=0.1)
    assert m.miou == pytest.approx(miou) and m.fmiou == pytest.approx(fmiou)
    np.testing.assert_allclose(m.iou, iou, equal_nan=True)
