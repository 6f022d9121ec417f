"""Prompt templates and the cached, template-averaged TextEmbedder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from radseg_core.text import IMAGENET_TEMPLATES, HFTextTower, TextEmbedder, canonicalize_text


class CountingTower:
    """Deterministic fake text tower: a hash of the string seeds a random vector."""

    def __init__(self, key: str | None = "fake/v1", dim: int = 8) -> None:
        self.key = key
        self.dim = dim
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.seen.extend(texts)
        out = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(map(ord, t)) * 7919 % (2**31))
            out.append(torch.randn(self.dim, generator=g) * 3)
        return torch.stack(out)


def test_templates_are_the_80_imagenet_prompts():
    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert "a photo of a {}." in IMAGENET_TEMPLATES and "itap of my {}." in IMAGENET_TEMPLATES


def test_encode_is_normalised_template_average():
    tower = CountingTower()
    emb = TextEmbedder(tower, templates=("a {}.", "the {} here."))
    got = emb.encode(["cup", "mug"])
    manual = F.normalize(tower.encode(["a cup.", "the cup here."]), dim=-1).mean(0)
    torch.testing.assert_close(got[0], F.normalize(manual, dim=0))
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(2))
    raw = emb.encode(["cup"], templated=False)
    torch.testing.assert_close(raw[0], F.normalize(tower.encode(["cup"])[0], dim=0))


def test_memory_cache_avoids_second_tower_pass():
    tower = CountingTower()
    emb = TextEmbedder(tower)
    emb.encode(["door", "window", "door"])
    assert len(tower.seen) == 2 * 80  # duplicates encoded once
    emb.encode(["window", "door"])
    assert len(tower.seen) == 160
    emb.encode(["window", "lamp"])
    assert len(tower.seen) == 240


def test_disk_cache_survives_a_new_embedder(tmp_path):
    first = TextEmbedder(CountingTower(), cache_dir=tmp_path)
    a = first.encode(["sofa", "plant"])
    assert len(list(tmp_path.glob("*.pt"))) == 2
    tower = CountingTower()
    b = TextEmbedder(tower, cache_dir=tmp_path).encode(["plant", "sofa"])
    assert tower.seen == []
    torch.testing.assert_close(b, a.flip(0))


def test_disk_cache_is_keyed_by_model_and_templates(tmp_path):
    TextEmbedder(CountingTower("model-a"), cache_dir=tmp_path).encode(["sofa"])
    other = CountingTower("model-b")
    TextEmbedder(other, cache_dir=tmp_path).encode(["sofa"])
    assert len(other.seen) == 80
    again = CountingTower("model-a")
    TextEmbedder(again, templates=("{}",), cache_dir=tmp_path).encode(["sofa"])
    assert again.seen == ["sofa"]
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_unknown_model_never_writes_to_disk(tmp_path):
    TextEmbedder(CountingTower(key=None), cache_dir=tmp_path).encode(["sofa"])
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_file_is_recomputed(tmp_path):
    emb = TextEmbedder(CountingTower(), cache_dir=tmp_path)
    good = emb.encode(["bed"])
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(b"not a tensor")
    tower = CountingTower()
    again = TextEmbedder(tower, cache_dir=tmp_path).encode(["bed"])
    assert len(tower.seen) == 80
    torch.testing.assert_close(again, good)


def test_canonicalize_text():
    assert canonicalize_text("A  Fire_Extinguisher!") == "a fire extinguisher"


def _tiny_siglip_dir(path):
    """A SigLIP model + word-level tokenizer saved in HF format, as `huggingface-cli download` would."""
    from radseg_core.compat import patch_torchvision

    patch_torchvision()
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    text = dict(
        vocab_size=16,
        max_position_embeddings=64,
        projection_size=16,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        **small,
    )
    cfg = SiglipConfig(text_config=text, vision_config=dict(image_size=32, patch_size=16, **small))
    torch.manual_seed(0)
    SiglipModel(cfg).save_pretrained(path)
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "a", "photo", "of", "the", "chair", "cup"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>").save_pretrained(path)
    return path


def test_hf_text_tower_from_local_directory(tmp_path):
    tower = HFTextTower(_tiny_siglip_dir(tmp_path / "siglip2"))
    out = tower.encode(["a photo of the Chair!", "a photo of the chair", "cup"])
    assert out.shape == (3, 16)
    torch.testing.assert_close(out[0], out[1])  # canonicalised like RADIO's SigLIP2 tokenizer wrapper
    assert not torch.allclose(out[0], out[2])
    assert tower.key.startswith("hf:") and tower.key.endswith("siglip2")


def test_hf_text_tower_missing_directory_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download google/siglip2"):
        HFTextTower(tmp_path / "nope")
