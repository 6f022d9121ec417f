"""Hit cap (``max_hits`` = M): the recency-weighted mean, so a voxel seen a million times can still change.

Without a cap a voxel's new observations weigh ``1 / hits``: after 1,000 frames of a chair, 300 frames of
a box leave a mean that is still 77 % chair. With the cap the map keeps the *recency-weighted mean*: an
update bringing ``c`` points to a voxel with ``h`` hits gives the new points total weight ``w_new = c``
if ``h + c <= M``, else ``min(c, max(M - h, ceil(M / 2)))`` (shared equally among them), and the old mean
weight ``w_old = min(h, M - w_new)``; stored hits become ``w_old + w_new <= M``. So each new point of a
small update weighs at least ``1 / M``, and one update, however many points it brings, never takes
more than half of a saturated voxel's history. nvblox caps its TSDF weight (``max_weight``) for the same
reason. The default of the node and the CLIs is measured in docs/voxel_map.md ("Following a change").
"""

from __future__ import annotations

import torch

from radseg_core.defaults import DEFAULT_MAX_HITS  # noqa: F401  (re-exported)

HITS_MAX = (1 << 31) - 1  # int32 hit counts saturate here (2.1e9 points in one voxel)


def recency_weights(
    hits: torch.Tensor, counts: torch.Tensor, max_hits: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights (old mean, new points) of one update; see the module docstring."""
    if max_hits is None:
        return hits, counts
    M = int(max_hits)
    fits = hits + counts <= M
    w_new = torch.where(fits, counts, torch.minimum(counts, (M - hits).clamp_min((M + 1) // 2)))
    w_old = torch.minimum(hits, M - w_new)
    return w_old, w_new
