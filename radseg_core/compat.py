"""Import-time workarounds for mismatched binary wheels.

PyPI serves only CUDA builds of torchvision (versioned with or without a ``+cu`` tag). Paired with a
CPU build of torch, importing it fails with ``operator torchvision::nms does not exist`` because its
C extension cannot load, and timm, open_clip and transformers import torchvision. RADSeg needs none of
torchvision's compiled operators, so declaring their schemas lets the pure-Python part import. Call
:func:`patch_torchvision` before importing those libraries; it does nothing when the extension loads.
"""

from __future__ import annotations

import glob
import importlib.util
import sys

_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_done = False
_library = None  # kept alive: a torch.library.Library unregisters its schemas when collected


def patch_torchvision() -> None:
    """Make ``import torchvision`` work on CPU torch even when its C extension is a CUDA build."""
    global _done, _library
    if _done or "torchvision" in sys.modules:
        return
    _done = True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    libs = glob.glob(f"{spec.submodule_search_locations[0]}/_C*.so")
    try:
        if libs:
            torch.ops.load_library(libs[0])  # what torchvision does itself; fine when builds match
            return
    except (OSError, RuntimeError):
        pass
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_SCHEMAS:
        _library.define(schema)
