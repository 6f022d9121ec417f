"""Self-Correlating Global Aggregation (SCGA, RADSeg paper §3.4) on the stitched feature map.

Recipe (same as the reference): cosine self-correlation of all patches, minus its global mean, times a
scaling, negatives to -inf, softmax over keys, aggregate the features. The N x N matrix is never built
whole: query rows are processed in blocks, and the global mean comes from the identity
``mean_ij <u_i, u_j> = |sum_i u_i|^2 / N^2`` (u = unit vectors), so peak memory is ``block x N``.
Deliberate deviation: the mean is per image; the reference takes it over the whole batch (equal for B=1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_BLOCK_ELEMS = 1 << 24  # 16 M similarities (64 MB in fp32) per block


def scga_tokens(
    feats: torch.Tensor, scaling: float = 10.0, block_elems: int = DEFAULT_BLOCK_ELEMS
) -> torch.Tensor:
    """SCGA over tokens: ``feats`` (B, N, C) -> (B, N, C), computed in float32 in row blocks."""
    x = feats.float()
    b, n, _ = x.shape
    unit = F.normalize(x, dim=-1)
    mean = unit.sum(dim=1).pow(2).sum(dim=-1) / (n * n)  # (B,) global mean of the cosine matrix
    rows = max(1, min(n, block_elems // max(n, 1)))
    out = torch.empty_like(x)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sim = (unit[:, start:stop] @ unit.transpose(1, 2) - mean.view(b, 1, 1)) * scaling
        sim = sim.masked_fill(sim < 0, float("-inf"))
        out[:, start:stop] = sim.softmax(dim=-1) @ x
    return out


def scga(
    feature_map: torch.Tensor, scaling: float = 10.0, block_elems: int = DEFAULT_BLOCK_ELEMS
) -> torch.Tensor:
    """SCGA over a (B, C, h, w) map; returns the same shape in float32."""
    b, c, h, w = feature_map.shape
    tokens = feature_map.flatten(2).transpose(1, 2)
    return scga_tokens(tokens, scaling, block_elems).transpose(1, 2).reshape(b, c, h, w)
