"""What launch/radseg.launch.py does with its arguments, as plain functions (no `launch` import).

The launch file passes any node parameter given on the launch line (``model:=c-radio_v3-l``,
``pose_source:=odometry``, ...) to the node: the names come from ``params.SPECS``, so a parameter the
node gains is a launch argument without touching the launch file. Values are typed and validated here,
so a wrong value or a misspelt name stops the launch with a reason instead of being dropped.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from radseg_ros.params import SPECS, validate

NODE_NAME = "radseg"
# The parameter-file key: the node called radseg in any namespace (namespace:=robot1 keeps the file).
PARAMS_KEY = f"/**/{NODE_NAME}"

# node input → driver topic, for the drivers' default launch files (depth registered to colour). Every
# input the node subscribes to is remapped, or CAMERA_UNREMAPPED says why not; the sources of each name
# are cited in test/ros/test_launch_presets.py, which lists the node's subscriptions per preset.
CAMERA_REMAPPINGS: dict[str, dict[str, str]] = {
    "none": {},
    "realsense": {  # realsense2_camera 4.x, rs_launch.py align_depth.enable:=true
        "rgb/image": "/camera/camera/color/image_raw",
        "rgb/camera_info": "/camera/camera/color/camera_info",
        "depth/image": "/camera/camera/aligned_depth_to_color/image_raw",
        "depth/camera_info": "/camera/camera/aligned_depth_to_color/camera_info",
    },
    "zed": {  # zed-ros2-wrapper 5.1 and later (topic names changed 2025-10)
        "rgb/image": "/zed/zed_node/rgb/color/rect/image",
        "rgb/camera_info": "/zed/zed_node/rgb/color/rect/camera_info",
        "depth/image": "/zed/zed_node/depth/depth_registered",
        "depth/camera_info": "/zed/zed_node/depth/camera_info",
        "pose": "/zed/zed_node/pose",
        "odom": "/zed/zed_node/odom",
    },
    "zed_legacy": {  # zed-ros2-wrapper 4.x and 5.0
        "rgb/image": "/zed/zed_node/rgb/image_rect_color",
        "rgb/camera_info": "/zed/zed_node/rgb/camera_info",
        "depth/image": "/zed/zed_node/depth/depth_registered",
        "depth/camera_info": "/zed/zed_node/depth/camera_info",
        "pose": "/zed/zed_node/pose",
        "odom": "/zed/zed_node/odom",
    },
    "oakd": {  # depthai_ros_driver (v2) camera.launch.py; stereo depth aligned to rgb by default
        "rgb/image": "/oak/rgb/image_raw",
        "rgb/camera_info": "/oak/rgb/camera_info",
        "depth/image": "/oak/stereo/image_raw",
        "depth/camera_info": "/oak/stereo/camera_info",
    },
}

_NO_POSE = ("the driver publishes no camera pose: give pose_topic:= (odometry or localisation) or use "
            "pose_source tf")
# node input → why a preset leaves it as is (/tf and /tf_static are absolute and never remapped: the
# drivers publish their mounting there and the robot its tree)
CAMERA_UNREMAPPED: dict[str, dict[str, str]] = {
    "none": {name: "no preset: remap it yourself" for name in
             ("rgb/image", "rgb/camera_info", "depth/image", "depth/camera_info", "pose", "odom")},
    "realsense": {"pose": _NO_POSE, "odom": _NO_POSE},
    "zed": {},
    "zed_legacy": {},
    "oakd": {"pose": _NO_POSE, "odom": _NO_POSE},
}

# The launch file's own arguments (besides one per node parameter): name → (default, description).
LAUNCH_ARGUMENTS: dict[str, tuple[str | None, str]] = {
    "params_file": (None, "parameters file (config/radseg.yaml; see config/ for desktop and Jetson presets)"),
    "namespace": ("", "namespace of the node (the params file applies in any namespace)"),
    "camera": ("none", "topic remappings for a camera driver's default topics (zed: wrapper 5.1+, zed_legacy: "
               "4.x and 5.0); none keeps rgb/image, depth/image, rgb/camera_info, depth/camera_info, pose, "
               "odom for you to remap"),
    "pose_topic": ("", "camera pose topic (PoseStamped, or Odometry with pose_source:=odometry); "
                   "wins over the camera preset's pose remap"),
    "use_sim_time": ("false", "use /clock (bags played with --clock)"),
    "rviz": ("false", "start rviz2 with radseg.rviz"),
}


class LaunchArgumentError(ValueError):
    """A launch argument the node cannot take; the message names it and says what is accepted."""


def parameter_argument_description(name: str) -> str:
    spec = SPECS[name]
    extra = f" [{'|'.join(spec.choices)}]" if spec.choices else ""
    return f"node parameter: {spec.description}{extra} (empty: the params file's value)"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_parameter(name: str, text: str) -> Any:
    """``text`` from the launch line as a value of the type of parameter ``name``, validated."""
    spec = SPECS[name]
    default = spec.default
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    if isinstance(parsed, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-3 as text
            parsed = float(text) if isinstance(default, float) else int(text)
    if isinstance(default, bool):
        ok = isinstance(parsed, bool)
        value = parsed
        want = "true or false"
    elif isinstance(default, int):
        ok = isinstance(parsed, int) and not isinstance(parsed, bool)
        value = parsed
        want = "an integer"
    elif isinstance(default, float):
        ok = _is_number(parsed)
        value = float(parsed) if ok else parsed
        want = "a number"
    elif isinstance(default, list) and all(isinstance(v, float) for v in default) and default:
        ok = isinstance(parsed, list) and all(_is_number(v) for v in parsed)
        value = [float(v) for v in parsed] if ok else parsed
        want = "a list of numbers, e.g. \"[0.1, 0.2]\""
    elif isinstance(default, list):  # "[chair, table]" or "chair,table"
        if isinstance(parsed, str):
            parsed = [part.strip() for part in parsed.split(",")]
        ok = isinstance(parsed, list) and all(isinstance(v, str) for v in parsed)
        value = parsed
        want = "a list of names, e.g. \"[chair, table]\" or chair,table"
    else:  # strings stay as typed (camera_frame:=123 is the frame "123")
        ok, value, want = True, text, "text"
    if not ok:
        raise LaunchArgumentError(f"{name}:={text} is not {want}")
    reason = validate(name, value)
    if reason is not None:
        raise LaunchArgumentError(f"{name}:={text}: {reason}")
    return value


def parameter_overrides(configurations: Mapping[str, str]) -> dict[str, Any]:
    """Node parameters set on the launch line (non-empty values of names in SPECS), typed and validated."""
    return {
        name: parse_parameter(name, text)
        for name, text in configurations.items()
        if name in SPECS and text != ""
    }


def argument_names(argv: Iterable[str]) -> list[str]:
    """Names of ``name:=value`` launch-line arguments."""
    return [arg.split(":=", 1)[0] for arg in argv if ":=" in arg]


def check_argument_names(names: Iterable[str]) -> None:
    """Refuse names that are neither a launch argument nor a node parameter (a typo would be dropped)."""
    known = set(LAUNCH_ARGUMENTS) | set(SPECS)
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, sorted(known), n=1)
            hints.append(f"{n}:=" + (f" (did you mean {close[0]}?)" if close else ""))
        raise LaunchArgumentError(
            f"unknown launch argument(s) {', '.join(hints)}; radseg.launch.py takes "
            f"{', '.join(LAUNCH_ARGUMENTS)} and every node parameter (ros2 launch radseg_ros "
            "radseg.launch.py --show-args)"
        )


def remappings(camera: str, pose_topic: str) -> list[tuple[str, str]]:
    """Topic remappings for ``camera``; ``pose_topic`` replaces the preset's pose (rcl uses the first
    matching rule, so an appended rule would lose)."""
    if camera not in CAMERA_REMAPPINGS:
        raise LaunchArgumentError(f"camera:={camera} is not one of {', '.join(CAMERA_REMAPPINGS)}")
    table = dict(CAMERA_REMAPPINGS[camera])
    if pose_topic:
        table["pose"] = pose_topic
        table["odom"] = pose_topic
    return list(table.items())


def parameters_yaml(values: Mapping[str, Any]) -> str:
    """A parameter file for the node in any namespace (loaded after params_file, so its values win)."""
    return yaml.safe_dump({PARAMS_KEY: {"ros__parameters": dict(values)}}, sort_keys=False)


def rviz_config(text: str, namespace: str) -> str:
    """radseg.rviz with its /radseg/ topics moved into ``namespace`` (rviz shows the namespaced node)."""
    ns = namespace.strip("/")
    if not ns:
        return text
    return text.replace(f"Value: /{NODE_NAME}/", f"Value: /{ns}/{NODE_NAME}/")
