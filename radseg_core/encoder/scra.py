"""Self-Correlating Recursive Attention (SCRA, RADSeg paper §3.3).

Only the attention of RADIO's *last* block is replaced; its norms, residual, LayerScale and MLP stay.
Recipe (same as the reference): run the normal attention and its output projection, split that output
back into heads, take each head's cosine self-correlation across all tokens (CLS, registers and patches),
scale it, send negative correlations to -inf, softmax over keys, use it to re-weight the block's own V,
and project again. Each row sums to one, so every head's output stays inside the convex hull of V.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scra_weights(tokens: torch.Tensor, scaling: float) -> torch.Tensor:
    """Attention from cosine self-correlation: softmax over keys of ``scaling * cos``, negatives masked.

    ``tokens`` is (..., N, d); the diagonal (cos = 1) guarantees at least one kept key per row.
    """
    unit = F.normalize(tokens, dim=-1)
    sim = (unit @ unit.transpose(-2, -1)) * scaling
    sim = sim.masked_fill(sim < 0, float("-inf"))
    return sim.softmax(dim=-1)


def _module_or_identity(owner: nn.Module, name: str) -> nn.Module:
    mod = getattr(owner, name, None)
    return mod if isinstance(mod, nn.Module) else nn.Identity()


class SCRAAttention(nn.Module):
    """Drop-in for a timm ``Attention`` (shares its qkv/proj modules, so state-dict keys are unchanged).

    Inference only: attention and projection dropout are not applied.
    """

    def __init__(self, attn: nn.Module, scaling: float = 10.0) -> None:
        super().__init__()
        self.num_heads = int(attn.num_heads)
        self.qkv = attn.qkv
        # The reference skips q/k norms unless told; we keep whatever the model has (Identity in RADIOv3).
        self.q_norm = _module_or_identity(attn, "q_norm")
        self.k_norm = _module_or_identity(attn, "k_norm")
        self.norm = _module_or_identity(attn, "norm")
        self.proj = attn.proj
        self.scaling = float(scaling)
        self._original = (attn,)  # a tuple, so the original is not registered twice as a submodule
        if getattr(attn, "gate", None) is not None:
            raise NotImplementedError("gated attention is not part of RADIO; SCRA does not support it")

    @property
    def original(self) -> nn.Module:
        return self._original[0]

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        # 1. the block's normal attention (fused SDPA kernel), merged and projected
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.proj(self.norm(out.transpose(1, 2).reshape(b, n, -1)))
        # 2. re-split the projected output into heads; its self-correlation re-weights V
        heads = out.reshape(b, n, h, -1).transpose(1, 2)
        out = scra_weights(heads, self.scaling) @ v
        return self.proj(self.norm(out.transpose(1, 2).reshape(b, n, -1)))


def install_scra(model: nn.Module, scaling: float = 10.0) -> SCRAAttention:
    """Swap the last block's attention of a RADIO-like model (``model.model.blocks``) for SCRA."""
    blocks = getattr(getattr(model, "model", None), "blocks", None)
    if blocks is None or len(blocks) == 0:
        raise TypeError("SCRA needs a RADIO-like model with `.model.blocks` (a ViT)")
    last = blocks[-1]
    if isinstance(last.attn, SCRAAttention):
        last.attn.scaling = float(scaling)
        return last.attn
    last.attn = SCRAAttention(last.attn, scaling)
    return last.attn


def remove_scra(model: nn.Module) -> None:
    """Restore the original last-block attention (no-op when SCRA is not installed)."""
    last = model.model.blocks[-1]
    if isinstance(last.attn, SCRAAttention):
        last.attn = last.attn.original
