"""Memory bound (``max_voxels``): which voxels go when an update leaves too many.

The **least recently seen** voxels go first (ties: fewest hits), down to ``(1 - evict_fraction) *
max_voxels``, so the O(map) selection is amortised over many frames instead of paid every frame.
Least recently seen rather than least hit keeps a moving robot's surroundings; a fixed camera never
loses anything it still sees.
"""

from __future__ import annotations

import torch


def eviction_mask(hits: torch.Tensor, last_seen: torch.Tensor, max_voxels: int, evict_fraction: float) -> torch.Tensor:
    """(N,) bool: the slots to drop so that ``(1 - evict_fraction) * max_voxels`` (at least 1) remain."""
    target = max(1, min(max_voxels, int(max_voxels * (1.0 - evict_fraction))))
    n_evict = max(hits.numel() - target, 0)
    order = torch.argsort(hits, stable=True)
    order = order[torch.argsort(last_seen[order], stable=True)]
    remove = torch.zeros(hits.numel(), dtype=torch.bool, device=hits.device)
    remove[order[:n_evict]] = True
    return remove
