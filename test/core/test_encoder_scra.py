"""SCRA against a plain per-head reference written here, plus its invariants on a tiny random RADIO."""

from __future__ import annotations

import pytest
import torch

from radseg_core.compat import patch_torchvision
from radseg_core.encoder.scra import SCRAAttention, install_scra, remove_scra, scra_weights
from radseg_core.model.tiny import build_random_tiny


def reference_scra(attn, x: torch.Tensor, scaling: float) -> torch.Tensor:
    """GUIDE §4 recipe, one head at a time, explicit softmax attention (no SDPA)."""
    b, n, c = x.shape
    h = attn.num_heads
    d = c // h
    qkv = attn.qkv(x)
    q, k, v = qkv[..., :c], qkv[..., c : 2 * c], qkv[..., 2 * c :]
    heads = []
    for i in range(h):
        qi, ki, vi = (t[..., i * d : (i + 1) * d] for t in (q, k, v))
        a = torch.softmax(qi @ ki.transpose(1, 2) / d**0.5, dim=-1)
        heads.append(a @ vi)
    y = attn.proj(torch.cat(heads, dim=-1))  # normal attention -> proj
    out = []
    for i in range(h):
        yi = y[..., i * d : (i + 1) * d]  # re-split heads
        yn = yi / yi.norm(dim=-1, keepdim=True)
        s = (yn @ yn.transpose(1, 2)) * scaling
        s[s < 0] = -torch.inf
        out.append(torch.softmax(s, dim=-1) @ v[..., i * d : (i + 1) * d])
    return attn.proj(torch.cat(out, dim=-1))


@pytest.fixture(scope="module")
def attn():
    patch_torchvision()
    from timm.layers import Attention

    torch.manual_seed(0)
    return Attention(32, num_heads=4, qkv_bias=True).eval()


@pytest.mark.parametrize("scaling", [1.0, 10.0])
def test_scra_matches_reference(attn, scaling):
    x = torch.randn(2, 13, 32)
    got = SCRAAttention(attn, scaling)(x)
    torch.testing.assert_close(got, reference_scra(attn, x, scaling), atol=1e-5, rtol=1e-5)


def test_scra_weights_rows_sum_to_one_and_drop_negatives():
    t = torch.randn(3, 20, 8)
    w = scra_weights(t, 10.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 20))
    unit = torch.nn.functional.normalize(t, dim=-1)
    cos = unit @ unit.transpose(1, 2)
    assert torch.all(w[cos < 0] == 0)
    assert torch.all(w[cos > 0] > 0)
    assert torch.all(torch.diagonal(w, dim1=1, dim2=2) > 0)


def test_scra_weighted_values_stay_in_convex_hull():
    t, v = torch.randn(2, 30, 8), torch.randn(2, 30, 5)
    out = scra_weights(t, 10.0) @ v
    lo, hi = v.min(dim=1, keepdim=True).values, v.max(dim=1, keepdim=True).values
    assert torch.all(out >= lo - 1e-6) and torch.all(out <= hi + 1e-6)


def test_scaling_sharpens_towards_similar_tokens():
    t = torch.randn(1, 16, 8)
    soft, sharp = scra_weights(t, 1.0), scra_weights(t, 50.0)
    diag = torch.diagonal
    assert torch.all(diag(sharp, dim1=1, dim2=2) >= diag(soft, dim1=1, dim2=2) - 1e-6)


def test_install_only_swaps_last_attention_and_leaves_block_untouched():
    model = build_random_tiny(seed=1)
    keys = set(model.state_dict())
    blocks = model.model.blocks
    first_attn, last = blocks[0].attn, blocks[-1]
    norm1, mlp, norm2 = last.norm1, last.mlp, last.norm2
    original = last.attn
    x = torch.rand(1, 3, 48, 64)
    before = model(x)["backbone"].features

    captured = {}
    hook = last.register_forward_hook(lambda m, i, o: captured.update(inp=i[0], out=o))
    install_scra(model, 10.0)
    after = model(x)["backbone"].features
    hook.remove()
    assert isinstance(last.attn, SCRAAttention) and blocks[0].attn is first_attn
    assert last.norm1 is norm1 and last.mlp is mlp and last.norm2 is norm2
    assert set(model.state_dict()) == keys  # same parameters, same names
    assert not torch.allclose(before, after)

    # the whole last block = residual + LayerScale(SCRA(norm1)) then the untouched MLP branch
    xin = captured["inp"]
    y = xin + last.ls1(reference_scra(original, last.norm1(xin), 10.0))
    y = y + last.ls2(last.mlp(last.norm2(y)))
    torch.testing.assert_close(captured["out"], y, atol=1e-5, rtol=1e-5)

    install_scra(model, 5.0)  # idempotent: rescales, does not nest
    assert last.attn.scaling == 5.0 and not isinstance(last.attn.original, SCRAAttention)
    remove_scra(model)
    assert last.attn is original
    torch.testing.assert_close(model(x)["backbone"].features, before)


def test_install_rejects_non_vit():
    with pytest.raises(TypeError, match="model.blocks"):
        install_scra(torch.nn.Linear(2, 2))
