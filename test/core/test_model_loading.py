"""Every offline loading path of load_radio, and the errors for missing weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from radseg_core.encoder import build_encoder
from radseg_core.model import LoadedRadio, ModelLoadError, RadioSpec, load_radio
from radseg_core.model.tiny import build_random_tiny

HUBCONF = """
dependencies = ["torch"]
import torch
from radseg_core.model.tiny import build_random_tiny

def radio_model(version="", progress=True, adaptor_names=None, **kwargs):
    names = list(adaptor_names or [])
    if "siglip2-g" in names:  # an older checkpoint naming the teacher "siglip2"
        raise ValueError("Unable to find the specified adaptor name. Known names: ['siglip2', 'sam']")
    model = build_random_tiny(lang="siglip2", sam=True, seed=123)
    model.load_state_dict(torch.load(version, map_location="cpu", weights_only=True))
    if "sam" not in names:
        del model.adaptors["sam"]
    return model
"""


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_random_tiny_has_radio_interface():
    loaded = load_radio("random-tiny")
    assert isinstance(loaded, LoadedRadio)
    assert loaded.model.adaptors is None  # taken out: forward returns backbone output only
    assert loaded.model.patch_size == 16 and loaded.model.num_summary_tokens == 6
    assert hasattr(loaded.lang_adaptor, "head_mlp") and hasattr(loaded.lang_adaptor, "feat_mlp")
    assert loaded.sam_adaptor is not None
    out = loaded.model(torch.rand(1, 3, 32, 48))
    assert out.features.shape == (1, 6, 32) and out.summary.shape == (1, 4 * 32)
    assert loaded.text.key == "random-tiny:seed0/siglip2"
    assert loaded.text.encode(["a b", "c"]).shape == (2, 24)


def test_random_tiny_is_deterministic_per_seed():
    a, b, c = (load_radio(RadioSpec("random-tiny", seed=s)) for s in (0, 0, 1))
    assert _params_equal(a.model, b.model) and not _params_equal(a.model, c.model)


def test_random_base_is_c_radio_v3_b_sized():
    loaded = load_radio("random-base")
    assert loaded.model.embed_dim == 768 and len(loaded.model.model.blocks) == 12
    assert loaded.model.num_summary_tokens == 8


def test_injected_object(tmp_path):
    obj = build_random_tiny(seed=5)
    loaded = load_radio(obj, name="my-radio")
    assert loaded.model is obj and loaded.name == "my-radio"
    assert loaded.text.key is None  # unknown weights: memory cache only
    enc = build_encoder(build_random_tiny(seed=5), crop=32, stride=16, cache_dir=str(tmp_path))
    assert enc.encode_features(torch.rand(1, 3, 32, 48)).shape == (1, 32, 2, 3)
    enc.encode_text(["x"])
    assert list(tmp_path.iterdir()) == []


def test_injected_object_without_interface_is_rejected():
    with pytest.raises(ModelLoadError, match="RADIO interface"):
        load_radio(torch.nn.Linear(3, 3))
    obj = build_random_tiny()
    del obj.adaptors["siglip2"]
    with pytest.raises(ModelLoadError, match="language adaptor"):
        load_radio(obj)


def test_random_tiny_from_saved_checkpoint(tmp_path):
    src = build_random_tiny(seed=42)
    path = tmp_path / "tiny.pt"
    torch.save(src.state_dict(), path)
    loaded = load_radio(RadioSpec("random-tiny", checkpoint=str(path)))
    assert _params_equal(loaded.model.model, src.model)
    assert "ckpt" in loaded.text.key
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_radio(RadioSpec("random-tiny", checkpoint=str(tmp_path / "missing.pt")))


def _fake_checkout(tmp_path):
    repo = tmp_path / "RADIO"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    ckpt = tmp_path / "c-radio_v3-b_half.pth.tar"
    torch.save(build_random_tiny(seed=7).state_dict(), ckpt)
    return repo, ckpt


def test_local_checkout_and_checkpoint(tmp_path):
    repo, ckpt = _fake_checkout(tmp_path)
    loaded = load_radio(RadioSpec(repo_dir=str(repo), checkpoint=str(ckpt), sam=True))
    assert _params_equal(loaded.model.model, build_random_tiny(seed=7).model)
    assert loaded.sam_adaptor is not None and loaded.name == "c-radio_v3-b"
    assert loaded.text.key == "c-radio_v3-b/siglip2"  # fell back from "siglip2-g" to "siglip2"
    enc = build_encoder(RadioSpec(repo_dir=str(repo), checkpoint=str(ckpt)), crop=32, stride=16)
    assert enc.encode_features(torch.rand(3, 48, 48)).shape == (32, 3, 3)


def test_local_paths_missing_give_clear_errors(tmp_path):
    repo, ckpt = _fake_checkout(tmp_path)
    with pytest.raises(ModelLoadError, match="checkpoint .* does not exist") as err:
        load_radio(RadioSpec(repo_dir=str(repo), checkpoint=str(tmp_path / "nope.pth.tar")))
    assert "huggingface.co/nvidia/C-RADIOv3-B" in str(err.value)
    with pytest.raises(ModelLoadError, match="no hubconf.py") as err:
        load_radio(RadioSpec(repo_dir=str(tmp_path / "empty"), checkpoint=str(ckpt)))
    assert "git clone https://github.com/NVlabs/RADIO" in str(err.value)


def test_hub_unreachable_says_what_to_download(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(ModelLoadError) as err:
        load_radio("c-radio_v3-l")
    msg = str(err.value)
    assert "URLError" in msg and torch.hub.get_dir() in msg
    assert "huggingface.co/nvidia/C-RADIOv3-L" in msg and "HF_HUB_OFFLINE=1" in msg


def test_hub_call_is_pinned(monkeypatch):
    seen = {}

    def fake_load(repo, entry, **kwargs):
        seen.update(repo=repo, entry=entry, **kwargs)
        model = build_random_tiny()
        model.adaptors["siglip2-g"] = model.adaptors.pop("siglip2")
        return model

    monkeypatch.setattr(torch.hub, "load", fake_load)
    loaded = load_radio(RadioSpec("c-radio_v3-b", hub_ref="abc123", sam=True))
    assert seen["repo"] == "NVlabs/RADIO:abc123" and seen["entry"] == "radio_model"
    assert seen["version"] == "c-radio_v3-b" and seen["adaptor_names"] == ["siglip2-g", "sam"]
    assert loaded.text.key == "c-radio_v3-b/siglip2-g"


def test_bad_names_and_hf_without_text_tower(tmp_path):
    with pytest.raises(ModelLoadError, match="c-radio_v3-b"):
        load_radio("radio_v3-b")  # the reference's invalid default
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_radio("resnet50")
    with pytest.raises(ModelLoadError, match="language adaptor"):
        load_radio(RadioSpec("random-tiny", lang="dino"))
    with pytest.raises(ModelLoadError, match="text_model_dir"):
        load_radio("hf:nvidia/C-RADIOv3-B")
    obj = build_random_tiny()
    del obj.adaptors["siglip2"].tokenizer  # like HF models: adaptor MLPs without a text tower
    with pytest.raises(ModelLoadError, match="text_model_dir"):
        load_radio(obj)


def test_hub_cache_with_local_text_model_uses_cached_checkout(tmp_path, monkeypatch):
    """torch.hub's cached NVlabs/RADIO copy is loaded as a local checkout so text_model_dir can apply."""
    hub = tmp_path / "hub"
    repo, ckpt = _fake_checkout(tmp_path)
    hub.mkdir()
    repo.rename(hub / "NVlabs_RADIO_main")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    real_load = torch.hub.load
    calls = []

    def spy(repo_or_dir, *args, **kwargs):
        calls.append((repo_or_dir, kwargs.get("source")))
        return real_load(repo_or_dir, *args, **kwargs)

    monkeypatch.setattr(torch.hub, "load", spy)
    loaded = load_radio(RadioSpec(checkpoint=str(ckpt), text_model_dir=str(tmp_path / "siglip2")))
    assert calls[-1] == (str(hub / "NVlabs_RADIO_main"), "local")
    assert _params_equal(loaded.model.model, build_random_tiny(seed=7).model)
