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


class HFTextTower:
    """A SigLIP2 text model from a local Hugging Face directory (offline robots, HF-hosted RADIO)."""

    def __init__(
        self, path: str | os.PathLike, device: str | torch.device = "cpu", max_length: int = 64
    ) -> None:
        from radseg_core.compat import patch_torchvision

        patch_torchvision()  # transformers may import torchvision
        from transformers import AutoModel, AutoTokenizer

        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no text model at {path}: it needs config.json, weights and tokenizer files. Download once "
                "with network: `huggingface-cli download google/siglip2-giant-opt-patch16-384 "
                f"--local-dir {path}`"
            )
        model = AutoModel.from_pretrained(path, local_files_only=True)
        self.model = getattr(model, "text_model", model).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.device = torch.device(device)
        self.max_length = max_length
        self.key = f"hf:{path.resolve()}"

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            [canonicalize_text(t) for t in texts],
            return_tensors="pt",
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
        ).to(self.device)
        out = self.model(**tokens, return_dict=True)
        return out.pooler_output.float()


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
        self._template_hash = hashlib.sha256("\n".join(self.templates).encode()).hexdigest()[:16]
        self.calls = 0  # how many strings went through the tower (for tests and stats)

    @property
    def key(self) -> str | None:
        return self.tower.key

    def _cache_name(self, label: str, templated: bool) -> str:
        tag = self._template_hash if templated else "raw"
        return hashlib.sha256(f"{self.key}\0{tag}\0{label}".encode()).hexdigest()[:40]

    def _disk_path(self, name: str) -> Path | None:
        if self.cache_dir is None or self.key is None:
            return None
        return self.cache_dir / f"{name}.pt"

    def _load(self, name: str) -> torch.Tensor | None:
        if name in self._memory:
            return self._memory[name]
        path = self._disk_path(name)
        if path is not None and path.is_file():
            try:
                vec = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - any unreadable file
                return None  # a corrupt or partial file is recomputed and overwritten
            self._memory[name] = vec
            return vec
        return None

    def _store(self, name: str, vec: torch.Tensor) -> None:
        self._memory[name] = vec
        path = self._disk_path(name)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save(vec, tmp)
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
        missing = [lbl for lbl, n in zip(labels, names, strict=True) if self._load(n) is None]
        missing = list(dict.fromkeys(missing))
        if missing:
            per = len(self.templates) if templated else 1
            texts = [t.format(lbl) for lbl in missing for t in self.templates] if templated else missing
            vecs = self._tower(texts).view(len(missing), per, -1).mean(dim=1)
            for lbl, vec in zip(missing, F.normalize(vecs, dim=-1), strict=True):
                self._store(self._cache_name(lbl, templated), vec.clone())
        return torch.stack([self._memory[n] for n in names])
