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


def _rayfronts_preds(feats: torch.Tensor, text: torch.Tensor, denoise: float, thresh: float, chunk: int):
    """scripts/eval_utils.compute_semseg_preds + rayfronts.utils.compute_cos_sim, restated."""
    out = []
    for c in range(0, len(feats), chunk):
        f = feats[c : c + chunk]
        sim = torch.softmax(100 * (f / f.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).T,
                            dim=-1)
        low = torch.argwhere(sim.max(dim=0).values < denoise)
        sim[:, low] = -torch.inf
        value, pred = sim.max(dim=-1)
        pred = pred + 1
        pred[value < thresh] = 0
        out.append(pred)
    return torch.cat(out).numpy()


@pytest.mark.parametrize("seed", range(3))
def test_probability_map_labels_as_rayfronts(seed):
    """Probability-mode voxels: RADSegEncoder(predict=True) maps [0, p_1..p_K] per pixel; semseg_eval
    compares the voxel means with ImageSemSegEncoder.encode_labels' one-hot rows (eps 1e-10 elsewhere)
    through softmax(100 cos) before prompt denoising (per chunk of voxels) and the 0.1 threshold."""
    from radseg_core.eval import compute_semseg_preds, onehot_class_probs

    g = torch.Generator().manual_seed(seed)
    K, N = 6, 2500
    avg = torch.softmax(3 * torch.randn(N, K, generator=g), dim=1)  # soft averages of many pixels
    avg[:, 5] = 0  # a class denoised in every frame
    avg[:100] *= torch.rand(100, 1, generator=g)  # some voxels partly averaged with all-denoised pixels
    text = torch.full((K, K + 1), 1e-10)
    text[torch.arange(K), torch.arange(1, K + 1)] = 1
    ref = _rayfronts_preds(torch.cat([torch.zeros(N, 1), avg], 1), text, 0.5, 0.1, 1000)
    got = compute_semseg_preds(onehot_class_probs(avg.numpy()), 0.5, 0.1, 1000)
    np.testing.assert_array_equal(got, ref)
    direct = compute_semseg_preds(avg.numpy(), 0.5, 0.1, 1000)  # thresholding the averages themselves
    assert (direct != ref).mean() > 0.01


def test_voxel_order_is_torch_unique_order():
    from radseg_core.eval_bench import rayfronts_centres, rayfronts_order

    rng = np.random.default_rng(0)
    keys = rng.integers(-50, 50, (3000, 3))
    keys = np.unique(keys, axis=0)[rng.permutation(len(np.unique(keys, axis=0)))]
    xyz = keys * 0.05
    ref = torch.unique(torch.from_numpy(keys), dim=0)
    np.testing.assert_array_equal(keys[rayfronts_order(xyz, 0.05)], ref.numpy())
    np.testing.assert_array_equal(rayfronts_centres(xyz, 0.05), (ref.float() * 0.05).double().numpy()[
        np.argsort(rayfronts_order(xyz, 0.05))])


def test_knn_ties_follow_rayfronts_balltree():
    """align_labels_with_knn: sklearn BallTree(pred).query(gt, k) then torch.mode. Map and ground truth
    share the 5 cm lattice, so many neighbours are equidistant; which of them count is BallTree's choice
    (float32 centres as RayFronts stores them)."""
    BallTree = pytest.importorskip("sklearn.neighbors").BallTree
    from radseg_core.eval import align_nearest
    from radseg_core.eval_bench import rayfronts_centres, rayfronts_order

    rng = np.random.default_rng(1)
    pk = np.unique(rng.integers(0, 14, (1200, 3)), axis=0)
    pred_xyz = rayfronts_centres(pk * 0.05, 0.05)[np.argsort(rayfronts_order(pk * 0.05, 0.05))]
    pred_lab = rng.integers(0, 6, len(pred_xyz))
    gt_xyz = rayfronts_centres(rng.integers(-1, 15, (800, 3)) * 0.05, 0.05)
    idx = BallTree(pred_xyz.astype(np.float32)).query(gt_xyz.astype(np.float32), k=5)[1]
    ref = torch.mode(torch.from_numpy(pred_lab)[torch.from_numpy(idx)], dim=-1).values.numpy()
    np.testing.assert_array_equal(align_nearest(gt_xyz, pred_xyz, pred_lab, k=5), ref)
