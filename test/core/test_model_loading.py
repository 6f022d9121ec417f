"""Every offline loading path of load_radio, and the errors for missing weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from radio_fixtures import radio_checkout, write_hf_radio, write_text_model

from radseg_core.encoder import build_encoder
from radseg_core.model import LoadedRadio, ModelLoadError, RadioSpec, load_radio
from radseg_core.model.replica_checkpoint import write_radio_checkpoint
from radseg_core.model.tiny import build_random_tiny


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


# ------------------------------------------------------------------ through RADIO's real code
@pytest.fixture(scope="module")
def radio_repo(tmp_path_factory):
    repo = radio_checkout(tmp_path_factory.mktemp("radio"))
    if repo is None:
        pytest.skip("no NVlabs/RADIO checkout (set RADSEG_RADIO_REPO or pre-fill the torch hub cache)")
    return repo


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """One folder per text model, named by HF id, as docs/encoder.md tells users to lay them out."""
    root = tmp_path_factory.mktemp("text")
    write_text_model(root / "google/siglip2-so400m-patch16-naflex", 1152, kind="siglip2")
    write_text_model(root / "google/siglip2-giant-opt-patch16-384", 1536, kind="siglip")
    return root


@pytest.fixture(scope="module")
def checkpoints(radio_repo, tmp_path_factory):
    """Random-weight checkpoints in RADIO's release layout: v3-B/L teachers, v3-H teachers, v4 teachers."""
    root = tmp_path_factory.mktemp("ckpt")
    return {
        kind: write_radio_checkpoint(root / f"{kind}.pth.tar", radio_repo, teachers=kind, seed=i)
        for i, kind in enumerate(("v3-so400m", "v3-g384", "v4"))
    }


def _spec(radio_repo, ckpt, text_dir, **kw):
    return RadioSpec(repo_dir=str(radio_repo), checkpoint=str(ckpt), text_model_dir=str(text_dir), **kw)


def test_v3_b_loads_through_radio_with_the_so400m_text_model(radio_repo, checkpoints, text_dir):
    loaded = load_radio(_spec(radio_repo, checkpoints["v3-so400m"], text_dir, sam=True))
    assert type(loaded.model).__module__ == "radio.radio_model"  # RADIO's own RADIOModel
    assert type(loaded.lang_adaptor).__name__ == "GenericAdaptor"
    assert loaded.model.adaptors is None and loaded.sam_adaptor is not None
    assert loaded.text.name == "google/siglip2-so400m-patch16-naflex" and loaded.text.dim == 1152
    assert loaded.text.loads == 0  # lazily: only on the first text-cache miss
    enc = build_encoder(_spec(radio_repo, checkpoints["v3-so400m"], text_dir), crop=32, stride=16)
    assert enc.language_dim == 1152 and enc.feature_dim == 64
    result = enc.predict(torch.rand(3, 48, 64), ["chair", "table"])
    assert result.labels.shape == (48, 64) and enc.loaded.text.loads == 1


def test_v3_h_teacher_picks_giant_opt(radio_repo, checkpoints, text_dir):
    loaded = load_radio(_spec(radio_repo, checkpoints["v3-g384"], text_dir, model="c-radio_v3-h"))
    assert loaded.text.name == "google/siglip2-giant-opt-patch16-384" and loaded.text.dim == 1536
    assert loaded.text.encode(["a photo of the chair"]).shape == (1, 1536)


def test_v4_loads_and_refuses_radseg_plus_without_sam(radio_repo, checkpoints, text_dir):
    loaded = load_radio(_spec(radio_repo, checkpoints["v4"], text_dir, model="c-radio_v4-h"))
    assert loaded.text.dim == 1536 and loaded.sam_adaptor is None
    with pytest.raises(ModelLoadError, match="needs RADIO's 'sam' adaptor.*no 'sam'"):
        load_radio(_spec(radio_repo, checkpoints["v4"], text_dir, model="c-radio_v4-h", sam=True))


def test_wrong_dimension_text_tower_is_refused_at_load(radio_repo, checkpoints, tmp_path):
    """A text model folder given directly whose output size differs from the language head."""
    giant = write_text_model(tmp_path / "siglip2", 1536, kind="siglip")
    with pytest.raises(ModelLoadError, match="1536-d .* 1152-d") as err:
        load_radio(_spec(radio_repo, checkpoints["v3-so400m"], giant))
    assert "google/siglip2-so400m-patch16-naflex" in str(err.value)
    with pytest.raises(ModelLoadError, match="no local copy of google/siglip2-so400m") as err:
        load_radio(_spec(radio_repo, checkpoints["v3-so400m"], tmp_path / "empty"))
    assert "huggingface-cli download google/siglip2-so400m-patch16-naflex" in str(err.value)


def test_loading_leaves_radio_global_state_alone(radio_repo, checkpoints, text_dir):
    load_radio(_spec(radio_repo, checkpoints["v3-so400m"], text_dir))
    import sys

    version_map = sys.modules["radio.siglip2_adaptor"]._VERSION_MAP
    assert version_map == {
        "siglip2-g-384": "google/siglip2-giant-opt-patch16-384",
        "siglip2-so400m": "google/siglip2-so400m-patch16-naflex",
    }


def test_weights_come_from_the_checkpoint(radio_repo, checkpoints, text_dir):
    a = load_radio(_spec(radio_repo, checkpoints["v3-so400m"], text_dir))
    b = load_radio(_spec(radio_repo, checkpoints["v3-so400m"], text_dir))
    c = load_radio(_spec(radio_repo, checkpoints["v3-g384"], text_dir, model="c-radio_v3-h"))
    assert _params_equal(a.model, b.model) and not _params_equal(a.model.model, c.model.model)
    sd = torch.load(checkpoints["v3-so400m"], weights_only=False)["state_dict"]
    torch.testing.assert_close(
        a.lang_adaptor.head_mlp.fc1.weight, sd["_heads.1.fc1.weight"].float()  # teacher 1 = siglip2-g
    )


def test_local_paths_missing_give_clear_errors(radio_repo, checkpoints, tmp_path):
    with pytest.raises(ModelLoadError, match="checkpoint .* does not exist") as err:
        load_radio(RadioSpec(repo_dir=str(radio_repo), checkpoint=str(tmp_path / "nope.pth.tar")))
    assert "huggingface-cli download nvidia/C-RADIOv3-B c-radio_v3-b_half.pth.tar" in str(err.value)
    with pytest.raises(ModelLoadError, match="no hubconf.py") as err:
        load_radio(RadioSpec(repo_dir=str(tmp_path / "empty"), checkpoint=str(checkpoints["v4"])))
    assert "git clone https://github.com/NVlabs/RADIO" in str(err.value)


def test_v3_l_hint_names_the_real_file():
    from radseg_core.model.loading import MODELS

    assert MODELS["c-radio_v3-l"].checkpoint_file == "c-radio-v3_l_half.pth.tar"  # RADIO's common.py URL


def test_hub_unreachable_says_what_to_download(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(ModelLoadError) as err:
        load_radio("c-radio_v3-l")
    msg = str(err.value)
    assert "URLError" in msg and torch.hub.get_dir() in msg and "HF_HUB_OFFLINE=1" in msg
    assert "huggingface-cli download nvidia/C-RADIOv3-L c-radio-v3_l_half.pth.tar" in msg


def test_hub_call_is_pinned_and_asks_for_the_checkpoint(monkeypatch, radio_repo, checkpoints, text_dir):
    seen = {}
    real_load = torch.hub.load

    def spy(repo, entry, **kwargs):
        seen.update(repo=repo, entry=entry, **kwargs)
        kwargs.pop("trust_repo")
        return real_load(str(radio_repo), entry, source="local", **kwargs)

    monkeypatch.setattr(torch.hub, "load", spy)
    load_radio(RadioSpec("c-radio_v3-b", hub_ref="abc123", checkpoint=str(checkpoints["v3-so400m"]),
                         text_model_dir=str(text_dir)))
    assert seen["repo"] == "NVlabs/RADIO:abc123" and seen["entry"] == "radio_model"
    assert seen["return_checkpoint"] is True and seen["adaptor_names"] is None


def test_missing_dependency_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "einops" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"\['einops'\].*requirements/robot.txt"):
        load_radio("c-radio_v3-b")


def test_bad_names(tmp_path):
    with pytest.raises(ModelLoadError, match="c-radio_v3-b"):
        load_radio("radio_v3-b")  # the reference's invalid default
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_radio("resnet50")
    with pytest.raises(ModelLoadError, match="language adaptor"):
        load_radio(RadioSpec("random-tiny", lang="dino"))
    obj = build_random_tiny()
    del obj.adaptors["siglip2"].tokenizer  # like HF models: adaptor MLPs without a text tower
    with pytest.raises(ModelLoadError, match="text_model_dir"):
        load_radio(obj)


# ------------------------------------------------------------------ Hugging Face route
class _HFConfig:
    """What AutoConfig returns for a published C-RADIO repo: teachers in args, adaptor_configs empty."""

    def __init__(self, teachers):
        self.args = {"teachers": [{"name": n, "type": t, "model": m} for n, t, m, _, _ in teachers]}
        self.adaptor_configs = {}
        self.adaptor_names = None


def test_hf_route_patches_torchvision_and_explains_missing_adaptors(monkeypatch):
    import transformers

    from radseg_core import compat
    from radseg_core.model.replica_checkpoint import TEACHERS

    calls = []
    monkeypatch.setattr(compat, "patch_torchvision", lambda: calls.append("patched"))
    monkeypatch.setattr(
        transformers.AutoConfig, "from_pretrained", lambda *a, **k: _HFConfig(TEACHERS["v3-so400m"])
    )
    with pytest.raises(ModelLoadError) as err:
        load_radio("hf:nvidia/C-RADIOv3-B")
    msg = str(err.value)
    assert calls == ["patched"]
    assert "exports no adaptor weights for ['siglip2-g']" in msg and "not a broken download" in msg
    assert "huggingface-cli download nvidia/C-RADIOv3-B c-radio_v3-b_half.pth.tar" in msg
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *a, **k: _HFConfig(TEACHERS["v4"]))
    with pytest.raises(ModelLoadError, match="no 'sam'"):
        load_radio(RadioSpec("hf:nvidia/C-RADIOv4-H", sam=True))


def test_hf_layout_through_radios_hf_model(radio_repo, checkpoints, text_dir, tmp_path):
    """A local HF repo as RADIO's hf_hub.py exports it, loaded by AutoModel + RADIO's hf_model.py."""
    ckpt = checkpoints["v3-so400m"]
    ref = load_radio(_spec(radio_repo, ckpt, text_dir))
    published = write_hf_radio(tmp_path / "noad", radio_repo, ckpt, ref, "c-radio_v3-b", adaptors=False)
    with pytest.raises(ModelLoadError, match=r"exports no adaptor weights for \['siglip2-g'\]") as err:
        load_radio(RadioSpec(f"hf:{published}", text_model_dir=str(text_dir)))
    assert "huggingface-cli download nvidia/C-RADIOv3-B c-radio_v3-b_half.pth.tar" in str(err.value)
    exported = write_hf_radio(tmp_path / "ad", radio_repo, ckpt, ref, "c-radio_v3-b", adaptors=True)
    loaded = load_radio(RadioSpec(f"hf:{exported}", text_model_dir=str(text_dir)))
    assert type(loaded.model).__name__ == "RADIOModel" and loaded.model.adaptors is None
    assert loaded.text.name == "google/siglip2-so400m-patch16-naflex" and loaded.text.dim == 1152
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x).features, ref.model(x).features)
        feats = torch.randn(5, 64)
        torch.testing.assert_close(loaded.lang_adaptor.head_mlp(feats), ref.lang_adaptor.head_mlp(feats))
