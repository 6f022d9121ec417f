"""End-to-end latency and throughput of radseg_node over real DDS, split by stage.

Starts the installed node in its own process, publishes 640x480 RGB-D + pose stamped with the wall
clock, and reads back the label images and the node's /diagnostics (per-stage means). Two runs:
  lockstep  one frame at a time (a model that keeps up): per-stage latency, end-to-end latency
  30 Hz     camera rate for --seconds: frames lost vs processed, latency under load
plus the conversion functions alone (no DDS) for reference.

  .venv/bin/python -P benchmarks/node_latency.py --out docs/bench/node_latency_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def frame(width: int, height: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 2000, np.uint16)
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    return {"rgb": rgb, "depth": depth, "K": K}


def conversion_micro(width: int, height: int, repeats: int = 50) -> dict[str, float]:
    """Milliseconds per call of the node's conversions, without DDS."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from radseg_ros import conversions as conv

    f = frame(width, height)
    header = Header(stamp=Time(sec=1), frame_id="cam")
    rgb_msg = conv.rgb_to_image(f["rgb"], header)
    bgr_msg = Image(header=header, height=height, width=width, encoding="bgr8", step=width * 3,
                    data=f["rgb"].tobytes())
    depth_msg = Image(header=header, height=height, width=width, encoding="16UC1", step=width * 2,
                      data=f["depth"].tobytes())
    n = 50_000
    xyz = np.random.default_rng(0).random((n, 3), dtype=np.float32)
    fields = {"rgb": np.zeros((n, 3), np.uint8), "label": np.zeros(n, np.uint32),
              "score": np.zeros(n, np.float32), "hits": np.ones(n, np.float32)}
    labels = np.zeros((height, width), np.uint16)
    cases = {
        "image_to_rgb rgb8": lambda: conv.image_to_rgb(rgb_msg),
        "image_to_rgb bgr8": lambda: conv.image_to_rgb(bgr_msg),
        "image_to_depth 16UC1": lambda: conv.image_to_depth(depth_msg),
        "labels_to_image": lambda: conv.labels_to_image(labels, header),
        "rgb_to_image": lambda: conv.rgb_to_image(f["rgb"], header),
        "make_cloud 50k voxels": lambda: conv.make_cloud(header, xyz, fields),
    }
    out = {}
    for name, fn in cases.items():
        fn()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = (time.perf_counter() - t) / repeats * 1e3
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        import rclpy
        import yaml
        from ament_index_python.packages import get_package_prefix
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.node import Node
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image

        params = {"model": args.model, "device": args.device, "crop": args.crop, "stride": args.stride,
                  "map_directory": str(workdir / "maps"), "diagnostics_period": 0.25,
                  "text_cache_dir": str(workdir / "text_cache"),
                  "cloud_publish_rate": 0.0, "save_on_shutdown": False, "max_depth": 10.0,
                  "input_reliability": args.reliability}
        (workdir / "params.yaml").write_text(yaml.safe_dump({"radseg": {"ros__parameters": params}}))
        exe = Path(get_package_prefix("radseg_ros")) / "lib" / "radseg_ros" / "radseg_node"
        self.log = open(workdir / "node.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([str(exe), "--ros-args", "--params-file", str(workdir / "params.yaml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        rclpy.init()
        self.rclpy = rclpy
        self.node = Node("radseg_latency_bench")
        qos = QoSProfile(depth=10)
        self.pub_rgb = self.node.create_publisher(Image, "rgb/image", qos)
        self.pub_depth = self.node.create_publisher(Image, "depth/image", qos)
        self.pub_info = self.node.create_publisher(CameraInfo, "rgb/camera_info", qos)
        self.pub_pose = self.node.create_publisher(PoseStamped, "pose", qos)
        self.labels: list[tuple[float, object]] = []
        self.diag: list[dict[str, str]] = []
        self.node.create_subscription(Image, "/radseg/labels", lambda m: self.labels.append((time.time(), m)),
                                      QoSProfile(depth=100))
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.diag.append({kv.key: kv.value for kv in m.status[0].values}), QoSProfile(depth=100))
        self.f = frame(args.width, args.height)
        end = time.monotonic() + 300
        while any(p.get_subscription_count() == 0 for p in (self.pub_rgb, self.pub_depth, self.pub_info,
                                                               self.pub_pose)):
            self.spin(0.1)
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("node did not start: " + (workdir / "node.log").read_text()[-2000:])
        self.spin(1.5)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.rclpy.spin_once(self.node, timeout_sec=max(0.0, min(0.02, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def publish(self) -> float:
        from builtin_interfaces.msg import Time
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        now = time.time()
        header = Header(stamp=Time(sec=int(now), nanosec=int((now % 1) * 1e9)), frame_id="cam")
        f = self.f
        h, w = f["depth"].shape
        self.pub_info.publish(CameraInfo(header=header, width=w, height=h, k=f["K"].ravel().tolist()))
        self.pub_rgb.publish(Image(header=header, height=h, width=w, encoding="rgb8", step=w * 3,
                                   data=f["rgb"].tobytes()))
        self.pub_depth.publish(Image(header=header, height=h, width=w, encoding="16UC1", step=w * 2,
                                     data=f["depth"].tobytes()))
        pose = PoseStamped(header=Header(stamp=header.stamp, frame_id="map"))
        pose.pose.orientation.w = 1.0
        self.pub_pose.publish(pose)
        return now

    def lockstep(self, n: int) -> dict:
        e2e = []
        for _ in range(n):
            k = len(self.labels)
            sent = self.publish()
            end = time.monotonic() + 120
            while len(self.labels) == k and time.monotonic() < end:
                self.spin(0.002)
            if len(self.labels) > k:
                e2e.append(self.labels[-1][0] - sent)
        self.spin(0.6)
        stages = {k[5:-2]: float(v) * 1e3 for k, v in self.diag[-1].items() if k.startswith("time_")}
        return {"frames": n, "received": len(e2e), "end_to_end_ms": float(np.median(e2e)) * 1e3,
                "end_to_end_p95_ms": float(np.percentile(e2e, 95)) * 1e3, "stages_ms": stages}

    def rate(self, hz: float, seconds: float) -> dict:
        k0, sent = len(self.labels), 0
        d0 = dict(self.diag[-1]) if self.diag else {}
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            self.publish()
            sent += 1
            self.spin(max(0.0, start + sent / hz - time.monotonic()))
        self.spin(2.0)
        d = self.diag[-1]
        received = len(self.labels) - k0
        lat = [t - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9) for t, m in self.labels[k0:]]
        return {"hz": hz, "seconds": seconds, "sent": sent, "received": received,
                "synchronised": int(d["frames_in"]) - int(d0.get("frames_in", 0)),
                "dropped_latest_wins": int(d["dropped_latest_wins"]) - int(d0.get("dropped_latest_wins", 0)),
                "latency_median_ms": float(np.median(lat)) * 1e3 if lat else None,
                "latency_max_ms": float(np.max(lat)) * 1e3 if lat else None}

    def soak(self, hz: float, seconds: float, every: float = 30.0) -> list[dict]:
        """Camera rate for a long time; node RSS, latency and counters sampled every ``every`` seconds."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        samples, sent, start, next_sample = [], 0, time.monotonic(), 0.0
        while (elapsed := time.monotonic() - start) < seconds:
            self.publish()
            sent += 1
            if elapsed >= next_sample and self.diag:
                d = self.diag[-1]
                samples.append({"t_s": round(elapsed), "rss_mb": proc.memory_info().rss / 2**20, "sent": sent,
                                 "processed": int(d["processed"]), "dropped": int(d["dropped_latest_wins"]),
                                 "latency_s": float(d["latency_s"]), "voxels": int(d["voxels"])})
                next_sample += every
            self.spin(max(0.0, start + sent / hz - time.monotonic()))
        return samples

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown()
        self.proc.send_signal(2)
        self.proc.wait(30)
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="random-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--crop", type=int, default=336)
    ap.add_argument("--stride", type=int, default=224)
    ap.add_argument("--frames", type=int, default=30, help="lockstep frames")
    ap.add_argument("--hz", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reliability", default="reliable", choices=("reliable", "best_effort"),
                    help="node input QoS; best_effort loses fragments of 640x480 images in Fast DDS here")
    ap.add_argument("--soak", type=float, default=0.0,
                    help="instead of the latency runs: publish at --hz for this many seconds and sample node memory")
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = ap.parse_args(argv)

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE",
                          str(Path(__file__).resolve().parents[1] / "config" / "fastdds_large_images.xml"))
    os.environ["PATH"] = os.path.join(sys.prefix, "bin") + os.pathsep + os.environ["PATH"]
    workdir = Path(tempfile.mkdtemp(prefix="radseg-latency-"))
    os.environ["ROS_LOG_DIR"] = str(workdir / "log")

    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"),
              "transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS"), "input_reliability": args.reliability,
              "model": args.model, "device": args.device, "image": f"{args.width}x{args.height}",
              "conversions_ms": conversion_micro(args.width, args.height)}
    bench = Bench(args, workdir)
    try:
        if args.soak:
            result["soak"] = bench.soak(args.hz, args.soak)
        else:
            result["lockstep"] = bench.lockstep(args.frames)
            result["rate"] = bench.rate(args.hz, args.seconds)
    finally:
        bench.close()
    if args.soak:
        print(f"\nsoak: {args.model} at {result['image']}, {args.hz:.0f} Hz for {args.soak:.0f} s, {result['machine']}")
        print("| t (s) | node RSS (MB) | sent | processed | dropped | latency (s) | voxels |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in result["soak"]:
            print(f"| {r['t_s']} | {r['rss_mb']:.0f} | {r['sent']} | {r['processed']} | {r['dropped']} | "
                  f"{r['latency_s']:.2f} | {r['voxels']} |")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
        return 0

    st = result["lockstep"]["stages_ms"]
    ros = st.get("conversion", 0) + st.get("publishing", 0)
    result["ros_overhead_ms"] = {"conversion+publishing": ros, "input_age (transport+sync)": st.get("input_age")}
    print(f"\nradseg_node latency — {result['image']}, model {args.model} on {args.device}, {result['machine']}\n")
    print("| stage (lockstep, mean per frame) | ms |\n|---|---:|")
    for name in ("input_age", "queue_wait", "conversion", "encoder", "segmentation", "integration", "publishing"):
        if name in st:
            print(f"| {name} | {st[name]:.2f} |")
    ls = result["lockstep"]
    print(f"| end-to-end (publish → labels received), median | {ls['end_to_end_ms']:.1f} |")
    print(f"| end-to-end p95 | {ls['end_to_end_p95_ms']:.1f} |")
    r = result["rate"]
    print(f"\n{r['hz']:.0f} Hz for {r['seconds']:.0f} s: sent {r['sent']}, synchronised {r['synchronised']}, "
          f"segmented {r['received']}, dropped (latest wins) {r['dropped_latest_wins']}, "
          f"latency median {r['latency_median_ms']:.0f} ms, max {r['latency_max_ms']:.0f} ms")
    print("\n| conversion alone (no DDS) | ms |\n|---|---:|")
    for name, ms in result["conversions_ms"].items():
        print(f"| {name} | {ms:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
