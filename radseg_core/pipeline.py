"""SemanticMapper: one frame in → segmentation out, map updated; text in → scored voxels out.

The single place where encoder, geometry and voxel map meet, so the ROS node, the command-line tools
and the tests run the same code. Not thread-safe on its own: the node serialises calls with a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from radseg_core.geometry import (
    depth_to_metres,
    optical_from_body_pose,
    pose_to_matrix,
    scale_intrinsics,
    validate_rigid_transform,
)
from radseg_core.map_io import MapFileError, load_map, save_map
from radseg_core.placement import Placement, place_map
from radseg_core.query import AlignedFeatures, ClassLabels, map_cosines, query_map
from radseg_core.registration import register_depth
from radseg_core.types import Candidate, Frame, QueryResult
from radseg_core.voxel_map import VoxelMap

# Competing labels for a query when the configured classes offer none (RayFronts-style relative score).
GENERIC_NEGATIVES = ("object", "things", "stuff", "texture")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class MapperConfig:
    """Everything a SemanticMapper needs; the node's parameters map onto it one to one."""

    model: str = "c-radio_v3-b"
    lang_model: str = "siglip2"
    text_model_path: str | None = None
    radio_repo_dir: str | None = None
    radio_checkpoint: str | None = None
    text_cache_dir: str | None = None
    text_device: str = "cpu"  # where the lazily loaded text tower runs (cpu keeps GPU memory free)
    text_dtype: str = "auto"  # auto = float32 on cpu, float16 on cuda
    text_keep_loaded: bool = True  # False frees the text tower after each text-cache miss
    device: str = "auto"
    dtype: str = "auto"
    crop: int = 336
    stride: int = 224
    encoder_backend: str = "torch"  # per-window backbone: torch or onnxruntime (encoder/backends.py)
    onnx_model: str | None = None  # onnxruntime: a radseg-export file; None = export the model at start-up
    scra_scaling: float = 10.0
    scga_scaling: float = 10.0
    sam_refine: bool = False
    sam_checkpoint: str | None = None
    input_sizing: str = "snap16"  # or "official": RADSeg's _preprocess_image (docs/encoder.md)
    sam_prompt_frame: str = "official"  # RADSeg+ prompt scaling: "official" (RADSeg's) or "exact"
    sam_coarse_thresh: float = 0.10  # RADSeg+ coarse_thresh (the 2D presets set the official per-dataset one)
    denoised_pixels: str = "ignore"  # or "argmax": the reference's label where every class was denoised
    mode: str = "features"
    classes: list[str] = field(default_factory=lambda: ["floor", "wall", "chair", "table", "person"])
    prediction_threshold: float = 0.0
    prompt_denoising: float = 0.5
    voxel_size: float = 0.05
    storage_dtype: str = "float16"
    max_voxels: int | None = None
    max_hits: float | None = None
    free_space_decay: float = 0.5  # per frame that sees through a voxel it keeps floor(n * (1 - decay)) of n hit frames
    residual_rows: int = 131072  # cap of the fp16 drift compensation working set (2 x recent view, in rows)
    voxel_grid: str = "floor"  # cell lattice: floor(p/s) or round(p/s) (RayFronts; the 3D evaluation)
    min_depth: float = 0.1
    max_depth: float = 5.0
    depth_scale: float = 0.001
    point_stride: int = 1
    pose_is_optical: bool = True
    query_threshold: float = 0.5
    cache_aligned: bool = False  # opt-in aligned copy for fast queries (+2,312 B/voxel with SigLIP2's 1152-d)
    frame_id: str = "map"


@dataclass
class Encoded:
    """Encoder output for one frame, before it meets the map."""

    values: torch.Tensor  # (C, h, w) raw features or (K, H, W) class probabilities
    labels: torch.Tensor | None  # (H, W) int64, 0 = ignore
    timings: dict[str, float]


@dataclass(frozen=True)
class LoadInfo:
    """What the last successful ``SemanticMapper.load`` did (for the caller's message)."""

    voxels: int
    file_frame: str  # the file's frame_id
    frame_id: str  # the map frame now
    adopted: bool  # the map frame changed to the file's
    placement: Placement | None  # set when the voxels were re-voxelised into the map frame


@dataclass
class FrameOutput:
    """What one processed frame gives back to the caller."""

    labels: np.ndarray | None  # (H, W) uint16, 0 = ignore, i = classes[i - 1]
    points: int  # points integrated into the map
    timings: dict[str, float]  # seconds per stage
    out_of_range: int = 0  # finite points dropped because they lie beyond the map's key range


def _refine_config(config: MapperConfig):
    """RADSeg+ settings of ``config`` (None without refinement)."""
    if not config.sam_refine:
        return None
    from radseg_core.encoder.sam_refine import RefineConfig

    return RefineConfig(coarse_thresh=config.sam_coarse_thresh, prompt_frame=config.sam_prompt_frame)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use device:=cpu or auto")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype; None means plain float32 (CPU autocast rarely helps and changes numerics)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got '{dtype}'")
    return None if dtype == "float32" else _DTYPES[dtype]


class SemanticMapper:
    """RADSeg encoder + hit-weighted voxel map behind a frame-in / query-in interface."""

    def __init__(self, config: MapperConfig, encoder=None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if encoder is None:
            from radseg_core.encoder import build_encoder

            encoder = build_encoder(
                config.model, lang=config.lang_model, device=str(self.device),
                dtype=resolve_dtype(config.dtype, self.device), text_model_dir=config.text_model_path,
                repo_dir=config.radio_repo_dir, checkpoint=config.radio_checkpoint, cache_dir=config.text_cache_dir,
                crop=config.crop, stride=config.stride, scra_scaling=config.scra_scaling,
                scga_scaling=config.scga_scaling, sam_refine=config.sam_refine,
                sam_checkpoint=config.sam_checkpoint, prompt_denoising=config.prompt_denoising,
                text_device=config.text_device, text_dtype=config.text_dtype,
                text_keep_loaded=config.text_keep_loaded,
                prediction_thresh=config.prediction_threshold, input_sizing=config.input_sizing,
                denoised_pixels=config.denoised_pixels, sam_config=_refine_config(config),
                backend=config.encoder_backend, onnx_model=config.onnx_model,
            )
        self.encoder = encoder
        self.map = self._new_map()
        # Queries need every voxel in text space. The opt-in cache re-aligns only voxels changed since its
        # last use, at the price of a second copy of the features; without it a query aligns the map chunk
        # by chunk (slower on CPU, no extra memory). Cloud labels are cached either way (12 B/voxel).
        self._aligned = AlignedFeatures(encoder.align) if config.cache_aligned else None
        self._labels = ClassLabels(encoder.align)  # cloud labels, 12 B/voxel, refreshed where the map changed
        self.last_load: LoadInfo | None = None

    # ----------------------------------------------------------------- configuration
    def _new_map(self) -> VoxelMap:
        c = self.config
        dim = self.encoder.feature_dim if c.mode == "features" else len(c.classes)
        vmap = VoxelMap(
            voxel_size=c.voxel_size, mode=c.mode, dim=dim, dtype=_DTYPES[c.storage_dtype],
            device=self.device, max_voxels=c.max_voxels, max_hits=c.max_hits, residual_rows=c.residual_rows,
            free_space_decay=c.free_space_decay, grid=c.voxel_grid,
        )
        vmap.metadata.update(model=self.encoder.model_name, classes=list(c.classes), frame_id=c.frame_id)
        return vmap

    def update_config(self, config: MapperConfig) -> None:
        """Apply live-changeable settings (classes, thresholds, depth limits, hit cap)."""
        if config.mode == "probabilities" and config.classes != self.config.classes and len(self.map):
            raise ValueError("classes cannot change in probabilities mode once the map has voxels; reset first")
        self.config = config
        self.encoder.prompt_denoising = config.prompt_denoising
        self.encoder.prediction_thresh = config.prediction_threshold
        self.map.max_hits = config.max_hits
        self.map.free_space_decay = config.free_space_decay
        if config.mode == "probabilities" and self.map.dim != len(config.classes):
            self.map = self._new_map()
        self.map.metadata["classes"] = list(config.classes)

    # ----------------------------------------------------------------- frames
    def make_frame(
        self,
        rgb: np.ndarray,
        depth_raw: np.ndarray,
        depth_encoding: str,
        K: np.ndarray,
        camera_size: tuple[int, int],
        translation: np.ndarray,
        quaternion_xyzw: np.ndarray,
        *,
        stamp: float = 0.0,
        frame_id: str = "",
        depth_k: np.ndarray | None = None,
        depth_size: tuple[int, int] | None = None,
        T_rgb_depth: np.ndarray | None = None,
    ) -> Frame:
        """Validate and assemble a Frame from decoded sensor data; ValueError says what is wrong.

        ``K`` belongs to an image of ``camera_size`` (width, height), e.g. CameraInfo's; it is rescaled
        when the rgb image has another size. Depth from its own camera (``depth_k`` of an image of
        ``depth_size`` (width, height), ``T_rgb_depth`` its extrinsic, None: same origin) is registered
        into the rgb camera first (``radseg_core.registration``).
        """
        depth = depth_to_metres(depth_raw, depth_encoding, self.config.depth_scale)
        w, h = camera_size
        if (rgb.shape[1], rgb.shape[0]) != (w, h):
            if abs(rgb.shape[1] / w - rgb.shape[0] / h) > 0.02:
                raise ValueError(
                    f"rgb {rgb.shape[1]}x{rgb.shape[0]} and camera_info {w}x{h} differ in aspect ratio"
                )
            K = scale_intrinsics(K, (h, w), rgb.shape[:2])
        if depth_k is not None:
            dw, dh = depth_size if depth_size is not None else (depth.shape[1], depth.shape[0])
            depth = register_depth(depth, depth_k, (dh, dw), K, rgb.shape[:2], T_rgb_depth)
        if abs(depth.shape[1] / rgb.shape[1] - depth.shape[0] / rgb.shape[0]) > 0.02:
            raise ValueError(
                f"depth {depth.shape[1]}x{depth.shape[0]} is not a rescaled rgb {rgb.shape[1]}x{rgb.shape[0]}: "
                "depth must be registered to the colour camera"
            )
        T = pose_to_matrix(translation, quaternion_xyzw)
        if not self.config.pose_is_optical:
            T = optical_from_body_pose(T)
        return Frame(rgb=rgb, depth=depth, K=np.asarray(K, dtype=np.float64), T_world_cam=T,
                     stamp=stamp, frame_id=frame_id or "camera_optical_frame")

    @torch.no_grad()
    def process(self, frame: Frame) -> FrameOutput:
        """Segment one frame and integrate it into the map."""
        return self.integrate(frame, self.encode(frame))

    @torch.no_grad()
    def encode(self, frame: Frame) -> Encoded:
        """The model's part of a frame; touches no map state, so it may run while the map is queried."""
        validate_rigid_transform(frame.T_world_cam)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        h, w = frame.rgb.shape[:2]
        if self.config.mode == "features":
            feats = self.encoder.encode_features(frame.rgb)  # (C, h/16, w/16) raw RADIO
            timings["encoder"] = time.perf_counter() - t0
            labels = self._labels_from_features(feats, (h, w))
            timings["segmentation"] = time.perf_counter() - t0 - timings["encoder"]
            values = feats
        else:
            seg = self.encoder.predict(frame.rgb, self.config.classes)
            timings["encoder"] = time.perf_counter() - t0
            labels, values = seg.labels, seg.map_probs()  # no zero vectors from RADSeg+
        return Encoded(values=values, labels=labels, timings=timings)

    @torch.no_grad()
    def integrate(self, frame: Frame, encoded: Encoded) -> FrameOutput:
        """The map's part of a frame (callers that share the map hold their lock around this only)."""
        c = self.config
        t1 = time.perf_counter()
        n = self.map.integrate_frame(
            frame, encoded.values, min_depth=c.min_depth, max_depth=c.max_depth, subsample=c.point_stride
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings = {**encoded.timings, "integration": time.perf_counter() - t1}
        labels = encoded.labels
        label_img = None if labels is None else labels.to("cpu", torch.int32).numpy().astype(np.uint16)
        return FrameOutput(
            labels=label_img, points=n, timings=timings, out_of_range=self.map.last_out_of_range
        )

    def _labels_from_features(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor | None:
        if not self.config.classes:
            return None
        text = self.encoder.encode_text(list(self.config.classes))
        probs = self.encoder.class_probs(self.encoder.align_map(feats[None]), text)
        _, labels, _ = self.encoder.postprocess(probs, size)
        return labels[0]

    # ----------------------------------------------------------------- queries
    def query(self, texts: list[str], top_k: int = 5) -> QueryResult:
        """Score every voxel for each text; candidates are groups above ``query_threshold``.

        Features mode scores are softmax(100·cos) of the text against the configured classes (minus the
        text itself) — RayFronts' relative score; a text with no competitor falls back to generic
        negatives. When no group passes the threshold, the best voxels are returned as one-voxel
        candidates so the caller still gets the best guesses with their (low) scores.
        """
        if len(self.map) == 0:
            raise ValueError("the map is empty: no frames integrated yet")
        c = self.config
        if c.mode == "features":
            result = self._query_features(texts, top_k)
        else:
            result = query_map(self.map, texts, k=top_k, threshold=c.query_threshold, max_candidates=None)
        self._fill_candidates(result, top_k)
        return result

    def _query_features(self, texts: list[str], top_k: int) -> QueryResult:
        c = self.config
        text = self.encoder.encode_text(texts)
        lowered = {t.strip().lower() for t in texts}
        negatives = [n for n in c.classes if n.strip().lower() not in lowered] or list(GENERIC_NEGATIVES)
        neg = self.encoder.encode_text(negatives)
        return query_map(
            self.map, texts, text, negatives=neg, k=top_k, threshold=c.query_threshold,
            max_candidates=None, cache=self._aligned, align=self.encoder.align,
        )

    def _fill_candidates(self, result: QueryResult, top_k: int) -> None:
        """Keep the best ``top_k`` candidates per query, falling back to single best voxels."""
        centres = result.positions
        kept: list[Candidate] = []
        for q in range(len(result.queries)):
            mine = [cand for cand in result.candidates if cand.query_index == q][:top_k]
            if not mine:
                mine = [
                    Candidate(query_index=q, centroid=centres[i].copy(),
                              extent=np.full(3, self.map.voxel_size), score=float(result.scores[q, i]), voxels=1)
                    for i in result.top_indices[q][:top_k]
                ]
            kept += mine
        result.candidates = kept

    # ----------------------------------------------------------------- map management
    def __len__(self) -> int:
        return len(self.map)

    def nbytes(self) -> int:
        """Bytes of the map and of the per-voxel caches next to it."""
        return sum(self.memory_stats()[k] for k in ("map_bytes", "query_cache_bytes", "label_cache_bytes"))

    def memory_stats(self) -> dict[str, float]:
        """What diagnostics report, as two figures to plan with: ``bytes_per_voxel`` (chunks, index and the
        per-voxel caches: everything that grows with the map) and ``working_set_mb`` (fp16 drift
        compensation, sized by the view and capped by ``residual_rows``, not by the map)."""
        st = self.map.memory_stats()
        out = {
            "map_bytes": st["bytes_allocated"],
            "map_allocated_over_used": round(st["allocated_over_used"], 4),
            "query_cache_bytes": self._aligned.nbytes() if self._aligned is not None else 0,
            "label_cache_bytes": self._labels.nbytes(),
            "working_set_rows": st["working_set_rows"],
            "working_set_mb": st["working_set_mb"],
            "uncompensated_last": st["uncompensated_last"],
            "uncompensated_total": st["uncompensated_total"],
        }
        per_map = out["map_bytes"] - st["working_set_bytes"] + out["query_cache_bytes"] + out["label_cache_bytes"]
        out["bytes_per_voxel"] = round(per_map / len(self.map), 1) if len(self.map) else 0.0
        return out

    def reset(self) -> None:
        self.map.reset()

    def save(self, path: str | Path) -> int:
        save_map(self.map, path)
        return len(self.map)

    def load(
        self,
        path: str | Path,
        *,
        adopt_frame: bool = False,
        T_map_file: np.ndarray | Callable[[str], np.ndarray] | None = None,
    ) -> int:
        """Replace the map with the file's; on any refusal (MapFileError) the current map stays untouched.

        The file must match the running configuration: mode, voxel size, feature size, model and the
        map frame. A file in another frame is refused unless it can be placed or adopted:

        * ``T_map_file``: 4x4 rigid transform file frame -> map frame; the voxels are re-voxelised into the
          map frame (``radseg_core.placement``: exact for 90° rotations and whole-voxel shifts, resampled
          otherwise). An array is applied as given (also to a file whose frame_id equals the map's: two
          sessions' "map" frames need not coincide); a callable ``f(file_frame) -> T`` is asked only when
          the frames differ (the node's TF lookup), and may raise MapFileError to refuse.
        * ``adopt_frame=True``: take the file's frame_id as the map frame instead (voxels unchanged).

        Returns the voxel count; ``last_load`` says what was done (frames, placement, merged voxels).
        """
        if adopt_frame and T_map_file is not None:
            raise ValueError("adopt_frame and T_map_file exclude each other: adopt the file's frame or place "
                             "the map in this one")
        loaded = load_map(path, device=self.device, residual_rows=self.config.residual_rows)
        c = self.config
        expected_dim = self.encoder.feature_dim if loaded.mode == "features" else loaded.dim
        if loaded.mode != c.mode:
            raise MapFileError(f"{path}: map mode '{loaded.mode}' differs from the node's mode '{c.mode}'")
        if abs(loaded.voxel_size - c.voxel_size) > 1e-9 * c.voxel_size:
            raise MapFileError(
                f"{path}: map voxel size {loaded.voxel_size} m differs from the node's voxel_size {c.voxel_size} m"
            )
        if loaded.dim != expected_dim:
            raise MapFileError(f"{path}: map features have {loaded.dim} dims, this model gives {expected_dim}")
        if loaded.metadata.get("model") not in (None, self.encoder.model_name):
            raise MapFileError(
                f"{path}: map was built with model '{loaded.metadata.get('model')}', this node runs "
                f"'{self.encoder.model_name}': features are not comparable"
            )
        file_frame = loaded.metadata.get("frame_id") or c.frame_id
        placement = None
        if T_map_file is not None and (not callable(T_map_file) or file_frame != c.frame_id):
            T = T_map_file(file_frame) if callable(T_map_file) else T_map_file
            try:
                loaded, placement = place_map(loaded, T)
            except ValueError as e:
                raise MapFileError(f"{path}: frame '{file_frame}' -> '{c.frame_id}': {e}") from None
            loaded.metadata["frame_id"] = c.frame_id
        elif file_frame != c.frame_id and not adopt_frame:
            raise MapFileError(
                f"{path}: map is in frame '{file_frame}', this node maps in '{c.frame_id}'; give the transform "
                f"'{file_frame}' -> '{c.frame_id}' to place it, or load with adopt_frame to take the file's frame"
            )
        if loaded.mode == "probabilities":
            self.config.classes = list(loaded.metadata.get("classes") or self.config.classes)
        adopted = adopt_frame and file_frame != c.frame_id
        if adopted:
            self.config.frame_id = file_frame
        loaded.metadata["frame_id"] = self.config.frame_id
        loaded.max_hits = c.max_hits
        loaded.free_space_decay = c.free_space_decay
        loaded.max_voxels = c.max_voxels
        self.map = loaded
        self.last_load = LoadInfo(len(loaded), file_frame, self.config.frame_id, adopted, placement)
        return len(loaded)

    def cloud(self) -> dict[str, np.ndarray]:
        """Voxel centres with rgb, label, score and hits for a semantic point cloud."""
        m = self.map
        out = {
            "xyz": m.centers().cpu().numpy().astype(np.float32),
            "rgb": m.colors().cpu().numpy(),
        }
        if len(m) == 0:
            out.update(label=np.zeros(0, np.uint32), score=np.zeros(0, np.float32), hits=np.zeros(0, np.float32))
            return out
        if m.mode == "probabilities":
            best = m.labels()
            score = torch.cat([b.float().amax(dim=1) for b in m.value_blocks()])
            label = torch.where(score > 0, best + 1, torch.zeros_like(best))
        else:
            label, score = self._feature_labels()
        out["label"] = label.cpu().numpy().astype(np.uint32)
        out["score"] = score.cpu().numpy().astype(np.float32)
        out["hits"] = m.hits().cpu().numpy().astype(np.float32)
        return out

    def _feature_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Class of each voxel among the configured classes (softmax(100·cos), as in 2D)."""
        text = self.encoder.encode_text(list(self.config.classes)).float()
        if self._aligned is not None:  # one product with the aligned copy
            cos = map_cosines(self.map, text, self.encoder.align, self._aligned)
            score, best = torch.softmax(100.0 * cos, dim=0).max(dim=0)
            return best + 1, score
        self._labels.set_text(text)
        rows = self._labels.update(self.map)
        best, score = rows[:, 0].long(), rows[:, 1].float()
        return best + 1, score
