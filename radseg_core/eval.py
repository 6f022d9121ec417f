"""Segmentation metrics: 2D mIoU over pixels and 3D mIoU / frequency-weighted mIoU over a labelled cloud.

Label convention (the encoder's): ``0`` = ignore / no prediction, ``k`` in ``1..K`` = ``classes[k-1]``.

Protocol (RayFronts ``semseg_eval.py``, which RADSeg's 3D numbers use), applied to every sample
(pixel, or ground-truth point/voxel) whose ground-truth label is not 0:

* per class c: ``TP = #(gt=c, pred=c)``, ``FP = #(gt!=c, pred=c)``, ``FN = #(gt=c, pred!=c)``. A
  prediction of 0 ("nothing above threshold") is therefore a miss for the true class and a false
  positive for none. Samples with gt = 0 are skipped entirely.
* ``IoU_c = TP / (TP + FP + FN)``; classes absent from the ground truth (``TP + FN = 0``) get NaN and are
  left out of the mean: even a perfect segmenter scores 0 on them. (mmseg-style 2D benchmarks instead
  drop only classes with an empty union; ``exclude_absent=False`` gives that.)
* ``mIoU`` = mean of the non-NaN IoUs; ``f-mIoU = sum_c w_c IoU_c`` with ``w_c = (TP+FN)_c / sum(TP+FN)``
  (the ground-truth frequency); ``acc`` = fraction of gt != 0 samples predicted correctly.
* ``ignore_labels``: classes removed from evaluation (e.g. "ceiling"): their gt samples become 0 and
  predictions of them become 0, exactly as if the class had not been queried.

3D alignment: a map has labelled voxel centres, the ground truth labelled points; they are put in
correspondence before counting. ``align="nearest"`` (default; RayFronts ``k > 0``) gives every ground-truth
point the label of its nearest predicted voxel (the mode of the ``k`` nearest), so unmapped regions are
scored by whatever was mapped nearby; ``max_distance`` turns predictions farther than that into 0 (a miss),
which is stricter than the reference. ``align="voxel"`` (RayFronts ``k = 0``) voxelises both at
``voxel_size`` (majority label per voxel) and compares voxel by voxel over the union: ground-truth voxels
with no prediction count as misses; predicted voxels with no ground truth are ignored.
"""

from __future__ import annotations

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
    """Accumulates a (K+1) x (K+1) confusion matrix (rows gt, columns pred) over many images/clouds."""

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

    Uses scipy's cKDTree when installed (it is not a dependency), else exact chunked torch.cdist, which
    is O(M N) but bounded in memory.
    """
    query, points = np.asarray(query, dtype=np.float64), np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("no points to search")
    k = min(k, len(points))
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        cKDTree = None
    if cKDTree is not None:
        d, i = cKDTree(points).query(query, k=k)
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


def align_nearest(gt_points: np.ndarray, pred_points: np.ndarray, pred_labels: np.ndarray, *, k: int = 1,
                  max_distance: float | None = None) -> np.ndarray:
    """Predicted label for every ground-truth point: mode of its ``k`` nearest predictions (ties: lowest
    label), 0 when the map is empty or (with ``max_distance``) nothing was predicted close enough."""
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


def _voxel_majority(points: np.ndarray, labels: np.ndarray, voxel_size: float):
    """Unique voxel keys (V, 3) and the majority label per voxel (ties: lowest label)."""
    keys = np.floor(np.asarray(points, dtype=np.float64) / voxel_size).astype(np.int64)
    uk, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    n = int(labels.max()) + 1 if len(labels) else 1
    counts = np.zeros((len(uk), n), np.int64)
    np.add.at(counts, (inv, np.asarray(labels, dtype=np.int64)), 1)
    return uk, counts.argmax(1)


def align_voxels(gt_points: np.ndarray, gt_labels: np.ndarray, pred_points: np.ndarray,
                 pred_labels: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) label pairs over the union of occupied voxels; missing side = 0 (see module doc)."""
    gk, gl = _voxel_majority(gt_points, np.asarray(gt_labels).ravel(), voxel_size)
    if len(pred_points) == 0:
        return gl, np.zeros_like(gl)
    pk, pl = _voxel_majority(pred_points, np.asarray(pred_labels).ravel(), voxel_size)
    allk = np.concatenate([gk, pk])
    uk, inv = np.unique(allk, axis=0, return_inverse=True)
    inv = inv.ravel()
    g = np.zeros(len(uk), np.int64)
    p = np.zeros(len(uk), np.int64)
    g[inv[: len(gk)]] = gl
    p[inv[len(gk):]] = pl
    return g, p


def miou_3d(gt_points: np.ndarray, gt_labels: np.ndarray, pred_points: np.ndarray, pred_labels: np.ndarray,
            num_classes: int, *, align: str = "nearest", k: int = 1, voxel_size: float = 0.05,
            max_distance: float | None = None, ignore_labels: Iterable[int] = (),
            classes: Sequence[str] | None = None) -> SegMetrics:
    """3D mIoU / f-mIoU of a labelled map (voxel centres + labels) against labelled ground-truth points."""
    gt_points = np.asarray(gt_points, dtype=np.float64).reshape(-1, 3)
    pred_points = np.asarray(pred_points, dtype=np.float64).reshape(-1, 3)
    gt_labels = np.asarray(gt_labels).ravel()
    pred_labels = np.asarray(pred_labels).ravel()
    if len(gt_points) != len(gt_labels) or len(pred_points) != len(pred_labels):
        raise ValueError("points and labels must have the same length")
    if align == "nearest":
        g, p = gt_labels, align_nearest(gt_points, pred_points, pred_labels, k=k, max_distance=max_distance)
    elif align == "voxel":
        g, p = align_voxels(gt_points, gt_labels, pred_points, pred_labels, voxel_size)
    else:
        raise ValueError(f"align must be 'nearest' or 'voxel', got {align!r}")
    cm = ConfusionMatrix(num_classes, ignore_labels)
    cm.update(p, g)
    return cm.metrics(classes)
