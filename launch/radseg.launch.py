"""Start radseg_node (and optionally rviz).

  ros2 launch radseg_ros radseg.launch.py camera:=realsense rviz:=true
  ros2 launch radseg_ros radseg.launch.py params_file:=/path/my.yaml namespace:=robot1

`camera` picks topic remappings for common drivers; `none` keeps the node's own names
(rgb/image, depth/image, rgb/camera_info, pose) for you to remap.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

# node input → driver topic, for drivers' default namespaces (depth registered to colour)
CAMERA_REMAPPINGS = {
    "none": {},
    "realsense": {
        "rgb/image": "/camera/camera/color/image_raw",
        "rgb/camera_info": "/camera/camera/color/camera_info",
        "depth/image": "/camera/camera/aligned_depth_to_color/image_raw",
    },
    "zed": {
        "rgb/image": "/zed/zed_node/rgb/image_rect_color",
        "rgb/camera_info": "/zed/zed_node/rgb/camera_info",
        "depth/image": "/zed/zed_node/depth/depth_registered",
        "pose": "/zed/zed_node/pose",
    },
    "oakd": {
        "rgb/image": "/oak/rgb/image_raw",
        "rgb/camera_info": "/oak/rgb/camera_info",
        "depth/image": "/oak/stereo/image_raw",
    },
}


def _node(context):
    share = get_package_share_directory("radseg_ros")
    camera = LaunchConfiguration("camera").perform(context)
    if camera not in CAMERA_REMAPPINGS:
        raise RuntimeError(f"camera:={camera} is not one of {', '.join(CAMERA_REMAPPINGS)}")
    remappings = list(CAMERA_REMAPPINGS[camera].items())
    pose_topic = LaunchConfiguration("pose_topic").perform(context)
    if pose_topic:
        remappings.append(("pose", pose_topic))
        remappings.append(("odom", pose_topic))
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() == "true"
    return [
        Node(
            package="radseg_ros",
            executable="radseg_node",
            name="radseg",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"use_sim_time": use_sim_time}],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "rviz", "radseg.rviz")],
            parameters=[{"use_sim_time": use_sim_time}],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ]


def generate_launch_description():
    share = get_package_share_directory("radseg_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "radseg.yaml"),
                                  description="parameters file (see config/ for desktop and Jetson presets)"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("camera", default_value="none",
                                  description="topic remappings: " + ", ".join(CAMERA_REMAPPINGS)),
            DeclareLaunchArgument("pose_topic", default_value="",
                                  description="camera pose topic (PoseStamped or Odometry) to remap to"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bags)"),
            DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with radseg.rviz"),
            OpaqueFunction(function=_node),
        ]
    )
