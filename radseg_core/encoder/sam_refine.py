"""RADIO-SAM refinement (RADSeg+, paper §3.5).

RADIO's ``sam`` adaptor maps its patch tokens into SAM ViT-H's encoder space, so only SAM's neck, prompt
encoder and mask decoder are needed (0.7 % of SAM-H). Prompts come from the coarse prediction: for every
class, each 8-connected region (at half resolution, at least ``minimal_area`` pixels) gives one point
(its highest-probability pixel), one box (its bounding box) and the class probability map as a dense
mask prompt. A decoded mask is kept when SAM's IoU estimate exceeds ``iou_thresh``; per class the refined
probability is ``max_masks(sigmoid(mask logit) * coarse prob)`` inside the union of its masks.

What decides a published number follows the reference (``radseg/sam_utils.py``) exactly:

* pixels no kept mask covers keep the coarse label, and their refined probabilities are 0;
* regions whose masks were all rejected get ``max(refined, coarse)`` probabilities, but their labels stay
  the refined argmax (``map_failed_regions`` compares after merging, so its label fallback never fires);
* when no mask of any class is kept, the coarse probabilities and labels come back unchanged;
* prompts are scaled to SAM's frame as ``sam_refinement`` does (``prompt_frame="official"``): with
  ``ResizeLongestSide.apply_coords_torch(p, (h/2, w/2))``, i.e. to the long-side-1024 frame *of the
  downsampled prediction*, not to the frame of the SAM input features (up to 8 px apart at 1024 for VOC,
  COCO and ADE sizes). ``prompt_frame="exact"`` scales them to the SAM input's own frame instead.

``segment_anything`` is imported only when loading SAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MaskDecoder(Protocol):
    """SAM's neck + prompt encoder + mask decoder, in the 1024 x 1024 SAM input frame."""

    mask_threshold: float

    def embed(self, sam_features: torch.Tensor) -> torch.Tensor:
        """(1, 1280, 64, 64) SAM-encoder-space features -> image embedding for ``decode``."""

    def decode(
        self,
        embedding: torch.Tensor,
        points: torch.Tensor,
        point_labels: torch.Tensor,
        boxes: torch.Tensor,
        mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points (N, 1, 2) xy, labels (N, 1), boxes (N, 4) xyxy, mask_input (1, 256, 256) (one unbatched
        mask shared by all N prompts, as the reference passes it) or (N, 1, 256, 256) ->
        low-resolution mask logits (N, 1, 256, 256) and IoU estimates (N, 1)."""


class SegmentAnythingDecoder(nn.Module):
    """The three SAM-H parts RADIO-SAM needs, from the official ``segment_anything`` model."""

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.neck = sam.image_encoder.neck
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.mask_threshold = float(getattr(sam, "mask_threshold", 0.0))

    @torch.no_grad()
    def embed(self, sam_features: torch.Tensor) -> torch.Tensor:
        return self.neck(sam_features)  # NCHW, as ImageEncoderViT feeds its neck

    @torch.no_grad()
    def decode(self, embedding, points, point_labels, boxes, mask_input):
        sparse, dense = self.prompt_encoder(points=(points, point_labels), boxes=boxes, masks=mask_input)
        low, iou = self.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return low, iou


def load_sam_decoder(checkpoint: str | Path, device: str | torch.device = "cpu") -> SegmentAnythingDecoder:
    """Build SAM ViT-H from a local checkpoint and keep only neck, prompt encoder and mask decoder."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"SAM checkpoint {path} not found. Download sam_vit_h_4b8939.pth (2.4 GB) once from "
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth and pass its path."
        )
    try:
        from segment_anything import sam_model_registry
    except ImportError as exc:
        raise ImportError(
            "RADIO-SAM refinement needs the `segment_anything` package: "
            "pip install git+https://github.com/facebookresearch/segment-anything.git"
        ) from exc
    sam = sam_model_registry["vit_h"](checkpoint=str(path))
    return SegmentAnythingDecoder(sam).to(device).eval()


PROMPT_FRAMES = ("official", "exact")


def long_side_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """SAM's ``ResizeLongestSide.get_preprocess_shape``: the longer side to ``long_side``, both rounded
    half up."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class RefineConfig:
    """Reference defaults: coarse_thresh 0.10, minimal_area 225 (half-res px), mask coefficient 0.005,
    IoU threshold 0.9, prompts from the prediction downsampled 2x, SAM input long side 1024.

    ``prompt_frame``: "official" (default) scales point and box prompts as the reference does, to SAM's
    long-side frame of the downsampled prediction; "exact" to the frame of the SAM input features.

    ``mask_prompt`` chooses the dense prompt's layout. "reference" (default) passes the class mask as one
    3-D (1, 256, 256) tensor, exactly as RADSeg's ``sam_refinement`` does: SAM's convolutions then treat
    it as unbatched, so its LayerNorm2d (mean over axis 1) normalises over image rows instead of channels,
    and the one (256, 64, 64) dense embedding is broadcast to every prompt. This is what RADSeg+ was
    evaluated with. "batched" passes SAM's documented (N, 1, 256, 256) layout (channel-wise LayerNorm);
    the decoder then sees a different dense prompt, with no published numbers behind it.
    """

    coarse_thresh: float = 0.10
    minimal_area: int = 225
    mask_coeff: float = 0.005
    iou_thresh: float = 0.9
    down_ratio: int = 2
    long_side: int = 1024
    mask_prompt: str = "reference"  # "reference" (3-D unbatched, as RADSeg) or "batched" (SAM's 4-D)
    prompt_frame: str = "official"  # "official" (as RADSeg's sam_refinement) or "exact" (the SAM input's)

    def __post_init__(self) -> None:
        if self.mask_prompt not in ("reference", "batched"):
            raise ValueError(f"mask_prompt must be 'reference' or 'batched', got {self.mask_prompt!r}")
        if self.prompt_frame not in PROMPT_FRAMES:
            raise ValueError(f"prompt_frame must be 'official' or 'exact', got {self.prompt_frame!r}")


@dataclass
class Region:
    """One connected region of one class, with its SAM prompts (pixel coords of the coarse map)."""

    cls: int
    mask: torch.Tensor  # (h, w) bool
    box: torch.Tensor  # (4,) x0 y0 x1 y1, inclusive
    point: torch.Tensor  # (2,) x y of the highest class probability inside
    score: float  # mean class probability inside


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """8-connected components of a (h, w) bool mask: labels 1..n (0 = background) and n.

    ``scipy.ndimage.label`` when SciPy is installed; else label propagation with pointer jumping (every
    pixel starts with its own 1-based index; each round takes the neighbourhood maximum, then the label of
    the pixel that label names, which lies in the same component). Fast on blob-like regions; a long
    winding region takes one round per pixel of its length.
    """
    try:  # SciPy's C labelling when installed (the eval extra): same components, much faster on long ones
        from scipy import ndimage
    except ImportError:
        return _propagate_components(mask)
    labels, n = ndimage.label(mask.cpu().numpy(), structure=np.ones((3, 3), bool))
    return torch.from_numpy(labels.astype(np.int64)).to(mask.device), int(n)


def _propagate_components(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Torch fallback of :func:`connected_components` (same components, other numbering)."""
    h, w = mask.shape
    if h * w >= 2**24:  # ids travel through float32 max-pooling, exact below 2^24
        raise ValueError(f"mask of {h}x{w} pixels is too large for connected_components")
    m = mask.reshape(-1)
    ids = torch.arange(1, h * w + 1, device=mask.device) * m
    while True:
        grown = F.max_pool2d(ids.view(1, 1, h, w).float(), 3, stride=1, padding=1).view(-1).long() * m
        jumped = grown.gather(0, (grown - 1).clamp_min(0)) * m
        if torch.equal(jumped, ids):
            break
        ids = jumped
    uniq, inverse = torch.unique(ids, return_inverse=True)
    labels = inverse.view(h, w)
    if uniq.numel() and uniq[0] == 0:
        return labels, int(uniq.numel() - 1)
    return labels + 1, int(uniq.numel())


def region_prompts(
    pred: torch.Tensor, probs: torch.Tensor, coarse_thresh: float, minimal_area: int
) -> list[Region]:
    """Regions of a coarse prediction ``pred`` (h, w) class ids with probabilities ``probs`` (K, h, w).

    Pixels whose best probability is below ``coarse_thresh`` are background and prompt nothing. Every
    class can be prompted, as in the reference (its ``split_last`` flag only skips the background channel
    it appends when ``coarse_thresh > 0``). The point is the first argmax of ``probs[c] * region``.
    """
    valid = probs.max(dim=0).values >= coarse_thresh
    regions: list[Region] = []
    for c in range(probs.shape[0]):
        if probs[c].max() < coarse_thresh:
            continue
        comp, n = connected_components((pred == c) & valid)
        for i in range(1, n + 1):
            m = comp == i
            if int(m.sum()) < minimal_area:
                continue
            ys, xs = torch.nonzero(m, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()
            best = torch.argmax(probs[c] * m)
            point = torch.stack([best % probs.shape[2], best // probs.shape[2]]).float()
            regions.append(Region(c, m, box, point, float(probs[c][m].mean())))
    return regions


class SamRefiner:
    """Refines coarse RADSeg predictions with SAM's decoder fed by RADIO's ``sam`` adaptor."""

    def __init__(self, decoder: MaskDecoder, config: RefineConfig = RefineConfig()) -> None:
        self.decoder = decoder
        self.config = config

    def refine_batch(
        self, encoder, images: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: SAM embedding of the whole image, then :meth:`refine`. Ignored pixels stay ignored."""
        out_p, out_l = [], []
        for b in range(images.shape[0]):
            feats, input_size = encoder.sam_embedding(images[b], self.config.long_side)
            embedding = self.decoder.embed(feats)
            p, pred = self.refine(embedding, input_size, probs[b].argmax(dim=0), probs[b])
            lab = pred + 1
            lab[labels[b] == 0] = 0
            out_p.append(p)
            out_l.append(lab)
        return torch.stack(out_p), torch.stack(out_l)

    def refine(
        self, embedding: torch.Tensor, input_size: tuple[int, int], pred: torch.Tensor, probs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pred (H, W) 0-based class ids, probs (K, H, W) -> refined (probs, pred) at (H, W)."""
        cfg = self.config
        k, h, w = probs.shape
        dh, dw = max(1, h // cfg.down_ratio), max(1, w // cfg.down_ratio)
        pred_d = F.interpolate(pred[None, None].float(), (dh, dw), mode="nearest")[0, 0].long()
        probs_d = F.interpolate(probs[None], (dh, dw), mode="bilinear", align_corners=False)[0]
        regions = region_prompts(pred_d, probs_d, cfg.coarse_thresh, cfg.minimal_area)
        if not regions:
            return probs, pred
        nh, nw = input_size
        fh, fw = long_side_shape(dh, dw, cfg.long_side) if cfg.prompt_frame == "official" else (nh, nw)
        to_input = torch.tensor([fw / dw, fh / dh], device=probs.device)
        low_side = cfg.long_side // 4  # SAM's low-resolution mask frame (256 for 1024)
        # long side to 256 as SAM's ResizeLongestSide.get_preprocess_shape of the image size (reference)
        mh, mw = long_side_shape(h, w, low_side)
        refined = torch.zeros_like(probs)
        failed = torch.zeros(dh, dw, dtype=torch.bool, device=probs.device)
        kept_any = False
        for c in sorted({r.cls for r in regions}):
            regs = [r for r in regions if r.cls == c]
            points = torch.stack([r.point for r in regs]).to(probs.device)[:, None] * to_input
            boxes = torch.stack([r.box for r in regs]).to(probs.device) * to_input.repeat(2)
            dense = F.interpolate(probs_d[c][None, None], (mh, mw), mode="bilinear", align_corners=False)
            dense = F.pad(dense, (0, low_side - mw, 0, low_side - mh))
            dense = torch.where(dense > cfg.coarse_thresh, cfg.mask_coeff * dense, torch.zeros_like(dense))
            low, iou = self.decoder.decode(
                embedding,
                points,
                torch.ones(len(regs), 1, device=probs.device),
                boxes,
                dense[0] if cfg.mask_prompt == "reference" else dense.expand(len(regs), -1, -1, -1),
            )
            keep = iou.view(-1) > cfg.iou_thresh
            for r, ok in zip(regs, keep.tolist(), strict=True):
                if not ok:
                    failed |= r.mask
            if not keep.any():
                continue
            kept_any = True
            logits = F.interpolate(
                low[keep].float(), (cfg.long_side, cfg.long_side), mode="bilinear", align_corners=False
            )[..., :nh, :nw]
            logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)[:, 0]
            masks = logits > self.decoder.mask_threshold
            refined[c] = (logits.sigmoid() * probs[c]).max(dim=0).values * masks.any(dim=0)
        if not kept_any:  # sam_refinement returns the coarse prediction as it came
            return probs, pred
        new_pred = refined.argmax(dim=0)
        new_pred = torch.where(refined.sum(dim=0) == 0, pred, new_pred)
        if failed.any():  # map_failed_regions: probabilities merged, labels left to the refined argmax
            area = F.interpolate(failed[None, None].float(), (h, w), mode="nearest")[0, 0].bool()
            refined = torch.where(probs * area > refined, probs * area, refined)
        return refined, new_pred
