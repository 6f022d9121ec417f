"""Launch, config and rviz files. `launch`/`launch_ros` are not on the package index, so the launch file
runs here against minimal stand-ins of the four launch classes it uses (recording what it builds), and
the rules it applies (radseg_ros/launch_config.py) are tested directly; what rcl does with the parameter
files (namespaces, precedence) is tested with rclpy itself."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import rclpy
import yaml
from ament_index_python.packages import get_package_share_directory
from rclpy.context import Context
from rclpy.node import Node as RclpyNode

from radseg_ros import launch_config as lc
from radseg_ros.params import SPECS, NodeParams, check_consistency, descriptor, normalize, validate

REPO = Path(__file__).resolve().parents[2]
NODE_INPUTS = {"rgb/image", "depth/image", "rgb/camera_info", "depth/camera_info", "pose", "odom"}
NODE_OUTPUTS = {"segmentation", "labels", "semantic_cloud", "query_cloud", "query_markers", "object_markers",
                "keepout_mask", "speed_mask"}


def file_params(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())[lc.PARAMS_KEY]["ros__parameters"]


# ------------------------------------------------------------------ the launch file, run on stand-ins
class Recorder:
    """Stands in for a launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class FakeContext:
    """What `ros2 launch ... a:=b` gives the OpaqueFunction: argv and the launch configurations."""

    def __init__(self, argv: list[str], declared: list[Recorder]):
        self.argv = argv
        self.launch_configurations = {d.args[0]: d.kwargs["default_value"] for d in declared}
        self.launch_configurations.update(a.split(":=", 1) for a in argv)


@pytest.fixture
def launch_file(monkeypatch):
    """Import launch/radseg.launch.py with stand-ins for launch and launch_ros; returns run(argv)."""
    return load_launch_file(monkeypatch)


def load_launch_file(monkeypatch):
    """The launch file's run(argv), with the stand-ins installed through ``monkeypatch``."""
    fake = {name: types.ModuleType(name) for name in
            ("launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros",
             "launch_ros.actions")}
    fake["launch"].LaunchDescription = lambda entities: list(entities)
    fake["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (Recorder,), {})
    fake["launch.actions"].OpaqueFunction = type("OpaqueFunction", (Recorder,), {})
    fake["launch.conditions"].IfCondition = Recorder
    fake["launch.substitutions"].LaunchConfiguration = Recorder
    fake["launch_ros.actions"].Node = type("Node", (Recorder,), {})
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    source = REPO / "launch" / "radseg.launch.py"
    module = types.ModuleType("radseg_launch")
    exec(compile(source.read_text(), str(source), "exec"), module.__dict__)  # noqa: S102 - our own file
    monkeypatch.setattr(sys, "argv", ["ros2", "launch", "radseg_ros", "radseg.launch.py"])

    def run(argv: list[str]):
        entities = module.generate_launch_description()
        declared = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
        opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")
        nodes = opaque.kwargs["function"](FakeContext(argv, declared))
        run.nodes = nodes
        radseg = next(n for n in nodes if n.kwargs["executable"] == "radseg_node")
        return declared, radseg

    return run


def node_parameters(radseg) -> tuple[str, dict]:
    params_file, overrides_file = radseg.kwargs["parameters"]
    overrides = yaml.safe_load(Path(overrides_file).read_text())
    assert list(overrides) == [lc.PARAMS_KEY]
    return params_file, overrides[lc.PARAMS_KEY]["ros__parameters"]


def test_launch_line_parameters_reach_the_node_typed(launch_file):
    _, radseg = launch_file(["model:=c-radio_v3-l", "pose_source:=odometry", "input_reliability:=reliable",
                             "voxel_size:=0.1", "max_voxels:=200000", "pose_is_optical:=false",
                             "classes:=[chair, table]", "camera_frame:=123", "use_sim_time:=true"])
    params_file, values = node_parameters(radseg)
    assert params_file.endswith("config/radseg.yaml")
    assert values == {"model": "c-radio_v3-l", "pose_source": "odometry", "input_reliability": "reliable",
                      "voxel_size": 0.1, "max_voxels": 200000, "pose_is_optical": False,
                      "classes": ["chair", "table"], "camera_frame": "123", "use_sim_time": True}


def test_view_launch_arguments_reach_the_node(launch_file):
    _, radseg = launch_file(["view:=true", "view_bind:=0.0.0.0", "view_port:=8080"])
    _, values = node_parameters(radseg)
    assert values == {"view": True, "view_bind": "0.0.0.0", "view_port": 8080, "use_sim_time": False}
    with pytest.raises(lc.LaunchArgumentError, match=r"'view_port' must lie in \[1, 65535\]"):
        launch_file(["view:=true", "view_port:=70000"])


def test_every_node_parameter_is_a_declared_launch_argument(launch_file):
    declared, radseg = launch_file([])
    names = {d.args[0] for d in declared}
    assert set(SPECS) | set(lc.LAUNCH_ARGUMENTS) == names
    assert node_parameters(radseg)[1] == {"use_sim_time": False}  # nothing given: the params file rules
    camera = next(d for d in declared if d.args[0] == "camera")
    assert camera.kwargs["choices"] == ["none", "realsense", "zed", "zed_legacy", "oakd"]


def test_unknown_or_misspelt_argument_stops_the_launch(launch_file):
    with pytest.raises(lc.LaunchArgumentError, match="did you mean input_reliability"):
        launch_file(["input_reliabilty:=reliable"])
    with pytest.raises(lc.LaunchArgumentError, match=r"'pose_source' must be one of pose, odometry, tf"):
        launch_file(["pose_source:=gps"])


def test_included_from_another_launch_file_leaves_the_parents_arguments_alone(launch_file, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ros2", "launch", "my_robot", "bringup.launch.py"])
    _, radseg = launch_file(["robot_name:=r2", "model:=c-radio_v3-h"])
    assert node_parameters(radseg)[1] == {"model": "c-radio_v3-h", "use_sim_time": False}


def test_pose_topic_wins_over_the_camera_presets_pose(launch_file):
    _, radseg = launch_file(["camera:=zed", "pose_topic:=/odometry/filtered"])
    remaps = dict(radseg.kwargs["remappings"])
    assert remaps["pose"] == "/odometry/filtered" and remaps["odom"] == "/odometry/filtered"
    assert [k for k, _ in radseg.kwargs["remappings"]].count("pose") == 1  # rcl takes the first match
    assert remaps["rgb/image"] == "/zed/zed_node/rgb/color/rect/image"


def test_namespace_reaches_the_node_and_rviz_follows_it(launch_file):
    _, radseg = launch_file(["namespace:=robot1", "rviz:=true"])
    assert radseg.kwargs["namespace"] == "robot1" and radseg.kwargs["name"] == "radseg"
    rviz = launch_file.nodes[-1]
    config = yaml.safe_load(Path(rviz.kwargs["arguments"][1]).read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics and all(t.startswith("/robot1/radseg/") for t in topics), topics
    _, radseg = launch_file([])
    assert launch_file.nodes[-1].kwargs["arguments"][1].endswith("rviz/radseg.rviz")  # no namespace: as shipped


# ------------------------------------------------------------------ the rules themselves
@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_parameter_written_on_a_launch_line_parses_back_to_its_value(name):
    default = SPECS[name].default
    if isinstance(default, bool):
        text = str(default).lower()
    elif isinstance(default, list):
        text = "[" + ", ".join(default) + "]"
    else:
        text = str(default)
    value = lc.parse_parameter(name, text)
    assert value == default and type(value) is type(default)


@pytest.mark.parametrize(("arg", "reason"), [
    ("voxel_size:=big", "not a number"), ("max_voxels:=1.5", "not an integer"),
    ("sam_refine:=yes please", "not true or false"), ("voxel_size:=5", "must lie in"),
    ("crop:=100", "multiple of 16"), ("classes:=[]", "non-empty list"), ("mode:=labels", "must be one of"),
])
def test_bad_values_are_refused_with_the_reason(arg, reason):
    name, text = arg.split(":=")
    with pytest.raises(lc.LaunchArgumentError, match=reason):
        lc.parameter_overrides({name: text})


def test_numbers_yaml_reads_as_text_and_comma_lists_are_accepted():
    assert lc.parse_parameter("depth_scale", "1e-3") == 0.001
    assert lc.parse_parameter("max_depth", "4") == 4.0 and isinstance(lc.parse_parameter("max_depth", "4"), float)
    assert lc.parse_parameter("classes", "chair,table") == ["chair", "table"]
    assert lc.parse_parameter("keepout_queries", "stairs,wet floor") == ["stairs", "wet floor"]
    assert lc.parse_parameter("speed_queries", "[]") == []


def test_a_list_of_numbers_parameter_takes_numbers(monkeypatch):
    from radseg_ros.params import Spec

    monkeypatch.setitem(SPECS, "offsets", Spec([0.0, 0.0], "a parameter the node might gain"))
    assert lc.parse_parameter("offsets", "[1, 2.5]") == [1.0, 2.5]
    with pytest.raises(lc.LaunchArgumentError, match="list of numbers"):
        lc.parse_parameter("offsets", "[a, b]")


def test_empty_value_keeps_the_params_file_and_other_launch_arguments_are_not_parameters():
    assert lc.parameter_overrides({"model": "", "camera": "zed", "namespace": "r1", "rviz": "true"}) == {}


def test_unknown_camera_is_refused():
    with pytest.raises(lc.LaunchArgumentError, match="camera:=kinect is not one of none, realsense"):
        lc.remappings("kinect", "")


def test_camera_presets_remap_only_node_inputs():
    assert lc.CAMERA_REMAPPINGS["none"] == {}
    for camera, mapping in lc.CAMERA_REMAPPINGS.items():
        assert set(mapping) <= NODE_INPUTS, camera


def test_every_argument_the_docs_show_on_a_launch_line_is_taken():
    """README and docs launch lines, and `name:=value` snippets in README prose, name real arguments."""
    names = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text()
        for line in re.findall(r"radseg\.launch\.py[^\n]*(?:\\\n[^\n]*)*", text):
            names += re.findall(r"(?<![\w.])(\w+):=", line)
        if doc.name == "README.md":
            names += re.findall(r"`(\w+):=", text)
    assert {"camera", "pose_topic", "pose_source", "input_reliability", "model"} <= set(names)
    lc.check_argument_names(names)


# ------------------------------------------------------------------ parameter files, as rcl reads them
def rcl_parameters(namespace: str, *files: Path, name: str = "radseg") -> dict:
    ctx = Context()
    args = ["--ros-args"] + [a for f in files for a in ("--params-file", str(f))]
    rclpy.init(args=args, context=ctx)
    try:
        node = RclpyNode(name, namespace=namespace, context=ctx,
                         automatically_declare_parameters_from_overrides=True)
        values = {p: node.get_parameter(p).value for p in ("model", "device", "point_stride", "max_depth")
                  if node.has_parameter(p)}
        node.destroy_node()
        return values
    finally:
        rclpy.shutdown(context=ctx)


@pytest.mark.parametrize("text", ["[]", "[stairs, wet floor]"])
def test_empty_list_parameters_survive_params_files_and_live_changes(tmp_path, text):
    """rcl reads a params file's [] as "not set" and rclpy types an empty list as bytes: the node's list
    parameters (declared like the node declares them) still come out as lists of texts."""
    f = tmp_path / "p.yaml"
    f.write_text(f"radseg:\n  ros__parameters:\n    keepout_queries: {text}\n")
    ctx = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(f)], context=ctx)
    try:
        node = RclpyNode("radseg", context=ctx)
        for name in ("keepout_queries", "speed_queries"):
            node.declare_parameter(name, SPECS[name].default, descriptor(name, SPECS[name]))
        got = normalize("keepout_queries", node.get_parameter("keepout_queries").value)
        assert got == yaml.safe_load(text) and validate("keepout_queries", got) is None
        assert normalize("speed_queries", node.get_parameter("speed_queries").value) == []
        res = node.set_parameters([rclpy.parameter.Parameter("speed_queries", value=["ramp"])])[0]
        assert res.successful and normalize("speed_queries", node.get_parameter("speed_queries").value) == ["ramp"]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    assert validate("keepout_queries", normalize("keepout_queries", "stairs")) is not None  # text, not a list


@pytest.mark.parametrize("namespace", ["", "robot1", "fleet/robot2"])
def test_params_file_applies_in_any_namespace_and_launch_values_win(tmp_path, namespace):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(lc.parameters_yaml({"model": "c-radio_v3-l", "max_depth": 3.5}))
    jetson = REPO / "config" / "radseg_jetson_orin.yaml"
    got = rcl_parameters(namespace, jetson, overrides)
    assert got["device"] == "cuda" and got["point_stride"] == file_params("radseg_jetson_orin.yaml")["point_stride"]
    assert got["model"] == "c-radio_v3-l" and got["max_depth"] == 3.5
    assert rcl_parameters(namespace, jetson, name="other_node") == {}  # the key names our node only


# ------------------------------------------------------------------ config and rviz files
@pytest.mark.parametrize("name", ["radseg.yaml", "radseg_desktop.yaml", "radseg_jetson_orin.yaml"])
def test_parameter_files_name_real_parameters_with_valid_values(name):
    params = file_params(name)
    assert set(params) <= set(SPECS), set(params) - set(SPECS)
    for key, value in params.items():
        assert validate(key, value) is None, (key, value)
    merged = NodeParams(**{**{k: s.default for k, s in SPECS.items()}, **params})
    assert check_consistency(merged) is None


def test_default_parameter_file_lists_every_parameter_with_its_default():
    params = file_params("radseg.yaml")
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
