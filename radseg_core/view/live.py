"""LiveView: the running map in a browser, with a query box, while mapping goes on undisturbed.

Who does what:

* the mapping thread calls :meth:`LiveView.offer` once per frame: it appends the camera position to the
  trajectory and puts the frame into a one-slot hand-off (:class:`LatestSlotWorker`); it never waits for
  the viewer, and a frame the logger has not taken yet is replaced by the next one. When a map refresh is
  due it also takes the snapshot (:meth:`LiveView.snapshot`): under the map lock, the per-voxel colours
  brought up to date for the voxels changed since the last one, centres and colours copied. Refreshes
  are spaced so that snapshots take at most ``lock_share`` of the time (5 %);
* the logger thread sends the newest frame (camera pose and frustum, the RGB image with the segmentation
  over it, frames/s and the caller's counters) at most ``image_rate`` times a second, and the newest
  snapshot (a fixed subset for maps over ``max_points``); when no frames come (the run ended) it takes
  the snapshots itself;
* the rerun servers run in a child process (:mod:`radseg_core.view.rerun_server`); the SDK streams to
  it, and a browser that is slow or absent is its business, not the mapper's;
* the page's HTTP threads answer queries with :meth:`SemanticMapper.query` under the map lock, as the
  node's ``~/query`` does, with the same input checks (:func:`radseg_core.query.check_queries`).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np

from radseg_core.latest_slot import LatestSlotWorker
from radseg_core.query import MAX_QUERIES, MAX_QUERY_CHARS, check_queries
from radseg_core.view import layers
from radseg_core.view.colors import BestClass, FeatureColors
from radseg_core.view.config import ViewConfig
from radseg_core.view.page import PageServer
from radseg_core.view.rerun_server import RerunServer, require_rerun

Limits = Callable[[], tuple[int, int, int]]  # () -> (max_queries, max_query_chars, top_k)


class LiveView:
    """Serves the page, logs to the viewer, answers queries; see the module docstring."""

    def __init__(self, mapper, lock: threading.Lock | None = None, config: ViewConfig | None = None, *,
                 limits: Limits | None = None, diagnostics: Callable[[], dict[str, float]] | None = None) -> None:
        self.mapper = mapper
        self.lock = lock if lock is not None else threading.Lock()
        self.config = config or ViewConfig()
        self._limits = limits or (lambda: (MAX_QUERIES, MAX_QUERY_CHARS, 5))
        self._diagnostics = diagnostics
        self.state = "starting"
        self._end_message = ""
        self._stats_lock = threading.Lock()
        self.frames = 0
        self._frame_times: collections.deque[float] = collections.deque(maxlen=30)
        self._trajectory: list[np.ndarray] = []
        self.voxels = 0
        self.drawn = 0
        self.error = ""
        self.last_query = ""
        self.refreshes = 0
        self.last_refresh: dict[str, float] = {}
        self._next_refresh = 0.0
        self._next_image = 0.0
        self._seen: tuple | None = None  # (map object, lineage, generation, clock, classes) at the last refresh
        self._logged_classes: tuple | None = None
        self._logged_camera: tuple | None = None
        self._pending_map: dict | None = None  # the newest snapshot, not yet sent
        self._pending_lock = threading.Lock()
        self._last_offer = 0.0
        self._log_s = 0.0  # seconds the last map took to send
        self._colors: BestClass | FeatureColors | None = None
        self._server: RerunServer | None = None
        self._page: PageServer | None = None
        self._worker: LatestSlotWorker | None = None
        self.rec = None
        self._rr = None

    # ----------------------------------------------------------------- life cycle
    def start(self) -> str:
        """Start the servers and the logger; returns the page's URL. ViewUnavailable says why not."""
        rr = require_rerun()
        c = self.config
        self._server = RerunServer(grpc_port=c.grpc_port, web_port=c.web_port, memory_limit=c.memory_limit)
        try:
            self._page = PageServer(self, bind=c.bind, port=c.port, viewer=self._server.web_address,
                                    grpc=self._server.grpc_address, title=c.title, not_semantic=c.not_semantic)
            self._server.start()
            rec = rr.RecordingStream("radseg", recording_id=str(uuid.uuid4()))
            rec.connect_grpc(self._server.grpc_url)
            send_layout(rec)
            self.attach(rec, rr)
            self._page.start()
        except BaseException:
            self.close()
            raise
        return self._page.url

    def attach(self, rec, rr) -> None:
        """Log to ``rec`` (a rerun RecordingStream; ``rr``: the rerun module) and start the logger thread.
        :meth:`start` does this with its servers; tests pass a recording of their own."""
        self.rec, self._rr = rec, rr
        self._worker = LatestSlotWorker(self._log_frame, self._on_error, idle_period=0.2, on_idle=self._tick,
                                        name="radseg-view")
        self.state = "mapping"

    @property
    def url(self) -> str:
        return self._page.url if self._page is not None else ""

    def finish(self, message: str = "") -> None:
        """The last frame is in: the page says so; queries and the view go on until :meth:`close`."""
        self._end_message = message
        self.state = "ended"
        self._next_refresh = 0.0  # draw the final map now

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._page is not None:
            self._page.close()
            self._page = None
        if self.rec is not None:
            with contextlib.suppress(Exception):  # the child may be gone already
                self.rec.disconnect()
            self.rec = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self.state = "closed"

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- mapping thread
    def offer(self, frame, labels: np.ndarray | None = None) -> None:
        """A frame has been integrated (``labels``: its segmentation, 0 = ignore). Never waits for the
        viewer: the frame goes into a one-slot hand-off; when a map refresh is due, this thread also takes
        the map snapshot (:meth:`snapshot`, at most ``lock_share`` of the time)."""
        if self._worker is None:
            return
        with self._stats_lock:
            self.frames += 1
            self._frame_times.append(time.monotonic())
            self._trajectory.append(np.asarray(frame.T_world_cam[:3, 3], np.float32))
            index = self.frames
        self._last_offer = time.monotonic()
        if self._last_offer >= self._next_refresh:  # a map refresh is due: copy it out now (see snapshot)
            snap = self.snapshot()
            if snap is not None:
                with self._pending_lock:
                    self._pending_map = snap
        self._worker.offer((index, frame, labels))

    # ----------------------------------------------------------------- logger thread
    def _on_error(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        alive = self._server is not None and self._server.alive()
        if not alive:
            self.error = "the rerun server stopped" + (f": {self._server.log_tail(200)}" if self._server else "")

    def fps(self) -> float:
        with self._stats_lock:
            t = list(self._frame_times)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def _log_frame(self, item: tuple) -> None:
        import cv2

        from radseg_core.visual import overlay_labels

        now = time.monotonic()
        if now < self._next_image:
            return
        self._next_image = now + 1.0 / self.config.image_rate
        rr, rec = self._rr, self.rec
        index, frame, labels = item
        T = np.asarray(frame.T_world_cam, np.float64)
        h, w = frame.rgb.shape[:2]
        rec.set_time("frame", sequence=index)
        rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]))
        camera = (w, h, np.asarray(frame.K, np.float64).tobytes())
        if camera != self._logged_camera:  # intrinsics persist in the viewer until they change
            rec.log("world/camera/image", rr.Pinhole(image_from_camera=frame.K, width=w, height=h,
                                                     image_plane_distance=0.2))
            self._logged_camera = camera
        img = frame.rgb if labels is None else overlay_labels(frame.rgb, labels)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            rec.log("world/camera/image/rgb", rr.EncodedImage(contents=jpeg.tobytes(), media_type="image/jpeg"))
        rec.log("diagnostics/frames_per_s", rr.Scalars(self.fps()))
        for name, value in (self._diagnostics() if self._diagnostics else {}).items():
            rec.log(f"diagnostics/{name}", rr.Scalars(float(value)))

    def _tick(self) -> None:
        """After each frame and every 0.2 s: send the map snapshot the mapping thread took, or take one here
        when no frames come (the run ended, a node without camera data) and a refresh is due."""
        with self._pending_lock:
            snap, self._pending_map = self._pending_map, None
        now = time.monotonic()
        idle = self.state == "ended" or now - self._last_offer > 2 * self.config.refresh_period
        if snap is None and idle and now >= self._next_refresh:
            snap = self.snapshot()
        if snap is not None:
            self._log_map(snap)

    def refresh(self) -> dict[str, float]:
        """Snapshot and send the map now if it changed (both in the calling thread); returns the timings."""
        snap = self.snapshot()
        return self._log_map(snap) if snap is not None else {}

    def snapshot(self) -> dict | None:
        """Under the map lock: the voxel colours brought up to date where the map changed, centres and
        colours copied out. None when nothing changed since the last one.

        Called by the mapping thread itself when a refresh is due (see :meth:`offer`): the map's torch
        work then runs on the thread that owns the map's CPU threads (a second thread doing parallel torch
        work changes how the OpenMP runtime waits, which costs mapping far more than the work itself),
        and no lock is waited for. Its duration sets the next refresh (``lock_share``).
        """
        t0 = time.perf_counter()
        with self.lock:
            t_lock = time.perf_counter()
            vmap = self.mapper.map
            classes = list(self.mapper.config.classes)
            seen = (id(vmap), vmap.lineage, vmap.generation, vmap.frames_integrated, tuple(classes), vmap.mode)
            if seen == self._seen:
                self._next_refresh = time.monotonic() + self.config.refresh_period
                return None
            n = len(vmap)
            if self._colors is None or (vmap.mode == "features") != isinstance(self._colors, FeatureColors):
                self._colors = FeatureColors() if vmap.mode == "features" else BestClass()
            snap = {"n": n, "classes": classes, "features": isinstance(self._colors, FeatureColors),
                    "voxel_size": vmap.voxel_size, "memory": self.mapper.memory_stats()}
            if n:
                snap["colors"] = self._colors.update(vmap).cpu().numpy()
                snap["keys"] = self._colors._keys.cpu().numpy()
                snap["centers"] = vmap.centers().cpu().numpy()
            self._seen = seen
        lock_s = time.perf_counter() - t_lock
        snap.update(lock_wait_s=t_lock - t0, lock_s=lock_s)
        self._next_refresh = time.monotonic() + self._period(lock_s, self._log_s)
        return snap

    def _log_map(self, snap: dict) -> dict[str, float]:
        """Send a snapshot: the map (a fixed subset over ``max_points``), trajectory, voxels and memory."""
        rr, rec, c = self._rr, self.rec, self.config
        t0 = time.perf_counter()
        with self._stats_lock:
            trajectory = np.array(self._trajectory, np.float32).reshape(-1, 3)
        classes = tuple(snap["classes"])
        if classes != self._logged_classes:
            rec.log("world/map", rr.AnnotationContext(layers.class_annotations(list(classes))), static=True)
            self._logged_classes = classes
        n, drawn = snap["n"], 0
        if n:
            mask = layers.sample_mask(snap["keys"], c.max_points)
            drawn = int(mask.sum())
            radius = 0.5 * snap["voxel_size"] * min(2.0, (n / max(drawn, 1)) ** 0.5)
            pos = snap["centers"][mask]
            if snap["features"]:
                points = rr.Points3D(pos, colors=snap["colors"][mask], radii=radius)
            else:
                points = rr.Points3D(pos, class_ids=snap["colors"][mask].astype(np.uint16), radii=radius)
            rec.log("world/map", points, static=True)
        else:
            rec.log("world/map", rr.Clear(recursive=False), static=True)
        if len(trajectory) > 1:
            rec.log("world/trajectory", rr.LineStrips3D([trajectory], colors=[(230, 230, 230)], radii=0.01),
                    static=True)
        rec.log("diagnostics/voxels", rr.Scalars(float(n)))
        rec.log("diagnostics/memory_mib", rr.Scalars(float(self.mapper_bytes(snap["memory"])) / 2**20))
        self._log_s = time.perf_counter() - t0
        self.voxels, self.drawn = n, drawn
        self.refreshes += 1
        self.last_refresh = {"voxels": n, "drawn": drawn, "lock_wait_s": snap["lock_wait_s"],
                             "lock_s": snap["lock_s"], "log_s": self._log_s,
                             "total_s": snap["lock_s"] + self._log_s}
        self._next_refresh = max(self._next_refresh,
                                 time.monotonic() + self._period(snap["lock_s"], self._log_s))
        return self.last_refresh

    def _period(self, lock_s: float, log_s: float) -> float:
        """Seconds until the next refresh: at least ``refresh_period``, and long enough that snapshots take
        at most ``lock_share`` of the time (they hold the map lock, on the mapping thread) and sending
        them at most ``work_share`` of the logger thread's."""
        c = self.config
        return max(c.refresh_period, lock_s / c.lock_share, log_s / c.work_share)

    @staticmethod
    def mapper_bytes(memory: dict) -> float:
        return sum(memory.get(k, 0) for k in ("map_bytes", "query_cache_bytes", "label_cache_bytes"))

    # ----------------------------------------------------------------- page backend
    def status(self) -> dict:
        frames, fps = self.frames, self.fps()
        if self.state == "ended":
            text = (f"the run ended: {frames} frames, {self.voxels:,} voxels"
                    + (f"; {self._end_message}" if self._end_message else "")
                    + ". Queries still work.")
        elif frames == 0:
            text = f"waiting for frames; map: {self.voxels:,} voxels"
        else:
            text = f"mapping: frame {frames}, {self.voxels:,} voxels, {fps:.1f} frames/s"
        if self.voxels > self.drawn:
            text += f" (drawing {self.drawn:,})"
        if self.error:
            text += f" | viewer not updated: {self.error}"
        return {"state": "error" if self.error and self.state != "ended" else self.state, "text": text,
                "frames": frames, "voxels": self.voxels, "drawn": self.drawn, "fps": round(fps, 2),
                "refreshes": self.refreshes, "last_query": self.last_query}

    def query(self, text: str) -> tuple[int, dict]:
        """The query box: the node's input checks, then :meth:`SemanticMapper.query`; candidates and heat
        go to the viewer. Returns (HTTP status, answer)."""
        texts = layers.split_query(text)
        max_queries, max_chars, top_k = self._limits()
        problem = check_queries(texts, max_queries, max_chars)
        if problem:
            return 400, {"ok": False, "error": problem}
        try:
            with self.lock:
                n = len(self.mapper)
                if n == 0:
                    return 400, {"ok": False, "error": "the map is empty: no frames integrated yet"}
                result = self.mapper.query(texts, top_k=top_k)
                voxel_size = self.mapper.map.voxel_size
        except ValueError as exc:  # e.g. a text that is not a class of a probabilities map
            return 400, {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the page gets the reason; the view keeps running
            return 500, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        answer = layers.answer_json(result, texts, n)
        try:
            self.log_query(result, voxel_size)
        except Exception as exc:  # noqa: BLE001
            answer["warning"] = f"the viewer was not updated: {exc}"
        self.last_query = "; ".join(texts)
        return 200, answer

    def log_query(self, result, voxel_size: float) -> None:
        rr, rec = self._rr, self.rec
        boxes = layers.candidate_boxes(result, voxel_size)
        rec.log("world/query/candidates", rr.Boxes3D(centers=boxes.centers, half_sizes=boxes.half_sizes,
                                                     labels=boxes.labels, colors=boxes.colors,
                                                     radii=max(0.004, voxel_size / 5)), static=True)
        heat = layers.heat_cloud(result, voxel_size, self.config.max_points)
        rec.log("world/query/heat", rr.Points3D(heat.positions, colors=heat.colors, radii=heat.radius), static=True)


DIAGNOSTICS = ("frames_per_s", "voxels", "memory_mib", "rejected_inputs")  # one small plot each


def send_layout(rec) -> None:
    """The viewer's layout: the 3D map (with the camera's frustum and trajectory) large, the camera image
    with the segmentation and the diagnostics beside it; REP-103 (z up)."""
    import rerun as rr
    import rerun.blueprint as rrb

    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    plots = [rrb.TimeSeriesView(origin=f"diagnostics/{name}", name=name.replace("_", " "),
                                plot_legend=rrb.PlotLegend(visible=False)) for name in DIAGNOSTICS]
    rec.send_blueprint(rrb.Blueprint(
        rrb.Horizontal(
            # the image in its own panel, not inside the frustum: it would hide the map behind the camera
            rrb.Spatial3DView(origin="world", name="map", contents=["+ /world/**", "- /world/camera/image/rgb"]),
            rrb.Vertical(rrb.Spatial2DView(origin="world/camera/image", name="camera"),
                         rrb.Grid(*plots, grid_columns=2), row_shares=[3, 2]),
            column_shares=[3, 2]),
        rrb.BlueprintPanel(state="collapsed"), rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed"),
    ))
