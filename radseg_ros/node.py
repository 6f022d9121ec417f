"""radseg_node: wires ROS topics, services and timers to a radseg_core SemanticMapper.

No math lives here: conversions are in ``conversions``, parameters in ``params``, the frame hand-off
in ``worker``, and everything numeric in ``radseg_core``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from radseg_core.model.loading import ModelLoadError
from radseg_core.pipeline import MapperConfig, SemanticMapper
from radseg_ros import conversions as conv
from radseg_ros.map_paths import MapPathError, resolve_map_path
from radseg_ros.params import SPECS, NodeParams, check_consistency, descriptor, validate
from radseg_ros.srv import MapFile, TextQuery
from radseg_ros.sync import subscribe_synchronized
from radseg_ros.visualization import candidate_markers, colorize_labels
from radseg_ros.worker import LatestSlotWorker

try:  # TF lookups where tf2_ros is installed
    import tf2_ros  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the install
    tf2_ros = None


def mapper_config(p: NodeParams) -> MapperConfig:
    return MapperConfig(
        model=p.model, lang_model=p.lang_model, text_model_path=p.text_model_path or None,
        radio_repo_dir=p.radio_repo_dir or None, radio_checkpoint=p.radio_checkpoint or None,
        text_cache_dir=os.path.expanduser(p.text_cache_dir) if p.text_cache_dir else None,
        device=p.device, dtype=p.dtype, crop=p.crop, stride=p.stride,
        scra_scaling=p.scra_scaling, scga_scaling=p.scga_scaling,
        sam_refine=p.sam_refine, sam_checkpoint=p.sam_checkpoint or None,
        mode=p.mode, classes=list(p.classes), prediction_threshold=p.prediction_threshold,
        prompt_denoising=p.prompt_denoising, voxel_size=p.voxel_size, storage_dtype=p.storage_dtype,
        max_voxels=p.max_voxels or None, max_hits=p.max_hits or None, min_depth=p.min_depth,
        max_depth=p.max_depth, depth_scale=p.depth_scale, point_stride=p.point_stride,
        pose_is_optical=p.pose_is_optical, query_threshold=p.query_threshold, frame_id=p.map_frame,
        cache_aligned=p.cache_aligned, text_device=p.text_device, text_dtype=p.text_dtype,
        text_keep_loaded=p.text_keep_loaded,
    )


class RadsegNode(Node):
    """Subscribes to RGB-D + pose, maps with RADSeg, publishes images and clouds, answers queries."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("radseg", **node_kwargs)
        for name, spec in SPECS.items():
            self.declare_parameter(name, spec.default, descriptor(name, spec))
        self.p = self._read_params()
        self.mapper = SemanticMapper(mapper_config(self.p))
        self.map_lock = threading.Lock()  # the worker integrates while services query / save / load
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._camera: tuple[np.ndarray, tuple[int, int]] | None = None
        self._stats = {"frames_in": 0, "rejected": 0, "skipped": 0, "last_error": ""}
        self._latency = 0.0
        self._timings: dict[str, list[float]] = {}  # seconds per stage since the last diagnostics message
        self._last_timings: dict[str, float] = {}
        self._timings_lock = threading.Lock()  # worker appends, diagnostics timer drains
        self._sync_count = 0

        sensor_qos = qos_profile_sensor_data
        if self.p.input_reliability == "reliable":
            sensor_qos = QoSProfile(depth=qos_profile_sensor_data.depth, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(CameraInfo, "rgb/camera_info", self._on_camera_info, sensor_qos)
        topics: list[tuple[type, str]] = [(Image, "rgb/image"), (Image, "depth/image")]
        if self.p.pose_source == "pose":
            topics.append((PoseStamped, "pose"))
        elif self.p.pose_source == "odometry":
            topics.append((Odometry, "odom"))
        elif tf2_ros is None:
            raise RuntimeError("pose_source 'tf' needs tf2_ros, which is not installed; use pose or odometry")
        else:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._subs, self._sync = subscribe_synchronized(
            self, topics, sensor_qos, self.p.sync_queue_size, self.p.sync_slop, self._on_synced,
            lambda msg: conv.stamp_to_sec(msg.header.stamp),
        )

        reliable = QoSProfile(depth=2)
        self.pub_seg = self.create_publisher(Image, "~/segmentation", reliable)
        self.pub_labels = self.create_publisher(Image, "~/labels", reliable)
        self.pub_cloud = self.create_publisher(PointCloud2, "~/semantic_cloud", reliable)
        self.pub_query_cloud = self.create_publisher(PointCloud2, "~/query_cloud", reliable)
        self.pub_markers = self.create_publisher(MarkerArray, "~/query_markers", reliable)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)

        self.create_service(TextQuery, "~/query", self._on_query)
        self.create_service(MapFile, "~/save_map", self._on_save)
        self.create_service(MapFile, "~/load_map", self._on_load)
        self.create_service(Trigger, "~/reset_map", self._on_reset)

        self._cloud_timer = self._make_timer(self.p.cloud_publish_rate and 1.0 / self.p.cloud_publish_rate,
                                             self._publish_cloud)
        self._make_timer(self.p.diagnostics_period, self._publish_diagnostics)
        self._make_timer(self.p.autosave_period, self._autosave)
        self.worker: LatestSlotWorker[tuple] = LatestSlotWorker(self._process, self._on_worker_error)
        self.get_logger().info(
            f"radseg ready: model={self.p.model} mode={self.p.mode} voxel={self.p.voxel_size} m "
            f"device={self.mapper.device} pose_source={self.p.pose_source}"
        )

    # ----------------------------------------------------------------- parameters
    def _read_params(self) -> NodeParams:
        values = {name: self.get_parameter(name).value for name in SPECS}
        for name, value in values.items():
            reason = validate(name, value)
            if reason:
                raise ValueError(f"invalid parameter: {reason}")
        p = NodeParams(**values)
        reason = check_consistency(p)
        if reason:
            raise ValueError(f"invalid parameters: {reason}")
        return p

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {prm.name: prm.value for prm in params if prm.name in SPECS}
        for name, value in changes.items():
            reason = validate(name, value, self.p)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        new = replace(self.p, **changes)
        reason = check_consistency(new)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        self.p = new
        with self.map_lock:
            self.mapper.update_config(mapper_config(new))
        return SetParametersResult(successful=True)

    def _make_timer(self, period: float, callback: Callable[[], None]):
        return self.create_timer(period, callback) if period and period > 0 else None

    # ----------------------------------------------------------------- input
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = conv.camera_info_to_k(msg)
        except conv.ConversionError as exc:
            self._reject(f"camera_info: {exc}")

    def _on_synced(self, rgb: Image, depth: Image, pose_msg=None) -> None:
        self._stats["frames_in"] += 1
        self._sync_count += 1
        if self.p.frame_skip and (self._sync_count - 1) % (self.p.frame_skip + 1):
            self._stats["skipped"] += 1
            return
        if self._camera is None:
            self._reject("no camera_info received yet on rgb/camera_info: frames are dropped until it arrives")
            return
        # input age: wall-clock arrival of the completed set minus its stamp (transport + sync wait when the
        # sender stamps with its wall clock, as the benchmark does)
        age = time.time() - conv.stamp_to_sec(rgb.header.stamp)
        self.worker.offer((time.monotonic(), age, rgb, depth, pose_msg, self._camera))

    def _pose_arrays(self, rgb: Image, pose_msg) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(pose_msg, PoseStamped):
            return conv.pose_to_arrays(pose_msg.pose)
        if isinstance(pose_msg, Odometry):
            return conv.pose_to_arrays(pose_msg.pose.pose)
        frame = self.p.camera_frame or rgb.header.frame_id
        try:
            tf = self._tf_buffer.lookup_transform(self.p.map_frame, frame, rgb.header.stamp)
        except Exception as exc:  # noqa: BLE001 - tf2 raises several unrelated types
            raise conv.ConversionError(f"no transform {self.p.map_frame} <- {frame}: {exc}") from exc
        t, q = tf.transform.translation, tf.transform.rotation
        return np.array([t.x, t.y, t.z]), np.array([q.x, q.y, q.z, q.w])

    def _process(self, item: tuple) -> None:
        """Worker thread: convert, encode, integrate, publish the segmentation."""
        t_in, age, rgb_msg, depth_msg, pose_msg, (k, size) = item
        queue_wait = time.monotonic() - t_in
        t0 = time.perf_counter()
        try:
            rgb = conv.image_to_rgb(rgb_msg)
            depth_raw = conv.image_to_depth(depth_msg)
            translation, quaternion = self._pose_arrays(rgb_msg, pose_msg)
            frame = self.mapper.make_frame(
                rgb, depth_raw, depth_msg.encoding, k, size, translation, quaternion,
                stamp=conv.stamp_to_sec(rgb_msg.header.stamp), frame_id=rgb_msg.header.frame_id,
            )
        except (conv.ConversionError, ValueError) as exc:
            self._reject(str(exc))
            return
        t1 = time.perf_counter()
        try:
            encoded = self.mapper.encode(frame)  # outside the lock: queries stay answered meanwhile
        except ValueError as exc:
            self._reject(str(exc))
            return
        with self.map_lock:
            result = self.mapper.integrate(frame, encoded)
        t2 = time.perf_counter()
        if not self.context.ok():  # shutting down: the map is updated, publishing is no longer possible
            return
        if self.p.publish_segmentation and result.labels is not None:
            header = Header(stamp=rgb_msg.header.stamp, frame_id=rgb_msg.header.frame_id)
            # images nobody subscribes to are not built (colourising a 640x480 frame costs milliseconds)
            if self.pub_labels.get_subscription_count():
                self.pub_labels.publish(conv.labels_to_image(result.labels, header))
            if self.pub_seg.get_subscription_count():
                self.pub_seg.publish(conv.rgb_to_image(colorize_labels(result.labels, rgb), header))
        t3 = time.perf_counter()
        stages = {"input_age": age, "queue_wait": queue_wait, "conversion": t1 - t0, **result.timings,
                  "publishing": t3 - t2}
        with self._timings_lock:
            for name, value in stages.items():
                self._timings.setdefault(name, []).append(value)
        self._latency = time.monotonic() - t_in

    def _reject(self, reason: str) -> None:
        self._stats["rejected"] += 1
        self._stats["last_error"] = reason
        self.get_logger().warning(f"input rejected: {reason}", throttle_duration_sec=2.0)

    def _on_worker_error(self, exc: BaseException) -> None:
        if not self.context.ok():
            return  # a publish raced with shutdown; nothing to report
        self._stats["rejected"] += 1
        self._stats["last_error"] = f"{type(exc).__name__}: {exc}"
        self.get_logger().error(f"frame processing failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=2.0)

    # ----------------------------------------------------------------- output
    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p.map_frame)

    def _publish_cloud(self) -> None:
        if self.pub_cloud.get_subscription_count() == 0:
            return
        with self.map_lock:
            snapshot = self.mapper.cloud()
        self.pub_cloud.publish(conv.make_cloud(self._header(), snapshot.pop("xyz"), snapshot))

    def _publish_diagnostics(self) -> None:
        w = self.worker
        values = {
            "frames_in": self._stats["frames_in"], "processed": w.processed, "dropped_latest_wins": w.dropped,
            "skipped": self._stats["skipped"], "rejected": self._stats["rejected"],
            "latency_s": round(self._latency, 4), "voxels": len(self.mapper),
            "map_bytes": self.mapper.nbytes(), "last_error": self._stats["last_error"],
        }
        with self._timings_lock:  # means over the frames since the last message; the last ones if none came
            if self._timings:
                self._last_timings = {k: sum(v) / len(v) for k, v in self._timings.items()}
                self._timings = {}
        values.update({f"time_{k}_s": round(v, 5) for k, v in self._last_timings.items()})
        level = DiagnosticStatus.WARN if self._stats["last_error"] else DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level, name="radseg: mapper", hardware_id=str(self.mapper.device),
            message=self._stats["last_error"] or "mapping",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        self.pub_diag.publish(DiagnosticArray(header=self._header(), status=[status]))

    # ----------------------------------------------------------------- services
    def _on_query(self, req: TextQuery.Request, res: TextQuery.Response) -> TextQuery.Response:
        queries = list(req.queries)
        problem = self._check_queries(queries)
        if problem:
            res.success, res.message = False, problem
            return res
        top_k = int(req.top_k) or self.p.default_top_k
        try:
            with self.map_lock:
                result = self.mapper.query(queries, top_k=top_k)
        except ValueError as exc:
            res.success, res.message = False, str(exc)
            return res
        header = self._header()
        for cand in result.candidates:
            res.query_index.append(cand.query_index)
            res.positions.append(Point(x=float(cand.centroid[0]), y=float(cand.centroid[1]),
                                       z=float(cand.centroid[2])))
            res.scores.append(float(cand.score))
        fields = {f"score_{i}": result.scores[i].astype(np.float32) for i in range(len(queries))}
        res.cloud = conv.make_cloud(header, result.positions.astype(np.float32), fields)
        res.success = True
        res.message = (
            f"{len(result.candidates)} candidates for {len(queries)} queries over {len(result.positions)} voxels"
        )
        self.pub_query_cloud.publish(res.cloud)
        self.pub_markers.publish(candidate_markers(result, header))
        return res

    def _check_queries(self, queries: list[str]) -> str | None:
        if not queries:
            return "no queries: give at least one text, e.g. queries: ['chair']"
        if len(queries) > self.p.max_queries:
            return f"{len(queries)} queries exceed max_queries={self.p.max_queries}"
        for i, q in enumerate(queries):
            if not q.strip():
                return f"query {i} is empty"
            if len(q) > self.p.max_query_chars:
                return f"query {i} has {len(q)} characters, more than max_query_chars={self.p.max_query_chars}"
        if len(self.mapper) == 0:
            return "the map is empty: no frames integrated yet"
        return None

    def _map_path(self, requested: str, create_parent: bool = False) -> Path:
        path = resolve_map_path(self.p.map_directory, requested)
        if create_parent:
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _on_save(self, req: MapFile.Request, res: MapFile.Response) -> MapFile.Response:
        return self._map_file(req, res, save=True)

    def _on_load(self, req: MapFile.Request, res: MapFile.Response) -> MapFile.Response:
        return self._map_file(req, res, save=False)

    def _map_file(self, req: MapFile.Request, res: MapFile.Response, save: bool) -> MapFile.Response:
        """save_map / load_map: confined path, map lock, and on failure a reason with the map unchanged."""
        try:
            path = self._map_path(req.path, create_parent=save)
            with self.map_lock:
                res.voxels = self.mapper.save(path) if save else self.mapper.load(path)
            done = f"saved {res.voxels} voxels to" if save else f"loaded {res.voxels} voxels from"
            res.success, res.message = True, f"{done} {path}"
        except (MapPathError, OSError, ValueError) as exc:
            res.success, res.message = False, f"{'save' if save else 'load'} failed, map unchanged: {exc}"
            res.voxels = len(self.mapper)
        return res

    def _on_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.map_lock:
            n = len(self.mapper)
            self.mapper.reset()
        res.success, res.message = True, f"map cleared ({n} voxels removed)"
        return res

    def _autosave(self) -> None:
        self._save_quietly("autosave.rsmap")

    def _save_quietly(self, name: str) -> None:
        try:
            path = self._map_path(name, create_parent=True)
            with self.map_lock:
                n = self.mapper.save(path)
            self.get_logger().info(f"saved {n} voxels to {path}")
        except Exception as exc:  # noqa: BLE001 - never lose the process over a failed autosave
            self.get_logger().error(f"saving {name} failed: {exc}")

    def shutdown(self) -> None:
        self.worker.stop()
        if self.p.save_on_shutdown and len(self.mapper):
            self._save_quietly("shutdown.rsmap")


EXIT_MODEL_UNAVAILABLE = 3  # exit status when the model cannot be loaded (ModelLoadError)


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        node = RadsegNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except ModelLoadError as exc:  # weights missing: its own status, so scripts can fall back (demo.sh)
        print(f"radseg_node: {exc}", file=sys.stderr)
        return EXIT_MODEL_UNAVAILABLE
    except (ValueError, RuntimeError) as exc:
        print(f"radseg_node: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
