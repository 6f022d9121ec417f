"""Every node parameter in one table: name, default, description, range, and whether it is live.

Declaration (with descriptors rviz/rqt show), validation at start-up and validation of live changes
all read this table, so a parameter cannot be documented one way and checked another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from radseg_core.defaults import DEFAULT_MAX_HITS


@dataclass(frozen=True)
class Spec:
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while running


SPECS: dict[str, Spec] = {
    # model
    "model": Spec("c-radio_v3-b", "RADIO backbone: c-radio_v3-b|l|h, c-radio_v4-so400m|h (torch.hub), "
                  "hf:nvidia/C-RADIOv3-B, or "
                  "random-tiny / random-base (random weights, NOT semantic: tests and timing only)"),
    "radio_repo_dir": Spec("", "offline: local NVlabs/RADIO checkout used as torch.hub source ('' = download)"),
    "radio_checkpoint": Spec("", "offline: local RADIO checkpoint (.pth.tar) ('' = download)"),
    "text_cache_dir": Spec(os.path.join("~", ".cache", "radseg", "text"),
                           "on-disk cache of text embeddings, so a restart does not re-encode the classes "
                           "('' = memory only)"),
    "lang_model": Spec("siglip2", "language adaptor", choices=("siglip2", "clip")),
    "text_model_path": Spec("", "offline: folder of local text models, one subfolder per Hugging Face id "
                            "(e.g. <dir>/google/siglip2-so400m-patch16-naflex); the checkpoint names which "
                            "('' = Hugging Face cache / download)"),
    "text_device": Spec("cpu", "device of the text tower, loaded on the first label not in the text cache: "
                        "cpu keeps GPU memory for the backbone, or cuda / cuda:N"),
    "text_dtype": Spec("auto", "text tower dtype: auto (float32 on cpu, float16 on cuda); falls back to "
                       "float32 if low precision gives non-finite vectors",
                       choices=("auto", "float32", "float16", "bfloat16")),
    "text_keep_loaded": Spec(True, "keep the text tower in memory after a text-cache miss (false frees it)"),
    "device": Spec("auto", "torch device: auto (cuda if available), cuda, cuda:N or cpu"),
    "dtype": Spec("auto", "autocast dtype: auto (bfloat16 on cuda, float32 on cpu)",
                  choices=("auto", "float32", "float16", "bfloat16")),
    "encoder_backend": Spec("torch", "where the per-window backbone (RADIO + SCRA) runs: torch, or onnxruntime "
                            "(an exported ONNX graph; float32; CPU or CUDA execution provider, docs/deploy.md)",
                            choices=("torch", "onnxruntime")),
    "onnx_model": Spec("", "encoder_backend onnxruntime: a radseg-export file of this model, crop and SCRA setting "
                       "(checked at start-up; '' = export the loaded model at start-up into a temporary folder)"),
    "crop": Spec(336, "sliding-window crop size in pixels (multiple of 16)", 64, 2048),
    "stride": Spec(224, "sliding-window stride in pixels (multiple of 16)", 16, 2048),
    "scra_scaling": Spec(10.0, "SCRA temperature (paper: 10)", 0.1, 1000.0),
    "scga_scaling": Spec(10.0, "SCGA temperature (paper: 10)", 0.1, 1000.0),
    "sam_refine": Spec(False, "RADIO-SAM mask refinement (RADSeg+, probabilities mode only)"),
    "sam_checkpoint": Spec("", "local SAM ViT-H checkpoint for refinement"),
    "input_sizing": Spec("snap16", "encoder input size: snap16 (each side to the nearest multiple of 16) or "
                         "official (RADSeg's _preprocess_image: up to multiples of the stride, at least the crop; "
                         "640x480 becomes 672x672 at stride 224, 1.5x the windows)",
                         choices=("snap16", "official")),
    "sam_prompt_frame": Spec("official", "RADSeg+ point/box prompt scaling: official (as RADSeg's sam_refinement, "
                             "to SAM's frame of the half-size prediction) or exact (to the SAM input's own frame)",
                             choices=("official", "exact")),
    # semantics
    "mode": Spec("features", "what the map stores: features (open vocabulary) or probabilities (classes)",
                 choices=("features", "probabilities")),
    "classes": Spec(["floor", "wall", "chair", "table", "person"],
                    "class names for segmentation images and probabilities mode", live=True),
    "prediction_threshold": Spec(0.0, "pixels whose best probability is below this get label 0 (ignore)",
                                 0.0, 1.0, live=True),
    "prompt_denoising": Spec(0.5, "RADSeg prompt denoising threshold", 0.0, 1.0, live=True),
    # map
    "voxel_size": Spec(0.05, "voxel edge length in metres", 0.005, 1.0),
    "storage_dtype": Spec("float16", "dtype of stored voxel features", choices=("float16", "float32")),
    "max_voxels": Spec(0, "memory bound on voxels (0 = unbounded); least-hit voxels are evicted", 0, 100_000_000),
    "cache_aligned": Spec(False, "opt-in: keep a language-aligned copy of voxel features so a query is one "
                          "matrix product (+2,312 B per voxel with SigLIP2, more than the map itself); false "
                          "aligns the map chunk by chunk per query (no extra memory)"),
    "max_hits": Spec(float(DEFAULT_MAX_HITS), "cap on hit counts (points) so the map follows a replaced object: "
                     "1000 takes ~50 frames for half its voxels at 640x480 (0 = no cap: as many frames as the "
                     "old object was seen)", 0.0, 1e9, live=True),
    "residual_rows": Spec(131072, "fp16 drift compensation cap: the working set holds exact fp32 means for 2 x the "
                          "voxels of the largest of the last 64 updates (a 640x480 view at 5 cm: 25k-70k rows, "
                          "75-210 MB at 768-d; rows of 4 x (feature dim + 3) + 16 bytes), at most this many; "
                          "voxels of an update beyond it round as plain fp16 and are counted in diagnostics "
                          "(0 = off)", 0, 10_000_000),
    "free_space_decay": Spec(0.5, "free-space clearing: a frame whose pixel rays all pass through a voxel keeps "
                             "floor(n * (1 - this)) of the n frames that hit it (and as much of its hits); "
                             "voxels left with none are removed (0 = never clear)",
                             0.0, 1.0, live=True),
    "min_depth": Spec(0.1, "depth below this (metres) is ignored", 0.0, 100.0, live=True),
    "max_depth": Spec(5.0, "depth beyond this (metres) is ignored", 0.0, 1000.0, live=True),
    "depth_scale": Spec(0.001, "metres per unit of 16UC1 depth", 1e-6, 1.0),
    "point_stride": Spec(1, "integrate every n-th depth pixel in each direction", 1, 64, live=True),
    # input
    "pose_source": Spec("pose", "camera pose input: pose (PoseStamped), odometry (Odometry) or tf",
                        choices=("pose", "odometry", "tf")),
    "pose_is_optical": Spec(True, "pose is of the optical frame (REP-103 z forward); false: body frame "
                            "(x forward) and the fixed optical rotation is applied"),
    "camera_frame": Spec("", "optical frame for tf lookups ('' = the image header's frame_id)"),
    "map_frame": Spec("map", "fixed frame of the map and all published clouds; load_map with adopt_frame "
                      "switches it to the file's frame"),
    "camera_extrinsic": Spec("", "camera mounting 'x y z qx qy qz qw' (T_body_optical) for an Odometry "
                             "child_frame_id that TF does not relate to the image frame ('' = from TF)"),
    "tf_wait_timeout": Spec(0.5, "seconds a synchronised frame waits for its transforms (TF arriving after "
                            "the image) before it is rejected", 0.0, 10.0),
    "tf_cache_time": Spec(10.0, "seconds of TF history kept per frame", 0.5, 3600.0),
    "tf_backend": Spec("auto", "TF buffer: tf2_ros (ROS' own Buffer + TransformListener), internal (the "
                       "project's TransformBuffer, works in pip-only installs) or auto (tf2_ros when importable)",
                       choices=("auto", "tf2_ros", "internal")),
    "time_jump_threshold": Spec(1.0, "an rgb stamp this many seconds older than the newest seen is a jump "
                                "back in time (bag loop, simulator reset): the synchroniser is reset (TF the same "
                                "on its own stamps)",
                                0.01, 3600.0),
    "reset_map_on_time_jump": Spec(False, "also clear the map on a jump back in time", live=True),
    "input_reliability": Spec("best_effort", "QoS of the camera/pose subscriptions: best_effort (sensor data, "
                              "matches every publisher) or reliable (needs reliable publishers; no lost "
                              "fragments of large images)", choices=("best_effort", "reliable")),
    "sync_slop": Spec(0.05, "approximate-time sync tolerance in seconds (> 0: a set must spread strictly "
                            "less than it, as in message_filters, so 0 would never match)", 0.001, 10.0),
    "sync_queue_size": Spec(10, "messages kept per input while matching", 1, 1000),
    "sync_backend": Spec("auto", "synchroniser: message_filters (ROS' ApproximateTimeSynchronizer), internal "
                         "(the project's re-implementation, counts drops) or auto (message_filters when "
                         "importable)", choices=("auto", "message_filters", "internal")),
    "frame_skip": Spec(0, "process one synchronised frame out of frame_skip + 1", 0, 1000, live=True),
    # output
    "publish_segmentation": Spec(True, "publish ~/segmentation and ~/labels", live=True),
    "cloud_publish_rate": Spec(1.0, "Hz of ~/semantic_cloud (0 = off)", 0.0, 100.0, live=True),
    "default_top_k": Spec(5, "matches per query when the request says 0", 1, 10_000, live=True),
    "max_queries": Spec(64, "largest list of texts one query may carry", 1, 10_000, live=True),
    "max_query_chars": Spec(1000, "longest text accepted in a query", 1, 100_000, live=True),
    "query_threshold": Spec(0.5, "relative score above which voxels join a query's candidates (and goals, masks, "
                            "objects)", 0.0, 1.0, live=True),
    # navigation (docs/navigation.md)
    "keepout_queries": Spec([], "texts whose voxels Nav2 must avoid: published as a KeepoutFilter mask on "
                            "~/keepout_mask with its info on ~/keepout_filter_info ([] = off)", live=True),
    "speed_queries": Spec([], "texts near whose voxels Nav2 slows down: a SpeedFilter mask (percent) on "
                          "~/speed_mask with its info on ~/speed_filter_info ([] = off)", live=True),
    "mask_publish_rate": Spec(1.0, "Hz at which the masks are recomputed and, when they changed, published "
                              "(0 = masks off)", 0.0, 100.0),
    "speed_limit_percent": Spec(50, "speed limit in percent of the maximum where a speed query matches",
                                1, 100, live=True),
    "floor_z": Spec(0.0, "height of the floor in map_frame (metres): goals stand there, masks and "
                    "obstacles are measured from it", -1000.0, 1000.0, live=True),
    "step_height": Spec(0.1, "voxels within this of floor_z are floor (a goal needs seen floor); higher ones "
                        "are obstacles", 0.0, 2.0, live=True),
    "robot_height": Spec(1.5, "voxels up to floor_z + this are obstacles for goals and enter the masks",
                         0.01, 10.0, live=True),
    "robot_radius": Spec(0.3, "a goal keeps this distance (metres) from every obstacle voxel", 0.0, 5.0,
                         live=True),
    "goal_standoff": Spec(0.8, "distance of a ~/query_goal pose from the object's nearest voxel when the "
                          "request says 0", 0.05, 20.0, live=True),
    "robot_base_frame": Spec("base_link", "robot frame whose TF pose ~/query_goal starts from when the "
                             "request names none", live=True),
    "objects_min_voxels": Spec(10, "smallest group of voxels ~/objects lists as an object", 1, 1_000_000,
                               live=True),
    # persistence and diagnostics
    "map_directory": Spec(os.path.join("~", ".ros", "radseg_maps"),
                          "save_map / load_map paths are confined to this directory"),
    "autosave_period": Spec(0.0, "seconds between automatic saves to autosave.rsmap (0 = off)", 0.0, 86400.0),
    "save_on_shutdown": Spec(True, "save the map to shutdown.rsmap when the node stops"),
    "diagnostics_period": Spec(1.0, "seconds between /diagnostics messages (0 = off)", 0.0, 3600.0),
    # browser view (radseg_core.view; needs rerun-sdk)
    "view": Spec(False, "serve the map, the camera and a query box in a browser; the node logs the page's URL "
                 "(needs rerun-sdk: pip install 'rerun-sdk==0.41.0')"),
    "view_bind": Spec("127.0.0.1", "address the view's page listens on (0.0.0.0: all interfaces); rerun's own "
                      "servers stay on loopback behind it"),
    "view_port": Spec(9090, "port of the view's page: the URL to open, the only port a browser needs", 1, 65535),
    "view_grpc_port": Spec(9876, "port of rerun's gRPC server on loopback (relayed by the page)", 1, 65535),
    "view_web_port": Spec(9091, "port of rerun's web-viewer server on loopback (relayed by the page)", 1, 65535),
}


@dataclass
class NodeParams:
    """Typed snapshot of the parameters; field names equal parameter names."""

    model: str
    radio_repo_dir: str
    radio_checkpoint: str
    text_cache_dir: str
    lang_model: str
    text_model_path: str
    text_device: str
    text_dtype: str
    text_keep_loaded: bool
    device: str
    dtype: str
    encoder_backend: str
    onnx_model: str
    crop: int
    stride: int
    scra_scaling: float
    scga_scaling: float
    sam_refine: bool
    sam_checkpoint: str
    input_sizing: str
    sam_prompt_frame: str
    mode: str
    classes: list[str]
    prediction_threshold: float
    prompt_denoising: float
    voxel_size: float
    storage_dtype: str
    max_voxels: int
    cache_aligned: bool
    max_hits: float
    free_space_decay: float
    residual_rows: int
    min_depth: float
    max_depth: float
    depth_scale: float
    point_stride: int
    pose_source: str
    pose_is_optical: bool
    camera_frame: str
    map_frame: str
    camera_extrinsic: str
    tf_wait_timeout: float
    tf_cache_time: float
    tf_backend: str
    time_jump_threshold: float
    reset_map_on_time_jump: bool
    input_reliability: str
    sync_slop: float
    sync_queue_size: int
    sync_backend: str
    frame_skip: int
    publish_segmentation: bool
    cloud_publish_rate: float
    default_top_k: int
    max_queries: int
    max_query_chars: int
    query_threshold: float
    keepout_queries: list[str]
    speed_queries: list[str]
    mask_publish_rate: float
    speed_limit_percent: int
    floor_z: float
    step_height: float
    robot_height: float
    robot_radius: float
    goal_standoff: float
    robot_base_frame: str
    objects_min_voxels: int
    map_directory: str
    autosave_period: float
    save_on_shutdown: bool
    diagnostics_period: float
    view: bool
    view_bind: str
    view_port: int
    view_grpc_port: int
    view_web_port: int


def descriptor(name: str, spec: Spec) -> ParameterDescriptor:
    extra = f" [one of: {', '.join(spec.choices)}]" if spec.choices else ""
    live = "" if spec.live else " (read at start-up)"
    d = ParameterDescriptor(name=name, description=spec.description + extra + live, read_only=False)
    if spec.default == []:  # rclpy types an empty list as bytes, and a params file's [] as "not set"
        d.dynamic_typing = True
    if spec.low is not None and spec.high is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    return d


def normalize(name: str, value: Any) -> Any:
    """A parameter value as NodeParams holds it: rclpy types an empty list as bytes and a params file's ``[]``
    arrives unset, so for a list parameter both are the empty list; other values pass (validate judges them)."""
    spec = SPECS.get(name)
    if spec is None or not isinstance(spec.default, list) or isinstance(value, (str, bytes)):
        return value
    if value is None:
        return []
    return list(value) if hasattr(value, "__iter__") else value


def validate(name: str, value: Any, current: NodeParams | None = None) -> str | None:
    """Return the reason ``value`` is not acceptable for ``name``, or None.

    ``current`` is given for live changes: only parameters marked live may change while running.
    """
    spec = SPECS.get(name)
    if spec is None:
        return None  # not ours (e.g. use_sim_time)
    if current is not None and not spec.live and getattr(current, name) != value:
        return f"'{name}' is read at start-up; restart the node to change it"
    if spec.choices and value not in spec.choices:
        return f"'{name}' must be one of {', '.join(spec.choices)}, got '{value}'"
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.low is not None and numeric and not spec.low <= value <= spec.high:
        return f"'{name}' must lie in [{spec.low}, {spec.high}], got {value}"
    if name in ("crop", "stride") and value % 16:
        return f"'{name}' must be a multiple of 16 (RADIO patch size), got {value}"
    if name == "camera_extrinsic" and str(value).strip():
        parts = str(value).replace(",", " ").split()
        try:
            numbers = [float(x) for x in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 7:
            return f"'camera_extrinsic' must be 7 numbers 'x y z qx qy qz qw' or '', got {value!r}"
    texts = isinstance(value, (list, tuple)) and all(isinstance(q, str) and q.strip() for q in value)
    if name in ("keepout_queries", "speed_queries") and not texts:
        return f"'{name}' must be a list of non-empty texts ([] = off), got {value!r}"
    if name == "robot_base_frame" and not str(value).strip():
        return "'robot_base_frame' must name a TF frame"
    if name == "classes":
        if not value or any(not str(c).strip() for c in value):
            return "'classes' must be a non-empty list of non-empty names"
        if len(set(value)) != len(value):
            return "'classes' contains duplicates"
    return None


def check_consistency(p: NodeParams) -> str | None:
    """Relations between parameters that single-value checks cannot see."""
    if p.min_depth >= p.max_depth:
        return f"min_depth ({p.min_depth}) must be below max_depth ({p.max_depth})"
    if p.stride > p.crop:
        return f"stride ({p.stride}) must not exceed crop ({p.crop}): windows would leave gaps"
    if p.sam_refine and p.mode != "probabilities":
        return "sam_refine refines class masks and needs mode:=probabilities"
    if p.onnx_model and p.encoder_backend != "onnxruntime":
        return "onnx_model is read only with encoder_backend:=onnxruntime"
    if p.robot_height <= p.step_height:
        return f"robot_height ({p.robot_height}) must exceed step_height ({p.step_height})"
    return None
