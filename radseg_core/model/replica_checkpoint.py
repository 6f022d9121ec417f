"""Random-weight checkpoints in RADIO's release format, for tests and memory benchmarks (never semantic).

A released C-RADIO ``.pth.tar`` is ``{"args": Namespace, "state_dict": {...}}``: the ViT under
``base_model.``, the input conditioner under ``input_conditioner.``, and per teacher ``_heads.<i>.`` /
``_feature_projections.<i>.`` MLP2 weights, with ``args.teachers`` naming each teacher (``name``, ``type``,
``model``). RADIO's hubconf builds the backbone from ``args`` and the adaptors from the teacher entries.
This module writes exactly that layout, building the backbone with RADIO's own ``create_model_from_args``
from a checkout, so loading it exercises RADIO's real code path.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import torch

# Teacher entries as the released checkpoints name them (GUIDE section 8, RADIO README "Supported Adaptors").
# (name, type, model, summary dim, feature dim). v3-B/-L: SigLIP2-so400m text (1152-d); v3-H: giant-opt (1536-d).
TEACHERS = {
    "v3-so400m": [
        ("clip", "open_clip", "ViT-H-14-378-quickgelu", 1024, 1280),
        ("siglip2-g", "siglip2", "siglip2-so400m", 1152, 1152),
        ("dino_v2", "generic", "dinov2_vitg14_reg", 1536, 1536),
        ("sam", "sam", "vit-h", 1280, 1280),
    ],
    "v3-g384": [
        ("clip", "open_clip", "ViT-H-14-378-quickgelu", 1024, 1280),
        ("siglip2-g", "siglip2", "siglip2-g-384", 1536, 1536),
        ("dino_v2", "generic", "dinov2_vitg14_reg", 1536, 1536),
        ("sam", "sam", "vit-h", 1280, 1280),
    ],
    "v4": [
        ("siglip2-g", "siglip2", "siglip2-g-384", 1536, 1536),
        ("dino_v3", "generic", "dinov3_vit7b16", 4096, 4096),
        ("sam3", "generic", "sam3", 1024, 1024),
    ],
}


def _args(vit: str, vit_kwargs: dict, teachers: list[tuple], cpe_max_size: int = 2048) -> Namespace:
    return Namespace(
        model=vit,
        model_kwargs=dict(vit_kwargs),
        pretrained=False,
        in_chans=None,
        input_size=None,
        num_classes=0,
        drop=0.0,
        drop_path=0.0,
        drop_block=None,
        gp="avg",
        bn_momentum=None,
        bn_eps=None,
        torchscript=False,
        initial_checkpoint="",
        cpe_max_size=cpe_max_size,
        cls_token_per_teacher=True,
        register_multiple=8,
        cpe_num_registers=None,
        teachers=[dict(name=n, type=t, model=m, use_summary=True) for n, t, m, _, _ in teachers],
        mlp_version="v2",
        spectral_reparam=False,
        spectral_heads=False,
        damp=None,
        dtype=torch.float32,
    )


def _mlp2(prefix: str, dim_in: int, hidden: int, dim_out: int, num_inner: int, gen) -> dict:
    """MLP2 state (fc1, blocks.<i>.{0 LayerNorm, 2 Linear}, final.{0 LayerNorm, 2 Linear})."""

    def lin(name, i, o):
        return {
            f"{prefix}{name}.weight": torch.randn(o, i, generator=gen) / i**0.5,
            f"{prefix}{name}.bias": torch.zeros(o),
        }

    def norm(name, d):
        return {f"{prefix}{name}.weight": torch.ones(d), f"{prefix}{name}.bias": torch.zeros(d)}

    state = lin("fc1", dim_in, hidden)
    for i in range(num_inner):
        state |= norm(f"blocks.{i}.0", hidden) | lin(f"blocks.{i}.2", hidden, hidden)
    return state | norm("final.0", hidden) | lin("final.2", hidden, dim_out)


def write_radio_checkpoint(
    path: str | Path,
    repo_dir: str | Path,
    teachers: list[tuple] | str = "v3-so400m",
    vit: str = "vit_tiny_patch16_224",
    vit_kwargs: dict | None = None,
    mlp_hidden: int = 64,
    num_inner: int = 1,
    half: bool = True,
    seed: int = 0,
) -> Path:
    """Write a random checkpoint that RADIO's hubconf ``radio_model(version=<path>)`` loads.

    ``vit`` and ``vit_kwargs`` pick the backbone (the small default keeps tests fast; the released models
    use ``vit_base/large/huge_patch16_224`` shapes). Adaptor heads have the teachers' real output sizes.
    """
    from radseg_core.compat import patch_torchvision

    patch_torchvision()
    teachers = TEACHERS[teachers] if isinstance(teachers, str) else teachers
    vit_kwargs = dict(depth=2, embed_dim=64, num_heads=2) if vit_kwargs is None else vit_kwargs
    args = _args(vit, vit_kwargs, teachers)
    sys.path.insert(0, str(repo_dir))
    try:
        from radio.input_conditioner import get_default_conditioner
        from radio.radio_model import create_model_from_args
    finally:
        sys.path.remove(str(repo_dir))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = create_model_from_args(Namespace(**vars(args) | {"model_kwargs": dict(vit_kwargs)}))
    dim = int(backbone.embed_dim)
    state = {f"base_model.{k}": v for k, v in backbone.state_dict().items()}
    del backbone
    state |= {f"input_conditioner.{k}": v for k, v in get_default_conditioner().state_dict().items()}
    for i, (_, _, _, summary_dim, feat_dim) in enumerate(teachers):
        state |= _mlp2(f"_heads.{i}.", dim, mlp_hidden, summary_dim, num_inner, gen)
        state |= _mlp2(f"_feature_projections.{i}.", dim, mlp_hidden, feat_dim, num_inner, gen)
    if half:  # released files are "_half": fp16 tensors, hubconf casts to args.dtype
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    torch.save({"args": args, "state_dict": state}, path)
    return path
