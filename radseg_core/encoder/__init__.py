"""RADSeg encoder: sliding windows, SCRA, SCGA, dense language alignment, probabilities, RADIO-SAM."""

from radseg_core.encoder.radseg import RADSegEncoder, SegmentationResult, build_encoder
from radseg_core.encoder.scga import scga, scga_tokens
from radseg_core.encoder.scra import SCRAAttention, install_scra, remove_scra, scra_weights
from radseg_core.encoder.windows import crop_windows, snap_size, stitch_windows, window_grid

__all__ = [
    "RADSegEncoder",
    "SCRAAttention",
    "SegmentationResult",
    "build_encoder",
    "crop_windows",
    "install_scra",
    "remove_scra",
    "scga",
    "scga_tokens",
    "scra_weights",
    "snap_size",
    "stitch_windows",
    "window_grid",
]
