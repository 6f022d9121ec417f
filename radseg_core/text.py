"""Text side of RADSeg: prompt templates, text towers and a cached, template-averaged TextEmbedder.

Text embeddings are needed per query, not per frame, and a robot asks the same labels over and over;
the embedder therefore caches each (model, template set, label) vector in memory and, when given a
directory, on disk (one small file per label, written atomically, safe to share between processes).
"""

from __future__ import annotations

import hashlib
import os
import string
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

# The 80 ImageNet prompt templates of CLIP (Radford et al., 2021), as used by RADSeg for every label.
IMAGENET_TEMPLATES: tuple[str, ...] = tuple(
    t + "."
    for t in (
        "a bad photo of a {}",
        "a photo of many {}",
        "a sculpture of a {}",
        "a photo of the hard to see {}",
        "a low resolution photo of the {}",
        "a rendering of a {}",
        "graffiti of a {}",
        "a bad photo of the {}",
        "a cropped photo of the {}",
        "a tattoo of a {}",
        "the embroidered {}",
        "a photo of a hard to see {}",
        "a bright photo of a {}",
        "a photo of a clean {}",
        "a photo of a dirty {}",
        "a dark photo of the {}",
        "a drawing of a {}",
        "a photo of my {}",
        "the plastic {}",
        "a photo of the cool {}",
        "a close-up photo of a {}",
        "a black and white photo of the {}",
        "a painting of the {}",
        "a painting of a {}",
        "a pixelated photo of the {}",
        "a sculpture of the {}",
        "a bright photo of the {}",
        "a cropped photo of a {}",
        "a plastic {}",
        "a photo of the dirty {}",
        "a jpeg corrupted photo of a {}",
        "a blurry photo of the {}",
        "a photo of the {}",
        "a good photo of the {}",
        "a rendering of the {}",
        "a {} in a video game",
        "a photo of one {}",
        "a doodle of a {}",
        "a close-up photo of the {}",
        "a photo of a {}",
        "the origami {}",
        "the {} in a video game",
        "a sketch of a {}",
        "a doodle of the {}",
        "a origami {}",
        "a low resolution photo of a {}",
        "the toy {}",
        "a rendition of the {}",
        "a photo of the clean {}",
        "a photo of a large {}",
        "a rendition of a {}",
        "a photo of a nice {}",
        "a photo of a weird {}",
        "a blurry photo of a {}",
        "a cartoon {}",
        "art of a {}",
        "a sketch of the {}",
        "a embroidered {}",
        "a pixelated photo of a {}",
        "itap of the {}",
        "a jpeg corrupted photo of the {}",
        "a good photo of a {}",
        "a plushie {}",
        "a photo of the nice {}",
        "a photo of the small {}",
        "a photo of the weird {}",
        "the cartoon {}",
        "art of the {}",
        "a drawing of the {}",
        "a photo of the large {}",
        "a black and white photo of a {}",
        "the plushie {}",
        "a dark photo of a {}",
        "itap of a {}",
        "graffiti of the {}",
        "a toy {}",
        "itap of my {}",
        "a photo of a cool {}",
        "a photo of a small {}",
        "a tattoo of the {}",
    )
)


class TextTower(Protocol):
    """Anything that turns strings into (unnormalised) vectors in the language adaptor's space.

    ``key`` names the weights for the on-disk cache; ``None`` (e.g. an injected object of unknown origin)
    disables the disk cache so vectors of different models can never be mixed.
    """

    key: str | None

    def encode(self, texts: list[str]) -> torch.Tensor: ...


class AdaptorTextTower:
    """The text tower RADIO's language adaptors carry (``adaptor.tokenizer`` + ``adaptor.encode_text``)."""

    def __init__(self, adaptor: torch.nn.Module, key: str | None, device: str | torch.device = "cpu") -> None:
        if not (hasattr(adaptor, "tokenizer") and hasattr(adaptor, "encode_text")):
            raise TypeError(
                "this language adaptor has no text tower (tokenizer/encode_text); "
                "HF `nvidia/C-RADIO*` models ship only the MLPs - "
                "pass a local SigLIP2 text model directory (text_model_dir=...)"
            )
        self.adaptor = adaptor
        self.key = key
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        tokens = self.adaptor.tokenizer(list(texts))
        tokens = tokens.to(self.device) if hasattr(tokens, "to") else tokens
        return self.adaptor.encode_text(tokens).float()


def canonicalize_text(text: str) -> str:
    """SigLIP/big_vision canonical form: underscores to spaces, no punctuation, lower case, single spaces."""
    text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation)).lower()
    return " ".join(text.split())


def files_fingerprint(path: str | os.PathLike, sample: int = 4 << 20) -> str:
    """Identity of a model folder's contents: names, sizes and content hashes of every file.

    Files up to ``2 * sample`` bytes are hashed whole; larger ones (weights) by size plus their first and
    last ``sample`` bytes, which changes whenever different weights are copied in, at a fixed cost.
    """
    digest = hashlib.sha256()
    root = Path(path)
    # hidden files and folders (e.g. the .cache/huggingface bookkeeping of --local-dir downloads) change
    # on every re-download without changing the model
    files = (p for p in root.rglob("*") if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for file in sorted(files):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root)}\0{size}\0".encode())
        with open(file, "rb") as fh:
            if size <= 2 * sample:
                digest.update(fh.read())
            else:
                digest.update(fh.read(sample))
                fh.seek(size - sample)
                digest.update(fh.read(sample))
    return digest.hexdigest()[:24]


def text_output_dim(path: str | os.PathLike) -> int:
    """Pooled text output size from a SigLIP/SigLIP2 ``config.json`` without loading weights.

    SigLIP's text head maps ``hidden_size`` to ``projection_size`` (giant-opt: 1152 -> 1536); the pooled
    output RADIO's adaptor is trained against has the latter size.
    """
    import json

    cfg = json.loads((Path(path) / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    return int(text.get("projection_size") or text.get("hidden_size"))


class HFTextTower:
    """Only the text half of a SigLIP/SigLIP2 model from a local Hugging Face folder, loaded lazily.

    The vision half is never built. The tower is loaded on the first :meth:`encode` (a label that misses
    the text cache), on ``device`` in ``dtype`` (fp32 on CPU by default; fp16 is the choice on a GPU), and
    dropped again after each call when ``keep_loaded`` is False. Tokenisation follows RADIO's
    ``SigLIP2WrappedTokenizer``: big_vision canonical text, padding to ``max_length`` (64), truncation.
    """

    CANON = "bigvision-canon"

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        max_length: int = 64,
        *,
        name: str | None = None,
        dtype: torch.dtype = torch.float32,
        keep_loaded: bool = True,
    ) -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no text model at {path}: it needs config.json, weights and tokenizer files. Download once "
                f"with network: `huggingface-cli download {name or 'google/siglip2-so400m-patch16-naflex'} "
                f"--local-dir {path}`"
            )
        self.path = path
        self.name = name or path.name
        self.dim = text_output_dim(path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.keep_loaded = keep_loaded
        self.model: torch.nn.Module | None = None
        self.tokenizer = None
        self.loads = 0  # how often the weights were read (tests, stats)
        self.fallback: str | None = None  # set when a low-precision dtype failed and float32 took over
        self._key: str | None = None
        # The node encodes frames (labels) and answers queries on different threads: one lock around
        # load / encode / unload, or keep_loaded=False could free the tower under another thread's call.
        self._lock = threading.RLock()

    @property
    def key(self) -> str:
        """Model name + folder content hash + output size + tokenizer settings (the text cache key)."""
        if self._key is None:
            self._key = (
                f"hf:{self.name}:{files_fingerprint(self.path)}:d{self.dim}:"
                f"len{self.max_length}:pad-max:{self.CANON}:{str(self.dtype).removeprefix('torch.')}"
            )
        return self._key

    def load(self) -> None:
        """Read tokenizer and text weights (only the text tower)."""
        from radseg_core.compat import patch_torchvision

        patch_torchvision()  # transformers may import torchvision
        import transformers
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        classes = {"siglip": "SiglipTextModel", "siglip2": "Siglip2TextModel"}
        if config.model_type not in classes:
            raise ValueError(f"{self.path} holds a {config.model_type!r} model, expected SigLIP or SigLIP2")
        cls = getattr(transformers, classes[config.model_type])
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the skipped vision weights are expected, not news
        try:
            model = cls.from_pretrained(self.path, config=config.text_config, local_files_only=True)
        finally:
            transformers.logging.set_verbosity(verbosity)
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.loads += 1

    def unload(self) -> None:
        self.model = None
        self.tokenizer = None

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        with self._lock:
            return self._encode_locked(texts)

    def _encode_locked(self, texts: list[str]) -> torch.Tensor:
        if self.model is None:
            self.load()
        try:
            tokens = self.tokenizer(
                [canonicalize_text(t) for t in texts],
                return_tensors="pt",
                padding="max_length",
                max_length=self.max_length,
                truncation=True,
            ).to(self.device)
            tokens.pop("token_type_ids", None)
            out = self.model(**tokens, return_dict=True).pooler_output.float()
        finally:
            if not self.keep_loaded:
                self.unload()
        if not torch.isfinite(out).all():
            if self.dtype == torch.float32:
                raise FloatingPointError(f"text tower {self.name} gave non-finite vectors in float32")
            self.fallback = (
                f"text tower {self.name} gave non-finite vectors in {self.dtype}; re-encoding in float32 "
                "from now on (set text_dtype: float32 to skip the attempt)"
            )
            warnings.warn(self.fallback, RuntimeWarning, stacklevel=2)
            self.dtype = torch.float32
            self.unload()
            self._key = None
            return self._encode_locked(texts)
        return out


class TextEmbedder:
    """Normalised, template-averaged label embeddings with an in-memory and optional on-disk cache.

    Each label is put into every template, the template embeddings are normalised, averaged and normalised
    again (the reference stops before the last normalisation; cosine scores are unaffected).
    """

    def __init__(
        self,
        tower: TextTower,
        *,
        templates: tuple[str, ...] | list[str] = IMAGENET_TEMPLATES,
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = 256,
    ) -> None:
        if not templates or any("{}" not in t for t in templates):
            raise ValueError("every template needs a '{}' placeholder")
        self.tower = tower
        self.templates = tuple(templates)
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[str, torch.Tensor] = {}
        # templates enter the key verbatim (hashed): a changed template set never reuses vectors
        self._template_hash = hashlib.sha256("\n".join(self.templates).encode()).hexdigest()[:16]
        self.calls = 0  # how many strings went through the tower (for tests and stats)

    @property
    def key(self) -> str | None:
        return self.tower.key

    def _identity(self, label: str, templated: bool) -> str:
        """Everything that determines a vector: tower key (model, weights hash, size, tokenizer settings),
        the template set and the label."""
        tag = self._template_hash if templated else "raw"
        return f"{self.key}\0{tag}\0{label}"

    def _cache_name(self, label: str, templated: bool) -> str:
        return hashlib.sha256(self._identity(label, templated).encode()).hexdigest()[:40]

    def _disk_path(self, name: str) -> Path | None:
        if self.cache_dir is None or self.key is None:
            return None
        return self.cache_dir / f"{name}.pt"

    def _load(self, name: str, identity: str) -> torch.Tensor | None:
        if name in self._memory:
            return self._memory[name]
        path = self._disk_path(name)
        if path is None or not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            vec = entry["vector"] if isinstance(entry, dict) else None
            ok = (
                isinstance(vec, torch.Tensor) and entry.get("identity") == identity and vec.ndim == 1
                and bool(torch.isfinite(vec).all())
            )
        except Exception:  # noqa: BLE001 - unreadable, partial, or an older layout
            ok = False
        if not ok:
            return None  # stale or corrupt: recomputed and overwritten, never served
        self._memory[name] = vec
        return vec

    def _store(self, name: str, identity: str, vec: torch.Tensor) -> None:
        self._memory[name] = vec
        path = self._disk_path(name)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save({"identity": identity, "vector": vec}, tmp)
        os.replace(tmp, path)

    def _tower(self, texts: list[str]) -> torch.Tensor:
        self.calls += len(texts)
        parts = [
            self.tower.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)
        ]
        return F.normalize(torch.cat(parts).float().cpu(), dim=-1)

    def encode(self, labels: list[str], templated: bool = True) -> torch.Tensor:
        """(Q, D) normalised embeddings on the CPU; ``templated=False`` embeds the strings as given."""
        labels = list(labels)
        if not labels:
            raise ValueError("need at least one label")
        names = [self._cache_name(lbl, templated) for lbl in labels]
        missing = [
            lbl
            for lbl, n in zip(labels, names, strict=True)
            if self._load(n, self._identity(lbl, templated)) is None
        ]
        missing = list(dict.fromkeys(missing))
        if missing:
            per = len(self.templates) if templated else 1
            texts = [t.format(lbl) for lbl in missing for t in self.templates] if templated else missing
            vecs = self._tower(texts).view(len(missing), per, -1).mean(dim=1)
            for lbl, vec in zip(missing, F.normalize(vecs, dim=-1), strict=True):
                self._store(self._cache_name(lbl, templated), self._identity(lbl, templated), vec.clone())
        return torch.stack([self._memory[n] for n in names])
