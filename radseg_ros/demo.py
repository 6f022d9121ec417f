"""The main job: the sample RGB-D sequence through the real ROS 2 node, end to end.

  scripts/demo.sh                       # c-radio_v3-b (downloaded on first use)
  scripts/demo.sh --require-weights     # fail (exit 3) instead of falling back to random weights
  scripts/demo.sh --model random-tiny   # offline smoke run: random weights, NOT semantic

Steps: make (or reuse) the Motorcycle sample bag → start radseg_node in its own process → replay the
bag into its topics, one frame at a time → collect the segmentation images → ask ~/query over DDS →
~/save_map → stop the node → write a PLY and pictures → print the paths and write summary.json.

When the real model cannot be loaded (the node exits with EXIT_MODEL_UNAVAILABLE, i.e. ModelLoadError:
no network, no local checkpoint), the demo prints one block saying what to download, where to put it and
the exact command to rerun, then runs the same pipeline with random weights so a newcomer still sees it
work end to end. Such a run is NOT SEMANTIC and every output says so: the terminal summary, a
``_NOT_SEMANTIC`` tag in every file name, a banner and PNG text chunk in every picture, the map file's
metadata and summary.json (``"semantic": false``).
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

FALLBACK_MODEL = "random-tiny"
NOT_SEMANTIC_TAG = "_NOT_SEMANTIC"
WEIGHTS_DIR = "~/radseg_weights"  # where the download block tells the user to put the files
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
    ap.add_argument("--require-weights", action="store_true",
                    help="exit with status 3 when the real model cannot be loaded, instead of running the "
                         "pipeline with random weights (NOT semantic)")
    ap.add_argument("--radio-repo-dir", default="", help="offline: local NVlabs/RADIO checkout (node parameter "
                    "radio_repo_dir)")
    ap.add_argument("--radio-checkpoint", default="", help="offline: local RADIO checkpoint .pth.tar (node "
                    "parameter radio_checkpoint)")
    ap.add_argument("--text-model-path", default="", help="offline: folder of local text models, one "
                    "subfolder per Hugging Face id (node parameter text_model_path)")
    args = ap.parse_args(argv)
    if args.require_weights and is_random(args.model):
        ap.error(f"--require-weights asks for real weights, but --model {args.model} has random weights")
    return args


def is_random(model: str) -> bool:
    return model.startswith("random")


def tagged(name: str, semantic: bool) -> str:
    """``name`` with ``_NOT_SEMANTIC`` before its suffix when the weights are random."""
    if semantic:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}{NOT_SEMANTIC_TAG}{dot}{suffix}"


def weights_block(model: str, node_message: str, require: bool) -> str:
    """One block: why the real model is missing, what to download, where to put it, the command to rerun."""
    from radseg_core.model.loading import HUB_REPO, MODELS

    reason = node_message.strip().splitlines()[0] if node_message.strip() else "(no message from the node)"
    bar = "=" * 78
    lines = [bar, f"REAL MODEL NOT AVAILABLE: {model} could not be loaded (offline, or weights not downloaded).",
             f"Reason: {reason}"]
    info = MODELS.get(model)
    if info is not None:
        d = WEIGHTS_DIR
        lines += [
            f"On a machine with network, download into {d} (then copy that folder here):",
            f"  git clone https://github.com/{HUB_REPO} {d}/RADIO",
            f"  huggingface-cli download {info.hf_repo} {info.checkpoint_file} --local-dir {d}",
            f"  huggingface-cli download {info.text_model} --local-dir {d}/text/{info.text_model}",
            "Then rerun with the real model:",
            f"  scripts/demo.sh --model {model} --radio-repo-dir {d}/RADIO "
            f"--radio-checkpoint {d}/{info.checkpoint_file} --text-model-path {d}/text --require-weights",
            "(or run scripts/demo.sh once on a machine with network: it downloads into the torch hub and",
            " Hugging Face caches). Details: docs/encoder.md.",
        ]
    else:
        lines += ["What the loader says to do:", *("  " + ln for ln in node_message.strip().splitlines()[1:])]
        lines += [f"Then rerun: scripts/demo.sh --model {model} --require-weights"]
    if require:
        lines.append("--require-weights given: stopping without a demo run.")
    else:
        lines += [f"Continuing with RANDOM WEIGHTS ({FALLBACK_MODEL}) so you can see the pipeline run:",
                  "every result of this run is NOT SEMANTIC (labels, scores and pictures mean nothing)."]
    lines.append(bar)
    return "\n".join(lines)


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


def start_node(args: argparse.Namespace, output: Path, model: str):
    import subprocess

    import yaml
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("radseg_ros")) / "lib" / "radseg_ros" / "radseg_node"
    params = {
        "model": model, "device": args.device, "classes": list(args.classes),
        "map_directory": str((output / "maps").resolve()), "text_cache_dir": str(output / "text_cache"),
        "cloud_publish_rate": 0.0, "max_depth": 10.0,
        "save_on_shutdown": False,  # the demo saves through ~/save_map, under a name that says what it is
        "input_reliability": "reliable",  # the replayer publishes reliably; 640x480 best-effort loses fragments
    }
    if not is_random(model):  # the random fallback must not inherit the real model's (missing) files
        params |= {"radio_repo_dir": args.radio_repo_dir, "radio_checkpoint": args.radio_checkpoint,
                   "text_model_path": args.text_model_path}
    params_file = output / "node_params.yaml"
    params_file.write_text(yaml.safe_dump({"/**/radseg": {"ros__parameters": params}}))
    cmd = [str(exe), "--ros-args", "--params-file", str(params_file)]
    for name, topic in SAMPLE_TOPICS.items():
        cmd += ["-r", f"{name}:={topic}"]
    log = open(output / "node.log", "a")  # noqa: SIM115 - lives as long as the node; a fallback appends
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def node_error(output: Path) -> str:
    """What the node said when it gave up: its log from the last ``radseg_node:`` line on."""
    text = (output / "node.log").read_text(errors="replace")
    at = text.rfind("radseg_node: ")
    return text[at + len("radseg_node: "):] if at >= 0 else text[-3000:]


def clear_previous(output: Path) -> None:
    """Remove the files an earlier demo run left here, so a real run never sits next to a random one."""
    patterns = ["segmentation/*.png", "maps/demo*.rsmap", "map*.ply", "map_topdown*.png", "query*.png",
                "query*.json", "query_*.ply", "summary.json", "node.log"]
    for pattern in patterns:
        for path in output.glob(pattern):
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output.resolve()
    (output / "segmentation").mkdir(parents=True, exist_ok=True)
    clear_previous(output)
    isolate_ros(output)
    model = args.model
    if is_random(model):
        print(f"NOTE: model {model} has random weights: the results are NOT SEMANTIC (plumbing only).")

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from radseg_core.datasets import export_sample
    from radseg_ros.bag_replay import BagReplayer
    from radseg_ros.conversions import image_to_rgb
    from radseg_ros.node import EXIT_MODEL_UNAVAILABLE
    from radseg_ros.srv import MapFile, TextQuery

    print(f"[demo] preparing the Motorcycle sample ({args.frames} frames)")
    sample = export_sample(n_frames=args.frames)
    print(f"[demo] sample bag: {sample['bag']}")
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

    def start_and_wait(model: str):
        """The node with ``model``, once its services exist (model loaded); None when the model is missing."""
        print(f"[demo] starting radseg_node (model {model}); log: {output / 'node.log'}")
        proc = start_node(args, output, model)
        deadline = time.monotonic() + args.frame_timeout
        ready = client.create_client(MapFile, "/radseg/save_map")
        try:
            while not ready.wait_for_service(timeout_sec=0.5):
                code = proc.poll()
                if code == EXIT_MODEL_UNAVAILABLE:
                    return None
                if code is not None:
                    raise RuntimeError("radseg_node exited:\n" + (output / "node.log").read_text()[-3000:])
                if time.monotonic() > deadline:
                    raise TimeoutError("radseg_node did not start in time")
        finally:
            client.destroy_client(ready)
        return proc

    code = 0
    node_proc = None
    semantic = not is_random(model)
    fallback_reason = ""
    try:
        node_proc = start_and_wait(model)
        if node_proc is None:
            fallback_reason = node_error(output)
            print(weights_block(model, fallback_reason, args.require_weights), flush=True)
            if args.require_weights:
                return EXIT_MODEL_UNAVAILABLE
            model, semantic = FALLBACK_MODEL, False
            node_proc = start_and_wait(model)
            if node_proc is None:
                raise RuntimeError("the random-weight model could not be built:\n" + node_error(output))
        replayer = BagReplayer(client, sample["bag"], topics=list(SAMPLE_TOPICS.values()))
        deadline = time.monotonic() + args.frame_timeout
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
            write_picture(output / "segmentation" / tagged(f"{i:06d}.png", semantic), image_to_rgb(msg),
                          semantic, model)

        res = call(TextQuery, "/radseg/query", TextQuery.Request(queries=list(args.query), top_k=3))
        if not res.success:
            raise RuntimeError(f"query failed: {res.message}")
        matches = [
            {"query": args.query[qi], "score": round(float(s), 4), "position": [p.x, p.y, p.z]}
            for qi, s, p in zip(res.query_index, res.scores, res.positions, strict=True)
        ]
        answer = {"model": model, "semantic": semantic, "queries": args.query, "matches": matches}
        if not semantic:
            answer["warning"] = not_semantic_note(model)
        (output / tagged("query_service.json", semantic)).write_text(json.dumps(answer, indent=2))
        print(f"[demo] ~/query: {res.message}")
        for m in matches:
            print(f"    {m['query']:>12s}  score {m['score']:.3f}  at ({m['position'][0]:+.2f}, "
                  f"{m['position'][1]:+.2f}, {m['position'][2]:+.2f})")
        map_name = tagged("demo.rsmap", semantic)
        res = call(MapFile, "/radseg/save_map", MapFile.Request(path=map_name))
        if not res.success:
            raise RuntimeError(f"save_map failed: {res.message}")
        print(f"[demo] ~/save_map: {res.message}")
        files = _pictures(output, output / "maps" / map_name, args, semantic, model)
        files = [output / "segmentation", output / "maps" / map_name,
                 output / tagged("query_service.json", semantic), *files]
        summary = {
            "model": model, "requested_model": args.model, "semantic": semantic,
            "frames": len(seg_images), "files": [str(f) for f in files],
        }
        if not semantic:
            summary["warning"] = not_semantic_note(model)
        if fallback_reason:
            summary["fallback_reason"] = fallback_reason.strip()
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
    except (RuntimeError, TimeoutError) as exc:
        print(f"\n[demo] error: {exc}", file=sys.stderr)
        code = 1
    finally:
        client.destroy_node()
        rclpy.shutdown()
        if node_proc is not None and node_proc.poll() is None:
            node_proc.send_signal(2)
            try:
                node_proc.wait(60)
            except Exception:  # noqa: BLE001
                node_proc.kill()
    if code == 0:
        print("\n[demo] results in", output)
        for f in files:
            print("   ", f)
        print("   ", output / "summary.json")
        if semantic:
            print(f"\n[demo] RESULT: real model {model}: the labels and query scores are semantic.")
        else:
            bar = "!" * 78
            print(f"\n{bar}\n!! RESULT: NOT SEMANTIC. {not_semantic_note(model)}\n{bar}")
    return code


def not_semantic_note(model: str) -> str:
    return (f"model {model} has RANDOM WEIGHTS: labels, scores and pictures show the pipeline running, "
            "not what the scene contains.")


def write_picture(path: Path, rgb, semantic: bool, model: str) -> None:
    """PNG of ``rgb``; for random weights with a red banner and a ``radseg:semantic=false`` text chunk."""
    import cv2
    import numpy as np
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    rgb = np.ascontiguousarray(rgb)
    info = PngInfo()
    info.add_text("radseg:model", model)
    info.add_text("radseg:semantic", "true" if semantic else "false")
    if not semantic:
        rgb = rgb.copy()
        band = max(14, rgb.shape[0] // 14)
        rgb[:band] = (200, 0, 0)
        cv2.putText(rgb, "NOT SEMANTIC - random weights", (4, int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX,
                    band / 32, (255, 255, 255), max(1, band // 14), cv2.LINE_AA)
        info.add_text("Description", not_semantic_note(model))
    PILImage.fromarray(rgb).save(path, pnginfo=info)


def _pictures(output: Path, map_path: Path, args: argparse.Namespace, semantic: bool, model: str) -> list[Path]:
    """PLY and picture of the saved map, then the query picture from the ROS-free radseg-query tool."""
    import cv2

    from radseg_core.cli.query import main as query_main
    from radseg_core.map_io import export_ply, load_map, save_map
    from radseg_core.render import render_map

    vmap = load_map(map_path)
    if not semantic:  # the map file itself says what it is
        vmap.metadata = {**vmap.metadata, "semantic": False, "warning": not_semantic_note(model)}
        save_map(vmap, map_path)
    files = [export_ply(vmap, output / tagged("map.ply", semantic), color_by="rgb")]
    picture = render_map(vmap.centers().numpy(), vmap.colors().numpy(), voxel_size=vmap.voxel_size,
                         view="oblique", legend=[(f"{len(vmap)} voxels, camera colour", None)])
    files.append(output / tagged("map_topdown.png", semantic))
    write_picture(files[-1], picture, semantic, model)
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = query_main([str(map_path), *args.query, "-o", tmp, "--device", "cpu", "--view", "oblique"])
        if code != 0:
            raise RuntimeError("radseg-query could not render the query picture")
        for name in sorted(os.listdir(tmp)):
            target = output / tagged(name, semantic)
            if name.endswith(".png"):
                rgb = cv2.imread(os.path.join(tmp, name))[:, :, ::-1]
                write_picture(target, rgb, semantic, model)
            else:
                os.replace(os.path.join(tmp, name), target)
            files.append(target)
    return files


if __name__ == "__main__":
    sys.exit(main())
