"""Tiny SigLIP / SigLIP2 model folders in Hugging Face layout, built at test time (random weights).

They have the real pooled text output sizes of the towers RADIO names (so400m-naflex 1152, giant-opt 1536)
with a one-layer, narrow transformer and a word-level tokenizer, so loading, caching and dimension checks
run offline. Never semantic.
"""

from __future__ import annotations

from pathlib import Path

from radseg_core.compat import patch_torchvision

WORDS = ["<pad>", "<unk>", "<eos>", "a", "photo", "of", "the", "chair", "table", "floor", "wall", "door"]


def write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")
    fast.save_pretrained(path)


def write_text_model(path: Path, out_dim: int, kind: str = "siglip2", seed: int = 0, width: int = 32) -> Path:
    """A SigLIP(2) folder (config.json, model.safetensors, tokenizer) whose pooled text output is out_dim."""
    patch_torchvision()
    import torch
    import transformers

    text = dict(
        vocab_size=len(WORDS), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=64, projection_size=out_dim,
        pad_token_id=0, bos_token_id=None, eos_token_id=2,
    )
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=16)
    if kind == "siglip2":
        config = transformers.Siglip2Config(text_config=text, vision_config=vision | {"num_patches": 16})
        model_cls = transformers.Siglip2Model
    else:
        config = transformers.SiglipConfig(text_config=text, vision_config=vision | {"image_size": 32})
        model_cls = transformers.SiglipModel
    torch.manual_seed(seed)
    model = model_cls(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    write_tokenizer(path)
    return path


def radio_checkout(tmp_root: Path) -> Path | None:
    """A NVlabs/RADIO checkout to load fixtures through RADIO's real code, or None (tests then skip).

    Looked for in $RADSEG_RADIO_REPO, torch.hub's cache (NVlabs_RADIO_main), or exported from a fetched git
    mirror ($RADSEG_RADIO_MIRROR, default /work/.mirror/NVlabs+RADIO/repo).
    """
    import os
    import subprocess

    import torch

    for cand in (os.environ.get("RADSEG_RADIO_REPO"), f"{torch.hub.get_dir()}/NVlabs_RADIO_main"):
        if cand and (Path(cand) / "hubconf.py").is_file():
            return Path(cand)
    mirror = Path(os.environ.get("RADSEG_RADIO_MIRROR", "/work/.mirror/NVlabs+RADIO/repo"))
    if not mirror.is_dir():
        return None
    out = tmp_root / "RADIO"
    out.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD"], capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out if (out / "hubconf.py").is_file() else None


def write_hf_radio(out: Path, radio_repo: Path, ckpt: Path, loaded, version: str, adaptors: bool) -> Path:
    """A local copy of a Hugging Face C-RADIO repo as RADIO's hf_hub.py exports it: config.json with
    ``auto_map`` to ``hf_model.RADIOModel``, the ``radio/*.py`` code flat beside it, model.safetensors.
    ``adaptors=False`` gives ``"adaptor_configs": {}`` like the published repos; True exports the language
    adaptor of ``loaded`` (a LoadedRadio of checkpoint ``ckpt``)."""
    import shutil
    import sys

    import torch

    sys.path.insert(0, str(radio_repo))
    try:
        from radio.hf_model import RADIOConfig, RADIOModel
    finally:
        sys.path.remove(str(radio_repo))

    def mlp_config(mlp):
        lin = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
        return dict(input_dim=lin[0].in_features, hidden_dim=lin[0].out_features,
                    output_dim=lin[-1].out_features, num_inner=len(mlp.blocks))

    ad = loaded.lang_adaptor
    name = loaded.model.radseg_lang_name
    configs = (
        {name: dict(summary=mlp_config(ad.head_mlp), feature=mlp_config(ad.feat_mlp), head_idx=ad.head_idx)}
        if adaptors else {}
    )
    args = dict(vars(torch.load(ckpt, weights_only=False)["args"]), dtype="float32")
    config = RADIOConfig(args=args, version=version, adaptor_names=list(configs), adaptor_configs=configs)
    config.auto_map = {"AutoConfig": "hf_model.RADIOConfig", "AutoModel": "hf_model.RADIOModel"}
    model = RADIOModel(config)
    model.radio_model.load_state_dict(loaded.model.state_dict(), strict=False)
    if adaptors:
        model.radio_model.adaptors[name].load_state_dict(ad.state_dict())
    model.save_pretrained(out)
    for file in (radio_repo / "radio").glob("*.py"):
        shutil.copy(file, out)
    return out
