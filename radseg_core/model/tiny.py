"""Random-weight replicas of NVlabs RADIO with the same Python interface.

No pretrained weights can be downloaded in CI, yet every code path of the encoder (last-block attention
swap, summary/register token layout, adaptor MLPs, text tower) must run. These replicas expose exactly
the attributes the encoder touches on a real ``RADIOModel``: ``.model.blocks`` (timm ``Block`` with a
timm ``Attention``), ``.patch_size``, ``.num_summary_tokens``, ``.num_cls_tokens``, ``.input_conditioner``,
``.make_preprocessor_external()``, ``.adaptors[name].head_mlp / .feat_mlp / .tokenizer / .encode_text``
and a forward returning ``RadioOutput(summary, features)`` (or a dict of them when adaptors are attached).
Their outputs are random projections: never present them as semantic.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from radseg_core.compat import patch_torchvision

# OpenAI CLIP normalisation: RADIO's default input conditioner uses it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class RadioOutput(NamedTuple):
    """Same field names as ``radio.adaptor_base.RadioOutput``."""

    summary: torch.Tensor
    features: torch.Tensor


class InputConditioner(nn.Module):
    """Maps [0, 1] RGB to normalised input, as RADIO does inside its forward."""

    def __init__(self, mean=CLIP_MEAN, std=CLIP_STD) -> None:
        super().__init__()
        self.register_buffer("norm_mean", torch.tensor(mean).view(-1, 1, 1))
        self.register_buffer("norm_std", torch.tensor(std).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.norm_mean) / self.norm_std


class AdaptorMLP(nn.Module):
    """Shape of RADIO's ``MLP2``: fc1, residual inner blocks, LayerNorm-GELU-Linear final."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, num_inner: int = 0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden))
            for _ in range(num_inner)
        )
        self.final = nn.Sequential(nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, dim_out))

    def forward(self, x: torch.Tensor, images=None, patch_size=None) -> torch.Tensor:
        x = self.fc1(x)
        for block in self.blocks:
            x = x + block(x)
        return self.final(x)


class ByteTokenizer:
    """Offline tokenizer: UTF-8 bytes shifted by one, 0 is padding. Mirrors the callable RADIO tokenizers."""

    def __init__(self, max_length: int = 64) -> None:
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for i, text in enumerate(texts):
            data = list(text.lower().encode("utf-8"))[: self.max_length]
            ids[i, : len(data)] = torch.tensor(data, dtype=torch.long) + 1
        return ids


class TinyTextTower(nn.Module):
    """A one-layer transformer text encoder with masked mean pooling; stands in for SigLIP2's tower."""

    def __init__(self, width: int, out_dim: int, max_length: int = 64, vocab: int = 257) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_length, width) * 0.02)
        self.layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width, batch_first=True)
        self.head = nn.Linear(width, out_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.layer(x, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        return self.head((x * keep).sum(1) / keep.sum(1).clamp_min(1.0))


class TinyAdaptor(nn.Module):
    """Language or SAM adaptor: summary head, feature head and (language only) a text tower."""

    def __init__(self, embed_dim: int, head_out: int, feat_out: int, head_idx: int, text: bool) -> None:
        super().__init__()
        self.head_mlp = AdaptorMLP(embed_dim, 2 * embed_dim, head_out, num_inner=1)
        self.feat_mlp = AdaptorMLP(embed_dim, 2 * embed_dim, feat_out, num_inner=1)
        self.head_idx = head_idx
        if text:
            self.tokenizer = ByteTokenizer()
            self.text_model = TinyTextTower(embed_dim, head_out)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        out = self.text_model(text)
        return nn.functional.normalize(out, dim=-1) if normalize else out

    def forward(self, summary: torch.Tensor, features: torch.Tensor) -> RadioOutput:
        return RadioOutput(self.head_mlp(summary), self.feat_mlp(features))


class RadioReplica(nn.Module):
    """Wraps a timm ViT whose first prefix tokens act as RADIO's per-teacher CLS tokens, then registers."""

    def __init__(
        self, vit: nn.Module, num_cls_tokens: int, adaptors: dict[str, nn.Module] | None = None
    ) -> None:
        super().__init__()
        self.model = vit
        self.input_conditioner = InputConditioner()
        self.adaptors = nn.ModuleDict(adaptors or {})
        self._num_cls = num_cls_tokens
        self.register_buffer("summary_idxs", torch.arange(num_cls_tokens))

    @property
    def patch_size(self) -> int:
        ps = self.model.patch_embed.patch_size
        return int(ps[0] if isinstance(ps, (tuple, list)) else ps)

    @property
    def num_summary_tokens(self) -> int:
        return int(self.model.num_prefix_tokens)

    @property
    def num_cls_tokens(self) -> int:
        return self._num_cls

    @property
    def embed_dim(self) -> int:
        return int(self.model.embed_dim)

    @property
    def min_resolution_step(self) -> int:
        return self.patch_size

    def get_nearest_supported_resolution(self, height: int, width: int) -> tuple[int, int]:
        step = self.min_resolution_step
        return max(step, round(height / step) * step), max(step, round(width / step) * step)

    def make_preprocessor_external(self) -> nn.Module:
        ret = self.input_conditioner
        self.input_conditioner = nn.Identity()
        return ret

    def forward(self, x: torch.Tensor) -> RadioOutput | dict[str, RadioOutput]:
        step = self.min_resolution_step
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(f"input resolution must be a multiple of {step}, got {tuple(x.shape[-2:])}")
        y = self.model.forward_features(self.input_conditioner(x))
        all_summary = y[:, : self._num_cls]
        features = y[:, self.num_summary_tokens :]
        out = RadioOutput(all_summary.flatten(1), features)
        if not self.adaptors:
            return out
        ret: dict[str, RadioOutput] = {"backbone": out}
        for name, adaptor in self.adaptors.items():
            ret[name] = adaptor(all_summary[:, adaptor.head_idx], features)
        return ret


def _vit(**kw) -> nn.Module:
    patch_torchvision()
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(dynamic_img_size=True, global_pool="", num_classes=0, **kw)


def _adaptors(embed_dim: int, lang_dim: int, sam_dim: int, lang: str, sam: bool) -> dict[str, nn.Module]:
    adaptors: dict[str, nn.Module] = {lang: TinyAdaptor(embed_dim, lang_dim, lang_dim, head_idx=1, text=True)}
    if sam:
        adaptors["sam"] = TinyAdaptor(embed_dim, sam_dim, sam_dim, head_idx=3, text=False)
    return adaptors


def build_random_tiny(
    lang: str = "siglip2",
    sam: bool = True,
    seed: int = 0,
    embed_dim: int = 32,
    depth: int = 2,
    num_heads: int = 2,
    lang_dim: int = 24,
    sam_dim: int = 64,
    num_cls: int = 4,
    num_registers: int = 2,
) -> RadioReplica:
    """Small random RADIO: 4 CLS + 2 register tokens, patch 16, any input size that is a multiple of 16."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vit = _vit(
            img_size=64,
            patch_size=16,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            class_token=False,
            reg_tokens=num_cls + num_registers,
            no_embed_class=True,
            final_norm=False,
            qkv_bias=True,
            init_values=1.0,  # LayerScale kept, but not ~0: random attention must matter
        )
        model = RadioReplica(vit, num_cls, _adaptors(embed_dim, lang_dim, sam_dim, lang, sam))
    return model.eval()


def build_random_base(lang: str = "siglip2", sam: bool = True, seed: int = 0) -> RadioReplica:
    """timm ``vit_base_patch16_radio_v3`` (C-RADIOv3-B architecture) with random weights, for timing.

    Its adaptor sizes follow C-RADIOv3-B's teachers, SigLIP2-so400m (1152-d) and SAM-H (1280-d), but the text
    tower is the tiny one: text encoding is per query, not per frame, so it does not matter for frame timings.
    """
    patch_torchvision()
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vit = timm.create_model(
            "vit_base_patch16_radio_v3",
            pretrained=False,
            dynamic_img_size=True,
            num_classes=0,
            global_pool="",
        )
        model = RadioReplica(vit, num_cls_tokens=4, adaptors=_adaptors(768, 1152, 1280, lang, sam))
    return model.eval()
