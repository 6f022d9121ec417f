"""Sizes of RADSeg's official code (github.com/RADSeg-OVSS/RADSeg, radseg/radseg.py), restated once for the
tests that compare our encoder and presets with it."""

from __future__ import annotations


def preprocess_image_size(h: int, w: int, stride: int, crop: int) -> tuple[int, int]:
    """``_preprocess_image``: unchanged when both sides are multiples of the stride; else the longer side up
    to a multiple of the stride, the other scaled and truncated, both up to multiples of the stride, at
    least the crop."""
    if h % stride == 0 and w % stride == 0:
        return h, w
    longer = max(h, w)
    dst = longer if longer % stride == 0 else (longer // stride + 1) * stride
    nh, nw = int(h * dst / longer), int(w * dst / longer)
    nh = nh if nh % stride == 0 else (nh // stride + 1) * stride
    nw = nw if nw % stride == 0 else (nw // stride + 1) * stride
    return max(nh, crop), max(nw, crop)


def preprocess_sam_size(h: int, w: int) -> tuple[int, int]:
    """``_preprocess_sam``: the longer side 1024, the other ``int(side * 64 / longer) * 16``."""
    return (1024, int(w * 64 / h) * 16) if h >= w else (int(h * 64 / w) * 16, 1024)
