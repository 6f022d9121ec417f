"""Frame skip, autosave and the query's rviz outputs (heat cloud, candidate markers)."""

from __future__ import annotations

import time

from harness import FramePublisher, TopicCapture
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from radseg_ros.conversions import read_cloud
from radseg_ros.srv import TextQuery


def test_frame_skip_autosave_and_query_visualisation(client, start_node, tmp_path):
    node = start_node(crop=112, stride=96, frame_skip=1, autosave_period=1.0, max_depth=10.0)
    frames = FramePublisher(client)
    frames.wait_for_node()
    labels = TopicCapture(client, Image, "/radseg/labels")
    for i in range(4):
        frames.publish_synthetic(i)
        client.spin_for(0.7)
    assert len(labels.messages) == 2  # frame_skip 1: every other synchronised frame
    assert [m.header.stamp.nanosec for m in labels.messages] == [0, 200_000_000]

    autosave = tmp_path / "maps" / "autosave.rsmap"
    end = time.monotonic() + 10
    while not autosave.exists() and time.monotonic() < end:
        client.spin_for(0.2)
    assert autosave.is_file(), node.log()

    heat = TopicCapture(client, PointCloud2, "/radseg/query_cloud")
    markers = TopicCapture(client, MarkerArray, "/radseg/query_markers")
    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["red patch"], top_k=2), proc=node)
    assert res.success, res.message
    cloud = heat.wait(1)[-1]
    assert "score_0" in read_cloud(cloud) and cloud.header.frame_id == "map"
    msg = markers.wait(1)[-1]
    assert msg.markers[0].action == Marker.DELETEALL  # the previous query's boxes disappear
    boxes = [m for m in msg.markers if m.type == Marker.CUBE]
    texts = [m for m in msg.markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == len(res.positions) == len(texts)
    assert all(t.text.startswith("red patch") for t in texts)
