"""Stopping the node (SIGINT, as Ctrl-C or ros2 launch do) saves the map: no mapped data is lost."""

from __future__ import annotations

from harness import FramePublisher, TopicCapture
from sensor_msgs.msg import Image

from radseg_core.map_io import load_map


def test_sigint_saves_the_map_and_exits_cleanly(client, start_node, tmp_path):
    node = start_node(crop=112, stride=96)
    frames = FramePublisher(client)
    frames.wait_for_node()
    labels = TopicCapture(client, Image, "/radseg/labels")
    for i in range(2):
        frames.publish_synthetic(i)
        labels.wait(i + 1)
    assert node.stop() == 0, node.log()
    saved = tmp_path / "maps" / "shutdown.rsmap"
    assert saved.is_file(), node.log()
    vmap = load_map(saved)
    assert len(vmap) > 0 and vmap.frames_integrated == 2
    assert vmap.metadata["model"] == "random-tiny"
