"""Plain data shared by the core and the ROS shell: what flows between sensor, encoder and map."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One synchronised RGB-D observation.

    ``depth`` is registered to ``rgb`` but may have another resolution; ``K`` is the pinhole matrix of
    the *rgb* image (ROS ``camera_info.k``) and is rescaled to the depth size where they differ.
    ``T_world_cam`` maps points from the camera *optical* frame (REP-103: x right, y down, z forward)
    to the map frame.
    """

    rgb: np.ndarray  # (H, W, 3) uint8, RGB order
    depth: np.ndarray  # (Hd, Wd) float32 metres; NaN, inf and 0 mean "no measurement"
    K: np.ndarray  # (3, 3) float64 intrinsics of rgb
    T_world_cam: np.ndarray  # (4, 4) float64 rigid transform, optical frame -> world
    stamp: float = 0.0  # seconds
    frame_id: str = "camera_optical_frame"


@dataclass
class Candidate:
    """A group of adjacent high-scoring voxels: something a planner can drive to."""

    query_index: int
    centroid: np.ndarray  # (3,) metres, map frame
    extent: np.ndarray  # (3,) metres, axis-aligned size
    score: float  # best voxel score in the group
    voxels: int


@dataclass
class QueryResult:
    """Scores of every voxel for each query, plus the best matches."""

    queries: list[str]
    positions: np.ndarray  # (N, 3) voxel centres the scores refer to
    scores: np.ndarray  # (Q, N) per-query score of each voxel
    top_indices: list[np.ndarray] = field(default_factory=list)  # per query, voxel indices best first
    candidates: list[Candidate] = field(default_factory=list)
