"""Per-voxel colours of the live map, recomputed only where the map changed since the last refresh.

Both are :class:`radseg_core.query.VoxelCache` s, so a refresh costs the voxels touched since the last
one (plus a key sort after removals), not a pass over every feature of the map.

* probabilities mode: the best class per voxel (0 where all probabilities are 0, as the node's cloud);
  the view colours it with the label palette of the segmentation images.
* features mode: the first three principal axes of the features as RGB
  (:class:`radseg_core.visual.FeatureProjection`), fitted once on a sample of the map and kept, so
  colours stay put while the map grows; without a language head, so it costs ~3 multiply-adds per
  feature dimension and voxel instead of the head's millions.
"""

from __future__ import annotations

import torch

from radseg_core.query import VoxelCache
from radseg_core.visual import FeatureProjection
from radseg_core.voxel_map import VoxelMap

FIT_SAMPLE = 2048  # voxels whose features fix the projection (enough for three axes)


class BestClass(VoxelCache):
    """(N,) uint8 label per voxel: 1 + argmax of the mean probabilities, 0 where they are all 0."""

    def _compute(self, part: torch.Tensor) -> torch.Tensor:
        p = part.float()
        score, best = p.max(dim=1)
        return torch.where(score > 0, best + 1, torch.zeros_like(best)).to(torch.uint8).cpu()


class FeatureColors(VoxelCache):
    """(N, 3) uint8 RGB projection of each voxel's features; the projection is fitted on first use and
    again after a reset or a load (a new map lineage)."""

    def __init__(self) -> None:
        super().__init__(align=None)
        self.projection: FeatureProjection | None = None
        self._fitted_lineage: int | None = None

    def update(self, vmap: VoxelMap) -> torch.Tensor:
        if len(vmap) and (self.projection is None or self._fitted_lineage != vmap.lineage):
            n = len(vmap)
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:FIT_SAMPLE].sort().values
            self.projection = FeatureProjection.fit(vmap.gather_values(pick.to(vmap.device)))
            self._fitted_lineage = vmap.lineage
            self.invalidate()
        return super().update(vmap)

    def _compute(self, part: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.projection(part))
