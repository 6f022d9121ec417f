"""LiveView: the running map in a browser, with a query box, while mapping goes on undisturbed.

Who does what:

* the mapping thread calls :meth:`LiveView.offer` once per frame: it appends the camera position to the
  trajectory and puts the frame into a one-slot hand-off (:class:`LatestSlotWorker`): O(1), never waits
  for the viewer; a frame the logger has not taken yet is replaced by the next one;
* the logger thread sends the newest frame (camera pose and frustum, the RGB image with the segmentation
  over it, frames/s and the caller's counters) at most ``image_rate`` times a second, and refreshes the
  map: under the map lock it brings the per-voxel colours up to date for the voxels changed since the last
  refresh and copies centres and colours; outside it, maps over ``max_points`` voxels are drawn as a fixed
  subset. The refresh period stretches so that refreshes hold the lock at most ``lock_share`` of the time
  and keep the logger thread busy at most ``work_share`` of it;
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
                                    grpc=self._server.grpc_address, title=c.title)
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
        """A frame has been integrated (``labels``: its segmentation, 0 = ignore). O(1); never waits."""
        if self._worker is None:
            return
        with self._stats_lock:
            self.frames += 1
            self._frame_times.append(time.monotonic())
            self._trajectory.append(np.asarray(frame.T_world_cam[:3, 3], np.float32))
            index = self.frames
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
        rec.log("world/camera/image", rr.Pinhole(image_from_camera=frame.K, width=w, height=h,
                                                 image_plane_distance=0.2))
        img = frame.rgb if labels is None else overlay_labels(frame.rgb, labels)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            rec.log("world/camera/image/rgb", rr.EncodedImage(contents=jpeg.tobytes(), media_type="image/jpeg"))
        rec.log("diagnostics/frames_per_s", rr.Scalars(self.fps()))
        for name, value in (self._diagnostics() if self._diagnostics else {}).items():
            rec.log(f"diagnostics/{name}", rr.Scalars(float(value)))

    def _tick(self) -> None:
        if time.monotonic() >= self._next_refresh:
            self.refresh()

    def refresh(self) -> dict[str, float]:
        """Send the map if it changed since the last refresh; returns the timings (also ``last_refresh``)."""
        rr, rec, c = self._rr, self.rec, self.config
        t0 = time.perf_counter()
        with self.lock:
            t_lock = time.perf_counter()
            vmap = self.mapper.map
            classes = list(self.mapper.config.classes)
            seen = (id(vmap), vmap.lineage, vmap.generation, vmap.frames_integrated, tuple(classes), vmap.mode)
            if seen == self._seen:
                self._next_refresh = time.monotonic() + c.refresh_period
                return {}
            n = len(vmap)
            if self._colors is None or (vmap.mode == "features") != isinstance(self._colors, FeatureColors):
                self._colors = FeatureColors() if vmap.mode == "features" else BestClass()
            if n:
                colors = self._colors.update(vmap).cpu()
                keys = self._colors._keys.cpu()
                centers = vmap.centers().cpu()
            memory = self.mapper.memory_stats()
            voxel_size = vmap.voxel_size
        t_unlock = time.perf_counter()
        with self._stats_lock:
            trajectory = np.array(self._trajectory, np.float32).reshape(-1, 3)
        self._seen = seen
        if seen[4:] != self._logged_classes:
            rec.log("world/map", rr.AnnotationContext(layers.class_annotations(classes)), static=True)
            self._logged_classes = seen[4:]
        drawn = 0
        if n:
            mask = layers.sample_mask(keys.numpy(), c.max_points)
            drawn = int(mask.sum())
            radius = 0.5 * voxel_size * min(2.0, (n / max(drawn, 1)) ** 0.5)
            pos = centers.numpy()[mask]
            if isinstance(self._colors, FeatureColors):
                points = rr.Points3D(pos, colors=colors.numpy()[mask], radii=radius)
            else:
                points = rr.Points3D(pos, class_ids=colors.numpy()[mask].astype(np.uint16), radii=radius)
            rec.log("world/map", points, static=True)
        else:
            rec.log("world/map", rr.Clear(recursive=False), static=True)
        if len(trajectory) > 1:
            rec.log("world/trajectory", rr.LineStrips3D([trajectory], colors=[(230, 230, 230)], radii=0.01),
                    static=True)
        rec.log("diagnostics/voxels", rr.Scalars(float(n)))
        rec.log("diagnostics/memory_mib", rr.Scalars(float(self.mapper_bytes(memory)) / 2**20))
        t_end = time.perf_counter()
        self.voxels, self.drawn = n, drawn
        self.refreshes += 1
        lock_s, total_s = t_unlock - t_lock, t_end - t0
        self.last_refresh = {"voxels": n, "drawn": drawn, "lock_wait_s": t_lock - t0, "lock_s": lock_s,
                             "total_s": total_s}
        self._next_refresh = time.monotonic() + self._period(lock_s, total_s)
        return self.last_refresh

    def _period(self, lock_s: float, total_s: float) -> float:
        """Seconds until the next refresh: at least ``refresh_period``, and long enough that refreshes
        hold the map lock at most ``lock_share`` and the logger thread at most ``work_share`` of the time."""
        c = self.config
        return max(c.refresh_period, lock_s / c.lock_share, total_s / c.work_share)

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
