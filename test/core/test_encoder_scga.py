"""SCGA in row blocks against the full-matrix reference formula, and its invariants."""

from __future__ import annotations

import pytest
import torch

from radseg_core.encoder.scga import scga, scga_tokens


def reference_scga(feat_map: torch.Tensor, scaling: float) -> torch.Tensor:
    """Full N x N matrix, global mean, as in the paper's Eq. 7-8 (one image)."""
    b, c, h, w = feat_map.shape
    assert b == 1
    x = feat_map.flatten(2).transpose(1, 2)[0]
    u = x / x.norm(dim=-1, keepdim=True)
    s = u @ u.T
    s = (s - s.mean()) * scaling
    s[s < 0] = -torch.inf
    return (torch.softmax(s, dim=-1) @ x).T.reshape(1, c, h, w)


@pytest.mark.parametrize("block_elems", [1, 7 * 35, 10**9])
def test_blocked_equals_full_matrix(block_elems):
    torch.manual_seed(0)
    fmap = torch.randn(1, 6, 5, 7)
    got = scga(fmap, 10.0, block_elems=block_elems)
    torch.testing.assert_close(got, reference_scga(fmap, 10.0), atol=1e-5, rtol=1e-5)


def test_output_in_convex_hull_of_inputs():
    x = torch.randn(2, 50, 4)
    out = scga_tokens(x, 10.0, block_elems=64)
    lo, hi = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    assert torch.all(out >= lo - 1e-5) and torch.all(out <= hi + 1e-5)


def test_identical_tokens_are_fixed_points():
    x = torch.randn(1, 1, 3).expand(1, 9, 3).contiguous()
    torch.testing.assert_close(scga_tokens(x), x)


def test_batch_items_are_independent():
    x = torch.randn(3, 20, 4)
    batched = scga_tokens(x, 10.0, block_elems=50)
    single = torch.cat([scga_tokens(x[i : i + 1], 10.0) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)


def test_blocks_never_hold_the_whole_matrix(monkeypatch):
    """Every similarity block that reaches softmax has at most block_elems // N rows."""
    n, block = 40, 40 * 3
    seen = []
    real_softmax = torch.Tensor.softmax

    def spy(self, *args, **kwargs):
        seen.append(self.shape)
        return real_softmax(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "softmax", spy)
    scga_tokens(torch.randn(1, n, 4), 10.0, block_elems=block)
    assert seen and all(s[-2] <= 3 and s[-1] == n for s in seen)
    assert sum(s[-2] for s in seen) == n
