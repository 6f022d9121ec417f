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
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from radseg_core.map_io import MapFileError
from radseg_core.model.loading import ModelLoadError
from radseg_core.pipeline import MapperConfig, SemanticMapper
from radseg_core.query import check_queries
from radseg_core.transforms import (
    ConnectivityError,
    ExtrapolationError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
)
from radseg_ros import conversions as conv
from radseg_ros import poses
from radseg_ros.diagnostics import Counters
from radseg_ros.map_paths import MapPathError, resolve_map_path
from radseg_ros.navigation import Navigation
from radseg_ros.params import SPECS, NodeParams, check_consistency, descriptor, normalize, validate
from radseg_ros.srv import MapFile, TextQuery
from radseg_ros.sync import select_sync_backend, subscribe_synchronized
from radseg_ros.tf_listener import Tf2RosBuffer, TfListener, make_tf_buffer, select_tf_backend, tf_available
from radseg_ros.visualization import candidate_markers, colorize_labels
from radseg_ros.worker import LatestSlotWorker

MAX_WAITING_FRAMES = 30  # frames held for late TF (a 30 Hz camera, 1 s); beyond that the oldest is rejected


def mapper_config(p: NodeParams) -> MapperConfig:
    return MapperConfig(
        model=p.model, lang_model=p.lang_model, text_model_path=p.text_model_path or None,
        radio_repo_dir=p.radio_repo_dir or None, radio_checkpoint=p.radio_checkpoint or None,
        text_cache_dir=os.path.expanduser(p.text_cache_dir) if p.text_cache_dir else None,
        device=p.device, dtype=p.dtype, crop=p.crop, stride=p.stride,
        encoder_backend=p.encoder_backend, onnx_model=os.path.expanduser(p.onnx_model) if p.onnx_model else None,
        scra_scaling=p.scra_scaling, scga_scaling=p.scga_scaling,
        sam_refine=p.sam_refine, sam_checkpoint=p.sam_checkpoint or None,
        input_sizing=p.input_sizing, sam_prompt_frame=p.sam_prompt_frame,
        mode=p.mode, classes=list(p.classes), prediction_threshold=p.prediction_threshold,
        prompt_denoising=p.prompt_denoising, voxel_size=p.voxel_size, storage_dtype=p.storage_dtype,
        max_voxels=p.max_voxels or None, max_hits=p.max_hits or None,
        free_space_decay=p.free_space_decay, residual_rows=p.residual_rows, min_depth=p.min_depth,
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
        self._depth_camera: tuple[np.ndarray, tuple[int, int]] | None = None
        self.counters = Counters()
        self._pose_inputs = poses.PoseInputs(
            map_frame=self.p.map_frame, camera_frame=self.p.camera_frame, pose_is_optical=self.p.pose_is_optical,
            camera_extrinsic=poses.parse_extrinsic(self.p.camera_extrinsic))
        self._waiting: list[tuple[float, tuple, TransformError]] = []  # (give-up time, frame, last error)
        self._newest_rgb_ns = 0
        self._latency = 0.0
        self._timings: dict[str, list[float]] = {}  # seconds per stage since the last diagnostics message
        self._last_timings: dict[str, float] = {}
        self._timings_lock = threading.Lock()  # worker appends, diagnostics timer drains
        self._sync_count = 0
        self._last_tf_error: TransformError = TransformError("no transform")

        sensor_qos = qos_profile_sensor_data
        if self.p.input_reliability == "reliable":
            sensor_qos = QoSProfile(depth=qos_profile_sensor_data.depth, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(CameraInfo, "rgb/camera_info", self._on_camera_info, sensor_qos)
        self.create_subscription(CameraInfo, "depth/camera_info", self._on_depth_camera_info, sensor_qos)
        topics: list[tuple[type, str]] = [(Image, "rgb/image"), (Image, "depth/image")]
        if self.p.pose_source == "pose":
            topics.append((PoseStamped, "pose"))
        elif self.p.pose_source == "odometry":
            topics.append((Odometry, "odom"))
        self._topic_names = [name for _, name in topics]
        # TF: needed for pose_source tf; elsewhere used when present (pose in another frame, body frame,
        # unaligned depth); pip-only installs without tf2_msgs get a clear refusal for those cases instead
        self.tf_buffer: TransformBuffer | Tf2RosBuffer | None = None
        self.tf_backend = "none"
        if self.p.pose_source == "tf" or tf_available():
            self.tf_backend = select_tf_backend(self.p.tf_backend)
            self.tf_buffer = make_tf_buffer(self, self.tf_backend, self.p.tf_cache_time)
            self._tf = TfListener(self, self.tf_buffer, on_update=self._retry_waiting,
                                  on_error=lambda why: self._reject("tf", why),
                                  jump_threshold=self.p.time_jump_threshold, on_jump=self._on_tf_jump,
                                  store=self.tf_backend == "internal")
        self.sync_backend = select_sync_backend(self.p.sync_backend)
        self._subs, self._sync = subscribe_synchronized(
            self, topics, sensor_qos, self.p.sync_queue_size, self.p.sync_slop, self._on_synced, self._admit,
            backend=self.sync_backend,
        )
        self.get_logger().info(f"TF backend: {self.tf_backend}, synchroniser: {self.sync_backend}")
        # waiting frames expire on the steady clock: a paused or jumping /clock must not hold them forever
        self.create_timer(0.05, self._expire_waiting, clock=Clock(clock_type=ClockType.STEADY_TIME))

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
        self.navigation = Navigation(self)  # ~/query_goal, ~/objects, Nav2 costmap filter masks

        self._cloud_timer = self._make_timer(self.p.cloud_publish_rate and 1.0 / self.p.cloud_publish_rate,
                                             self._publish_cloud)
        self._make_timer(self.p.diagnostics_period, self._publish_diagnostics)
        self._make_timer(self.p.autosave_period, self._autosave)
        self.view = None  # the browser view (parameter view), fed by the worker after each frame
        self.worker: LatestSlotWorker[tuple] = LatestSlotWorker(self._process, self._on_worker_error)
        if self.p.view:
            self.view = start_view(self)
        self.get_logger().info(
            f"radseg ready: model={self.p.model} mode={self.p.mode} voxel={self.p.voxel_size} m "
            f"device={self.mapper.device} pose_source={self.p.pose_source}"
        )

    # ----------------------------------------------------------------- parameters
    def _read_params(self) -> NodeParams:
        values = {name: normalize(name, self.get_parameter(name).value) for name in SPECS}
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
        # only real changes: setting map_frame after load_map adopted a frame must not rebuild the mapper config
        changes = {prm.name: normalize(prm.name, prm.value) for prm in params if prm.name in SPECS}
        changes = {name: value for name, value in changes.items() if value != getattr(self.p, name)}
        if not changes:
            return SetParametersResult(successful=True)
        for name, value in changes.items():
            reason = validate(name, value, self.p)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        new = replace(self.p, **changes)
        reason = check_consistency(new)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        with self.map_lock:
            try:  # e.g. other classes for a probabilities map that has voxels: refused, map kept
                self.mapper.update_config(mapper_config(new))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self.p = new
        return SetParametersResult(successful=True)

    def _make_timer(self, period: float, callback: Callable[[], None]):
        return self.create_timer(period, callback) if period and period > 0 else None

    # ----------------------------------------------------------------- input
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = conv.camera_info_to_k(msg)
        except conv.ConversionError as exc:
            self._reject("camera_info", f"camera_info: {exc}")
            return
        if self._camera is not None and camera[1] != self._camera[1]:
            self.counters.add("camera_info_size_changes")
            self.get_logger().warning(f"camera_info size changed from {self._camera[1]} to {camera[1]}")
        self._camera = camera

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._depth_camera = conv.camera_info_to_k(msg)
        except conv.ConversionError as exc:
            self._reject("camera_info", f"depth camera_info: {exc}")

    def _admit(self, index: int, msg: Any) -> int | None:
        """Every input message: count it, refuse unusable stamps/frames, detect jumps in time."""
        topic = self._topic_names[index]
        self.counters.add(f"received_{topic.replace('/', '_')}")
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp == 0:
            self._reject("zero_stamp", f"{topic}: header.stamp is zero: the driver does not stamp its messages")
            return None
        if index < 2 and not msg.header.frame_id:
            self._reject("empty_frame_id", f"{topic}: header.frame_id is empty: set the camera frame in the driver")
            return None
        if index == 0:
            self._check_time(stamp)
        return stamp

    def _check_time(self, stamp_ns: int) -> None:
        """A jump back (bag --loop, simulator reset) empties sync queues, TF history and waiting frames."""
        newest = self._newest_rgb_ns
        threshold = int(self.p.time_jump_threshold * 1e9)
        if newest and stamp_ns < newest - threshold:
            self.counters.add("time_jumps_back")
            discarded = self._sync.reset(newer_than_ns=stamp_ns + threshold)  # the old run's messages
            self._waiting.clear()  # TF resets itself when its own stamps jump (TfListener)
            reset_map = self.p.reset_map_on_time_jump
            if reset_map:
                with self.map_lock:
                    self.mapper.reset()
            self.get_logger().warning(
                f"time jumped back {(newest - stamp_ns) / 1e9:.3f} s (bag loop or simulator reset): "
                f"synchroniser reset ({discarded} queued messages dropped)"
                + (", map cleared (reset_map_on_time_jump)" if reset_map else ", map kept"))
            self._newest_rgb_ns = stamp_ns
            return
        if newest and stamp_ns > newest + threshold:
            self.counters.add("time_jumps_forward")
            self.get_logger().warning(f"time jumped forward {(stamp_ns - newest) / 1e9:.3f} s on rgb/image")
        self._newest_rgb_ns = max(newest, stamp_ns)

    def _on_tf_jump(self, back: float) -> None:
        self.counters.add("tf_time_jumps_back")
        self.get_logger().warning(f"TF time jumped back {back:.3f} s: TF history cleared (static transforms kept)")

    def _on_synced(self, rgb: Image, depth: Image, pose_msg=None) -> None:
        self.counters.add("synchronised")
        self._sync_count += 1
        if self.p.frame_skip and (self._sync_count - 1) % (self.p.frame_skip + 1):
            self.counters.add("skipped")
            return
        if self._camera is None:
            self._reject("no_camera_info",
                         "no camera_info received yet on rgb/camera_info: frames are dropped until it arrives")
            return
        # input age: wall-clock arrival of the completed set minus its stamp (transport + sync wait when the
        # sender stamps with its wall clock, as the benchmark does)
        age = time.time() - conv.stamp_to_sec(rgb.header.stamp)
        frame = (time.monotonic(), age, rgb, depth, pose_msg, self._camera, self._depth_camera)
        if not self._try_place(frame):
            self._waiting.append((time.monotonic() + self.p.tf_wait_timeout, frame, self._last_tf_error))
            self.counters.add("waiting_for_tf")
            if len(self._waiting) > MAX_WAITING_FRAMES:
                _, _, exc = self._waiting.pop(0)
                self._reject("tf_wait_overflow", f"more than {MAX_WAITING_FRAMES} frames wait for TF; oldest "
                             f"rejected: {exc}")

    def _try_place(self, frame: tuple) -> bool:
        """Resolve the frame's transforms and hand it to the worker; False: TF may still arrive, wait."""
        _, _, rgb, depth, pose_msg, _, _ = frame
        try:
            T = poses.optical_pose(rgb, pose_msg, self._pose_inputs, self.tf_buffer)
            T_rgb_depth = poses.depth_extrinsic(rgb, depth, self.p.camera_frame, self.tf_buffer)
        except TransformError as exc:
            may_arrive = isinstance(exc, ConnectivityError) or (isinstance(exc, ExtrapolationError) and exc.future)
            if self.tf_buffer is not None and may_arrive and self.p.tf_wait_timeout > 0:
                self._last_tf_error = exc
                return False
            self._reject(_tf_reason(exc), f"frame at {conv.stamp_to_sec(rgb.header.stamp):.3f}: {exc}")
            return True
        self.worker.offer((*frame, T, T_rgb_depth, self._pose_inputs.map_frame))
        return True

    def _retry_waiting(self) -> None:
        """New TF arrived: place the frames it completes, in arrival order."""
        if not self._waiting:
            return
        still = []
        for deadline, frame, _ in self._waiting:
            if not self._try_place(frame):
                still.append((deadline, frame, self._last_tf_error))
        self._waiting = still

    def _expire_waiting(self) -> None:
        now = time.monotonic()
        keep = []
        for deadline, frame, exc in self._waiting:
            if now < deadline:
                keep.append((deadline, frame, exc))
            else:
                rgb = frame[2]
                self._reject(_tf_reason(exc), f"frame at {conv.stamp_to_sec(rgb.header.stamp):.3f}: no transform "
                             f"within tf_wait_timeout={self.p.tf_wait_timeout} s: {exc}")
        self._waiting = keep

    def _process(self, item: tuple) -> None:
        """Worker thread: convert, encode, integrate, publish the segmentation."""
        t_in, age, rgb_msg, depth_msg, _, (k, size), depth_camera, T, T_rgb_depth, placed_in = item
        queue_wait = time.monotonic() - t_in
        t0 = time.perf_counter()
        try:
            rgb = conv.image_to_rgb(rgb_msg)
            depth_raw = conv.image_to_depth(depth_msg)
            registration: dict[str, Any] = {}
            if T_rgb_depth is not None:
                if depth_camera is None:
                    raise ValueError(
                        f"depth is in frame [{depth_msg.header.frame_id}], rgb in [{rgb_msg.header.frame_id}] "
                        "(not aligned) and no depth/camera_info arrived: publish it, or enable align_depth")
                registration = {"depth_k": depth_camera[0], "depth_size": depth_camera[1],
                                "T_rgb_depth": T_rgb_depth}
            frame = self.mapper.make_frame(
                rgb, depth_raw, depth_msg.encoding, k, size, np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]),
                stamp=conv.stamp_to_sec(rgb_msg.header.stamp), frame_id=rgb_msg.header.frame_id, **registration,
            )
            frame = replace(frame, T_world_cam=T)  # the optical pose resolved from the message / TF
        except (conv.ConversionError, ValueError) as exc:
            self._reject("invalid_frame", str(exc))
            return
        t1 = time.perf_counter()
        try:
            encoded = self.mapper.encode(frame)  # outside the lock: queries stay answered meanwhile
        except ValueError as exc:
            self._reject("invalid_frame", str(exc))
            return
        with self.map_lock:
            stale = placed_in != self.p.map_frame  # load_map adopted another frame meanwhile
            result = None if stale else self.mapper.integrate(frame, encoded)
        if result is None:
            self._reject("map_frame_changed", f"frame at {frame.stamp:.3f} was placed in [{placed_in}] before "
                         f"load_map adopted [{self.p.map_frame}]")
            return
        t2 = time.perf_counter()
        self._count_result(result)
        if self.view is not None:
            self.view.offer(frame, result.labels)
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

    def _count_result(self, result: Any) -> None:
        out_of_range = int(getattr(result, "out_of_range", 0))  # C3: points beyond the map key range
        if out_of_range:
            self.counters.add("out_of_range_points", out_of_range)
        if result.points == 0:
            self.counters.add("zero_point_frames")
            why = (f"{out_of_range} points lie beyond the map's key range (map origin far away?)"
                   if out_of_range else "no valid depth within min_depth..max_depth")
            self.counters.error(f"a frame integrated zero points: {why}")
            self.get_logger().warning(f"a frame integrated zero points: {why}", throttle_duration_sec=2.0)
        else:
            self.counters.add("integrated")
            self.counters.good()

    def _reject(self, reason: str, message: str) -> None:
        self.counters.reject(reason, message)
        self.get_logger().warning(f"input rejected ({reason}): {message}", throttle_duration_sec=2.0)

    def _on_worker_error(self, exc: BaseException) -> None:
        if not self.context.ok():
            return  # a publish raced with shutdown; nothing to report
        self.counters.reject("processing_error", f"{type(exc).__name__}: {exc}")
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
        values: dict[str, Any] = self.counters.snapshot()
        values.update({
            "dropped_latest_wins": w.dropped, "dropped_sync_queue": self._sync.dropped,
            "replaced_same_stamp": self._sync.replaced, "waiting_for_tf_now": len(self._waiting),
            "tf_backend": self.tf_backend, "sync_backend": self.sync_backend,
            "latency_s": round(self._latency, 4),
        })
        with self.map_lock:  # one snapshot: voxels, map, query cache, label cache, bytes per voxel
            values.update(voxels=len(self.mapper), **self.mapper.memory_stats())
        last_error, age = self.counters.last_error()
        values["last_error"] = last_error
        values["last_error_age_s"] = "" if age is None else round(age, 1)
        with self._timings_lock:  # means over the frames since the last message; the last ones if none came
            if self._timings:
                self._last_timings = {k: sum(v) / len(v) for k, v in self._timings.items()}
                self._timings = {}
        values.update({f"time_{k}_s": round(v, 5) for k, v in self._last_timings.items()})
        failing = self.counters.failing()  # an error since the last integrated frame
        level = DiagnosticStatus.WARN if failing else DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: mapper", hardware_id=str(self.mapper.device),
            message=last_error if failing else "mapping",
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
        problem = check_queries(queries, self.p.max_queries, self.p.max_query_chars)
        if problem:
            return problem
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
            if save:
                with self.map_lock:
                    res.voxels = self.mapper.save(path)
                res.success, res.message = True, f"saved {res.voxels} voxels to {path}"
            else:
                res.success, res.message, res.voxels = True, self._load(path, req.adopt_frame), len(self.mapper)
        except (MapPathError, OSError, ValueError) as exc:
            res.success, res.message = False, f"{'save' if save else 'load'} failed, map unchanged: {exc}"
            res.voxels = len(self.mapper)
        return res

    def _load(self, path: Path, adopt_frame: bool) -> str:
        """Load a map file: placed into map_frame by TF, or (adopt_frame) switching the node to its frame.

        Adopting moves everything the node publishes or resolves in its map frame (clouds, markers, query
        positions, pose lookups, the ``map_frame`` parameter) to the file's frame: a robot that loads last
        session's ``odom`` map wants to keep mapping into it, and a node whose clouds said ``map`` while
        its voxels were in ``odom`` would mislead every consumer.
        """
        with self.map_lock:
            self.mapper.load(path, adopt_frame=adopt_frame, T_map_file=None if adopt_frame else self._tf_place)
            info = self.mapper.last_load
            # What the file brings becomes the node's parameters: an adopted frame, and a probabilities map's
            # classes (its columns; else the next live parameter change would carry the old ones back).
            # Under the lock: a frame placed in the old map frame is then refused, not integrated.
            follows = {"map_frame": info.frame_id, "classes": list(self.mapper.config.classes)}
            follows = {k: v for k, v in follows.items() if v != getattr(self.p, k)}
            self.p = replace(self.p, **follows)
            self._pose_inputs = replace(self._pose_inputs, map_frame=self.p.map_frame)
        if follows:
            self.set_parameters([Parameter(k, value=v) for k, v in follows.items()])
            self.get_logger().warning(f"load_map: the file's {follows} are now the node's parameters")
        msg = f"loaded {info.voxels} voxels from {path}"
        if "classes" in follows:
            msg += f"; its classes {follows['classes']} are now the node's classes"
        if info.adopted:
            return f"{msg}; adopted its frame '{info.frame_id}' as the map frame (clouds and queries now use it)"
        pl = info.placement
        if pl is None:
            return msg
        t = ", ".join(f"{v:.3f}" for v in pl.T_target_source[:3, 3])
        how = ("exact: a multiple of 90 degrees and whole voxels, no voxel merged" if pl.exact
               else f"resampled: {pl.merged} of {pl.source_voxels} voxels merged into shared cells")
        return (f"{msg}, placed from frame '{info.file_frame}' into '{info.frame_id}' by TF "
                f"(translation [{t}] m; {how})")

    def _tf_place(self, file_frame: str) -> np.ndarray:
        """``T_map_file`` from TF at the latest common time; MapFileError naming both ways out otherwise."""
        map_frame = self.p.map_frame
        ways_out = (f"publish TF between '{map_frame}' and '{file_frame}' (e.g. a static transform), or call "
                    "load_map with adopt_frame: true to map in the file's frame")
        if self.tf_buffer is None:
            raise MapFileError(f"map is in frame '{file_frame}', this node maps in '{map_frame}', and no TF "
                               f"listener runs to relate them: {ways_out}")
        try:
            return self.tf_buffer.lookup(map_frame, file_frame, 0)
        except TransformError as exc:
            raise MapFileError(f"map is in frame '{file_frame}', this node maps in '{map_frame}', and TF cannot "
                               f"place it ({exc}): {ways_out}") from exc

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
        if self.view is not None:
            self.view.close()
        if self.p.save_on_shutdown and len(self.mapper):
            self._save_quietly("shutdown.rsmap")


def start_view(node: RadsegNode):
    """The browser view of the node's map (radseg_core.view), started; its URL logged."""
    from radseg_core.cli.common import is_random
    from radseg_core.view import LiveView, ViewConfig

    p = node.p
    view = LiveView(node.mapper, node.map_lock,
                    ViewConfig(bind=p.view_bind, port=p.view_port, grpc_port=p.view_grpc_port,
                               web_port=p.view_web_port, title=node.get_fully_qualified_name(),
                               not_semantic=is_random(p.model)),
                    limits=lambda: (node.p.max_queries, node.p.max_query_chars, node.p.default_top_k),
                    diagnostics=lambda: {"rejected_inputs": node.counters.get("rejected")})
    node.get_logger().info(f"view: open {view.start()} in a browser")
    return view


EXIT_MODEL_UNAVAILABLE = 3  # exit status when the model cannot be loaded (ModelLoadError)


def _tf_reason(exc: BaseException) -> str:
    """Counter name of a transform failure."""
    if isinstance(exc, ExtrapolationError):
        return "tf_future" if exc.future else "tf_past"
    if isinstance(exc, ConnectivityError):
        return "tf_unavailable"
    if isinstance(exc, InvalidArgumentError):
        return "tf_invalid_frame_id"  # empty or '/'-prefixed id: tf2 refuses it, waiting cannot help
    return "invalid_pose"  # empty frame id, bad quaternion: waiting cannot help


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
