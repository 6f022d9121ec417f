"""The 3D preset's mapping against RayFronts' own semantics (the 3D evaluation behind RADSeg's Tab. 2).

The reference below restates, from the code at the commit RADSeg pins, what RayFronts does with a
Replica scene in the radseg-3d configuration: ``NiceReplicaDataset.__iter__`` (frame skip by frame number,
rgb ``/ 255`` + bilinear antialias, depth ``raw / 6553.5`` with 0 -> NaN + nearest-exact, intrinsics rows
scaled), ``SemanticVoxelMap.process_posed_rgbd`` (``geometry3d.depth_to_pointcloud`` in float32: pixel
rays times depth, ``pose @ inv(K)``, finite depth > 0; ``_proj_resize_feat_map``: bilinear + antialias
of the feature map to the depth size) and ``accum_semantic_voxels`` every frame
(``pointcloud_to_sparse_voxels``: ``round(p / vox_size)`` keys, mean features and counts; then
``add_weighted_sparse_voxels``: count-weighted means). One deterministic stand-in encoder (pooled colour
statistics on the official ``_preprocess_image`` grid) feeds both sides. Our side is the preset's own
path: ``RayFrontsFrames`` + ``SemanticMapper`` with the preset's settings.

The scene is generated so that no point lies within 1e-4 voxel of a voxel boundary: RayFronts computes
points in float32 and we in float64, and this test is about the mapping rules, not about last-bit rounding.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from official_reference import preprocess_image_size

from radseg_core.datasets import ReplicaDataset
from radseg_core.datasets.rayfronts import RayFrontsFrames
from radseg_core.eval_bench import Preset3D
from radseg_core.pipeline import MapperConfig, SemanticMapper

NATIVE = (68, 120)  # 1/10 of Replica's 680x1200
PRESET = Preset3D(rgb_hw=(64, 112), depth_hw=(64, 112), crop=48, window_stride=32, frame_skip=2)
K_NATIVE = np.array([[60.0, 0, 59.95], [0, 60.0, 33.95], [0, 0, 1]])  # Replica's f=600, c=(599.5, 339.5) / 10
SCALE = 6553.5
FRAMES = 7  # frames 0, 3, 6 are used with frame_skip 2


def stand_in_features(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float in [0, 1] -> (6, h, w): the image resized to the official encoder input size, then
    per 16x16 patch the mean colour and the mean squared colour."""
    h, w = preprocess_image_size(*rgb.shape[-2:], PRESET.window_stride, PRESET.crop)
    x = F.interpolate(rgb[None].float(), size=(h, w), mode="bilinear", align_corners=False)
    return torch.cat([F.avg_pool2d(x, 16), F.avg_pool2d(x * x, 16)], dim=1)[0]


class StandInEncoder:
    """What SemanticMapper needs of an encoder in features mode with no classes."""

    feature_dim = 6
    model_name = "stand-in"

    def encode_features(self, rgb) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(rgb)).permute(2, 0, 1)
        return stand_in_features(x.float() / 255 if x.dtype == torch.uint8 else x)

    def align(self, feats: torch.Tensor) -> torch.Tensor:  # never used without classes
        raise AssertionError("no language alignment in this test")


def _pose(i: int) -> np.ndarray:
    a = 0.05 * i
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.array([0.1 * a, a, -0.5 * a]))[0]
    T[:3, 3] = [0.13 * i, -0.04 * i, 0.07 * i]
    return T


def _nearest_exact_index(n_out: int, n_in: int) -> np.ndarray:
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(int), n_in - 1)


def _scene(root: Path) -> Path:
    """A Replica-layout scene: textured images, a slanted floor and a box in depth, some holes."""
    scene = root / "office0"
    (scene / "results").mkdir(parents=True)
    rng = np.random.default_rng(3)
    H, W = NATIVE
    v, u = np.mgrid[0:H, 0:W]
    Kd = np.float32(K_NATIVE).copy()  # RayFronts' intrinsics at the preset's depth size, float32
    Kd[0] *= np.float32(PRESET.depth_hw[1] / W)
    Kd[1] *= np.float32(PRESET.depth_hw[0] / H)
    rows, cols = _nearest_exact_index(PRESET.depth_hw[0], H), _nearest_exact_index(PRESET.depth_hw[1], W)
    poses = []
    for i in range(FRAMES):
        base = 128 + 80 * np.sin(u / 7.0 + i) + 40 * np.cos(v / 5.0)
        rgb = np.clip(base[..., None] + rng.normal(0, 20, (H, W, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(scene / "results" / f"frame{i:06d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        depth = 1.5 + 0.02 * v + 0.3 * np.sin(u / 15.0 + 0.3 * i)
        depth[20:40, 50:80] -= 0.6  # a box in front
        raw = np.round(depth * SCALE).astype(np.uint16)
        raw[rng.random((H, W)) < 0.03] = 0  # holes
        T = _pose(i)
        poses.append(T)
        # drop points within 1e-4 voxel of a boundary (see the module docstring)
        d = raw[np.ix_(rows, cols)].astype(np.float32) / np.float32(SCALE)
        uu, vv = np.meshgrid(np.arange(PRESET.depth_hw[1]), np.arange(PRESET.depth_hw[0]))
        cam = np.linalg.inv(Kd.astype(np.float64)) @ np.stack([uu * d, vv * d, d]).reshape(3, -1)
        world = (T[:3, :3] @ cam + T[:3, 3:4]).T / PRESET.voxel_size
        near = (np.abs(world - np.floor(world) - 0.5) < 1e-4).any(axis=1).reshape(d.shape)
        bad = np.zeros((H, W), bool)
        bad[np.ix_(rows, cols)] = near
        raw[bad] = 0
        cv2.imwrite(str(scene / "results" / f"depth{i:06d}.png"), raw)
    np.savetxt(scene / "traj.txt", np.stack([T.ravel() for T in poses]))
    return scene


def _rayfronts_reference(scene: Path) -> tuple[torch.Tensor, ...]:
    """Voxel centres, mean colours, mean features and hit counts of RayFronts' SemanticVoxelMap."""
    traj = [torch.tensor([float(x) for x in line.split()]).reshape(4, 4)
            for line in (scene / "traj.txt").read_text().splitlines()]
    K = torch.tensor(K_NATIVE.tolist())  # float32, as torch.tensor of the cam_params floats
    dh, dw = PRESET.depth_hw
    K[0, :] = K[0, :] * (dw / NATIVE[1])
    K[1, :] = K[1, :] * (dh / NATIVE[0])
    vs = PRESET.voxel_size
    g_xyz = g_feat = None
    for f in range(len(traj)):
        if PRESET.frame_skip > 0 and f % (PRESET.frame_skip + 1) != 0:
            continue
        bgr = cv2.imread(str(scene / "results" / f"frame{f:06d}.jpg"))
        rgb = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255
        depth = torch.from_numpy(cv2.imread(str(scene / "results" / f"depth{f:06d}.png"), cv2.IMREAD_UNCHANGED)
                                 .astype(np.int32))[None] / SCALE
        depth[depth == 0] = torch.nan
        rgb = F.interpolate(rgb[None], size=PRESET.rgb_hw, mode="bilinear", antialias=True)[0]
        depth = F.interpolate(depth[None], size=PRESET.depth_hw, mode="nearest-exact")[0]
        rgb_img, depth_img, pose = rgb[None], depth[None], traj[f][None]
        # geometry3d.depth_to_pointcloud
        B, _, H, W = depth_img.shape
        xi, yi = torch.meshgrid(torch.arange(W), torch.arange(H), indexing="xy")
        plane = torch.stack([xi.flatten(), yi.flatten(), torch.ones(H * W)], dim=-1)[None]
        plane = depth_img.reshape(B, H * W, 1) * plane
        kinv = torch.eye(4)
        kinv[:3, :3] = torch.inverse(K)
        unproj = pose @ kinv
        homog = torch.cat([plane, torch.ones(B, H * W, 1)], dim=-1)
        world = (homog @ unproj.transpose(-1, -2))[..., :3] / (homog @ unproj.transpose(-1, -2))[..., 3:]
        valid = torch.isfinite(depth_img) & (depth_img > 0)
        sel = torch.argwhere(valid.flatten()).squeeze(-1)
        pts = world.reshape(-1, 3)[sel]
        # process_posed_rgbd: colours at the depth size, features resized to it, one count per point
        pts_rgb = rgb_img.permute(0, 2, 3, 1).reshape(-1, 3)[sel]
        feat = stand_in_features(rgb_img[0])[None]
        feat = F.interpolate(feat, size=(H, W), mode="bilinear", antialias=True)
        pts_feat = feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])[sel]
        point_vals = torch.cat([pts_rgb, pts_feat, torch.ones(len(sel), 1)], dim=-1)
        if g_xyz is None:  # pointcloud_to_sparse_voxels(mean, counts), conf column = counts
            keys, inv, cnt = torch.unique(torch.round(pts / vs).long(), return_inverse=True, return_counts=True,
                                          dim=0)
            g_feat = torch.zeros(len(keys), point_vals.shape[1]).index_add_(0, inv, point_vals) / cnt[:, None]
            g_feat[:, -1] = cnt.float()
            g_xyz = keys.float() * vs
            continue
        # add_weighted_sparse_voxels
        a, b = g_feat.clone(), point_vals.clone()
        a[:, :-1] *= a[:, -1:]
        b[:, :-1] *= b[:, -1:]
        keys, inv = torch.unique(torch.round(torch.cat([g_xyz, pts]) / vs).long(), return_inverse=True, dim=0)
        g_feat = torch.zeros(len(keys), a.shape[1]).index_add_(0, inv, torch.cat([a, b]))
        g_feat[:, :-1] /= g_feat[:, -1:]
        g_xyz = keys.float() * vs
    return g_xyz, g_feat[:, :3], g_feat[:, 3:-1], g_feat[:, -1]


def test_preset_mapping_equals_rayfronts_semantic_voxel_map(tmp_path):
    scene = _scene(tmp_path)
    ref_xyz, ref_rgb, ref_feat, ref_hits = _rayfronts_reference(scene)

    ds = ReplicaDataset(scene, K=K_NATIVE, stride=PRESET.frame_skip + 1)
    frames = RayFrontsFrames(ds, PRESET.rgb_hw, PRESET.depth_hw)
    cfg = MapperConfig(model="stand-in", device="cpu", mode="features", classes=[], voxel_size=PRESET.voxel_size,
                       voxel_grid=PRESET.grid, storage_dtype=PRESET.storage_dtype, min_depth=PRESET.min_depth,
                       max_depth=PRESET.max_depth, free_space_decay=0.0, input_sizing=PRESET.input_sizing,
                       crop=PRESET.crop, stride=PRESET.window_stride)
    mapper = SemanticMapper(cfg, encoder=StandInEncoder())
    assert len(frames) == 3
    for f in frames:
        mapper.process(f)

    xyz = mapper.map.centers(torch.float64).numpy()
    keys = np.round(xyz / PRESET.voxel_size).astype(np.int64)
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))  # torch.unique's row order, RayFronts' voxel order
    ref_keys = torch.round(ref_xyz / PRESET.voxel_size).long().numpy()
    assert len(ref_keys) > 3000
    np.testing.assert_array_equal(keys[order], ref_keys)
    np.testing.assert_array_equal(mapper.map.hits().numpy()[order], ref_hits.numpy())
    np.testing.assert_allclose(mapper.map.values().float().numpy()[order], ref_feat.numpy(), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(mapper.map.color_means().float().numpy()[order], ref_rgb.numpy(), rtol=2e-5,
                               atol=2e-6)
