"""What the three command-line tools share: arguments, error handling, model set-up, outputs.

User errors (missing paths, unknown model, bad options, unreadable maps) end with one line on stderr
and exit status 2, never a traceback; set ``RADSEG_DEBUG=1`` to see the traceback anyway.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from radseg_core.defaults import DEFAULT_MAX_HITS
from radseg_core.visual import label_palette

DEFAULT_MODEL = "c-radio_v3-b"
RANDOM_MODELS = ("random-tiny", "random-base")
DEFAULT_CLASSES = ["floor", "wall", "ceiling", "table", "chair", "door", "person"]
EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option list and the description/epilog examples kept as written."""


def make_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=HelpFormatter)


def add_model_args(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=default,
                   help="c-radio_v3-b|-l|-h (torch.hub), hf:<repo id>, or random-tiny / random-base "
                        "(offline random weights: NOT semantic, for smoke tests)")
    g.add_argument("--lang", default="siglip2", choices=["siglip2", "clip"], help="language adaptor")
    g.add_argument("--text-model-path", default=None, help="local SigLIP2 text model directory (offline robots)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="autocast dtype (auto: bfloat16 on CUDA, float32 on CPU)")
    g.add_argument("--encoder-backend", default="torch", choices=["torch", "onnxruntime"],
                   help="where the per-window backbone runs (onnxruntime: see docs/deploy.md)")
    g.add_argument("--onnx-model", default=None,
                   help="with --encoder-backend onnxruntime: a radseg-export file of this model and crop "
                        "(default: export the loaded model at start-up)")


def backend_options(args: argparse.Namespace) -> dict:
    """MapperConfig's encoder backend fields from --encoder-backend / --onnx-model."""
    backend = getattr(args, "encoder_backend", "torch")
    onnx_model = getattr(args, "onnx_model", None)
    if onnx_model and backend != "onnxruntime":
        raise CLIError("--onnx-model needs --encoder-backend onnxruntime")
    return {"encoder_backend": backend, "onnx_model": onnx_model}


def add_map_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mapping")
    g.add_argument("--mode", default="features", choices=["features", "probabilities"],
                   help="store raw RADIO features (open-vocabulary queries) or class probabilities")
    g.add_argument("--classes", default=None,
                   help="comma-separated class names (default: the dataset's classes, else "
                        f"{','.join(DEFAULT_CLASSES)})")
    g.add_argument("--voxel-size", type=positive_float, default=0.05, help="voxel edge in metres")
    g.add_argument("--point-stride", type=positive_int, default=1,
                   help="integrate every n-th depth pixel row/column")
    g.add_argument("--max-depth", type=positive_float, default=5.0, help="ignore depth beyond this (m)")
    g.add_argument("--max-hits", type=non_negative_float, default=float(DEFAULT_MAX_HITS),
                   help="cap on hit counts so the map follows a replaced object (0 = no cap: exact averages; "
                        "docs/voxel_map.md)")
    add_input_sizing_arg(g)


def add_input_sizing_arg(g) -> None:
    g.add_argument("--input-sizing", default="snap16", choices=["snap16", "official"],
                   help="encoder input size: snap16 (nearest multiples of 16, default) or official (RADSeg's "
                        "_preprocess_image: up to multiples of the window stride; docs/encoder.md)")


def add_input_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--stride", type=positive_int, default=1, help="use every n-th frame")
    g.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    g.add_argument("--resize", type=positive_int, default=None,
                   help="resize rgb to this shorter side (pixels); K follows")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


BAG_OPTIONS = ("rgb_topic", "depth_topic", "camera_info_topic", "depth_camera_info_topic", "pose_topic",
               "pose_source", "map_frame", "camera_frame", "depth_scale", "slop")


def add_rosbag_args(p: argparse.ArgumentParser) -> None:
    """Topics, pose source and frames for rosbag2 inputs (unset: auto-detected, see docs/real_robot.md)."""
    g = p.add_argument_group("rosbag2 input (default: auto-detect)")
    g.add_argument("--rgb-topic", default=None, help="colour Image or CompressedImage topic")
    g.add_argument("--depth-topic", default=None,
                   help="depth Image (16UC1 / 32FC1) or its compressedDepth topic; aligned depth is preferred")
    g.add_argument("--camera-info-topic", default=None, help="CameraInfo of the colour camera")
    g.add_argument("--depth-camera-info-topic", default=None,
                   help="CameraInfo of the depth camera, used to register unaligned depth (default: next to it)")
    g.add_argument("--pose-topic", default=None, help="PoseStamped / PoseWithCovarianceStamped / Odometry topic")
    g.add_argument("--pose-source", default="auto", choices=["auto", "pose", "odometry", "tf"],
                   help="camera pose from a pose topic (of the camera optical frame), an Odometry of a body "
                        "frame + the /tf_static extrinsic, or the /tf tree")
    g.add_argument("--map-frame", default=None,
                   help="frame the map is built in (default: the pose's header frame; for tf: map, else odom)")
    g.add_argument("--camera-frame", default=None, help="colour optical frame (default: the images' frame_id)")
    g.add_argument("--depth-scale", type=positive_float, default=0.001, help="metres per 16UC1 depth unit")
    g.add_argument("--slop", type=positive_float, default=0.05,
                   help="max seconds between an rgb image and its depth image / nearest pose")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def port(text: str) -> int:
    v = positive_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1..65535, got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (v >= 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def parse_classes(text: str | None) -> list[str] | None:
    """``"floor, wall,chair"`` → ``["floor", "wall", "chair"]``; duplicates and empty lists are errors."""
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise CLIError("--classes is empty: give comma-separated names, e.g. --classes floor,wall,chair")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise CLIError(f"--classes repeats {dup}")
    return names


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parse ``argv``; ``--help`` and usage errors give their exit status (0 / 2) instead of raising."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body; user errors become one stderr line and exit status 2."""
    from radseg_core.encoder.backends import BackendError
    from radseg_core.map_io import MapFileError
    from radseg_core.view.rerun_server import ViewUnavailable

    user_errors: tuple[type[BaseException], ...] = (CLIError, FileNotFoundError, MapFileError, ValueError,
                                                     NotADirectoryError, PermissionError, ImportError, BackendError,
                                                     ViewUnavailable)
    try:
        from radseg_core.model.loading import ModelLoadError

        user_errors += (ModelLoadError,)
    except ImportError:  # pragma: no cover - model extras missing
        pass
    try:
        return body()
    except user_errors as e:
        if os.environ.get("RADSEG_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def is_random(model: str) -> bool:
    return str(model) in RANDOM_MODELS


def random_banner(model: str, stream=None) -> None:
    """Say loudly that random weights give meaningless labels and scores."""
    if is_random(model):
        line = "!" * 78
        print(f"{line}\n!! model '{model}': RANDOM WEIGHTS: NOT SEMANTIC. Labels, scores and metrics are\n"
              f"!! meaningless; use it only to check that the pipeline runs.\n{line}",
              file=stream or sys.stderr)


def build_mapper(config):
    """SemanticMapper for ``config``; model loading problems become ModelLoadError/ValueError (exit 2)."""
    from radseg_core.compat import patch_torchvision

    patch_torchvision()
    from radseg_core.pipeline import SemanticMapper

    random_banner(config.model)
    return SemanticMapper(config)


def open_input(path: str, *, stride: int = 1, max_frames: int | None = None, resize: int | None = None,
               bag_options: dict | None = None):
    """A dataset reader for a path or built-in name; errors name what was expected.

    ``bag_options`` (reader keyword arguments, see :data:`BAG_OPTIONS`) apply to rosbag2 inputs only;
    those left at their defaults are not passed, and any other one given for another input is an error.
    """
    from radseg_core.datasets import detect_kind, open_dataset

    defaults = {"pose_source": "auto", "depth_scale": 0.001, "slop": 0.05}
    given = {k: v for k, v in (bag_options or {}).items() if v is not None and v != defaults.get(k)}
    try:
        if given and detect_kind(path) != "rosbag":
            flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
            raise CLIError(f"{flags} apply to rosbag2 inputs only, and {path} is not one")
        return open_dataset(path, stride=stride, max_frames=max_frames, resize=resize, **given)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None


def progress(it: Iterable, total: int | None, desc: str, disable: bool = False):
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="frame", disable=disable, file=sys.stderr, dynamic_ncols=True)


def write_json(path: str | Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    return path


def json_safe(d):
    """JSON-safe copy for reports: NaN (a class absent, a metric undefined) becomes null, an infinite
    setting (no depth limit) the string "inf"."""
    if isinstance(d, dict):
        return {k: json_safe(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [json_safe(v) for v in d]
    if isinstance(d, float) and math.isnan(d):
        return None
    if isinstance(d, float) and math.isinf(d):
        return "inf" if d > 0 else "-inf"
    return d


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def class_palette(num_classes: int) -> np.ndarray:
    """(K+1, 3) colours; row 0 (ignore) black, row k = classes[k-1] — the node's colours."""
    return label_palette(num_classes + 1)


def mapper_config_from_map(map_path: str | Path, model: str | None, args: argparse.Namespace):
    """A MapperConfig that matches a saved map (mode, classes, voxel size, storage dtype, model)."""
    from radseg_core.map_io import load_map
    from radseg_core.pipeline import MapperConfig

    path = Path(map_path)
    if not path.is_file():
        raise CLIError(f"map file {path} does not exist")
    vmap = load_map(path)
    meta = vmap.metadata or {}
    name = model or meta.get("model")
    if not name:
        raise CLIError(f"{path} does not say which model built it: pass --model")
    classes = list(meta.get("classes") or DEFAULT_CLASSES)
    storage = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32"}
    dtype_name = str(vmap.dtype).removeprefix("torch.")
    cfg = MapperConfig(
        model=name, lang_model=getattr(args, "lang", "siglip2"), text_model_path=getattr(args, "text_model_path", None),
        device=getattr(args, "device", "auto"), dtype=getattr(args, "dtype", "auto"), mode=vmap.mode,
        classes=classes, voxel_size=vmap.voxel_size, storage_dtype=storage.get(dtype_name, "float16"),
        frame_id=meta.get("frame_id") or "map", voxel_grid=vmap.grid, **backend_options(args),
    )
    return cfg, vmap
