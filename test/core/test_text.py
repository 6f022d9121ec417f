"""Prompt templates and the cached, template-averaged TextEmbedder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from radio_fixtures import write_text_model

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


def _tiny_siglip_dir(path, dim=16, seed=0):
    """A SigLIP model + word-level tokenizer saved in HF format, as `huggingface-cli download` would."""
    return write_text_model(path, dim, kind="siglip", seed=seed)


def test_hf_text_tower_from_local_directory(tmp_path):
    tower = HFTextTower(_tiny_siglip_dir(tmp_path / "siglip2"))
    out = tower.encode(["a photo of the Chair!", "a photo of the chair", "table"])
    assert out.shape == (3, 16)
    torch.testing.assert_close(out[0], out[1])  # canonicalised like RADIO's SigLIP2 tokenizer wrapper
    assert not torch.allclose(out[0], out[2])
    assert tower.key.startswith("hf:siglip2:") and ":d16:len64:" in tower.key


def test_text_only_tower_equals_full_models_text_side(tmp_path):
    """Loading only the text half gives what RADIO's adaptor computes (AutoModel(...).text_model)."""
    from transformers import AutoModel, AutoTokenizer

    for kind, dim in (("siglip", 1536), ("siglip2", 1152)):  # giant-opt / so400m-naflex output sizes
        path = write_text_model(tmp_path / kind, dim, kind=kind)
        tower = HFTextTower(path)
        got = tower.encode(["a photo of the chair"])
        full = AutoModel.from_pretrained(path).text_model.eval()
        tok = AutoTokenizer.from_pretrained(path)(
            ["a photo of the chair"], return_tensors="pt", padding="max_length", max_length=64, truncation=True
        )
        tok.pop("token_type_ids", None)
        with torch.no_grad():
            ref = full(**tok).pooler_output
        assert got.shape == (1, dim)
        torch.testing.assert_close(got, ref)
        assert not any(n.startswith("vision") for n, _ in tower.model.named_parameters())


def test_text_tower_is_lazy_and_can_be_freed(tmp_path):
    path = _tiny_siglip_dir(tmp_path / "m")
    tower = HFTextTower(path, keep_loaded=False)
    emb = TextEmbedder(tower, templates=("a {}",), cache_dir=tmp_path / "cache")
    assert tower.loads == 0 and tower.model is None  # nothing read at construction
    emb.encode(["chair"])
    assert tower.loads == 1 and tower.model is None  # loaded for the miss, then freed
    emb.encode(["chair"])
    assert tower.loads == 1  # a hit never loads it
    kept = HFTextTower(path)
    TextEmbedder(kept, templates=("a {}",)).encode(["chair", "table"])
    assert kept.loads == 1 and kept.model is not None


def test_freeable_tower_is_safe_across_threads(tmp_path):
    """The node encodes labels on its worker while a query service encodes text: with keep_loaded=False
    one call's unload must not free the tower under the other (it raised TypeError: 'NoneType')."""
    import threading

    path = _tiny_siglip_dir(tmp_path / "m")
    tower = HFTextTower(path, keep_loaded=False)
    errors: list[BaseException] = []

    def hammer(word: str) -> None:
        try:
            for i in range(6):
                assert tower.encode([f"{word} {i}"]).shape[0] == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in ("chair", "table", "door")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert tower.model is None and tower.loads == 18  # every call loaded and freed under the lock


def test_cache_key_names_the_dtype_and_ignores_hidden_files(tmp_path):
    path = _tiny_siglip_dir(tmp_path / "m")
    k32, k16 = HFTextTower(path).key, HFTextTower(path, dtype=torch.float16).key
    assert k32 != k16 and k32.endswith(":float32")  # fp16 vectors are never served to a float32 setup
    (path / ".cache" / "huggingface").mkdir(parents=True)
    (path / ".cache" / "huggingface" / "download.lock").write_text("re-downloaded")
    assert HFTextTower(path).key == k32


def test_cache_key_follows_the_weights_in_the_folder(tmp_path):
    """New weights copied into the same folder change the key: no stale vectors are served."""
    path = _tiny_siglip_dir(tmp_path / "m", seed=0)
    first = TextEmbedder(HFTextTower(path), templates=("a {}",), cache_dir=tmp_path / "cache").encode(["chair"])
    _tiny_siglip_dir(tmp_path / "m", seed=1)
    tower = HFTextTower(path)
    second = TextEmbedder(tower, templates=("a {}",), cache_dir=tmp_path / "cache").encode(["chair"])
    assert tower.loads == 1  # recomputed, not served from the first tower's file
    assert (first - second).abs().max() > 1e-3
    fresh = HFTextTower(path).encode(["a chair"])
    torch.testing.assert_close(second[0], F.normalize(fresh[0], dim=0))


def test_cache_key_includes_size_and_tokenizer_length(tmp_path):
    path = _tiny_siglip_dir(tmp_path / "m")
    assert HFTextTower(path).key != HFTextTower(path, max_length=32).key
    other = _tiny_siglip_dir(tmp_path / "n", dim=24)
    assert ":d24:" in HFTextTower(other).key


def test_stale_cache_file_is_ignored_and_rewritten(tmp_path):
    """A file whose recorded identity differs (copied, renamed, older layout) is never served."""
    TextEmbedder(CountingTower("model-a"), templates=("a {}",), cache_dir=tmp_path).encode(["sofa"])
    (path,) = tmp_path.glob("*.pt")
    tower_b = CountingTower("model-b")
    emb_b = TextEmbedder(tower_b, templates=("a {}",), cache_dir=tmp_path)
    target = tmp_path / f"{emb_b._cache_name('sofa', True)}.pt"
    target.write_bytes(path.read_bytes())  # model-a's vector under model-b's file name
    got = emb_b.encode(["sofa"])
    assert tower_b.seen == ["a sofa"]
    torch.testing.assert_close(got[0], F.normalize(CountingTower().encode(["a sofa"])[0], dim=0))
    assert torch.load(target, weights_only=True)["identity"].startswith("model-b")
    torch.save(torch.ones(8), target)  # the old layout (a bare tensor) is recomputed too
    tower_c = CountingTower("model-b")
    TextEmbedder(tower_c, templates=("a {}",), cache_dir=tmp_path).encode(["sofa"])
    assert tower_c.seen == ["a sofa"]


def test_hf_text_tower_missing_directory_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download google/siglip2"):
        HFTextTower(tmp_path / "nope")


def test_low_precision_text_tower_falls_back_to_float32(tmp_path):
    path = _tiny_siglip_dir(tmp_path / "m")
    ref = HFTextTower(path).encode(["a chair"])
    tower = HFTextTower(path, dtype=torch.bfloat16)
    tower.load()
    tower.model.head.register_forward_hook(lambda m, i, o: o * float("inf"))  # a bf16 overflow
    with pytest.warns(RuntimeWarning, match="non-finite vectors in torch.bfloat16; re-encoding in float32"):
        got = tower.encode(["a chair"])
    assert tower.dtype == torch.float32 and tower.loads == 2
    torch.testing.assert_close(got, ref)
