"""The main job: the sample RGB-D sequence through the real ROS 2 node, end to end.

  scripts/demo.sh                       # c-radio_v3-b (downloaded on first use)
  scripts/demo.sh --model random-tiny   # offline smoke run: random weights, NOT semantic

Steps: make (or reuse) the Motorcycle sample bag → start radseg_node in its own process → replay the
bag into its topics, one frame at a time → collect the segmentation images → ask ~/query over DDS →
~/save_map → stop the node (which saves on shutdown too) → write a PLY and pictures → print the paths.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_QUERIES = ["motorcycle", "wheel", "floor"]
DEFAULT_CLASSES = ["motorcycle", "wheel", "floor", "wall", "table", "box"]
SAMPLE_TOPICS = {
    "rgb/image": "/camera/color/image_raw",
    "depth/image": "/camera/depth/image_raw",
    "rgb/camera_info": "/camera/color/camera_info",
    "pose": "/camera/pose",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Map the Motorcycle sample through the real radseg ROS 2 node and query it.",
        epilog="Example: scripts/demo.sh --model random-tiny --frames 8 --query motorcycle wheel",
    )
    ap.add_argument("--model", default="c-radio_v3-b",
                    help="c-radio_v3-b|l|h (downloaded on first use), hf:<repo> or random-tiny (offline, not semantic)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--output", type=Path, default=Path("output/demo"), help="where results go (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=16, help="frames of the sample sequence (default: %(default)s)")
    ap.add_argument("--query", nargs="+", default=DEFAULT_QUERIES, help="texts for ~/query")
    ap.add_argument("--classes", nargs="+", default=DEFAULT_CLASSES, help="classes for segmentation images")
    ap.add_argument("--frame-timeout", type=float, default=600.0,
                    help="seconds to wait for one frame's segmentation (a CPU-only real model is slow)")
    return ap.parse_args(argv)


def fastdds_profile() -> str:
    """The package's Fast DDS profile for large messages (short heartbeat), from the install space."""
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory("radseg_ros"), "config", "fastdds_large_images.xml")


def isolate_ros(output: Path) -> None:
    """Own DDS domain and logs, large-data transport: the demo must not disturb (or see) other ROS processes."""
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", fastdds_profile())
    os.environ["ROS_LOG_DIR"] = str(output / "ros_log")
    os.environ["PATH"] = os.path.join(sys.prefix, "bin") + os.pathsep + os.environ.get("PATH", "")


def start_node(args: argparse.Namespace, output: Path):
    import subprocess

    import yaml
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("radseg_ros")) / "lib" / "radseg_ros" / "radseg_node"
    params = {
        "model": args.model, "device": args.device, "classes": list(args.classes),
        "map_directory": str((output / "maps").resolve()), "text_cache_dir": str(output / "text_cache"),
        "cloud_publish_rate": 0.0, "max_depth": 10.0,
        "save_on_shutdown": True,
        "input_reliability": "reliable",  # the replayer publishes reliably; 640x480 best-effort loses fragments
    }
    params_file = output / "node_params.yaml"
    params_file.write_text(yaml.safe_dump({"radseg": {"ros__parameters": params}}))
    cmd = [str(exe), "--ros-args", "--params-file", str(params_file)]
    for name, topic in SAMPLE_TOPICS.items():
        cmd += ["-r", f"{name}:={topic}"]
    log = open(output / "node.log", "w")  # noqa: SIM115 - lives as long as the node
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output.resolve()
    (output / "segmentation").mkdir(parents=True, exist_ok=True)
    isolate_ros(output)
    if args.model.startswith("random"):
        print(f"NOTE: model {args.model} has random weights: the pictures show the plumbing, not semantics.")

    import cv2
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from radseg_core.datasets import export_sample
    from radseg_ros.bag_replay import BagReplayer
    from radseg_ros.conversions import image_to_rgb
    from radseg_ros.srv import MapFile, TextQuery

    print(f"[demo] preparing the Motorcycle sample ({args.frames} frames)")
    sample = export_sample(n_frames=args.frames)
    print(f"[demo] sample bag: {sample['bag']}")
    node_proc = start_node(args, output)
    rclpy.init()
    client = Node("radseg_demo")
    seg_images: list[Image] = []
    seg_sub = client.create_subscription(Image, "/radseg/segmentation", seg_images.append, QoSProfile(depth=50))

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(client, timeout_sec=0.05)

    def call(srv_type, name: str, request, timeout: float = 120.0):
        cli = client.create_client(srv_type, name)
        if not cli.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{name} not available")
        future = cli.call_async(request)
        rclpy.spin_until_future_complete(client, future, timeout_sec=timeout)
        return future.result()

    code = 0
    try:
        print("[demo] starting radseg_node (model {}); log: {}".format(args.model, output / "node.log"))
        replayer = BagReplayer(client, sample["bag"], topics=list(SAMPLE_TOPICS.values()))
        deadline = time.monotonic() + args.frame_timeout
        # wait until the node is up: its services exist once the model is loaded
        ready = client.create_client(MapFile, "/radseg/save_map")
        while not ready.wait_for_service(timeout_sec=0.5):
            if node_proc.poll() is not None:
                raise RuntimeError("radseg_node exited:\n" + (output / "node.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError("radseg_node did not start in time")
        replayer.prepare()
        while not (replayer.matched() and seg_sub.get_publisher_count() > 0):
            spin(0.1)
            if time.monotonic() > deadline:
                raise TimeoutError("radseg_node did not subscribe to the sample topics")
        spin(1.0)  # the writers see the match before the node's readers do

        def wait_for_segmentation(group) -> None:
            want = len(seg_images) + 1
            end = time.monotonic() + args.frame_timeout
            while len(seg_images) < want:
                spin(0.05)
                if node_proc.poll() is not None:
                    raise RuntimeError("radseg_node exited:\n" + (output / "node.log").read_text()[-3000:])
                if time.monotonic() > end:
                    raise TimeoutError("no segmentation for a frame within --frame-timeout")
            print(f"\r[demo] frame {len(seg_images)}/{args.frames} segmented", end="", flush=True)

        t0 = time.monotonic()
        replayer.play(lockstep_window_s=0.02, wait_for=wait_for_segmentation)
        print(f"\n[demo] mapped {len(seg_images)} frames in {time.monotonic() - t0:.1f} s")
        for i, msg in enumerate(seg_images):
            cv2.imwrite(str(output / "segmentation" / f"{i:06d}.png"), image_to_rgb(msg)[:, :, ::-1])

        res = call(TextQuery, "/radseg/query", TextQuery.Request(queries=list(args.query), top_k=3))
        if not res.success:
            raise RuntimeError(f"query failed: {res.message}")
        matches = [
            {"query": args.query[qi], "score": round(float(s), 4), "position": [p.x, p.y, p.z]}
            for qi, s, p in zip(res.query_index, res.scores, res.positions, strict=True)
        ]
        (output / "query_service.json").write_text(json.dumps({"queries": args.query, "matches": matches}, indent=2))
        print(f"[demo] ~/query: {res.message}")
        for m in matches:
            print(f"    {m['query']:>12s}  score {m['score']:.3f}  at ({m['position'][0]:+.2f}, "
                  f"{m['position'][1]:+.2f}, {m['position'][2]:+.2f})")
        res = call(MapFile, "/radseg/save_map", MapFile.Request(path="demo.rsmap"))
        if not res.success:
            raise RuntimeError(f"save_map failed: {res.message}")
        print(f"[demo] ~/save_map: {res.message}")
        _pictures(output, output / "maps" / "demo.rsmap", args)
    except (RuntimeError, TimeoutError) as exc:
        print(f"\n[demo] error: {exc}", file=sys.stderr)
        if "ModelLoadError" in str(exc) or "download" in str(exc).lower():
            print("[demo] offline? try: scripts/demo.sh --model random-tiny", file=sys.stderr)
        code = 1
    finally:
        client.destroy_node()
        rclpy.shutdown()
        if node_proc.poll() is None:
            node_proc.send_signal(2)
            try:
                node_proc.wait(60)
            except Exception:  # noqa: BLE001
                node_proc.kill()
    if code == 0:
        print("\n[demo] results in", output)
        for rel in ("segmentation/", "maps/demo.rsmap", "map.ply", "map_topdown.png", "query_service.json",
                    "query.png"):
            print("   ", output / rel)
    return code


def _pictures(output: Path, map_path: Path, args: argparse.Namespace) -> None:
    """PLY and picture of the saved map, then the query picture from the ROS-free radseg-query tool."""
    from radseg_core.cli.query import main as query_main
    from radseg_core.map_io import export_ply, load_map
    from radseg_core.render import render_map, save_png

    vmap = load_map(map_path)
    export_ply(vmap, output / "map.ply", color_by="rgb")
    picture = render_map(vmap.centers().numpy(), vmap.colors().numpy(), voxel_size=vmap.voxel_size,
                         view="oblique", legend=[(f"{len(vmap)} voxels, camera colour", None)])
    save_png(output / "map_topdown.png", picture)
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):  # its JSON duplicates query_service.json
            code = query_main([str(map_path), *args.query, "-o", tmp, "--device", "cpu", "--view", "oblique"])
        if code != 0:
            raise RuntimeError("radseg-query could not render the query picture")
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), output / name)


if __name__ == "__main__":
    sys.exit(main())
