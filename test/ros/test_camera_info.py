"""Frames wait for camera_info: without calibration nothing can be back-projected."""

from __future__ import annotations

from harness import FramePublisher, TopicCapture, synthetic_frame
from sensor_msgs.msg import Image


def test_missing_camera_info_drops_frames_until_it_arrives(client, start_node):

    node = start_node(crop=112, stride=96)
    frames = FramePublisher(client)
    frames.wait_for_node()
    labels = TopicCapture(client, Image, "/radseg/labels")
    f = synthetic_frame(0)
    frames.publish(10.0, f["rgb"], f["depth_mm"], f["K"], f["position"], f["quaternion"], send_info=False)
    client.spin_for(1.5)
    assert labels.messages == []
    assert "no camera_info" in node.log()
    frames.publish(11.0, f["rgb"], f["depth_mm"], f["K"], f["position"], f["quaternion"])
    labels.wait(1)
    assert node.alive()
