"""The sample sequence: Middlebury 2014 "Motorcycle" (shipped in scikit-image) as a short RGB-D video.

One real stereo pair with ground-truth disparity is all the real RGB-D data available offline. We turn
the disparity into metric depth (``Z = baseline * f / (d + doffs)``, millimetres -> metres), back-project
it into a coloured cloud, and re-render that cloud from a smooth orbit of camera poses by depth-tested
splatting (z-buffer). Every view is then geometrically consistent with one real scene, which is what a
mapper needs to be exercised end to end; disoccluded pixels stay empty (depth 0, black) rather than being
inpainted, as a real sensor would leave them.

Frame 0 is the original camera. The world frame is REP-103 (x forward, y left, z up) with camera 0's
optical centre at the origin looking along +x, so maps come out upright in rviz.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset
from radseg_core.geometry import R_BODY_OPTICAL, scale_intrinsics
from radseg_core.types import Frame

# Middlebury 2014 Motorcycle, quarter resolution (the size scikit-image ships): calib.txt / 4.
MOTORCYCLE_CALIB = {"f": 994.978, "cx": 311.193, "cy": 254.877, "doffs": 31.086, "baseline_mm": 193.001}


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed; it ships the Motorcycle sample images")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Original left image (H, W, 3) uint8, metric depth (H, W) float32 (0 = unknown) and its K."""
    import cv2

    d = _skimage_data_dir()
    bgr = cv2.imread(str(d / "motorcycle_left.png"), cv2.IMREAD_COLOR)
    if bgr is None or not (d / "motorcycle_disp.npz").is_file():
        raise FileNotFoundError(f"Motorcycle sample files missing under {d}")
    disp = np.load(d / "motorcycle_disp.npz")["arr_0"].astype(np.float64)
    c = MOTORCYCLE_CALIB
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.zeros(disp.shape, np.float32)
    depth[valid] = c["baseline_mm"] * c["f"] / (disp[valid] + c["doffs"]) / 1000.0
    K = np.array([[c["f"], 0.0, c["cx"]], [0.0, c["f"], c["cy"]], [0.0, 0.0, 1.0]])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, K


def depth_to_cloud(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray | None = None):
    """Optical-frame points (N, 3) float64 of valid pixels and their colours (N, 3) uint8 (or None)."""
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    pts = np.stack([x * z, y * z, z], axis=1)
    return pts, (rgb[v, u] if rgb is not None else None)


def render_points(points: np.ndarray, colors: np.ndarray | None, K: np.ndarray, hw: tuple[int, int],
                  T_cloud_cam: np.ndarray, near: float = 0.05, values: np.ndarray | None = None):
    """Z-buffer splat of a cloud into a pinhole camera at pose ``T_cloud_cam`` (optical frame -> cloud).

    Each point lands on its nearest pixel; per pixel the closest point wins (a stable sort by pixel then
    depth, so the result does not depend on numpy's undefined write order for repeated indices).
    Returns ``rgb (H, W, 3) uint8`` (zeros where empty, or None), ``depth (H, W) float32`` (0 = empty)
    and, when ``values`` (N,) are given, a (H, W) image of them (0 where empty; e.g. labels).
    """
    H, W = hw
    T_cam_cloud = np.linalg.inv(np.asarray(T_cloud_cam, dtype=np.float64))
    p = points @ T_cam_cloud[:3, :3].T + T_cam_cloud[:3, 3]
    z = p[:, 2]
    front = z > near
    zf = np.where(front, z, 1.0)
    u = np.round(K[0, 0] * p[:, 0] / zf + K[0, 1] * p[:, 1] / zf + K[0, 2]).astype(np.int64)
    v = np.round(K[1, 1] * p[:, 1] / zf + K[1, 2]).astype(np.int64)
    ok = np.nonzero(front & (u >= 0) & (u < W) & (v >= 0) & (v < H))[0]
    pix = v[ok] * W + u[ok]
    order = np.lexsort((z[ok], pix))  # by pixel, then nearest first
    pix_sorted = pix[order]
    first = np.ones(len(order), bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    win = ok[order[first]]
    win_pix = pix_sorted[first]
    depth = np.zeros(H * W, np.float32)
    depth[win_pix] = z[win]
    rgb = None
    if colors is not None:
        rgb = np.zeros((H * W, 3), np.uint8)
        rgb[win_pix] = colors[win]
        rgb = rgb.reshape(H, W, 3)
    out = (rgb, depth.reshape(H, W))
    if values is not None:
        img = np.zeros(H * W, dtype=values.dtype)
        img[win_pix] = values[win]
        out = (*out, img.reshape(H, W))
    return out


def look_at_orbit(n: int, pivot: np.ndarray, yaw_deg: float, lift: float) -> list[np.ndarray]:
    """``n`` smooth optical-frame poses ``T_cam0_cam`` swinging around ``pivot`` (in camera 0's frame).

    The camera yaws about the vertical axis through the pivot by ``yaw_deg * sin(2 pi i / n)`` (so it
    keeps looking at the pivot) and rises by ``lift * (1 - cos(2 pi i / n)) / 2`` metres: a closed,
    smooth loop whose first pose is the identity.
    """
    poses = []
    for i in range(n):
        ph = 2.0 * np.pi * i / max(n, 1)
        a = np.deg2rad(yaw_deg) * np.sin(ph)
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # about optical y (down)
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = pivot - R @ pivot + np.array([0.0, -lift * (1 - np.cos(ph)) / 2.0, 0.0])
        poses.append(T)
    return poses


def world_from_cam0() -> np.ndarray:
    """Camera 0's optical frame in the REP-103 world (z up, camera looking along +x)."""
    T = np.eye(4)
    T[:3, :3] = R_BODY_OPTICAL
    return T


class MotorcycleSample(FrameDataset):
    """The sample sequence: ``n_frames`` re-rendered views of the real Motorcycle RGB-D frame.

    ``width`` sets the rendered size (default 640, the original is 741x500; None keeps it); the cloud is
    always taken from the full-resolution original, so downscaled views have no splatting gaps.
    """

    def __init__(self, *, n_frames: int = 16, width: int | None = 640, yaw_deg: float = 8.0,
                 lift: float = 0.05, fps: float = 10.0, **kw):
        super().__init__(**kw)
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.name = "sample/motorcycle"
        rgb, depth, K0 = load_motorcycle()
        self.original = Frame(rgb=rgb, depth=depth, K=K0, T_world_cam=world_from_cam0(), stamp=0.0,
                              frame_id="camera_optical_frame")
        H, W = depth.shape
        self.hw = (H, W) if width is None or width >= W else (round(H * width / W), int(width))
        self.K = scale_intrinsics(K0, (H, W), self.hw)
        self.points_cam0, self.colors = depth_to_cloud(depth, K0, rgb)
        pivot = np.array([0.0, 0.0, float(np.median(self.points_cam0[:, 2]))])
        self.poses_cam0 = look_at_orbit(n_frames, pivot, yaw_deg, lift)
        self.fps = fps
        self._n_raw = n_frames

    def cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """The original metric cloud in the world frame (N, 3) and its colours (N, 3) uint8."""
        T = world_from_cam0()
        return self.points_cam0 @ T[:3, :3].T + T[:3, 3], self.colors

    def _load(self, raw_index: int) -> Frame:
        T = self.poses_cam0[raw_index]
        rgb, depth = render_points(self.points_cam0, self.colors, self.K, self.hw, T)
        return Frame(rgb=rgb, depth=depth, K=self.K.copy(), T_world_cam=world_from_cam0() @ T,
                     stamp=1.0 + raw_index / self.fps, frame_id="camera_optical_frame")


def default_cache_dir() -> Path:
    """Where generated samples are kept: ``$RADSEG_CACHE`` or ``$XDG_CACHE_HOME/radseg`` (~/.cache)."""
    import os

    if os.environ.get("RADSEG_CACHE"):
        return Path(os.environ["RADSEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radseg"


def export_sample(out_dir: str | Path | None = None, *, bag: bool = True, storage: str = "mcap",
                  **kw) -> dict[str, Path]:
    """Render the sample and write it as a folder (``<out>/motorcycle``) and a bag (``<out>/motorcycle_bag``).

    ``kw`` go to :class:`MotorcycleSample`. What is already there is reused when it was made with the same
    settings (recorded in ``<out>/sample.json``) and regenerated otherwise. Returns the paths.
    """
    import json
    import shutil

    from radseg_core.datasets.writers import write_folder, write_rosbag

    out = Path(out_dir) if out_dir is not None else default_cache_dir() / "sample"
    folder, bag_dir = out / "motorcycle", out / "motorcycle_bag"
    settings = {"kw": {k: kw[k] for k in sorted(kw)}, "storage": storage, "version": 1}
    stamp_file = out / "sample.json"
    if not stamp_file.is_file() or json.loads(stamp_file.read_text()) != settings:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(bag_dir, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps(settings) + "\n")
    ds = None
    if not (folder / "camera.json").is_file():
        ds = MotorcycleSample(**kw)
        write_folder(ds, folder, name=ds.name)
    paths = {"folder": folder}
    if bag:
        if not bag_dir.exists():
            ds = ds or MotorcycleSample(**kw)
            tmp = bag_dir.with_name(bag_dir.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            write_rosbag(ds, tmp, storage=storage)
            tmp.rename(bag_dir)  # an interrupted export never leaves a half bag to be reused
        paths["bag"] = bag_dir
    return paths
