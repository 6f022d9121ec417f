"""Import-time workarounds for mismatched binary wheels.

PyPI serves only CUDA builds of torchvision. Paired with a CPU build of torch, importing it fails
with ``operator torchvision::nms does not exist`` because its C extension cannot load, and timm and
open_clip import torchvision. RADSeg needs none of torchvision's compiled operators, so declaring
their schemas lets the pure-Python part import. Call :func:`patch_torchvision` before importing timm
or open_clip; it does nothing when torchvision matches torch.
"""

from __future__ import annotations

import importlib.metadata
import sys

_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # kept alive: a torch.library.Library unregisters its schemas when collected


def _mismatched() -> bool:
    import torch

    try:
        tv_version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return False
    return "+cu" in tv_version and torch.version.cuda is None


def patch_torchvision() -> None:
    """Declare torchvision's operator schemas when its CUDA extension cannot load on CPU torch."""
    global _library
    if _library is not None or "torchvision" in sys.modules or not _mismatched():
        return
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_SCHEMAS:
        _library.define(schema)
