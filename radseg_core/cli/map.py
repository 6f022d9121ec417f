"""``radseg-map``: an RGB-D recording or dataset in, a semantic voxel map and pictures of it out."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from radseg_core.cli import common
from radseg_core.visual import overlay_labels

PROG = "radseg-map"
DESCRIPTION = """\
Segment every frame of an RGB-D sequence with RADSeg and fuse it into a hit-weighted voxel map.

INPUT is a rosbag2 (directory with metadata.yaml, or a .mcap / .db3 file), a Replica, ScanNet or TUM
RGB-D folder, or a built-in sequence: "sample" (the Middlebury Motorcycle, re-rendered) or
"synthetic-room" (a procedural labelled room). OUT_DIR receives:

  map.rsmap              the map (load with radseg-query, radseg-eval or the node's ~/load_map)
  map.ply                voxel centres coloured by the camera image
  map_labels.ply         voxel centres coloured by class (attributes: label, score, hits)
  map_topdown.png        top-down picture: colour | class labels
  segmentation/NNNNNN.png  per frame: image | class labels over the image
  summary.json           frames, voxels, bytes, mean seconds per stage
"""
EPILOG = """\
examples:
  radseg-map sample -o out/sample                       # real weights (downloaded on first use)
  radseg-map synthetic-room --model random-tiny -o out/room --max-frames 4   # offline smoke run
  radseg-map recording.mcap --stride 5 --resize 480 --classes floor,wall,chair,door -o out/bag
  radseg-map robot_bag/ --pose-source odometry --map-frame map -o out/robot   # /odom + /tf_static (docs/real_robot.md)
  radseg-map ~/data/replica/room0 --mode probabilities --voxel-size 0.05 --save-every 200
  radseg-map recording.mcap --view                      # watch it map in the browser; query it after
"""


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("input", metavar="INPUT", help="dataset path, rosbag2, or 'sample' / 'synthetic-room'")
    p.add_argument("-o", "--out-dir", default="radseg_out", help="output directory (created)")
    p.add_argument("--save-every", type=common.positive_int, default=None,
                   help="also save map.rsmap every N frames (a checkpoint for long recordings)")
    p.add_argument("--no-segmentation", action="store_true", help="do not write segmentation/ images")
    common.add_input_args(p)
    common.add_rosbag_args(p)
    common.add_model_args(p)
    common.add_map_args(p)
    add_view_args(p)
    return p


def add_view_args(p: argparse.ArgumentParser) -> None:
    from radseg_core.view import ViewConfig

    d = ViewConfig()
    g = p.add_argument_group("browser view (needs rerun-sdk: pip install -e '.[view]')")
    g.add_argument("--view", action="store_true",
                   help="serve the map, the camera and a query box in the browser while mapping, and after the "
                        "last frame until Ctrl-C; prints the URL")
    g.add_argument("--view-bind", default=d.bind,
                   help="address the page listens on (0.0.0.0: all interfaces); rerun's servers stay on loopback")
    g.add_argument("--view-port", type=common.port, default=d.port,
                   help="port of the page: the URL to open, the only port a browser needs")
    g.add_argument("--view-grpc-port", type=common.port, default=d.grpc_port,
                   help="port of rerun's gRPC server on loopback (relayed by the page)")
    g.add_argument("--view-web-port", type=common.port, default=d.web_port,
                   help="port of rerun's web-viewer server on loopback (relayed by the page)")
    g.add_argument("--view-max-points", type=common.positive_int, default=d.max_points,
                   help="voxels drawn at most; a bigger map shows a fixed subset")


def start_view(args: argparse.Namespace, mapper, lock: threading.Lock, report: dict):
    """The browser view of ``mapper`` per the --view-* arguments, started (its URL printed on stderr),
    and the ``on_frame`` callback of :func:`map_dataset` that feeds it."""
    from radseg_core.view import LiveView, ViewConfig

    zero_point_frames = [0]
    config = ViewConfig(bind=args.view_bind, port=args.view_port, grpc_port=args.view_grpc_port,
                        web_port=args.view_web_port, max_points=args.view_max_points, title=f"{PROG} {args.input}",
                        not_semantic=common.is_random(args.model))
    view = LiveView(mapper, lock, config, diagnostics=lambda: {
        "rejected_inputs": report.get("frames_skipped", 0) + zero_point_frames[0]})
    url = view.start()
    print(f"{PROG}: view at {url}", file=sys.stderr, flush=True)

    def on_frame(i: int, frame, out) -> None:
        zero_point_frames[0] += out.points == 0
        view.offer(frame, out.labels)

    return view, on_frame


def serve_until_interrupted(view, message: str) -> None:
    """After the last frame: the page says the run ended, queries go on, until Ctrl-C (or SIGTERM)."""
    import signal

    view.finish(message)
    print(f"{PROG}: the run ended; still serving the view at {view.url} (queries work) until Ctrl-C",
          file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"{PROG}: view stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)


def config_from_args(args: argparse.Namespace, classes: list[str], frame_id: str | None = None):
    from radseg_core.pipeline import MapperConfig

    extra = {"frame_id": frame_id} if frame_id else {}
    return MapperConfig(model=args.model, lang_model=args.lang, text_model_path=args.text_model_path,
                        device=args.device, dtype=args.dtype, mode=args.mode, classes=classes,
                        voxel_size=args.voxel_size, point_stride=args.point_stride, max_depth=args.max_depth,
                        max_hits=args.max_hits or None,
                        input_sizing=args.input_sizing, **common.backend_options(args), **extra)


def input_report(dataset) -> dict:
    """What a bag reader chose and which rgb images it skipped, and why (empty for other inputs)."""
    if not hasattr(dataset, "skipped"):
        return {}
    return {"topics": dict(dataset.topics), "pose_source": dataset.pose_source, "map_frame": dataset.map_frame,
            "camera_frame": dataset.camera_frame, "depth_registered": dataset.registered_depth,
            "tf_transforms_rejected": dataset.tf_rejected,
            "frames_skipped": int(sum(dataset.skipped.values())), "skipped": dict(dataset.skipped),
            "skipped_examples": dict(dataset.skipped_examples)}


def choose_classes(args: argparse.Namespace, dataset) -> list[str]:
    return common.parse_classes(args.classes) or list(getattr(dataset, "classes", None) or common.DEFAULT_CLASSES)


def segmentation_image(rgb: np.ndarray, labels: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Side by side: the camera image | class colours over it."""
    right = rgb if labels is None else overlay_labels(rgb, labels)
    return np.concatenate([rgb, right], axis=1)


def map_dataset(dataset, mapper, out_dir: Path, *, save_every: int | None = None, segmentation: bool = True,
                show_progress: bool = True,
                on_frame: Callable[[int, object, object], None] | None = None,
                lock: threading.Lock | None = None) -> dict:
    """Process every frame into ``mapper``; writes segmentation images and checkpoints; returns stats.

    With ``lock``, the map's part of each frame (integration, checkpoint) holds it, so another thread
    (the browser view) may read the map meanwhile; the model's part runs outside it.
    """
    from radseg_core.render import save_png

    lock = lock if lock is not None else contextlib.nullcontext()

    classes = list(mapper.config.classes)
    seg_dir = out_dir / "segmentation"
    stage_sums: dict[str, float] = {}
    points = 0
    t0 = time.perf_counter()
    n = 0
    for i, frame in enumerate(common.progress(dataset, len(dataset), PROG, disable=not show_progress)):
        encoded = mapper.encode(frame)
        with lock:
            out = mapper.integrate(frame, encoded)
        n += 1
        points += out.points
        for k, v in out.timings.items():
            stage_sums[k] = stage_sums.get(k, 0.0) + v
        if segmentation:
            t = time.perf_counter()
            save_png(seg_dir / f"{i:06d}.png", segmentation_image(frame.rgb, out.labels, len(classes)))
            stage_sums["write_images"] = stage_sums.get("write_images", 0.0) + time.perf_counter() - t
        if on_frame is not None:
            on_frame(i, frame, out)
        if save_every and (i + 1) % save_every == 0:
            with lock:
                mapper.save(out_dir / "map.rsmap")
    return {
        "frames": n,
        "points_integrated": points,
        "seconds_total": time.perf_counter() - t0,
        "seconds_per_stage_mean": {k: v / max(n, 1) for k, v in stage_sums.items()},
    }


def write_map_outputs(mapper, out_dir: Path, *, width: int = 640) -> dict:
    """map.rsmap, map.ply, map_labels.ply and map_topdown.png; returns their sizes."""
    from radseg_core.map_io import export_ply, write_ply
    from radseg_core.render import render_map, save_png

    out_dir.mkdir(parents=True, exist_ok=True)
    mapper.save(out_dir / "map.rsmap")
    cloud = mapper.cloud()  # xyz, rgb, label 0..K, score, hits
    classes = list(mapper.config.classes)
    pal = common.class_palette(len(classes))
    files = {"map": out_dir / "map.rsmap"}
    if len(mapper.map):
        files["ply_rgb"] = export_ply(mapper.map, out_dir / "map.ply", color_by="rgb")
        files["ply_labels"] = write_ply(
            out_dir / "map_labels.ply", cloud["xyz"], pal[cloud["label"].astype(np.int64)],
            label=cloud["label"], score=cloud["score"], hits=cloud["hits"])
        vs = mapper.map.voxel_size
        present = sorted(set(int(v) for v in np.unique(cloud["label"])) - {0})
        left = render_map(cloud["xyz"], cloud["rgb"], voxel_size=vs, width=width,
                          legend=[("camera colour (top-down)", None)])
        right = render_map(cloud["xyz"], pal[cloud["label"].astype(np.int64)], voxel_size=vs, width=width,
                           legend=[(classes[k - 1], tuple(int(c) for c in pal[k])) for k in present]
                           or [("no labels", None)])
        h = max(left.shape[0], right.shape[0])
        left, right = (np.pad(im, ((h - im.shape[0], 0), (0, 0), (0, 0)), constant_values=24) for im in (left, right))
        save_png(out_dir / "map_topdown.png", np.concatenate([left, right], axis=1))
        files["topdown"] = out_dir / "map_topdown.png"
    else:
        print(f"{PROG}: warning: the map is empty (no valid depth?); no PLY or picture written", file=sys.stderr)
    return {k: str(v) for k, v in files.items()}


def main(argv: list[str] | None = None) -> int:
    args = common.parse(build_parser(), argv)
    return args if isinstance(args, int) else common.run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    views: list = []  # the browser view, closed however mapping ends (its servers run in a child process)
    try:
        return _map(args, views)
    finally:
        for view in views:
            if view is not None:
                view.close()


def _map(args: argparse.Namespace, views: list) -> int:
    if args.view:  # before minutes of model loading and mapping
        from radseg_core.view import require_rerun

        require_rerun()
    dataset = common.open_input(args.input, stride=args.stride, max_frames=args.max_frames, resize=args.resize,
                                bag_options={k: getattr(args, k) for k in common.BAG_OPTIONS})
    if len(dataset) == 0:
        raise common.CLIError(f"{args.input}: no frames (check --stride / --max-frames)")
    report = input_report(dataset)
    if report:
        print(f"{PROG}: {report['topics']}, pose source {report['pose_source']}, map frame "
              f"{report['map_frame']}, camera frame {report['camera_frame']}"
              f"{', depth registered into the colour camera' if report['depth_registered'] else ''}",
              file=sys.stderr)
        if report["tf_transforms_rejected"]:
            print(f"{PROG}: warning: ignored {report['tf_transforms_rejected']} invalid TF transform(s) in the bag "
                  "(empty or self-referencing frame ids, non-finite values or non-unit quaternions)", file=sys.stderr)
        for reason, n in report["skipped"].items():
            print(f"{PROG}: skipped {n} rgb image(s): {reason} (e.g. {report['skipped_examples'][reason]})",
                  file=sys.stderr)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = choose_classes(args, dataset)
    t0 = time.perf_counter()
    mapper = common.build_mapper(config_from_args(args, classes, report.get("map_frame")))
    load_s = time.perf_counter() - t0
    lock = threading.Lock()
    view, on_frame = start_view(args, mapper, lock, report) if args.view else (None, None)
    views.append(view)
    with dataset:
        stats = map_dataset(dataset, mapper, out_dir, save_every=args.save_every,
                            segmentation=not args.no_segmentation, show_progress=not args.no_progress,
                            on_frame=on_frame, lock=lock)
    with lock:
        files = write_map_outputs(mapper, out_dir)
    summary = {
        "input": str(args.input),
        "dataset": getattr(dataset, "name", type(dataset).__name__),
        "model": mapper.encoder.model_name,
        "random_weights": common.is_random(args.model),
        "mode": args.mode,
        "classes": classes,
        "voxel_size": args.voxel_size,
        **stats,
        **report,
        "model_load_seconds": load_s,
        "voxels": len(mapper.map),
        "bytes": mapper.nbytes(),
        "file_bytes": (out_dir / "map.rsmap").stat().st_size,
        "files": files,
    }
    common.write_json(out_dir / "summary.json", summary)
    stages = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in stats["seconds_per_stage_mean"].items())
    print(f"{stats['frames']} frames → {summary['voxels']} voxels ({summary['bytes'] / 2**20:.1f} MiB) "
          f"in {out_dir}\nper frame: {stages}", file=sys.stderr)
    common.random_banner(args.model)
    if view is not None:
        serve_until_interrupted(view, f"outputs in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
