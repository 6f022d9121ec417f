"""Colours for labels and score heat, shared by the node, the command-line tools and the pictures."""

from __future__ import annotations

import numpy as np


def label_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours; index 0 (ignore / unknown) is black.

    Golden-ratio hue steps keep neighbouring ids apart and give the same colour to the same id in
    every image, cloud and marker.
    """
    n = max(int(n), 1)
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    h6 = hues * 6.0
    sector = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    v, s = 0.95, 0.75
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack(
        [
            np.choose(sector, [v, q, p, p, t, v]),
            np.choose(sector, [t, v, v, q, p, p]),
            np.choose(sector, [p, p, t, v, v, q]),
        ],
        axis=1,
    )
    colors = (table * 255).round().astype(np.uint8)
    colors[0] = 0
    return colors


def heat_colors(scores: np.ndarray) -> np.ndarray:
    """Scores → (N, 3) uint8 on a blue→red ramp after min-max normalisation (constant scores: blue)."""
    s = np.asarray(scores, dtype=np.float64)
    span = s.max() - s.min() if s.size else 0.0
    u = (s - s.min()) / span if span > 0 else np.zeros_like(s)
    r = np.clip(1.5 - np.abs(4 * u - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * u - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * u - 1), 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).round().astype(np.uint8)


def overlay_labels(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Label colours blended over the camera image; label 0 (ignore) keeps the image.

    Labels of another resolution are resized with nearest neighbour, so a coarse label map still lines up.
    Runs on OpenCV's uint8 kernels (table lookup, weighted sum, masked copy): ~1 ms at 640x480, called
    for every published segmentation image.
    """
    import cv2

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        labels = cv2.resize(labels.astype(np.uint16), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    n = int(labels.max()) + 1 if labels.size else 1
    if n <= 256:
        lab8 = labels.astype(np.uint8)
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[:n, 0] = label_palette(n)
        colors = cv2.LUT(cv2.merge([lab8, lab8, lab8]), lut)
        ignore = (lab8 == 0).view(np.uint8)
    else:  # more classes than a lookup table holds
        colors = label_palette(n)[labels]
        ignore = (labels == 0).astype(np.uint8)
    out = cv2.addWeighted(rgb, 1.0 - alpha, colors, alpha, 0.0)
    cv2.copyTo(rgb, ignore, out)
    return out


class FeatureProjection:
    """Features → RGB along the first three principal axes of a sample of them.

    For looking at a features map: similar features get similar colours. The axes and the value range
    that maps to 0..255 (the 2nd..98th percentile of the sample) are fixed once fitted, so a voxel keeps
    its colour while a live map grows, and each axis's sign is fixed (largest coefficient positive) so a
    refit of similar data gives similar colours.
    """

    def __init__(self, mean: np.ndarray, axes: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        self.mean, self.axes, self.low, self.high = mean, axes, low, high

    @classmethod
    def fit(cls, sample, percentile: float = 2.0) -> FeatureProjection:
        """Principal axes of ``sample`` (N, D) (array or tensor; N >= 1)."""
        x = _as_float64(sample)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"FeatureProjection.fit needs a non-empty (N, D) sample, got shape {x.shape}")
        mean = x.mean(axis=0)
        centred = x - mean
        axes = np.zeros((3, x.shape[1]))
        k = min(3, x.shape[1])
        c32 = centred.astype(np.float32)  # the covariance in float32: half the time, plenty for colours
        axes[:k] = _top_eigenvectors((c32.T @ c32).astype(np.float64), k).T
        flip = np.sign(axes[np.arange(3), np.abs(axes).argmax(axis=1)])
        axes *= np.where(flip == 0, 1.0, flip)[:, None]
        proj = centred @ axes.T
        low, high = np.percentile(proj, [percentile, 100.0 - percentile], axis=0)
        return cls(mean, axes, low, np.maximum(high, low + 1e-12))

    def __call__(self, features) -> np.ndarray:
        """(N, D) features → (N, 3) uint8 colours."""
        try:
            import torch
        except ImportError:  # pragma: no cover - radseg_core needs torch anyway
            torch = None
        offset = self.mean @ self.axes.T  # (x - mean) A^T = x A^T - mean A^T: no centred copy of x
        if torch is not None and isinstance(features, torch.Tensor):  # project on the tensor's device
            with torch.no_grad():  # in row blocks: a half map converted to float32 at once costs ~10x
                axes = torch.as_tensor(self.axes, dtype=torch.float32, device=features.device)
                parts = [part.float() @ axes.T for part in features.split(1 << 16)]
                proj = (torch.cat(parts) if parts else features.new_zeros((0, 3), dtype=torch.float32))
                proj = proj.cpu().numpy().astype(np.float64) - offset
        else:
            proj = _as_float64(features) @ self.axes.T - offset
        u = (proj - self.low) / (self.high - self.low)
        return (np.clip(u, 0.0, 1.0) * 255).round().astype(np.uint8)


def _top_eigenvectors(cov: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """(D, k) eigenvectors of the k largest eigenvalues of a symmetric PSD matrix, largest first.

    Subspace iteration from a fixed start, then Rayleigh-Ritz: ~k D^2 per step instead of a full
    eigendecomposition (D^3; seconds for D = 768 on a busy CPU, and it runs while the map is locked).
    """
    d = cov.shape[0]
    if d <= 8:
        _, vecs = np.linalg.eigh(cov)
        return vecs[:, ::-1][:, :k]
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((d, k + 2)))[0]  # 2 extra: faster convergence
    for _ in range(iterations):
        q = np.linalg.qr(cov @ q)[0]
    w, v = np.linalg.eigh(q.T @ cov @ q)
    return (q @ v[:, ::-1])[:, :k]


def _as_float64(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
