"""Orthographic pictures of a voxel map: top-down or oblique, z-buffered point splats, PNG-ready.

No renderer, no display: voxel centres are projected with a parallel camera, each drawn as a square
splat about one voxel wide, and per pixel the splat nearest to the viewer wins (a z-buffer built with
one sort). Colours come from the caller — the map's mean rgb, label palette colours or query heat — and
candidates (e.g. a :class:`~radseg_core.types.Candidate`) are drawn as their projected box with a rank
and caption. numpy + OpenCV only, so it runs on a headless robot or CI machine.

Image axes: top-down looks along -z (REP-103 z up) with +x to the right and +y up the image; the
oblique view turns the camera by ``azimuth_deg`` about z and tilts it ``elevation_deg`` down from the
horizontal (90 = top-down).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIEWS = ("top", "oblique")
BACKGROUND = (24, 24, 28)


@dataclass
class Marker:
    """A box to outline in the picture: centre, axis-aligned size (metres), caption and RGB colour."""

    centroid: np.ndarray
    extent: np.ndarray
    text: str = ""
    color: tuple[int, int, int] = (255, 255, 255)


class OrthoCamera:
    """Parallel projection from the map frame to pixel coordinates of a ``width`` x ``height`` image."""

    def __init__(self, points: np.ndarray, *, view: str = "top", width: int = 800, margin: int = 24,
                 azimuth_deg: float = -60.0, elevation_deg: float = 45.0, max_height: int = 2000):
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        if width < 2 * margin + 16:
            raise ValueError(f"width {width} is too small for margin {margin}")
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if view == "top":
            R = np.eye(3)  # image right = +x, image up = +y, towards the viewer = +z
        else:
            a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
            right = np.array([np.cos(a), np.sin(a), 0.0])
            # towards the viewer: the horizontal back direction (right x z) tilted up by the elevation
            back = np.array([np.sin(a), -np.cos(a), 0.0]) * np.cos(e) + np.array([0.0, 0.0, np.sin(e)])
            up = np.cross(back, right)
            R = np.stack([right, up, back])  # rows: image right, image up, towards the viewer
        self.R = R
        self.view = view
        cam = pts @ R.T if len(pts) else np.zeros((1, 3))
        lo, hi = cam[:, :2].min(axis=0), cam[:, :2].max(axis=0)
        span = np.maximum(hi - lo, 1e-6)
        self.scale = float((width - 2 * margin) / span[0])
        height = int(np.ceil(span[1] * self.scale)) + 2 * margin
        if height > max_height:  # very tall maps: fit the height instead
            self.scale = float((max_height - 2 * margin) / span[1])
            height = max_height
        self.width, self.height = int(width), max(int(height), 2 * margin + 1)
        self.margin = margin
        self.lo, self.hi = lo, hi

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) float pixel coordinates (u right, v down) and (N,) depth (smaller = nearer the viewer)."""
        cam = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ self.R.T
        u = self.margin + (cam[:, 0] - self.lo[0]) * self.scale
        v = self.margin + (self.hi[1] - cam[:, 1]) * self.scale
        return np.stack([u, v], axis=1), -cam[:, 2]


def splat(cam: OrthoCamera, points: np.ndarray, colors: np.ndarray, radius_px: int,
          background=BACKGROUND, shade: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered square splats of side ``2 * radius_px + 1``; returns the RGB image and its depth buffer
    (inf where nothing was drawn)."""
    H, W = cam.height, cam.width
    img = np.empty((H, W, 3), np.uint8)
    img[:] = background
    zbuf = np.full(H * W, np.inf)
    if len(points) == 0:
        return img, zbuf.reshape(H, W)
    uv, depth = cam.project(points)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if shade:  # nearer = brighter, so stacked surfaces stay readable in a flat colour map
        d0, d1 = float(depth.min()), float(depth.max())
        t = (depth - d0) / (d1 - d0) if d1 > d0 else np.zeros_like(depth)
        colors = (colors.astype(np.float32) * (1.0 - 0.45 * t[:, None].astype(np.float32))).astype(np.uint8)
    c = np.round(uv).astype(np.int64)
    r = max(int(radius_px), 0)
    offs = np.arange(-r, r + 1)
    du, dv = np.meshgrid(offs, offs)
    pu = (c[:, 0][:, None] + du.ravel()[None]).ravel()
    pv = (c[:, 1][:, None] + dv.ravel()[None]).ravel()
    src = np.repeat(np.arange(len(points)), du.size)
    ok = (pu >= 0) & (pu < W) & (pv >= 0) & (pv < H)
    pix, src = pv[ok] * W + pu[ok], src[ok]
    d = depth[src]
    order = np.lexsort((d, pix))  # by pixel, nearest first
    pix, src, d = pix[order], src[order], d[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    flat = img.reshape(-1, 3)
    flat[pix[first]] = colors[src[first]]
    zbuf[pix[first]] = d[first]
    return img, zbuf.reshape(H, W)


def _box_corners(centroid: np.ndarray, extent: np.ndarray) -> np.ndarray:
    c, h = np.asarray(centroid, float).reshape(3), np.asarray(extent, float).reshape(3) / 2
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    return c + signs * h


_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def draw_markers(img: np.ndarray, cam: OrthoCamera, markers: Sequence[Marker]) -> None:
    """Outline each marker's box (12 projected edges), a dot at its centre and its caption, in place."""
    for m in markers:
        corners, _ = cam.project(_box_corners(m.centroid, m.extent))
        pts = np.round(corners).astype(np.int32)
        color = tuple(int(x) for x in m.color)
        for a, b in _EDGES:
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), (0, 0, 0), 4, cv2.LINE_AA)
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), color, 2, cv2.LINE_AA)
        centre = tuple(int(x) for x in np.round(cam.project(np.asarray(m.centroid, float)[None])[0][0]))
        cv2.circle(img, centre, 5, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(img, centre, 3, color, -1, cv2.LINE_AA)
        if m.text:
            org = (int(pts[:, 0].min()), max(int(pts[:, 1].min()) - 6, 12))
            cv2.putText(img, m.text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, m.text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)


def draw_arrow(img: np.ndarray, cam: OrthoCamera, start: np.ndarray, end: np.ndarray,
               color: tuple[int, int, int] = (255, 255, 255)) -> None:
    """An arrow from map point ``start`` to ``end`` (3,), outlined in black so it reads on any map, in place."""
    (a, b), _ = cam.project(np.stack([np.asarray(start, float), np.asarray(end, float)]))
    a, b = tuple(int(x) for x in np.round(a)), tuple(int(x) for x in np.round(b))
    cv2.arrowedLine(img, a, b, (0, 0, 0), 7, cv2.LINE_AA, tipLength=0.3)
    cv2.arrowedLine(img, a, b, tuple(int(c) for c in color), 3, cv2.LINE_AA, tipLength=0.3)


def draw_cells(img: np.ndarray, cam: OrthoCamera, centres: np.ndarray, size: float,
               color: tuple[int, int, int], alpha: float = 0.55) -> None:
    """Squares of ``size`` metres around map points ``centres`` (N, 3) blended over the picture (top view), in
    place: 2D cells such as a costmap mask over the map."""
    if len(centres) == 0:
        return
    uv, _ = cam.project(np.asarray(centres, float).reshape(-1, 3))
    half = max(size * cam.scale / 2, 0.5)
    layer = np.zeros(img.shape[:2], np.uint8)
    for u, v in uv:
        cv2.rectangle(layer, (int(round(u - half)), int(round(v - half))),
                      (int(round(u + half)) - 1, int(round(v + half)) - 1), 255, -1)
    on = layer > 0
    img[on] = (img[on] * (1 - alpha) + np.asarray(color, np.float32) * alpha).astype(np.uint8)


def draw_legend(img: np.ndarray, entries: Sequence[tuple[str, tuple[int, int, int] | None]],
                corner: str = "top-left") -> None:
    """A semi-opaque panel listing ``(text, rgb or None)`` lines, each with a colour swatch, in place."""
    if not entries:
        return
    font, fs, lh = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 18
    width = max(cv2.getTextSize(t, font, fs, 1)[0][0] for t, _ in entries) + 34
    height = legend_height(len(entries))
    H, W = img.shape[:2]
    x0 = 6 if corner == "top-left" else max(W - width - 6, 0)
    y0 = 6
    x1, y1 = min(x0 + width, W), min(y0 + height, H)
    panel = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (panel * 0.35).astype(np.uint8)
    for i, (text, color) in enumerate(entries):
        y = y0 + 4 + lh * i + lh // 2
        if color is not None:
            cv2.rectangle(img, (x0 + 6, y - 6), (x0 + 20, y + 6), tuple(int(c) for c in color), -1)
        cv2.putText(img, text, (x0 + 26, y + 5), font, fs, (235, 235, 235), 1, cv2.LINE_AA)


def render_map(points: np.ndarray, colors: np.ndarray, *, voxel_size: float = 0.05, view: str = "top",
               width: int = 800, markers: Sequence[Marker] = (), legend: Sequence[tuple[str, object]] = (),
               azimuth_deg: float = -60.0, elevation_deg: float = 45.0, shade: bool = True,
               background=BACKGROUND) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of voxel centres ``points`` (N, 3) coloured by ``colors`` (N, 3).

    The camera frames the points and the markers; splats are about one voxel wide.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    frame_pts = [points] + [_box_corners(m.centroid, m.extent) for m in markers]
    everything = np.concatenate(frame_pts) if sum(len(p) for p in frame_pts) else np.zeros((1, 3))
    cam = OrthoCamera(everything, view=view, width=width, azimuth_deg=azimuth_deg,
                      elevation_deg=elevation_deg)
    radius = max(int(np.ceil(voxel_size * cam.scale / 2)), 0)
    img, _ = splat(cam, points, colors, radius, background=background, shade=shade)
    draw_markers(img, cam, markers)
    if legend:  # on a strip above the map, so it never hides anything
        strip = np.empty((legend_height(len(legend)) + 6, img.shape[1], 3), np.uint8)
        strip[:] = background
        img = np.concatenate([strip, img], axis=0)
        draw_legend(img, legend)
    return img


def legend_height(lines: int) -> int:
    return 18 * lines + 8


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (OpenCV wants BGR); raises OSError when it cannot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
