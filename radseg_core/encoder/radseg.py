"""RADSegEncoder: RADIO + SCRA + sliding windows + SCGA + dense language alignment (+ RADIO-SAM).

Pipeline per call (all windows of all images in one backbone forward):
  rgb -> [0,1] float -> resize to multiples of 16 (``input_sizing``, windows.py) -> windows
  -> RADIO (SCRA in the last block)
  -> stitch (exact overlap mean) -> SCGA -> raw features (C, h, w)            = encode_features
  raw features -> language adaptor summary head (head_mlp) -> L2 normalise    = align
  aligned x text -> softmax(100 cos) over classes -> image resolution -> prompt denoising -> labels = predict

Prediction semantics (following the reference ``RADSegEncoder`` with predict=True):
  * ``probs[k]`` is softmax over the K given classes of ``100 * cos(text_k, pixel)``, bilinearly upsampled
    once to the output size (the input image's, or ``size``: the 2D benchmarks' original image); a
    class whose maximum over the image is below ``prompt_denoising`` (0.5) is zeroed everywhere ("prompt
    denoising"; per image here, over the whole batch in the reference).
  * ``labels`` is ``argmax_k probs + 1``; 0 is "ignore": pixels whose best remaining probability is below
    ``prediction_thresh`` (default 0.0 as in the reference) and, with ``denoised_pixels="ignore"``
    (default), pixels where every class was denoised away. The reference takes the argmax there too, so
    such pixels get class 1: ``denoised_pixels="argmax"`` (the evaluation presets) does the same.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radseg_core.encoder.backends import BACKENDS, BackendError, attach_onnxruntime, import_onnxruntime, torch_windows
from radseg_core.encoder.scga import DEFAULT_BLOCK_ELEMS, scga
from radseg_core.encoder.scra import install_scra, remove_scra
from radseg_core.encoder.windows import (
    WindowGrid,
    crop_windows,
    snap_size,
    stitch_windows,
    stride_size,
    window_grid,
)
from radseg_core.model.loading import LoadedRadio, RadioSpec, load_radio
from radseg_core.text import TextEmbedder

LOGIT_SCALE = 100.0  # CLIP's logit scale, fixed in the reference
INPUT_SIZINGS = ("snap16", "official")
DENOISED_PIXELS = ("ignore", "argmax")

RadioLike = LoadedRadio | nn.Module


@dataclass
class SegmentationResult:
    """Per-pixel class probabilities and labels at the input image resolution.

    Shapes are (K, H, W) / (H, W) for one image and (B, K, H, W) / (B, H, W) for a batch.
    ``labels == k + 1`` means ``class_names[k]``; 0 means ignore.
    """

    probs: torch.Tensor  # float32, after prompt denoising (and refinement when on)
    labels: torch.Tensor  # int64
    scores: torch.Tensor  # float32, best class probability per pixel (before refinement)
    class_names: list[str] = field(default_factory=list)
    refined: bool = False
    coarse_probs: torch.Tensor | None = None  # the probabilities before refinement (RADSeg+ only)

    def map_probs(self) -> torch.Tensor:
        """Probabilities for a map: the refined ones, and the coarse ones where refinement left a pixel
        all zero (no kept mask covers it; its label is the coarse one there too), so a probability map
        never averages in zero vectors that only say "SAM kept no mask here"."""
        if self.coarse_probs is None:
            return self.probs
        empty = (self.probs == 0).all(dim=-3, keepdim=True)
        return torch.where(empty, self.coarse_probs, self.probs)

    @property
    def label_names(self) -> list[str]:
        """Names indexed by label value (0 = ignore = '')."""
        return ["", *self.class_names]


class RADSegEncoder:
    """Open-vocabulary segmentation encoder (RADSeg, arXiv 2511.19704) on a RADIO-like model."""

    def __init__(
        self,
        model: RadioLike,
        text: TextEmbedder,
        *,
        crop: int = 336,
        stride: int = 224,
        scra_scaling: float = 10.0,
        scga_scaling: float = 10.0,
        scra: bool = True,
        scga: bool = True,
        sam_refine: bool = False,
        autocast_dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        lang: str = "siglip2",
        prompt_denoising: float = 0.5,
        prediction_thresh: float = 0.0,
        scga_block_elems: int = DEFAULT_BLOCK_ELEMS,
        max_windows_per_forward: int | None = None,
        sam_refiner=None,
        compile: bool = False,
        model_name: str | None = None,
        input_sizing: str = "snap16",
        denoised_pixels: str = "ignore",
    ) -> None:
        loaded = model if isinstance(model, LoadedRadio) else load_radio(model, lang=lang, device=str(device))
        self.device = torch.device(device)
        self.loaded = loaded
        self.model = loaded.model.to(self.device).eval()
        self.lang_adaptor = loaded.lang_adaptor.to(self.device).eval()
        sam = loaded.sam_adaptor
        self.sam_adaptor = sam.to(self.device).eval() if sam is not None else None
        self.text = text
        self.patch = int(self.model.patch_size)
        if crop > 0 and (crop % self.patch or stride % self.patch):
            raise ValueError(
                f"crop ({crop}) and stride ({stride}) must be multiples of the patch size {self.patch}"
            )
        self.crop, self.stride = crop, stride
        if input_sizing not in INPUT_SIZINGS:
            raise ValueError(f"input_sizing must be one of {', '.join(INPUT_SIZINGS)}, got {input_sizing!r}")
        if denoised_pixels not in DENOISED_PIXELS:
            raise ValueError(f"denoised_pixels must be one of {', '.join(DENOISED_PIXELS)}, got {denoised_pixels!r}")
        self.input_sizing, self.denoised_pixels = input_sizing, denoised_pixels
        self.scga_enabled, self.scga_scaling, self.scga_block_elems = scga, scga_scaling, scga_block_elems
        self.prompt_denoising, self.prediction_thresh = prompt_denoising, prediction_thresh
        self.autocast_dtype = autocast_dtype
        self.autocast_fallback: str | None = None  # why autocast was turned off, when it was
        self.max_windows_per_forward = max_windows_per_forward
        self._model_name = model_name or loaded.name
        self.set_scra(scra, scra_scaling)
        # per-window backbone (backends.py): torch here; build_encoder(backend="onnxruntime") swaps it
        self.window_backend = torch_windows(self.model, self.patch, compile)
        self.backend_name = "torch"
        self._text_device: dict[tuple[str, ...], torch.Tensor] = {}
        self.sam_refiner = None
        if sam_refine:
            if sam_refiner is None:
                raise ValueError(
                    "sam_refine=True needs a sam_refiner (see build_encoder(sam_checkpoint=...))"
                )
            if self.sam_adaptor is None:
                raise ValueError("sam_refine=True needs the model's 'sam' adaptor (load with sam=True)")
            self.sam_refiner = sam_refiner

    # ----------------------------------------------------------------- properties
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def feature_dim(self) -> int:
        """C: raw RADIO feature size (768 for C-RADIOv3-B)."""
        return (
            int(self.model.embed_dim) if hasattr(self.model, "embed_dim") else int(self.model.model.embed_dim)
        )

    @property
    def language_dim(self) -> int:
        """D: language-aligned size (1152 for C-RADIOv3-B/L, SigLIP2-so400m; 1536 for v3-H/v4, giant-opt)."""
        head = self.lang_adaptor.head_mlp
        last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        return int(last.out_features)

    def set_scra(self, enabled: bool, scaling: float = 10.0) -> None:
        """Install (or remove) SCRA in the last block; useful for ablations and timing.

        SCRA lives in the model (the last block's attention is swapped), so encoders sharing one model
        must agree on it: a different setting is refused rather than silently changing the other
        encoder's output. Load a second model (``load_radio`` again) for a different setting.
        """
        owners = self.model.__dict__.setdefault("_radseg_scra_owners", weakref.WeakSet())
        mine = (bool(enabled), float(scaling) if enabled else None)
        for other in owners:
            if other is not self and (other.scra_enabled, other.scra_scaling if other.scra_enabled else None) != mine:
                raise ValueError(
                    f"this RADIO model is shared with another RADSegEncoder that uses SCRA "
                    f"{'on (scaling ' + str(other.scra_scaling) + ')' if other.scra_enabled else 'off'}; "
                    f"SCRA {'on (scaling ' + str(float(scaling)) + ')' if enabled else 'off'} would change its "
                    "output. Load a separate model (load_radio(...) again) for a different SCRA setting."
                )
        owners.add(self)
        self.scra_enabled = bool(enabled)
        self.scra_scaling = float(scaling)
        if enabled:
            install_scra(self.model, scaling)
        else:
            remove_scra(self.model)

    def check_autocast(self) -> str | None:
        """Run one window in the autocast dtype; when the features are not finite (a bf16/fp16 overflow
        on this device or model), fall back to float32 and say so. Returns the message, or None if fine."""
        if self.autocast_dtype is None:
            return None
        side = self.crop if self.crop > 0 else 4 * self.patch
        probe = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(self.device)
        feats = self.backbone(probe)
        aligned = self.align(feats.flatten(2).transpose(1, 2)[0, :16].float())
        if torch.isfinite(feats).all() and torch.isfinite(aligned).all():
            return None
        self.autocast_fallback = (
            f"{str(self.autocast_dtype).removeprefix('torch.')} autocast gave non-finite features on "
            f"{self.device}; running in float32 instead (set dtype: float32 to skip the check, or try float16)"
        )
        warnings.warn(self.autocast_fallback, RuntimeWarning, stacklevel=2)
        self.autocast_dtype = None
        return self.autocast_fallback

    # ----------------------------------------------------------------- input handling
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def to_batch(self, rgb: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(H, W, 3) uint8 array, (3, H, W) or (B, 3, H, W) tensor (uint8, or float in [0, 1]) ->
        float (B, 3, H, W) on the device, and whether the input was batched."""
        if isinstance(rgb, np.ndarray):
            if rgb.ndim != 3 or rgb.shape[2] != 3:
                raise ValueError(f"numpy input must be (H, W, 3) RGB, got {rgb.shape}")
            x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None]
            batched = False
        elif isinstance(rgb, torch.Tensor):
            batched = rgb.ndim == 4
            x = rgb if batched else rgb[None]
            if x.ndim != 4 or x.shape[1] != 3:
                raise ValueError(f"tensor input must be (B, 3, H, W) or (3, H, W), got {tuple(rgb.shape)}")
            x = x.to(self.device)
        else:
            raise TypeError(f"unsupported image type {type(rgb).__name__}")
        if x.shape[0] == 0:
            raise ValueError("empty batch")
        if x.dtype == torch.uint8:
            return x.float() / 255.0, batched
        if not x.is_floating_point():
            raise TypeError(f"image tensors must be uint8 (0-255) or float in [0, 1], got {x.dtype}")
        x = x.float()
        lo, hi = torch.aminmax(x)
        if lo < 0.0 or hi > 1.0 or not torch.isfinite(lo + hi):
            raise ValueError(
                f"float images must hold values in [0, 1]; this one spans [{lo.item():.4g}, {hi.item():.4g}] "
                "(pass uint8 0-255, or divide by 255)"
            )
        return x, batched

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Size the backbone sees for an image of ``height`` x ``width``: ``snap16`` (nearest multiples of
        16) or ``official`` (RADSeg's ``_preprocess_image``: up to multiples of the stride, at least the
        crop; a single whole-image window has no stride, so it snaps to 16 either way)."""
        if self.input_sizing == "official" and self.crop > 0:
            return stride_size(height, width, self.stride, self.crop)
        return snap_size(height, width, self.patch)

    def snap(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (bilinear) to :meth:`input_size`."""
        h, w = self.input_size(x.shape[-2], x.shape[-1])
        if (h, w) == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)

    # ----------------------------------------------------------------- stages
    def backbone(self, images: torch.Tensor) -> torch.Tensor:
        """RADIO (+SCRA) on a batch of equally sized crops: (N, 3, h, w) -> (N, C, h/16, w/16)."""
        n = images.shape[0]
        chunk = self.max_windows_per_forward or n
        with torch.no_grad(), self._autocast():
            outs = [self.window_backend(images[i : i + chunk]) for i in range(0, n, chunk)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def grid(self, height: int, width: int) -> WindowGrid:
        return window_grid(height, width, self.crop, self.stride, self.patch)

    def window_features(self, x: torch.Tensor) -> torch.Tensor:
        """Sliding-window features of snapped images (B, 3, H, W) -> stitched (B, C, H/16, W/16) float32."""
        grid = self.grid(x.shape[-2], x.shape[-1])
        return stitch_windows(self.backbone(crop_windows(x, grid)), grid)

    def aggregate(self, feats: torch.Tensor) -> torch.Tensor:
        """SCGA on the stitched map (identity when disabled)."""
        if not self.scga_enabled:
            return feats.float()
        with torch.no_grad():
            return scga(feats, self.scga_scaling, self.scga_block_elems)

    def encode_features(self, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw RADIO features at 1/16 of the snapped input: (C, h, w), or (B, C, h, w) for batched input."""
        x, batched = self.to_batch(rgb)
        feats = self.aggregate(self.window_features(self.snap(x)))
        return feats if batched else feats[0]

    def align(self, features: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Language alignment of raw features (..., C) -> (..., D), L2-normalised.

        The language adaptor's *summary* head applied to patch tokens (paper §3.2); works on any leading
        shape, e.g. voxel features (N, C). Rows go through the MLP ``chunk`` at a time so a whole map
        never needs the MLP's hidden activations at once.
        """
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"expected features (..., {self.feature_dim}), got {tuple(features.shape)}")
        lead = features.shape[:-1]
        flat = features.reshape(-1, features.shape[-1])
        outs = []
        with torch.no_grad(), self._autocast():
            for i in range(0, max(flat.shape[0], 1), chunk):
                out = self.lang_adaptor.head_mlp(flat[i : i + chunk].to(self.device))
                outs.append(F.normalize(out.float(), dim=-1))
        return torch.cat(outs).reshape(*lead, -1)

    def align_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(B?, C, h, w) raw map -> (B?, D, h, w) normalised language-aligned map."""
        moved = feature_map.movedim(-3, -1)
        return self.align(moved).movedim(-1, -3)

    def encode_text(self, labels: list[str]) -> torch.Tensor:
        """(Q, D) normalised, template-averaged, cached text embeddings (on the encoder's device)."""
        key = tuple(labels)
        vectors = self._text_device.get(key)  # one read: another thread may clear the dict meanwhile
        if vectors is None:
            vectors = self.text.encode(list(labels)).to(self.device)
            if len(self._text_device) > 32:
                self._text_device.clear()
            self._text_device[key] = vectors
        return vectors

    def class_probs(self, aligned: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """softmax over classes of 100 * cos: aligned (B, D, h, w) normalised, text (K, D) -> (B, K, h, w)."""
        logits = torch.einsum("bdhw,kd->bkhw", aligned.float(), F.normalize(text.float(), dim=-1))
        return (LOGIT_SCALE * logits).softmax(dim=1)

    def postprocess(
        self, probs: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Upsample to ``size``, prompt-denoise per image, pick labels. Returns probs, labels, scores."""
        probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        weak = probs.amax(dim=(2, 3)) < self.prompt_denoising  # (B, K)
        probs = probs.masked_fill(weak[:, :, None, None], 0.0)
        scores, best = probs.max(dim=1)
        labels = best + 1
        ignored = scores < self.prediction_thresh
        if self.denoised_pixels == "ignore":
            ignored |= scores <= 0
        labels[ignored] = 0
        return probs, labels, scores

    def predict(
        self, rgb: np.ndarray | torch.Tensor, class_names: list[str], size: tuple[int, int] | None = None
    ) -> SegmentationResult:
        """Segment ``rgb`` into ``class_names`` (labels k+1 = class_names[k], 0 = ignore).

        ``size`` (H, W) is the output resolution (default: the input's). The 2D benchmarks encode a
        resized image and score at the original size: the probabilities are upsampled once, straight from
        the feature grid to ``size``, and prompt denoising and RADSeg+ run there, as in the reference.
        """
        names = list(class_names)
        if not names or any(not n.strip() for n in names):
            raise ValueError("class_names must be a non-empty list of non-empty strings")
        x, batched = self.to_batch(rgb)
        size = (x.shape[-2], x.shape[-1]) if size is None else (int(size[0]), int(size[1]))
        feats = self.aggregate(self.window_features(self.snap(x)))
        probs = self.class_probs(self.align_map(feats), self.encode_text(names))
        probs, labels, scores = self.postprocess(probs, size)
        coarse = None
        if self.sam_refiner is not None:
            coarse = probs
            probs, labels = self.sam_refiner.refine_batch(self, x, probs, labels, scores)
        if not batched:
            probs, labels, scores = probs[0], labels[0], scores[0]
            coarse = None if coarse is None else coarse[0]
        return SegmentationResult(probs, labels, scores, names, coarse is not None, coarse)

    def sam_embedding(
        self, image: torch.Tensor, long_side: int = 1024
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """RADIO+SCRA on the whole image (no windows) -> SAM adaptor -> (1, 1280, 64, 64) zero-padded, plus
        the resized input size. Paper §3.5: re-encoding beats reusing the windowed features.

        The size is the reference's ``_preprocess_sam``: the longer side becomes ``long_side``, the shorter
        one is rounded *down* to a multiple of 16 (``int(W * 64 / H) * 16`` at 1024), e.g. 448x672 -> 672x1024.
        """
        h, w = image.shape[-2:]
        short = max(self.patch, int(min(h, w) * (long_side // self.patch) / max(h, w)) * self.patch)
        nh, nw = (long_side, short) if h >= w else (short, long_side)
        img = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)
        feats = self.backbone(img)  # (1, C, nh/16, nw/16)
        with torch.no_grad(), self._autocast():
            sam = self.sam_adaptor.feat_mlp(feats.flatten(2).transpose(1, 2))
        sam = sam.float().transpose(1, 2).reshape(1, -1, nh // self.patch, nw // self.patch)
        grid = long_side // self.patch
        return F.pad(sam, (0, grid - sam.shape[-1], 0, grid - sam.shape[-2])), (nh, nw)


def build_encoder(
    model: str | nn.Module | RadioSpec = "random-tiny",
    lang: str = "siglip2",
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    *,
    cache_dir: str | None = None,
    repo_dir: str | None = None,
    checkpoint: str | None = None,
    text_model_dir: str | None = None,
    sam_checkpoint: str | None = None,
    text_device: str | None = None,
    text_dtype: str | None = None,
    text_keep_loaded: bool | None = None,
    check_autocast: bool = True,
    sam_config=None,
    backend: str = "torch",
    onnx_model: str | None = None,
    **kw,
) -> RADSegEncoder:
    """Load a model (see ``load_radio``) and wrap it; ``dtype`` is the autocast dtype (bf16/fp16) or None.

    ``backend`` runs the per-window backbone in ``torch`` or ``onnxruntime`` (see ``encoder.backends``:
    ``onnx_model`` from ``radseg-export``, or None to export the loaded model at start-up).

    ``text_device`` / ``text_dtype`` / ``text_keep_loaded`` place the lazily loaded text tower (see
    ``RadioSpec``); ``sam_config`` (a ``RefineConfig``) sets RADSeg+'s thresholds and prompt frame. With
    an autocast dtype, one probe window checks the output is finite and falls back to float32 with a
    warning when it is not (``encoder.autocast_fallback`` says why).
    """
    if backend not in BACKENDS:
        raise BackendError(f"encoder backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime":
        import_onnxruntime()  # before loading any weights: one clear line when it is missing
    sam_refine = bool(kw.get("sam_refine", False))
    text_opts = {
        k: v
        for k, v in dict(text_device=text_device, text_dtype=text_dtype, text_keep_loaded=text_keep_loaded).items()
        if v is not None
    }
    if isinstance(model, nn.Module):
        loaded = load_radio(model, lang=lang, device=device, sam=sam_refine, **text_opts)
    else:
        spec = model if isinstance(model, RadioSpec) else RadioSpec(model=model)
        overrides = {
            k: v
            for k, v in dict(repo_dir=repo_dir, checkpoint=checkpoint, text_model_dir=text_model_dir).items()
            if v is not None
        }
        loaded = load_radio(spec, lang=lang, device=device, sam=sam_refine or spec.sam, **overrides, **text_opts)
    if sam_refine and kw.get("sam_refiner") is None:
        from radseg_core.encoder.sam_refine import SamRefiner, load_sam_decoder

        if sam_checkpoint is None:
            raise ValueError(
                "sam_refine=True needs sam_checkpoint=<sam_vit_h_4b8939.pth> (see docs/encoder.md)"
            )
        decoder = load_sam_decoder(sam_checkpoint, device=device)
        kw["sam_refiner"] = SamRefiner(decoder) if sam_config is None else SamRefiner(decoder, sam_config)
    text = TextEmbedder(loaded.text, cache_dir=cache_dir)
    encoder = RADSegEncoder(loaded, text, autocast_dtype=dtype, device=device, lang=lang, **kw)
    if backend == "onnxruntime":
        attach_onnxruntime(encoder, onnx_model)
    if check_autocast:
        encoder.check_autocast()
    return encoder
