"""Sliding-window layout, batched crops and exact overlap averaging.

Images are first resized so both sides are multiples of the patch size (16), in one of two ways
(``RADSegEncoder(input_sizing=...)``): ``snap16`` rounds each side to the *nearest* multiple of 16 (aspect
kept within one patch, 640x480 untouched); ``official`` is the reference's ``_preprocess_image``
(:func:`stride_size`), which rounds each side *up* to a multiple of the window stride and to at least
the crop (640x480 at stride 224 becomes 672x672; 640x1136 at stride 112 becomes 784x1232), the input
size behind every published number. Windows follow the reference layout (mmseg "slide"): a grid with
the given stride whose last row/column is shifted back to end at the border; an image smaller than the
crop uses one window of its own size. All windows of an image then share one size, so every window of
every image goes through ONE forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def snap_size(height: float, width: float, multiple: int = 16) -> tuple[int, int]:
    """Nearest sizes that are multiples of ``multiple`` (halves round up; at least one multiple)."""

    def snap(v: float) -> int:
        return max(multiple, int(v / multiple + 0.5) * multiple)

    return snap(height), snap(width)


def stride_size(height: int, width: int, stride: int, crop: int) -> tuple[int, int]:
    """Encoder input size of RADSeg's ``_preprocess_image(image, stride, slide_crop)`` (radseg/radseg.py).

    Unchanged when both sides are already multiples of ``stride`` (even if smaller than the crop). Else
    the longer side is rounded up to a multiple of ``stride``, the shorter one scaled by the same factor
    and truncated, then each side rounded up to a multiple of ``stride`` and raised to at least ``crop``.
    """
    if height % stride == 0 and width % stride == 0:
        return height, width
    longer = max(height, width)
    target = longer if longer % stride == 0 else (longer // stride + 1) * stride
    h, w = int(height * target / longer), int(width * target / longer)
    h = h if h % stride == 0 else (h // stride + 1) * stride
    w = w if w % stride == 0 else (w // stride + 1) * stride
    return max(h, crop), max(w, crop)


def _starts(size: int, crop: int, stride: int) -> list[int]:
    if size <= crop:
        return [0]
    n = (size - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, size - crop) for i in range(n)})


@dataclass(frozen=True)
class WindowGrid:
    """Window boxes (y0, x0) of size (ch, cw) in pixels over an (H, W) image; ``patch`` converts to tokens."""

    height: int
    width: int
    ch: int
    cw: int
    boxes: tuple[tuple[int, int], ...]
    patch: int

    @property
    def num(self) -> int:
        return len(self.boxes)

    @property
    def grid(self) -> tuple[int, int]:
        """Feature-map size (h, w) of the whole image."""
        return self.height // self.patch, self.width // self.patch


def window_grid(height: int, width: int, crop: int, stride: int, patch: int = 16) -> WindowGrid:
    """Lay out windows; ``crop <= 0`` means one window covering the whole image."""
    if height % patch or width % patch:
        raise ValueError(f"image sides must be multiples of {patch}, got {height}x{width}")
    if crop <= 0:
        return WindowGrid(height, width, height, width, ((0, 0),), patch)
    if crop % patch or stride % patch or stride <= 0:
        raise ValueError(f"crop ({crop}) and stride ({stride}) must be positive multiples of {patch}")
    ch, cw = min(crop, height), min(crop, width)
    boxes = tuple((y, x) for y in _starts(height, ch, stride) for x in _starts(width, cw, stride))
    return WindowGrid(height, width, ch, cw, boxes, patch)


def crop_windows(images: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """(B, 3, H, W) -> (B * nW, 3, ch, cw), image-major, in ``grid.boxes`` order."""
    crops = [images[:, :, y : y + grid.ch, x : x + grid.cw] for y, x in grid.boxes]
    return torch.stack(crops, dim=1).flatten(0, 1)


def stitch_windows(window_feats: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """Average per-window feature maps (B * nW, C, hc, wc) into (B, C, h, w); overlaps averaged exactly.

    Accumulation is in float32 with integer coverage counts, so a pixel covered by k windows gets exactly
    the mean of its k values.
    """
    p = grid.patch
    bn, c, hc, wc = window_feats.shape
    b = bn // grid.num
    h, w = grid.grid
    feats = window_feats.float().view(b, grid.num, c, hc, wc)
    out = feats.new_zeros(b, c, h, w)
    count = feats.new_zeros(1, 1, h, w)
    for i, (y, x) in enumerate(grid.boxes):
        out[:, :, y // p : y // p + hc, x // p : x // p + wc] += feats[:, i]
        count[:, :, y // p : y // p + hc, x // p : x // p + wc] += 1
    return out / count
