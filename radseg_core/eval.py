"""Segmentation metrics: 2D mIoU over pixels and 3D mIoU / frequency-weighted mIoU over a labelled cloud.

Label convention (the encoder's): ``0`` = ignore / no prediction, ``k`` in ``1..K`` = ``classes[k-1]``.

The defaults reproduce RayFronts ``scripts/semseg_eval.py`` + ``scripts/eval_utils.py`` (the metric code
RADSeg's 3D numbers use); each rule has a switch so other conventions can be reproduced too:

* **Counting** (``eval_gt_pred``): over samples with gt != 0, per class c ``TP = #(gt=c, pred=c)``,
  ``FP = #(gt!=c, pred=c)``, ``FN = #(gt=c, pred!=c)``. A prediction of 0 ("nothing above threshold") is a
  miss for the true class and a false positive for none; samples with gt = 0 never count.
* **IoU / absent classes**: ``IoU_c = TP / (TP + FP + FN)``; classes absent from the ground truth
  (``TP + FN = 0``) get NaN and are left out of the mean (``exclude_absent=True``; mmseg-style 2D
  benchmarks drop only classes with an empty union: ``exclude_absent=False``).
* ``mIoU`` = nanmean of the IoUs; ``f-mIoU = nansum_c w_c IoU_c`` with ``w_c = (TP+FN)_c / sum(TP+FN)``;
  ``acc`` = fraction of gt != 0 samples predicted correctly.
* **Ignored classes are never queried** (RayFronts drops them from the class list with
  ``_init_semseg_mappings(black_list)``): their ground truth becomes 0 and every prediction is the argmax
  over the remaining classes (:func:`labels_from_scores`), so a point whose best score is an ignored class
  takes its next-best class. This needs scores; given only labels, a prediction of an ignored class can
  only be turned into 0 (a miss), which is what ``ConfusionMatrix`` does with labels and what
  ``radseg-eval --ignore-mode miss`` selects.
* **3D ground truth** is voxelised first (``voxelize_gt``): RayFronts voxelises external ground truth at
  the map's voxel size (one-hot sum, argmax: majority label, 0 votes too, ties to the lowest label); it
  lifts ScanNet's 2D labels through a voxel map of one-hot labels and labels those voxels like map voxels
  (:class:`LabelVoxelizer`: unlabelled points never win).
* **Voxel grid** (``grid``): RayFronts voxelises with ``round(p / voxel_size)`` (voxel centres at
  ``k * voxel_size``, ``geometry3d.pointcloud_to_sparse_voxels``); ``grid="floor"`` gives cells
  ``[k, k+1) * voxel_size`` (our map's own grid). Ties at exactly .5 round half to even, as ``torch.round``.
* **Alignment** (``align`` / ``k``): ``"nearest"`` (RayFronts ``k > 0``; every published config uses ``k =
  5``) gives every ground-truth voxel the mode of the labels of its ``k`` nearest map voxels (label 0 votes
  too; ties to the lowest label, as ``torch.mode`` on CPU; the neighbours from scikit-learn's ``BallTree``
  as upstream when installed), so unmapped regions are scored by whatever was mapped nearby;
  ``max_distance`` turns predictions farther than that into 0 (stricter than the reference). ``"voxel"``
  (RayFronts ``k = 0``) compares voxel by voxel over the union: ground-truth voxels with no prediction are
  misses, predicted voxels with no ground truth are skipped (gt = 0). Upstream sums the label ids of
  coincident entries; we take the per-voxel majority, which is the same whenever each side has at most one
  entry per voxel (true for voxel maps at the same size and grid).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SegMetrics:
    """Per-class counts and IoUs (index k-1 is label k) and the summary numbers."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou: np.ndarray  # NaN where the class is excluded from the mean
    miou: float
    fmiou: float
    acc: float
    classes: list[str] | None = None

    def per_class(self) -> dict[str, float]:
        names = self.classes or [str(k + 1) for k in range(len(self.iou))]
        return {n: float(v) for n, v in zip(names, self.iou, strict=True) if not np.isnan(v)}

    def as_dict(self) -> dict:
        return {"miou": self.miou, "fmiou": self.fmiou, "acc": self.acc, "iou": self.per_class()}

    def table(self) -> str:
        """Plain-text table for CLI output."""
        rows = [f"{'class':<20} {'IoU':>7} {'gt':>9} {'pred':>9}"]
        names = self.classes or [str(k + 1) for k in range(len(self.iou))]
        for n, v, tp, fp, fn in zip(names, self.iou, self.tp, self.fp, self.fn, strict=True):
            iou = "   -   " if np.isnan(v) else f"{100 * v:7.2f}"
            rows.append(f"{n:<20} {iou} {tp + fn:9d} {tp + fp:9d}")
        rows.append(f"{'mIoU':<20} {100 * self.miou:7.2f}")
        rows.append(f"{'f-mIoU':<20} {100 * self.fmiou:7.2f}")
        rows.append(f"{'acc':<20} {100 * self.acc:7.2f}")
        return "\n".join(rows)


class ConfusionMatrix:
    """Accumulates a (K+1) x (K+1) confusion matrix (rows gt, columns pred) over many images/clouds.

    ``ignore_labels``: ground truth of those classes becomes 0 (not scored); a *predicted* ignored label
    becomes 0 (a miss), since labels alone cannot be re-queried — use :func:`labels_from_scores` (or query
    only the kept classes) for the upstream "never queried" rule."""

    def __init__(self, num_classes: int, ignore_labels: Iterable[int] = ()):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_labels = sorted({int(c) for c in ignore_labels})
        bad = [c for c in self.ignore_labels if not 1 <= c <= num_classes]
        if bad:
            raise ValueError(f"ignore_labels {bad} outside 1..{num_classes}")
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
        if pred.shape != gt.shape:
            raise ValueError(f"prediction and ground truth differ in size: {pred.size} vs {gt.size}")
        for name, a in (("prediction", pred), ("ground truth", gt)):
            if a.size and (a.min() < 0 or a.max() > self.num_classes):
                raise ValueError(f"{name} labels must lie in 0..{self.num_classes}, got {a.min()}..{a.max()}")
        pred, gt = pred.astype(np.int64), gt.astype(np.int64)
        if self.ignore_labels:
            ig = np.asarray(self.ignore_labels)
            gt = np.where(np.isin(gt, ig), 0, gt)
            pred = np.where(np.isin(pred, ig), 0, pred)
        n = self.num_classes + 1
        self.matrix += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    def metrics(self, classes: Sequence[str] | None = None, *, exclude_absent: bool = True) -> SegMetrics:
        m = self.matrix[1:]  # rows with gt = 0 never count
        tp = np.diag(self.matrix)[1:].copy()
        fn = m.sum(axis=1) - tp  # includes predictions of 0
        fp = m[:, 1:].sum(axis=0) - tp
        freq = tp + fn
        union = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / union
        iou = iou.astype(np.float64)
        iou[(freq == 0) if exclude_absent else (union == 0)] = np.nan
        for c in self.ignore_labels:
            iou[c - 1] = np.nan
        valid = ~np.isnan(iou)
        miou = float(iou[valid].mean()) if valid.any() else float("nan")
        total = freq.sum()
        fmiou = float((freq[valid] / total * iou[valid]).sum()) if total else float("nan")
        acc = float(tp.sum() / total) if total else float("nan")
        if classes is not None and len(classes) != self.num_classes:
            raise ValueError(f"{len(classes)} class names for {self.num_classes} classes")
        return SegMetrics(tp=tp, fp=fp, fn=fn, iou=iou, miou=miou, fmiou=fmiou, acc=acc,
                          classes=list(classes) if classes is not None else None)


def miou_2d(preds: np.ndarray | Iterable[np.ndarray], gts: np.ndarray | Iterable[np.ndarray],
            num_classes: int, *, ignore_labels: Iterable[int] = (), classes: Sequence[str] | None = None,
            exclude_absent: bool = True) -> SegMetrics:
    """mIoU over the pixels of one label image or of a sequence of them (counts summed over images)."""
    cm = ConfusionMatrix(num_classes, ignore_labels)
    if isinstance(preds, np.ndarray) and isinstance(gts, np.ndarray):
        cm.update(preds, gts)
    else:
        for p, g in zip(preds, gts, strict=True):
            cm.update(p, g)
    return cm.metrics(classes, exclude_absent=exclude_absent)


def nearest_neighbours(query: np.ndarray, points: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (M, k) of the ``k`` nearest ``points`` to each ``query`` point.

    Uses scikit-learn's ``BallTree`` when installed (what RayFronts' ``align_labels_with_knn`` calls, so
    equidistant neighbours are chosen as there, given the points in the same order), else scipy's
    cKDTree, else exact chunked torch.cdist (O(M N), bounded in memory). Neither dependency is required;
    without scikit-learn, which of several equidistant neighbours is taken may differ from RayFronts'.
    """
    query, points = np.asarray(query, dtype=np.float64), np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("no points to search")
    k = min(k, len(points))
    for module, tree in (("sklearn.neighbors", "BallTree"), ("scipy.spatial", "cKDTree")):
        try:
            search = getattr(importlib.import_module(module), tree)
        except ImportError:
            continue
        d, i = search(points).query(query, k=k)
        return d.reshape(len(query), k), i.reshape(len(query), k)
    P = torch.from_numpy(points)
    ds, js = [], []
    chunk = max(1, int(2**24 // max(len(points), 1)))
    for s in range(0, len(query), chunk):
        dist = torch.cdist(torch.from_numpy(query[s : s + chunk]), P)
        v, j = dist.topk(k, dim=1, largest=False)
        ds.append(v.numpy())
        js.append(j.numpy())
    return np.concatenate(ds).reshape(-1, k), np.concatenate(js).reshape(-1, k)


def labels_from_scores(scores: np.ndarray, ignore_labels: Iterable[int] = (), threshold: float = 0.0) -> np.ndarray:
    """Label per row of ``scores`` (N, K; column k-1 = label k): argmax over the classes not in
    ``ignore_labels`` (they are never queried), 0 where that best score is below ``threshold``
    (RayFronts ``compute_semseg_preds``: ``pred[sim_value < prediction_thresh] = 0``)."""
    s = np.array(scores, dtype=np.float64, ndmin=2)
    K = s.shape[1]
    ig = sorted({int(c) for c in ignore_labels})
    bad = [c for c in ig if not 1 <= c <= K]
    if bad:
        raise ValueError(f"ignore_labels {bad} outside 1..{K}")
    if len(ig) == K:
        raise ValueError("every class is ignored: nothing left to predict")
    if ig:
        s[:, np.asarray(ig) - 1] = -np.inf
    best = s.argmax(axis=1)
    score = s[np.arange(len(s)), best]
    return np.where(score < threshold, 0, best + 1).astype(np.int64)


def voxel_keys(points: np.ndarray, voxel_size: float, grid: str = "round") -> np.ndarray:
    """Integer voxel keys: ``round(p / s)`` (RayFronts; half to even like ``torch.round``) or ``floor``."""
    q = np.asarray(points, dtype=np.float64) / voxel_size
    if grid == "round":
        return np.round(q).astype(np.int64)
    if grid == "floor":
        return np.floor(q).astype(np.int64)
    raise ValueError(f"grid must be 'round' or 'floor', got {grid!r}")


def voxel_centres(keys: np.ndarray, voxel_size: float, grid: str = "round") -> np.ndarray:
    """Centres of voxels ``keys``: ``k * s`` on the round grid, ``(k + 0.5) * s`` on the floor grid."""
    return (np.asarray(keys, np.float64) + (0.5 if grid == "floor" else 0.0)) * voxel_size


def voxelize_labels(points: np.ndarray, labels: np.ndarray, voxel_size: float,
                    grid: str = "round") -> tuple[np.ndarray, np.ndarray]:
    """Unique voxel keys (V, 3) and the majority label per voxel; label 0 votes too, ties go to the
    lowest label (RayFronts: one-hot sum then argmax)."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size and labels.min() < 0:  # np.add.at would count -1 for the highest class
        raise ValueError(f"labels must be >= 0 (0 = unlabelled), got {int(labels.min())}")
    keys = voxel_keys(np.asarray(points).reshape(-1, 3), voxel_size, grid)
    if len(keys) == 0:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    uk, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    counts = np.zeros((len(uk), int(labels.max()) + 1), np.int64)
    np.add.at(counts, (inv, labels), 1)
    return uk, counts.argmax(1)


def align_nearest(gt_points: np.ndarray, pred_points: np.ndarray, pred_labels: np.ndarray, *, k: int = 5,
                  max_distance: float | None = None) -> np.ndarray:
    """Predicted label for every ground-truth point: mode of its ``k`` nearest predictions (label 0 votes
    too; ties: lowest label, as ``torch.mode``), 0 when the map is empty or (with ``max_distance``)
    nothing was predicted close enough."""
    if k < 1:
        raise ValueError(f"k must be >= 1 for nearest alignment, got {k}")
    pred_labels = np.asarray(pred_labels).astype(np.int64).ravel()
    if len(pred_points) == 0:
        return np.zeros(len(gt_points), np.int64)
    d, idx = nearest_neighbours(gt_points, pred_points, k)
    lab = pred_labels[idx]
    if max_distance is not None:
        lab = np.where(d <= max_distance, lab, -1)
    if lab.shape[1] == 1:
        out = lab[:, 0]
    else:  # mode per row, among labels that are within range
        n = int(pred_labels.max()) + 1
        counts = np.zeros((len(lab), n), np.int64)
        rows = np.repeat(np.arange(len(lab)), lab.shape[1])
        flat = lab.ravel()
        ok = flat >= 0
        np.add.at(counts, (rows[ok], flat[ok]), 1)
        out = np.where(counts.sum(1) > 0, counts.argmax(1), -1)
    return np.where(out < 0, 0, out)


def align_voxels(gt_points: np.ndarray, gt_labels: np.ndarray, pred_points: np.ndarray,
                 pred_labels: np.ndarray, voxel_size: float, grid: str = "round") -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) label pairs over the union of occupied voxels; missing side = 0 (see module doc)."""
    gk, gl = voxelize_labels(gt_points, gt_labels, voxel_size, grid)
    if len(pred_points) == 0:
        return gl, np.zeros_like(gl)
    pk, pl = voxelize_labels(pred_points, pred_labels, voxel_size, grid)
    uk, inv = np.unique(np.concatenate([gk, pk]), axis=0, return_inverse=True)
    inv = inv.ravel()
    g = np.zeros(len(uk), np.int64)
    p = np.zeros(len(uk), np.int64)
    g[inv[: len(gk)]] = gl
    p[inv[len(gk):]] = pl
    return g, p


def miou_3d(gt_points: np.ndarray, gt_labels: np.ndarray, pred_points: np.ndarray,
            pred_labels: np.ndarray | None, num_classes: int, *, pred_scores: np.ndarray | None = None,
            threshold: float = 0.0, align: str = "nearest", k: int = 5, voxel_size: float = 0.05,
            grid: str = "round", voxelize_gt: bool = True, max_distance: float | None = None,
            ignore_labels: Iterable[int] = (), exclude_absent: bool = True,
            classes: Sequence[str] | None = None) -> SegMetrics:
    """3D mIoU / f-mIoU of a labelled map (voxel centres + labels, or + per-class ``pred_scores`` so
    ignored classes are not queried) against labelled ground-truth points, RayFronts protocol by default."""
    gt_points = np.asarray(gt_points, dtype=np.float64).reshape(-1, 3)
    pred_points = np.asarray(pred_points, dtype=np.float64).reshape(-1, 3)
    gt_labels = np.asarray(gt_labels).astype(np.int64).ravel()
    if pred_scores is not None:
        pred_labels = labels_from_scores(np.asarray(pred_scores).reshape(len(pred_points), num_classes),
                                         ignore_labels, threshold)
    elif pred_labels is None:
        raise ValueError("give pred_labels or pred_scores")
    pred_labels = np.asarray(pred_labels).astype(np.int64).ravel()
    if len(gt_points) != len(gt_labels) or len(pred_points) != len(pred_labels):
        raise ValueError("points and labels must have the same length")
    if align == "nearest":
        if voxelize_gt and len(gt_points):
            keys, gt_labels = voxelize_labels(gt_points, gt_labels, voxel_size, grid)
            gt_points = voxel_centres(keys, voxel_size, grid)
        g, p = gt_labels, align_nearest(gt_points, pred_points, pred_labels, k=k, max_distance=max_distance)
    elif align == "voxel":
        g, p = align_voxels(gt_points, gt_labels, pred_points, pred_labels, voxel_size, grid)
    else:
        raise ValueError(f"align must be 'nearest' or 'voxel', got {align!r}")
    cm = ConfusionMatrix(num_classes, ignore_labels)
    cm.update(p, g)
    return cm.metrics(classes, exclude_absent=exclude_absent)


def mean_over_scenes(per_scene: Sequence[SegMetrics]) -> dict[str, float]:
    """Mean of the per-scene mIoU / f-mIoU / acc (the papers' tables average scenes, not pooled counts)."""
    out = {}
    for key in ("miou", "fmiou", "acc"):
        v = np.array([getattr(m, key) for m in per_scene], np.float64)
        out[key] = float(np.nanmean(v)) if len(v) and not np.isnan(v).all() else float("nan")
    return out


class LabelVoxelizer:
    """Lifts per-pixel labels of posed depth frames into labelled voxels, RayFronts' ``compute_semseg_gt``:
    a voxel map of one-hot label features (column 0 = unlabelled and ignored classes) gives each voxel the
    fraction of its points per label; the voxel's label is then predicted like a map voxel's
    (:func:`onehot_class_probs`: softmax(100 cos) against one-hot class embeddings, argmax, nothing below
    0.1), so unlabelled points never win a voxel, they only dilute it. Counts are reduced per frame so
    memory grows with voxels, not pixels."""

    def __init__(self, voxel_size: float = 0.05, grid: str = "round"):
        self.voxel_size, self.grid = float(voxel_size), grid
        self._keys: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def add_frame(self, depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, labels: np.ndarray) -> None:
        from radseg_core.geometry import backproject_depth

        depth = np.asarray(depth, np.float32)
        if np.asarray(labels).shape != depth.shape:
            raise ValueError(f"labels {np.asarray(labels).shape} and depth {depth.shape} differ in size")
        pts, r, c = backproject_depth(torch.from_numpy(depth), K)
        T = np.asarray(T_world_cam, np.float64)
        xyz = pts.numpy().astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        lab = np.asarray(labels, np.int64)[r.numpy(), c.numpy()]
        if lab.size and lab.min() < 0:  # np.add.at in result() would count -1 for the highest class
            raise ValueError(f"labels must be >= 0 (0 = unlabelled), got {int(lab.min())}")
        keys = voxel_keys(xyz, self.voxel_size, self.grid)
        rows, cnt = np.unique(np.column_stack([keys, lab]), axis=0, return_counts=True)
        self._keys.append(rows[:, :3])
        self._labels.append(rows[:, 3])
        self._counts.append(cnt)

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Voxel keys (V, 3), sorted as ``torch.unique`` sorts rows, and points per label (V, max label + 1)."""
        if not self._keys:
            return np.zeros((0, 3), np.int64), np.zeros((0, 1), np.int64)
        keys, lab, cnt = (np.concatenate(x) for x in (self._keys, self._labels, self._counts))
        uk, inv = np.unique(keys, axis=0, return_inverse=True)
        counts = np.zeros((len(uk), int(lab.max()) + 1), np.int64)
        np.add.at(counts, (inv.ravel(), lab), cnt)
        return uk, counts

    def result(self, num_classes: int, ignore_labels: Iterable[int] = (),
               threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Voxel centres (V, 3) and labels (V,) in 0..``num_classes`` by RayFronts' rule (class docstring):
        labels in ``ignore_labels`` are not queried and count with the unlabelled points."""
        uk, counts = self.counts()
        if counts.shape[1] > num_classes + 1:
            raise ValueError(f"labels up to {counts.shape[1] - 1} but only {num_classes} classes")
        kept = [c for c in range(1, num_classes + 1) if c not in set(ignore_labels)]
        full = np.zeros((len(uk), num_classes + 1), np.float64)
        full[:, : counts.shape[1]] = counts
        other = full[:, 0] + full[:, [c for c in range(1, num_classes + 1) if c not in kept]].sum(1)
        frac = full[:, kept] / np.maximum(full.sum(1, keepdims=True), 1)
        probs = onehot_class_probs(frac, other / np.maximum(full.sum(1), 1))
        labels = np.asarray([0, *kept], np.int64)[compute_semseg_preds(probs, 0.0, threshold)]
        return voxel_centres(uk, self.voxel_size, self.grid), labels


ONEHOT_EPS = 1e-10  # RayFronts ImageSemSegEncoder.eps: off-class entries of its one-hot "text" embeddings


def onehot_class_probs(values: np.ndarray, ignore_mass: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities RayFronts gives a voxel of averaged class scores (its probability-mode maps and
    its ScanNet ground truth): ``softmax_k(100 cos(v, e_k))`` with ``v = [ignore_mass, values]`` and
    ``e_k`` the one-hot embedding of class k over K + 1 entries with ``ONEHOT_EPS`` elsewhere
    (``ImageSemSegEncoder.encode_labels`` + ``compute_cos_sim``), in float32 as there. A zero vector has no
    direction: its row is NaN, as upstream (``compute_semseg_preds`` then labels it 1, never 0)."""
    v = torch.as_tensor(np.asarray(values, np.float32).reshape(len(values), -1))
    n, K = v.shape
    col0 = torch.zeros(n, 1) if ignore_mass is None else torch.as_tensor(np.asarray(ignore_mass, np.float32))[:, None]
    v = torch.cat([col0, v], dim=1)
    e = torch.full((K, K + 1), ONEHOT_EPS)
    e[torch.arange(K), torch.arange(1, K + 1)] = 1.0
    v = v / v.norm(dim=-1, keepdim=True)
    e = e / e.norm(dim=-1, keepdim=True)
    return torch.softmax(100 * (v @ e.T), dim=-1).numpy()


def compute_semseg_preds(probs: np.ndarray, prompt_denoising: float = 0.5, threshold: float = 0.1,
                         chunk_size: int | None = 10000) -> np.ndarray:
    """Labels of map voxels from their class probabilities (N, K), RayFronts ``compute_semseg_preds``:
    within each chunk of ``chunk_size`` voxels (upstream's ``chunk_size: 10000``; None = the whole map),
    a class whose best probability is below ``prompt_denoising`` is dropped (MaskCLIP+ prompt denoising),
    then argmax + 1, and 0 where the winning probability is below ``threshold``."""
    p = np.array(probs, dtype=np.float64, ndmin=2)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    step = len(p) if not chunk_size else int(chunk_size)
    out = []
    for s in range(0, len(p), step):
        c = p[s : s + step]
        c[:, c.max(axis=0) < prompt_denoising] = -np.inf
        best = c.argmax(axis=1)
        score = c[np.arange(len(c)), best]
        out.append(np.where(score < threshold, 0, best + 1))
    return np.concatenate(out).astype(np.int64)


def voxel_class_probs(mapper) -> np.ndarray:
    """(N, K) class probabilities of every map voxel over ``mapper.config.classes``, as RayFronts'
    ``semseg_eval`` scores them: softmax(100 cos) of the language-aligned voxel features against the class
    text embeddings (features mode), or of the averaged stored probabilities against one-hot class
    embeddings (probabilities mode, :func:`onehot_class_probs`)."""
    m = mapper.map
    if len(m) == 0:
        return np.zeros((0, len(mapper.config.classes)), np.float32)
    if m.mode == "probabilities":  # RayFronts: averaged probabilities against one-hot class embeddings
        return onehot_class_probs(m.values().float().cpu().numpy())
    from radseg_core.query import map_cosines

    cos = map_cosines(m, mapper.encoder.encode_text(list(mapper.config.classes)).float(), mapper.encoder.align)
    return torch.softmax(100.0 * cos.T, dim=1).cpu().numpy()
