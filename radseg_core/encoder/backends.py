"""Where the per-window backbone runs: torch (eager or compiled) or an exported ONNX graph in onnxruntime.

The encoder hands a backend one batch of equally sized windows, (N, 3, h, w) float in [0, 1], and gets
the patch features (N, C, h/16, w/16) back. That is all that runs per window (RADIO with SCRA in its last
block), so it is the part worth exporting for TensorRT; windowing, stitching, SCGA and the language
alignment stay in torch. ``WindowBackbone`` is that unit as a module: the torch backend runs it and
``radseg_core.export`` exports it, so both compute the same function.

The onnxruntime backend runs a graph exported for one window size with a dynamic number of windows.
Other sizes (RADIO-SAM's whole-image pass, images smaller than the crop) go to the torch fallback, and
are counted (``fallback_calls``). Inputs and outputs are bound to the torch tensors' memory (IO binding),
so a CUDA run copies nothing through the host.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

BACKENDS = ("torch", "onnxruntime")
INPUT_NAME, OUTPUT_NAME = "images", "features"
META_PREFIX = "radseg."


class BackendError(RuntimeError):
    """The chosen encoder backend cannot run (package missing, no matching provider, mismatched file)."""


class WindowBackbone(nn.Module):
    """RADIO (input conditioner + ViT, SCRA installed or not) on a batch of windows -> (N, C, h/p, w/p)."""

    def __init__(self, model: nn.Module, patch: int) -> None:
        super().__init__()
        self.model = model
        self.patch = int(patch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        out = out["backbone"] if isinstance(out, dict) else out
        feats = out.features if hasattr(out, "features") else out[1]  # (N, T, C) patch tokens
        n, _, h, w = images.shape
        return feats.transpose(1, 2).reshape(n, -1, h // self.patch, w // self.patch)


def torch_windows(model: nn.Module, patch: int, compile: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The torch backend: ``WindowBackbone`` as is, or through ``torch.compile``."""
    unit = WindowBackbone(model, patch).eval()
    return torch.compile(unit) if compile else unit


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (names, dtypes, shapes, bytes): ties an export to its weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def import_onnxruntime():
    """onnxruntime, or one line saying how to get it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(
            f"encoder_backend 'onnxruntime' needs the onnxruntime package ({exc}): pip install onnxruntime "
            "(onnxruntime-gpu for CUDA; on Jetson the JetPack build), or pip install 'radseg-core[export]', "
            "or use encoder_backend 'torch'"
        ) from None
    return onnxruntime


def providers_for(device: torch.device, available: list[str]) -> list:
    """Execution providers for ``device``: CUDA EP on the encoder's GPU (on torch's stream), else CPU."""
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type != "cuda":
        raise BackendError(f"encoder_backend 'onnxruntime' runs on cpu or cuda, not {device}")
    if "CUDAExecutionProvider" not in available:
        raise BackendError(
            f"this onnxruntime has no CUDAExecutionProvider (it has {', '.join(available)}): "
            "pip install onnxruntime-gpu (on Jetson the JetPack build), or run on device cpu"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(index).cuda_stream
    return [("CUDAExecutionProvider", {"device_id": index, "user_compute_stream": str(stream)})]


class OnnxRuntimeWindows:
    """The onnxruntime backend: an exported window graph; other window sizes go to ``fallback``."""

    def __init__(
        self, path: str | Path, device: torch.device, fallback: Callable[[torch.Tensor], torch.Tensor],
        *, threads: int | None = None,
    ) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"ONNX model {self.path} does not exist (write one with radseg-export)")
        self.device = torch.device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = providers_for(self.device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime could not load {self.path}: {type(exc).__name__}: {exc}") from exc
        self.metadata = read_metadata(self.session)
        self.window = self.metadata["window"]
        self.feature_dim = self.metadata["feature_dim"]
        self.patch = self.metadata["patch"]
        self.fallback = fallback
        self.fallback_calls = 0
        self.providers = self.session.get_providers()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        if (h, w) != self.window:
            self.fallback_calls += 1
            return self.fallback(images)
        x = images.to(self.device, torch.float32).contiguous()
        out = torch.empty(n, self.feature_dim, h // self.patch, w // self.patch, device=self.device)
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        index = (self.device.index or 0) if kind == "cuda" else 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, kind, index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, kind, index, np.float32, tuple(out.shape), out.data_ptr())
        self.session.run_with_iobinding(binding)
        return out


def read_metadata(session) -> dict:
    """What ``radseg-export`` wrote into the file (window, feature size, patch, SCRA, weights digest)."""
    raw = session.get_modelmeta().custom_metadata_map
    if f"{META_PREFIX}window" not in raw:
        raise BackendError("this ONNX file was not written by radseg-export (no radseg.* metadata)")
    h, w = (int(v) for v in raw[f"{META_PREFIX}window"].split("x"))
    return {
        "window": (h, w),
        "feature_dim": int(raw[f"{META_PREFIX}feature_dim"]),
        "patch": int(raw[f"{META_PREFIX}patch"]),
        "scra": raw[f"{META_PREFIX}scra"],
        "model": raw.get(f"{META_PREFIX}model", ""),
        "weights_sha256": raw[f"{META_PREFIX}weights_sha256"],
    }


def scra_tag(enabled: bool, scaling: float) -> str:
    return f"{float(scaling):g}" if enabled else "off"


def check_matches(meta: dict, encoder, path: Path) -> None:
    """Refuse a file exported from other weights or settings than ``encoder`` runs (its output would differ)."""
    problems = []
    if meta["feature_dim"] != encoder.feature_dim or meta["patch"] != encoder.patch:
        problems.append(f"features {meta['feature_dim']}-d / patch {meta['patch']}, the model gives "
                        f"{encoder.feature_dim}-d / patch {encoder.patch}")
    want = scra_tag(encoder.scra_enabled, encoder.scra_scaling)
    if meta["scra"] != want:
        problems.append(f"SCRA {meta['scra']}, the encoder runs SCRA {want}")
    if encoder.crop > 0 and meta["window"] != (encoder.crop, encoder.crop):
        h, w = meta["window"]
        problems.append(f"{h}x{w} windows, the encoder's crop is {encoder.crop}")
    if not problems and meta["weights_sha256"] != weights_digest(encoder.model):
        problems.append("other weights than the loaded model's")
    if problems:
        raise BackendError(
            f"ONNX model {path} was exported with {'; '.join(problems)}: export it again from this model and "
            "these settings (radseg-export), or leave onnx_model empty to export at start-up"
        )


def attach_onnxruntime(encoder, onnx_model: str | Path | None = None, *, threads: int | None = None):
    """Switch ``encoder`` to the onnxruntime backend and return it.

    ``onnx_model`` is a file written by ``radseg-export`` for this model and these settings (checked);
    None exports the loaded model into a temporary folder first (needs onnx and onnxscript; seconds for
    C-RADIOv3-B on a CPU), removed when the backend is garbage-collected.
    """
    import_onnxruntime()  # the clear line before any export work
    fallback = encoder.window_backend
    if onnx_model is None:
        import shutil
        import tempfile
        import weakref

        from radseg_core.export import export_onnx

        folder = Path(tempfile.mkdtemp(prefix="radseg-onnx-"))
        try:
            path = export_onnx(encoder, folder / "radseg_windows.onnx").path
            backend = OnnxRuntimeWindows(path, encoder.device, fallback, threads=threads)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        weakref.finalize(backend, shutil.rmtree, str(folder), True)
    else:
        backend = OnnxRuntimeWindows(Path(onnx_model).expanduser(), encoder.device, fallback, threads=threads)
        check_matches(backend.metadata, encoder, backend.path)
    encoder.window_backend = backend
    encoder.backend_name = "onnxruntime"
    return backend
