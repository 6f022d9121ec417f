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

import importlib
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from radseg_core.text import AdaptorTextTower, HFTextTower, TextTower

HUB_REPO = "NVlabs/RADIO"


@dataclass(frozen=True)
class ModelInfo:
    """What RADIO publishes per version (radio/common.py RESOURCE_MAP and README, read 2026-05)."""

    hf_repo: str
    checkpoint_file: str
    text_model: str  # Hugging Face id of the SigLIP2 teacher the release names (the checkpoint decides)
    text_dim: int
    adaptors: tuple[str, ...]


MODELS = {
    "c-radio_v3-b": ModelInfo("nvidia/C-RADIOv3-B", "c-radio_v3-b_half.pth.tar",
                              "google/siglip2-so400m-patch16-naflex", 1152, ("clip", "siglip2-g", "dino_v2", "sam")),
    "c-radio_v3-l": ModelInfo("nvidia/C-RADIOv3-L", "c-radio-v3_l_half.pth.tar",
                              "google/siglip2-so400m-patch16-naflex", 1152, ("clip", "siglip2-g", "dino_v2", "sam")),
    "c-radio_v3-h": ModelInfo("nvidia/C-RADIOv3-H", "c-radio_v3-h_half.pth.tar",
                              "google/siglip2-giant-opt-patch16-384", 1536, ("clip", "siglip2-g", "dino_v2", "sam")),
    "c-radio_v4-so400m": ModelInfo("nvidia/C-RADIOv4-SO400M", "c-radio_v4-so400m_half.pth.tar",
                                   "google/siglip2-giant-opt-patch16-384", 1536, ("siglip2-g", "dino_v3", "sam3")),
    "c-radio_v4-h": ModelInfo("nvidia/C-RADIOv4-H", "c-radio_v4-h_half.pth.tar",
                              "google/siglip2-giant-opt-patch16-384", 1536, ("siglip2-g", "dino_v3", "sam3")),
}
VERSIONS = tuple(MODELS)
HF_REPOS = {v: m.hf_repo for v, m in MODELS.items()}
RANDOM = ("random-tiny", "random-base")
# Our language names -> adaptor (teacher) names tried in order. C-RADIO checkpoints call the SigLIP2
# teacher "siglip2-g" (RADIO README); the RADSeg reference asks for "siglip2", so both are tried.
LANG_ADAPTORS = {"siglip2": ("siglip2-g", "siglip2"), "clip": ("clip",)}
# RADIO's radio/siglip2_adaptor.py _VERSION_MAP (teacher config "model" -> HF id); the checkout's own map
# is read when present, this copy only covers checkouts that lack an entry.
SIGLIP2_MODELS = {
    "siglip2-g-384": "google/siglip2-giant-opt-patch16-384",
    "siglip2-so400m": "google/siglip2-so400m-patch16-naflex",
}
TEXT_TYPES = ("siglip2", "open_clip")  # teacher types whose RADIO adaptor carries a text tower


class ModelLoadError(RuntimeError):
    """A model could not be built; the message says what to download and where to put it."""


@dataclass(frozen=True)
class RadioSpec:
    """Which RADIO to load and from where (plain config object; all paths optional)."""

    model: str = "c-radio_v3-b"  # a version above, "hf:<repo id or dir>", "random-tiny" or "random-base"
    lang: str = "siglip2"  # language adaptor: "siglip2" or "clip"
    sam: bool = False  # also load the "sam" adaptor (RADSeg+ refinement; C-RADIOv3 only)
    repo_dir: str | None = None  # local RADIO checkout with hubconf.py -> torch.hub source="local"
    checkpoint: str | None = None  # local checkpoint file (.pth.tar) instead of the download URL
    text_model_dir: str | None = None  # folder of local text models, one subfolder per HF id (see docs)
    hub_ref: str | None = None  # git ref of NVlabs/RADIO to pin, e.g. a commit; None = default branch
    device: str = "cpu"
    text_device: str = "cpu"  # where the text tower runs ("cpu" keeps GPU memory for the backbone)
    text_dtype: str = "auto"  # "auto" = float32 on CPU, float16 on GPU; or float32/float16/bfloat16
    text_keep_loaded: bool = True  # False frees the text tower after each cache miss
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


def _info(version: str) -> ModelInfo:
    return MODELS.get(version, MODELS["c-radio_v3-b"])


def _download_hint(spec: RadioSpec, text_model: str | None = None) -> str:
    info = _info(spec.model)
    version = spec.model if spec.model in MODELS else "c-radio_v3-b"
    text_model = text_model or info.text_model
    return (
        "To run offline, on a machine with network:\n"
        f"  1. git clone https://github.com/{HUB_REPO} <dir>/RADIO   (pass repo_dir=<dir>/RADIO)\n"
        f"  2. huggingface-cli download {info.hf_repo} {info.checkpoint_file} --local-dir <dir>\n"
        f"     (pass checkpoint=<dir>/{info.checkpoint_file}; {version})\n"
        f"  3. huggingface-cli download {text_model} --local-dir <dir>/text/{text_model}\n"
        "     (pass text_model_dir=<dir>/text)\n"
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
    # other published versions (v2.5 ...) load, but RADSeg was evaluated on C-RADIOv3 only
    if not version.startswith(("c-radio", "radio")):
        raise ModelLoadError(f"unknown model {version!r}; use one of {VERSIONS + RANDOM} or 'hf:<repo id>'")


def _text_dtype(spec: RadioSpec) -> torch.dtype:
    if spec.text_dtype == "auto":
        return torch.float16 if torch.device(spec.text_device).type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if spec.text_dtype not in dtypes:
        raise ModelLoadError(f"text_dtype must be auto, float32, float16 or bfloat16, got {spec.text_dtype!r}")
    return dtypes[spec.text_dtype]


def _require_dependencies() -> None:
    """RADIO's hubconf needs timm and einops; say which one is missing instead of a generic failure."""
    import importlib.util

    missing = [m for m in ("timm", "einops", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelLoadError(
            f"RADIO needs the Python packages {missing}: pip install -r requirements/robot.txt "
            f"(or pip install {' '.join(missing)})"
        )


# ---------------------------------------------------------------- text tower selection
def _siglip2_hf_name(tconf: dict, radio_pkg: str | None) -> str:
    """HF id of the SigLIP2 model a teacher entry names, read from RADIO's own map when available."""
    key = tconf.get("model")
    table = dict(SIGLIP2_MODELS)
    if radio_pkg is not None and f"{radio_pkg}.siglip2_adaptor" in sys.modules:
        table |= getattr(sys.modules[f"{radio_pkg}.siglip2_adaptor"], "_VERSION_MAP", {})
    if key not in table:
        raise ModelLoadError(
            f"the checkpoint's {tconf.get('name')!r} teacher names text model {key!r}, which neither this "
            f"RADIO checkout nor radseg_core knows ({sorted(table)}); update the RADIO checkout"
        )
    return table[key]


def _local_text_folder(text_model_dir: str, hf_name: str, spec: RadioSpec, dim: int) -> Path:
    """``<dir>/<org>/<name>``, ``<dir>/<name>``, or ``<dir>`` itself when it is that model (same size)."""
    from radseg_core.text import text_output_dim

    root = Path(text_model_dir).expanduser()
    for cand in (root / hf_name, root / hf_name.split("/")[-1]):
        if (cand / "config.json").is_file():
            return cand
    if (root / "config.json").is_file():
        found = text_output_dim(root)
        if found == dim:
            return root
        raise ModelLoadError(
            f"text model at {root} gives {found}-d vectors but the checkpoint's language head gives {dim}-d: "
            f"{spec.model} needs {hf_name}.\n"
            f"  huggingface-cli download {hf_name} --local-dir {root / hf_name}"
        )
    raise ModelLoadError(
        f"no local copy of {hf_name} (the text model this checkpoint was trained against) under {root}: "
        f"looked for {root / hf_name}.\n  huggingface-cli download {hf_name} --local-dir {root / hf_name}"
    )


def _hf_cache_text_folder(hf_name: str, spec: RadioSpec) -> Path:
    """The model's folder in the Hugging Face cache, downloading it when allowed (what RADIO itself does)."""
    try:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(hf_name, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached yet: try the network unless offline
            return Path(snapshot_download(hf_name))
    except Exception as exc:
        raise ModelLoadError(
            f"text model {hf_name} is neither cached nor downloadable ({type(exc).__name__}: {exc}).\n"
            + _download_hint(spec, hf_name)
        ) from exc


def _siglip2_text_tower(hf_name: str, dim: int, spec: RadioSpec) -> TextTower:
    """Only the text half of the named SigLIP2 model, lazily loaded; its size must match the head."""
    from radseg_core.text import text_output_dim

    if spec.text_model_dir is not None:
        folder = _local_text_folder(spec.text_model_dir, hf_name, spec, dim)
    else:
        folder = _hf_cache_text_folder(hf_name, spec)
    found = text_output_dim(folder)
    if found != dim:
        raise ModelLoadError(
            f"text model {hf_name} at {folder} gives {found}-d vectors but the language head gives {dim}-d; "
            f"replace it: huggingface-cli download {hf_name} --local-dir {folder}"
        )
    return HFTextTower(
        folder, device=spec.text_device, name=hf_name, dtype=_text_dtype(spec),
        keep_loaded=spec.text_keep_loaded,
    )


def _head_dim(adaptor: nn.Module) -> int:
    return int([m for m in adaptor.head_mlp.modules() if isinstance(m, nn.Linear)][-1].out_features)


# ---------------------------------------------------------------- torch.hub / local checkout
def _hub_load(spec: RadioSpec) -> tuple[nn.Module, dict]:
    """RADIO's hubconf ``radio_model`` without adaptors, plus its checkpoint dict (teachers, state)."""
    kwargs = dict(progress=False, skip_validation=True, adaptor_names=None, return_checkpoint=True)
    version = spec.checkpoint or spec.model
    if spec.repo_dir is not None:
        repo = Path(spec.repo_dir).expanduser()
        if not (repo / "hubconf.py").is_file():
            raise ModelLoadError(
                f"repo_dir {repo} is not a RADIO checkout (no hubconf.py).\n" + _download_hint(spec)
            )
        return torch.hub.load(str(repo), "radio_model", source="local", version=version, **kwargs)
    source = HUB_REPO + (f":{spec.hub_ref}" if spec.hub_ref else "")
    return torch.hub.load(source, "radio_model", version=version, trust_repo=True, **kwargs)


def _adaptor_state(state_dict: dict, tidx: int, name: str) -> dict:
    """The teacher's summary/feature head weights, keyed as RADIO's hubconf and hf_hub.py key them."""
    out = {}
    for src, dst in (
        (f"_heads.{tidx}", "summary"), (f"_heads.{name}", "summary"),
        (f"_feature_projections.{tidx}", "feature"), (f"_feature_projections.{name}", "feature"),
    ):
        for k, v in state_dict.items():
            if k.startswith(src + "."):
                out[dst + k[len(src):]] = v
    return out


def _build_adaptors(radio: nn.Module, chk: dict, spec: RadioSpec) -> tuple[str, nn.Module, nn.Module | None]:
    """Language (and SAM) adaptors with RADIO's own classes, as hubconf builds them, minus the eager
    download of the whole SigLIP2 model: a siglip2 teacher gets RADIO's GenericAdaptor (its MLPs) and a
    separate, lazily loaded text tower chosen by the teacher's ``model`` entry."""
    pkg = type(radio).__module__.rsplit(".", 1)[0]  # the checkout's "radio" package
    generic = importlib.import_module(f"{pkg}.adaptor_generic").GenericAdaptor
    registry = importlib.import_module(f"{pkg}.adaptor_registry").adaptor_registry
    args = chk["args"]
    teachers = list(args.teachers)
    names = [t["name"] for t in teachers]
    state = chk.get("state_dict_ema") or chk["state_dict"]
    per_teacher = getattr(args, "cls_token_per_teacher", True)

    def make(name: str, text: bool) -> nn.Module:
        tidx = names.index(name)
        tconf = teachers[tidx]
        ad_state = _adaptor_state(state, tidx, name)
        if text and tconf["type"] == "siglip2":
            adaptor = generic(args, tconf, ad_state)
        else:
            adaptor = registry.create_adaptor(tconf["type"], args, tconf, ad_state)
        adaptor.head_idx = tconf.get("token_slot", tidx) if per_teacher else 0
        adaptor.radseg_teacher = tconf
        return adaptor

    if spec.sam and "sam" not in names:
        raise ModelLoadError(
            f"RADSeg+ (sam_refine) needs RADIO's 'sam' adaptor; {spec.model} has adaptors {names} and no "
            "'sam' (C-RADIOv4 distils SAM3, whose decoder RADSeg+ does not use). Use a C-RADIOv3 model "
            "(c-radio_v3-b/-l/-h) or turn sam_refine off."
        )
    lang_name = next((n for n in _adaptor_candidates(spec.lang) if n in names), None)
    if lang_name is None:
        raise ModelLoadError(
            f"{spec.model} has no {spec.lang} language adaptor (tried {list(_adaptor_candidates(spec.lang))}); "
            f"its adaptors are {names}"
        )
    lang = make(lang_name, text=True)
    sam = make("sam", text=False) if spec.sam else None
    return lang_name, lang, sam


def _load_hub_like(spec: RadioSpec) -> LoadedRadio:
    from radseg_core.compat import patch_torchvision

    patch_torchvision()  # RADIO's hubconf imports timm (and through it torchvision)
    _require_dependencies()
    if spec.checkpoint is not None and not Path(spec.checkpoint).expanduser().is_file():
        raise ModelLoadError(f"checkpoint {spec.checkpoint} does not exist.\n" + _download_hint(spec))
    if spec.checkpoint is not None:
        spec = replace(spec, checkpoint=str(Path(spec.checkpoint).expanduser()))
    try:
        radio, chk = _hub_load(spec)
    except ModelLoadError:
        raise
    except ImportError as exc:  # never hide which package is missing
        raise ModelLoadError(
            f"RADIO's code could not import {getattr(exc, 'name', None) or exc}: {exc}. "
            "pip install -r requirements/robot.txt"
        ) from exc
    except TypeError as exc:
        if "return_checkpoint" not in str(exc):
            raise ModelLoadError(f"loading RADIO {spec.model} failed: {type(exc).__name__}: {exc}") from exc
        raise ModelLoadError(
            "this RADIO checkout is too old (its hubconf has no return_checkpoint): update it with "
            "`git pull` in the checkout, or delete the torch hub cache copy"
        ) from exc
    except Exception as exc:  # network, missing cache ...
        raise ModelLoadError(
            f"could not load RADIO {spec.model!r} via torch.hub: {type(exc).__name__}: {exc}\n"
            + _download_hint(spec)
        ) from exc
    lang_name, lang, sam = _build_adaptors(radio, chk, spec)
    tconf = lang.radseg_teacher
    del chk
    if tconf["type"] == "siglip2":
        pkg = type(radio).__module__.rsplit(".", 1)[0]
        text = _siglip2_text_tower(_siglip2_hf_name(tconf, pkg), _head_dim(lang), spec)
    else:  # open_clip: RADIO's adaptor built the tower from open_clip's own cache
        key = f"open_clip:{tconf.get('model')}:{tconf.get('pretrained')}"
        text = AdaptorTextTower(lang, key, spec.device)
    radio.adaptors = None
    return _finish(radio, lang, sam, text, spec, lang_name, name=spec.model)


def _load_hf(spec: RadioSpec) -> LoadedRadio:
    from radseg_core.compat import patch_torchvision

    patch_torchvision()  # transformers and RADIO's hf_model import timm/torchvision
    _require_dependencies()
    repo = spec.model[3:] if spec.model.startswith("hf:") else HF_REPOS[spec.model]
    if spec.lang != "siglip2":
        raise ModelLoadError("the HF route supports the siglip2 language adaptor only; use torch.hub for clip")
    version = next((v for v, m in MODELS.items() if m.hf_repo == repo), None)
    info = _info(version or "")
    ckpt_hint = (
        f"get the adaptors from the checkpoint in the same repo:\n"
        f"  huggingface-cli download {info.hf_repo} {info.checkpoint_file} --local-dir <dir>\n"
        f"  and load with checkpoint=<dir>/{info.checkpoint_file} (plus repo_dir=<RADIO checkout> offline)"
    )
    try:
        from transformers import AutoConfig, AutoModel

        local = Path(repo).expanduser().is_dir()
        config = AutoConfig.from_pretrained(repo, trust_remote_code=True, local_files_only=local)
    except ImportError as exc:
        raise ModelLoadError(f"the HF route could not import {exc.name or exc}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"could not load {repo} from Hugging Face: {type(exc).__name__}: {exc}\n"
            f"Download it once with `huggingface-cli download {repo} --local-dir <dir>` "
            "and pass model='hf:<dir>'."
        ) from exc
    if version is None and getattr(config, "version", None) in MODELS:  # a local copy: its config says
        version = config.version
        info = _info(version)
        ckpt_hint = (
            f"get the adaptors from the checkpoint in the same repo:\n"
            f"  huggingface-cli download {info.hf_repo} {info.checkpoint_file} --local-dir <dir>\n"
            f"  and load with checkpoint=<dir>/{info.checkpoint_file} (plus repo_dir=<RADIO checkout> offline)"
        )
    teachers = list((config.args or {}).get("teachers", []))
    names = [t["name"] for t in teachers]
    lang_name = next((n for n in _adaptor_candidates(spec.lang) if n in names), None)
    if lang_name is None:
        raise ModelLoadError(f"{repo} has no siglip2 language teacher; its teachers are {names}")
    if spec.sam and "sam" not in names:
        raise ModelLoadError(
            f"RADSeg+ (sam_refine) needs RADIO's 'sam' adaptor; {repo} has adaptors {names} and no 'sam'. "
            "Use a C-RADIOv3 model or turn sam_refine off."
        )
    wanted = [lang_name] + (["sam"] if spec.sam else [])
    exported = dict(config.adaptor_configs or {})
    absent = [n for n in wanted if n not in exported]
    if absent:
        raise ModelLoadError(
            f"{repo}'s config.json exports no adaptor weights for {absent} (adaptor_configs: "
            f"{sorted(exported)}), so from_pretrained gives no language head. This is how NVIDIA publishes "
            f"C-RADIO on Hugging Face, not a broken download; {ckpt_hint}"
        )
    config.adaptor_names = wanted
    try:
        hf = AutoModel.from_pretrained(repo, config=config, trust_remote_code=True, local_files_only=local)
    except ImportError as exc:
        raise ModelLoadError(f"the HF route could not import {exc.name or exc}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"could not build {repo}: {type(exc).__name__}: {exc}") from exc
    radio = hf.radio_model
    adaptors = dict(radio.adaptors)
    lang = adaptors[lang_name]
    tconf = teachers[names.index(lang_name)]
    pkg = type(radio).__module__.rsplit(".", 1)[0]
    text = _siglip2_text_tower(_siglip2_hf_name(tconf, pkg), _head_dim(lang), spec)
    radio.adaptors = None
    return _finish(radio, lang, adaptors.get("sam"), text, spec, lang_name, name=repo)


def _finish(
    model: nn.Module, lang: nn.Module, sam: nn.Module | None, text: TextTower, spec: RadioSpec,
    lang_name: str, name: str,
) -> LoadedRadio:
    _validate(model)
    if not hasattr(lang, "head_mlp"):
        raise ModelLoadError(f"adaptor {lang_name!r} has no head_mlp (summary head) for dense language alignment")
    device = torch.device(spec.device)
    model.to(device).eval()
    lang.to(device).eval()
    if sam is not None:
        sam.to(device).eval()
    model.radseg_lang_name = lang_name
    return LoadedRadio(model, lang, sam, text, name)


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
    elif has_tower:  # the adaptor's own tower (random replicas, injected RADIO objects)
        text = AdaptorTextTower(lang, key, device)
    elif spec.text_model_dir is not None:  # an injected model: the folder is the text model itself
        from radseg_core.text import text_output_dim

        folder = Path(spec.text_model_dir).expanduser()
        if (folder / "config.json").is_file() and text_output_dim(folder) != _head_dim(lang):
            raise ModelLoadError(
                f"text model at {folder} gives {text_output_dim(folder)}-d vectors but adaptor {lang_name!r} "
                f"gives {_head_dim(lang)}-d; use the SigLIP2 model the checkpoint was trained against"
            )
        text = HFTextTower(folder, device=spec.text_device, dtype=_text_dtype(spec), keep_loaded=spec.text_keep_loaded)
    else:
        raise ModelLoadError(
            f"adaptor {lang_name!r} has no text tower (tokenizer/encode_text): pass text_model_dir=<dir> with "
            f"the SigLIP2 model it was trained against (`huggingface-cli download <model> --local-dir <dir>`, "
            "see docs/encoder.md)"
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
    return _load_hub_like(spec)
