"""One factory for every way a robot or a test gets a RADIO model: ``load_radio(spec)``.

Sources, chosen by ``RadioSpec``:
  * torch.hub ``NVlabs/RADIO`` ``radio_model`` with a pinned version (default ``c-radio_v3-b``),
  * Hugging Face ``nvidia/C-RADIOv3-*`` (``trust_remote_code``; text tower from a local SigLIP2 dir),
  * fully offline: a RADIO checkout (``repo_dir``, loaded with ``source='local'``) + checkpoint file,
  * an already-built object with the NVlabs RADIO interface (passed instead of a spec),
  * ``random-tiny`` / ``random-base``: random-weight replicas (tests, benchmarks; never semantic).
Every failure raises :class:`ModelLoadError` saying what to download and where to put it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from radseg_core.text import AdaptorTextTower, HFTextTower, TextTower

HUB_REPO = "NVlabs/RADIO"
VERSIONS = ("c-radio_v3-b", "c-radio_v3-l", "c-radio_v3-h")
HF_REPOS = {
    "c-radio_v3-b": "nvidia/C-RADIOv3-B",
    "c-radio_v3-l": "nvidia/C-RADIOv3-L",
    "c-radio_v3-h": "nvidia/C-RADIOv3-H",
}
RANDOM = ("random-tiny", "random-base")
# Our language names -> adaptor names tried in order. C-RADIOv3 checkpoints call the SigLIP2 teacher
# "siglip2-g" (RADIO README); the RADSeg reference asks for "siglip2", so both are tried.
LANG_ADAPTORS = {"siglip2": ("siglip2-g", "siglip2"), "clip": ("clip",)}
SIGLIP2_TEXT = "google/siglip2-giant-opt-patch16-384"


class ModelLoadError(RuntimeError):
    """A model could not be built; the message says what to download and where to put it."""


@dataclass(frozen=True)
class RadioSpec:
    """Which RADIO to load and from where (plain config object; all paths optional)."""

    model: str = "c-radio_v3-b"  # a version above, "hf:<repo id>", "random-tiny" or "random-base"
    lang: str = "siglip2"  # language adaptor: "siglip2" or "clip"
    sam: bool = False  # also load the "sam" adaptor (RADIO-SAM refinement)
    repo_dir: str | None = None  # local RADIO checkout with hubconf.py -> torch.hub source="local"
    checkpoint: str | None = None  # local checkpoint file (.pth.tar) instead of the download URL
    text_model_dir: str | None = None  # local SigLIP2 (HF format) directory for the text tower
    hub_ref: str | None = None  # git ref of NVlabs/RADIO to pin, e.g. a commit; None = default branch
    device: str = "cpu"
    seed: int = 0  # random replicas only


@dataclass
class LoadedRadio:
    """A RADIO model with its adaptors taken out, so the encoder decides when each one runs."""

    model: nn.Module
    lang_adaptor: nn.Module
    sam_adaptor: nn.Module | None
    text: TextTower
    name: str


def _hub_dir() -> str:
    return torch.hub.get_dir()


def _download_hint(spec: RadioSpec) -> str:
    version = spec.model
    hf = HF_REPOS.get(version, "nvidia/C-RADIOv3-B")
    return (
        f"To run offline, on a machine with network:\n"
        f"  1. git clone https://github.com/{HUB_REPO} <dir>/RADIO   (pass repo_dir=<dir>/RADIO)\n"
        f"  2. download https://huggingface.co/{hf} checkpoint ({version}*.pth.tar) into <dir> "
        f"(pass checkpoint=<file>)\n"
        f"  3. huggingface-cli download {SIGLIP2_TEXT} --local-dir <dir>/siglip2 (pass text_model_dir=...)\n"
        f"or pre-fill the caches: torch hub dir {_hub_dir()} (repo + checkpoints/) and the\n"
        f"Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}), "
        "then set HF_HUB_OFFLINE=1.\n"
        "See docs/encoder.md."
    )


def _adaptor_candidates(lang: str) -> tuple[str, ...]:
    if lang not in LANG_ADAPTORS:
        raise ModelLoadError(f"unknown language adaptor {lang!r}; choose one of {sorted(LANG_ADAPTORS)}")
    return LANG_ADAPTORS[lang]


def _check_version(version: str) -> None:
    if version in VERSIONS or version.startswith("hf:") or version in RANDOM:
        return
    if version.startswith("radio_v3"):
        raise ModelLoadError(
            f"{version!r} is not a RADIO version (the reference's default typo); use 'c-{version}'"
        )
    # other published versions (v2.5, v4 ...) load, but RADSeg was evaluated on C-RADIOv3 only
    if not version.startswith(("c-radio", "radio")):
        raise ModelLoadError(f"unknown model {version!r}; use one of {VERSIONS + RANDOM} or 'hf:<repo id>'")


def _cached_checkout(spec: RadioSpec) -> Path:
    """Where torch.hub keeps its copy of NVlabs/RADIO (``<hub dir>/NVlabs_RADIO_<ref>``)."""
    return Path(_hub_dir()) / f"{HUB_REPO.replace('/', '_')}_{spec.hub_ref or 'main'}"


def _hub_load(spec: RadioSpec, adaptor_names: list[str]) -> nn.Module:
    kwargs = dict(progress=False, skip_validation=True, adaptor_names=adaptor_names)
    cached = _cached_checkout(spec)
    if spec.repo_dir is None and spec.text_model_dir is not None and (cached / "hubconf.py").is_file():
        # the SigLIP2 text tower must come from text_model_dir: load the hub's cached checkout as a local one
        spec = replace(spec, repo_dir=str(cached))
    if spec.repo_dir is not None:
        repo = Path(spec.repo_dir).expanduser()
        if not (repo / "hubconf.py").is_file():
            raise ModelLoadError(
                f"repo_dir {repo} is not a RADIO checkout (no hubconf.py).\n" + _download_hint(spec)
            )
        if spec.text_model_dir is not None:
            _redirect_siglip2(repo, spec.text_model_dir)
        return torch.hub.load(
            str(repo), "radio_model", source="local", version=spec.checkpoint or spec.model, **kwargs
        )
    source = HUB_REPO + (f":{spec.hub_ref}" if spec.hub_ref else "")
    return torch.hub.load(
        source, "radio_model", version=spec.checkpoint or spec.model, trust_repo=True, **kwargs
    )


def _redirect_siglip2(repo: Path, text_dir: str) -> None:
    """Point the checkout's SigLIP2 adaptor at a local text model instead of the HF hub name."""
    sys.path.insert(0, str(repo))
    try:
        import radio.siglip2_adaptor as sig  # the checkout's own module, reused by its hubconf
    except ImportError:
        return
    finally:
        sys.path.remove(str(repo))
    sig._VERSION_MAP = {k: str(Path(text_dir).expanduser()) for k in sig._VERSION_MAP}


def _load_hub_like(spec: RadioSpec) -> nn.Module:
    from radseg_core.compat import patch_torchvision

    patch_torchvision()  # RADIO's hubconf imports timm (and through it torchvision)
    if spec.checkpoint is not None and not Path(spec.checkpoint).expanduser().is_file():
        raise ModelLoadError(f"checkpoint {spec.checkpoint} does not exist.\n" + _download_hint(spec))
    if spec.checkpoint is not None:
        spec = replace(spec, checkpoint=str(Path(spec.checkpoint).expanduser()))
    last: Exception | None = None
    for lang_name in _adaptor_candidates(spec.lang):
        names = [lang_name] + (["sam"] if spec.sam else [])
        try:
            model = _hub_load(spec, names)
        except ModelLoadError:
            raise
        except ValueError as exc:  # RADIO: "Unable to find the specified adaptor name" -> try next alias
            if "adaptor" not in str(exc):
                raise ModelLoadError(f"loading RADIO {spec.model} failed: {exc}") from exc
            last = exc
            continue
        except Exception as exc:  # network, missing cache, HF text tower ...
            raise ModelLoadError(
                f"could not load RADIO {spec.model!r} (adaptors {names}) via torch.hub: "
                f"{type(exc).__name__}: {exc}\n" + _download_hint(spec)
            ) from exc
        model.radseg_lang_name = lang_name
        return model
    raise ModelLoadError(f"the checkpoint has no {spec.lang} adaptor ({last})")


def _load_hf(spec: RadioSpec) -> LoadedRadio:
    repo = spec.model[3:] if spec.model.startswith("hf:") else HF_REPOS[spec.model]
    if spec.text_model_dir is None:
        raise ModelLoadError(
            f"HF {repo} ships only the adaptor MLPs, no text tower: pass text_model_dir=<dir> with "
            f"`huggingface-cli download {SIGLIP2_TEXT} --local-dir <dir>`"
        )
    if spec.lang != "siglip2":
        raise ModelLoadError(
            "the HF route supports the siglip2 language adaptor only; use torch.hub for clip"
        )
    try:
        from transformers import AutoConfig, AutoModel

        local = Path(repo).expanduser().is_dir()
        config = AutoConfig.from_pretrained(repo, trust_remote_code=True, local_files_only=local)
        last: Exception | None = None
        for lang_name in _adaptor_candidates(spec.lang):
            config.adaptor_names = [lang_name] + (["sam"] if spec.sam else [])
            try:
                hf = AutoModel.from_pretrained(
                    repo, config=config, trust_remote_code=True, local_files_only=local
                )
                break
            except KeyError as exc:
                last = exc
        else:
            raise ModelLoadError(f"{repo} has no {spec.lang} adaptor ({last})")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load {repo} from Hugging Face: {type(exc).__name__}: {exc}\n"
            f"Download it once with `huggingface-cli download {repo} --local-dir <dir>` "
            "and pass model='hf:<dir>'."
        ) from exc
    radio = hf.radio_model
    radio.radseg_lang_name = lang_name
    text = HFTextTower(spec.text_model_dir, device=spec.device)
    return _detach(radio, spec, text_override=text, name=repo)


def _load_random(spec: RadioSpec) -> nn.Module:
    from radseg_core.model import tiny

    build = tiny.build_random_tiny if spec.model == "random-tiny" else tiny.build_random_base
    model = build(lang=spec.lang, sam=True, seed=spec.seed)
    if spec.checkpoint is not None:
        path = Path(spec.checkpoint).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"checkpoint {path} does not exist (expected a state_dict saved with torch.save)"
            )
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.radseg_lang_name = spec.lang
    return model


def _detach(
    model: nn.Module,
    spec: RadioSpec,
    text_override: TextTower | None = None,
    name: str | None = None,
    text_key: str | None = "auto",
) -> LoadedRadio:
    """Take adaptors out of the model (forward then returns only backbone summary/features)."""
    _validate(model)
    adaptors = dict(getattr(model, "adaptors", None) or {})
    lang_name = getattr(model, "radseg_lang_name", None)
    candidates = [lang_name] if lang_name else list(_adaptor_candidates(spec.lang))
    lang_name = next((n for n in candidates if n in adaptors), None)
    if lang_name is None:
        raise ModelLoadError(f"model has no language adaptor {candidates}; it has {sorted(adaptors)}")
    lang = adaptors[lang_name]
    if not hasattr(lang, "head_mlp"):
        raise ModelLoadError(
            f"adaptor {lang_name!r} has no head_mlp (summary head) for dense language alignment"
        )
    sam = adaptors.get("sam")
    if spec.sam and sam is None:
        raise ModelLoadError("RADIO-SAM refinement needs the 'sam' adaptor, which the model does not have")
    model.adaptors = None
    device = torch.device(spec.device)
    model.to(device).eval()
    lang.to(device).eval()
    if sam is not None:
        sam.to(device).eval()
    name = name or spec.model
    key = f"{name}/{lang_name}" if text_key == "auto" else text_key
    if spec.model in RANDOM and text_key == "auto":
        key = f"{name}:seed{spec.seed}" + (":ckpt" if spec.checkpoint else "") + f"/{lang_name}"
    has_tower = hasattr(lang, "tokenizer") and hasattr(lang, "encode_text")
    if text_override is not None:
        text = text_override
    elif has_tower:  # the adaptor's own tower (built from text_model_dir when it was redirected there)
        text = AdaptorTextTower(lang, key, device)
    elif spec.text_model_dir is not None:
        text = HFTextTower(spec.text_model_dir, device=device)
    else:
        raise ModelLoadError(
            f"adaptor {lang_name!r} has no text tower (tokenizer/encode_text): pass text_model_dir=<dir> "
            f"with `huggingface-cli download {SIGLIP2_TEXT} --local-dir <dir>`"
        )
    return LoadedRadio(model, lang, sam, text, name)


def _validate(model: nn.Module) -> None:
    blocks = getattr(getattr(model, "model", None), "blocks", None)
    missing = [
        a
        for a, ok in (
            ("model.blocks", blocks is not None),
            ("patch_size", hasattr(model, "patch_size")),
            ("adaptors", hasattr(model, "adaptors")),
        )
        if not ok
    ]
    if missing:
        raise ModelLoadError(f"object of type {type(model).__name__} lacks the RADIO interface: {missing}")


def load_radio(spec: RadioSpec | str | nn.Module = "c-radio_v3-b", **overrides) -> LoadedRadio:
    """Build a :class:`LoadedRadio` from a spec, a model name, or an already-built RADIO-like object.

    An injected object's text vectors are cached in memory only (its weights are unknown to us) unless
    ``text_key=...`` names them.
    """
    if isinstance(spec, nn.Module):
        text_key = overrides.pop("text_key", None)
        inner = getattr(spec, "radio_model", spec)  # HF wrapper -> the NVlabs RADIOModel inside
        cfg = RadioSpec(model=overrides.pop("name", "injected"), **overrides)
        return _detach(inner, cfg, name=cfg.model, text_key=text_key)
    if isinstance(spec, str):
        spec = RadioSpec(model=spec)
    spec = replace(spec, **overrides)
    _check_version(spec.model)
    _adaptor_candidates(spec.lang)
    if spec.model in RANDOM:
        return _detach(_load_random(spec), spec)
    if spec.model.startswith("hf:"):
        return _load_hf(spec)
    return _detach(_load_hub_like(spec), spec)
