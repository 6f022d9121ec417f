"""What can be checked of launch, config and rviz files without launch/rviz installed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from ament_index_python.packages import get_package_share_directory

from radseg_ros.params import SPECS, NodeParams, check_consistency, validate

REPO = Path(__file__).resolve().parents[2]
NODE_INPUTS = {"rgb/image", "depth/image", "rgb/camera_info", "pose", "odom"}
NODE_OUTPUTS = {"segmentation", "labels", "semantic_cloud", "query_cloud", "query_markers"}


def launch_module() -> ast.Module:
    return ast.parse((REPO / "launch" / "radseg.launch.py").read_text())


def test_launch_file_parses_and_remaps_only_node_inputs():
    tree = launch_module()
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    remaps = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "CAMERA_REMAPPINGS")
    table = ast.literal_eval(remaps.value)
    assert "none" in table and table["none"] == {}
    for camera, mapping in table.items():
        assert set(mapping) <= NODE_INPUTS, camera
    source = (REPO / "launch" / "radseg.launch.py").read_text()
    assert 'executable="radseg_node"' in source and 'package="radseg_ros"' in source
    args = set(re.findall(r'DeclareLaunchArgument\("(\w+)"', source))
    assert {"params_file", "namespace", "use_sim_time", "rviz", "camera"} <= args


@pytest.mark.parametrize("name", ["radseg.yaml", "radseg_desktop.yaml", "radseg_jetson_orin.yaml"])
def test_parameter_files_name_real_parameters_with_valid_values(name):
    params = yaml.safe_load((REPO / "config" / name).read_text())["radseg"]["ros__parameters"]
    assert set(params) <= set(SPECS), set(params) - set(SPECS)
    for key, value in params.items():
        assert validate(key, value) is None, (key, value)
    merged = NodeParams(**{**{k: s.default for k, s in SPECS.items()}, **params})
    assert check_consistency(merged) is None


def test_default_parameter_file_lists_every_parameter_with_its_default():
    params = yaml.safe_load((REPO / "config" / "radseg.yaml").read_text())["radseg"]["ros__parameters"]
    assert set(params) == set(SPECS)
    for key, spec in SPECS.items():
        assert params[key] == spec.default, key


def test_rviz_shows_topics_the_node_publishes():
    config = yaml.safe_load((REPO / "rviz" / "radseg.rviz").read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics
    for topic in topics:
        assert topic.startswith("/radseg/") and topic.split("/")[-1] in NODE_OUTPUTS, topic


def test_installed_share_directory_has_launch_config_rviz():
    share = Path(get_package_share_directory("radseg_ros"))
    for rel in ("launch/radseg.launch.py", "config/radseg.yaml", "config/radseg_jetson_orin.yaml",
                "rviz/radseg.rviz", "package.xml"):
        assert (share / rel).is_file(), rel
