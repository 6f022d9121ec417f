"""ONNX export of what runs per window (RADIO + SCRA), for TensorRT on a Jetson or onnxruntime.

One graph: ``images`` (windows, 3, h, w) float32 RGB in [0, 1] -> ``features`` (windows, C, h/16, w/16),
fixed window size, dynamic number of windows; weights in ONNX external data (``<name>.onnx.data`` beside
the graph: TensorRT's parser and onnxruntime read it from there). Windowing, stitching, SCGA and the
language head stay in torch: they are cheap next to the backbone and data-dependent in shape.

Opset 18: TensorRT 10's ONNX parser takes opsets 9 to 20 (onnx-tensorrt's operator matrix for 10.0), and
18 is the lowest torch's exporter (torch.export + onnxscript) writes natively; asking for 17 goes through
ONNX's version converter, which refuses this graph's Resize. LayerNormalization (opset 17) stays one node.
RADIO's position embedding, resampled to the window size on every call in torch, is folded into a
constant here, so the graph carries one window's table instead of the 128 x 128 one and no Resize.

The file's metadata (``radseg.*``) names the window, feature size, patch, SCRA setting, model and a
sha256 of the weights, so the onnxruntime backend refuses a file from other weights or settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from radseg_core.encoder.backends import (
    INPUT_NAME,
    META_PREFIX,
    OUTPUT_NAME,
    BackendError,
    WindowBackbone,
    scra_tag,
    weights_digest,
)

ONNX_OPSET = 18
_FOLD_LIMIT = 1 << 26  # elements: folds RADIO's 128 x 128 x C position table (the default limit is 256k)


@dataclass(frozen=True)
class ExportInfo:
    """What ``export_onnx`` wrote."""

    path: Path  # the graph (.onnx)
    data_path: Path  # its external weights (.onnx.data)
    window: tuple[int, int]
    feature_dim: int
    opset: int
    seconds: float

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size + self.data_path.stat().st_size


def _require_exporter() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnx_ir") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendError(
            f"ONNX export needs the packages {missing}: pip install 'radseg-core[export]' "
            f"(or pip install {' '.join(missing)})"
        )


def export_onnx(
    encoder, path: str | Path, *, window: int | tuple[int, int] | None = None, opset: int = ONNX_OPSET,
) -> ExportInfo:
    """Export ``encoder``'s per-window backbone (its model with the encoder's SCRA setting) to ``path``.

    ``window`` (h, w) or one side; default the encoder's crop. The graph is written in float32: TensorRT
    builds fp16 engines from it (``trtexec --fp16``, docs/deploy.md).
    """
    _require_exporter()
    import onnx_ir
    import onnxscript.optimizer

    if window is None:
        if encoder.crop <= 0:
            raise ValueError("the encoder has no crop (whole-image mode): give the window size to export")
        window = encoder.crop
    h, w = (window, window) if isinstance(window, int) else tuple(window)
    p = encoder.patch
    if h % p or w % p or h <= 0 or w <= 0:
        raise ValueError(f"window {h}x{w} must be positive multiples of the patch size {p}")
    if opset < ONNX_OPSET:
        raise ValueError(f"opset {opset}: the exporter writes opset {ONNX_OPSET} or later")
    path = Path(path).expanduser()
    if path.suffix != ".onnx":
        raise ValueError(f"{path}: the graph file must end in .onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    unit = WindowBackbone(encoder.model, p).eval()
    param = next(encoder.model.parameters())
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)).to(param.device)
    windows = torch.export.Dim("windows", min=1, max=4096)
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(
            unit, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes={"images": {0: windows}}, optimize=False, verbose=False,
        )
    onnxscript.optimizer.optimize(program.model, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT)
    for node in onnx_ir.traversal.RecursiveGraphIterator(program.model.graph):
        node.metadata_props.clear()  # the exporter's stack traces: local paths, most of the graph file
    program.model.metadata_props.update({
        f"{META_PREFIX}window": f"{h}x{w}",
        f"{META_PREFIX}patch": str(p),
        f"{META_PREFIX}feature_dim": str(encoder.feature_dim),
        f"{META_PREFIX}scra": scra_tag(encoder.scra_enabled, encoder.scra_scaling),
        f"{META_PREFIX}model": encoder.model_name,
        f"{META_PREFIX}weights_sha256": weights_digest(encoder.model),
        f"{META_PREFIX}input": "float32 RGB in [0, 1], NCHW (RADIO's input conditioner is inside)",
    })
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # the writer appends to an existing file
    program.save(str(path), external_data=True)
    if not data.is_file():
        raise RuntimeError(f"the exporter wrote no external data file {data}")
    return ExportInfo(path, data, (h, w), encoder.feature_dim, opset, time.perf_counter() - t0)


def trtexec_command(info: ExportInfo, windows_per_frame: int, max_windows: int | None = None) -> str:
    """The ``trtexec`` line that builds an fp16 engine for this file (docs/deploy.md)."""
    h, w = info.window
    top = max(max_windows or windows_per_frame, windows_per_frame)
    engine = info.path.with_suffix(".fp16.engine").name
    return (
        f"trtexec --onnx={info.path.name} --fp16 "
        f"--minShapes={INPUT_NAME}:1x3x{h}x{w} --optShapes={INPUT_NAME}:{windows_per_frame}x3x{h}x{w} "
        f"--maxShapes={INPUT_NAME}:{top}x3x{h}x{w} --saveEngine={engine}"
    )
