"""Start radseg_node (and optionally rviz).

  ros2 launch radseg_ros radseg.launch.py camera:=realsense pose_topic:=/odom rviz:=true
  ros2 launch radseg_ros radseg.launch.py namespace:=robot1 model:=c-radio_v3-l pose_source:=odometry
  ros2 launch radseg_ros radseg.launch.py --show-args

Every node parameter (radseg_ros/params.py SPECS) is also a launch argument: a value given on the launch
line reaches the node, over the params file; a bad value or an unknown name stops the launch with the
reason. `camera` picks topic remappings for common drivers; `pose_topic` wins over its pose remap.
The logic lives in radseg_ros/launch_config.py (tested without `launch` installed).
"""

import os
import sys
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from radseg_ros import launch_config as lc
from radseg_ros.params import SPECS


def _launched_directly() -> bool:
    """Unknown names are refused when this file is the one run; when included, the parent's own
    arguments share the launch line, so only names of node parameters are read."""
    return any(os.path.basename(arg) == "radseg.launch.py" for arg in sys.argv)


def _node(context):
    share = get_package_share_directory("radseg_ros")
    configs = context.launch_configurations
    if _launched_directly():
        lc.check_argument_names(lc.argument_names(context.argv))
    remappings = lc.remappings(configs["camera"], configs["pose_topic"])
    use_sim_time = configs["use_sim_time"].lower() == "true"
    overrides = {**lc.parameter_overrides(configs), "use_sim_time": use_sim_time}
    # A file, not a dict: launch_ros would re-read string values as YAML (camera_frame:=123 -> int).
    with tempfile.NamedTemporaryFile("w", prefix="radseg_launch_", suffix=".yaml", delete=False) as f:
        f.write(lc.parameters_yaml(overrides))
    params_file = configs["params_file"] or os.path.join(share, "config", "radseg.yaml")
    rviz_file = os.path.join(share, "rviz", "radseg.rviz")
    if configs["namespace"].strip("/"):  # the layout's topics follow the node into its namespace
        with open(rviz_file) as src, tempfile.NamedTemporaryFile(
            "w", prefix="radseg_", suffix=".rviz", delete=False
        ) as dst:
            dst.write(lc.rviz_config(src.read(), configs["namespace"]))
        rviz_file = dst.name
    return [
        Node(
            package="radseg_ros",
            executable="radseg_node",
            name=lc.NODE_NAME,
            namespace=configs["namespace"],
            parameters=[params_file, f.name],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", rviz_file],
            parameters=[{"use_sim_time": use_sim_time}],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ]


def generate_launch_description():
    share = get_package_share_directory("radseg_ros")
    defaults = {"params_file": os.path.join(share, "config", "radseg.yaml")}
    own = [
        DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text,
                              **({"choices": list(lc.CAMERA_REMAPPINGS)} if name == "camera" else {}))
        for name, (default, text) in lc.LAUNCH_ARGUMENTS.items()
    ]
    parameters = [
        DeclareLaunchArgument(name, default_value="", description=lc.parameter_argument_description(name))
        for name in SPECS
    ]
    return LaunchDescription([*own, *parameters, OpaqueFunction(function=_node)])
