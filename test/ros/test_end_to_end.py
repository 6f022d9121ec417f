"""A synthetic RGB-D + pose sequence through the node over DDS: images, clouds and services come out.

The model is random-tiny (random weights): these tests check the plumbing and the geometry, never
semantic quality.
"""

from __future__ import annotations

import numpy as np
from harness import TopicCapture
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger

from radseg_ros.conversions import read_cloud
from radseg_ros.srv import MapFile, TextQuery


def map_voxels(client, node) -> int:
    """Voxel count through the real service (saving is the one call that reports it)."""
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="probe.rsmap"), proc=node)
    assert res.success, res.message
    return res.voxels


def feed(frames, client, labels: TopicCapture, first: int, count: int) -> None:
    """Publish frames one at a time and wait for each one's label image (no frame dropped)."""
    for i in range(first, first + count):
        seen = len(labels.messages)
        frames.publish_synthetic(i)
        labels.wait(seen + 1, timeout=30)
        assert labels.messages[-1].header.stamp.sec == 1000 + int(i * 0.1)


def test_sequence_produces_segmentation_cloud_and_answers(client, mapping_node, frames):
    labels = TopicCapture(client, Image, "/radseg/labels")
    seg = TopicCapture(client, Image, "/radseg/segmentation")
    cloud = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    feed(frames, client, labels, 0, 5)
    assert mapping_node.alive(), mapping_node.log()

    lab = labels.messages[-1]
    assert (lab.width, lab.height, lab.encoding) == (160, 120, "16UC1")
    ids = np.frombuffer(bytes(lab.data), np.uint16)
    assert ids.max() <= 3  # three classes, 0 = ignore
    seg.wait(1)
    assert seg.messages[-1].encoding == "rgb8" and seg.messages[-1].width == 160

    cloud.wait(1, timeout=10)
    cols = read_cloud(cloud.messages[-1])
    assert {"x", "y", "z", "rgb", "label", "score", "hits"} <= set(cols)
    assert len(cols["x"]) > 0
    # the wall is 2 m in front of the camera (map +z): every voxel centre lies in the 5 cm slab around it
    assert np.all(np.abs(cols["z"] - 2.0) < 0.05)
    assert cols["hits"].min() >= 1

    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["red patch", "wall"], top_k=2))
    assert res.success, res.message
    assert 1 <= len(res.positions) <= 4 and len(res.scores) == len(res.positions)
    assert set(res.query_index) <= {0, 1}
    assert all(0.0 <= s <= 1.0 for s in res.scores)
    assert all(abs(p.z - 2.0) < 0.1 for p in res.positions)
    qcols = read_cloud(res.cloud)
    assert {"score_0", "score_1"} <= set(qcols)
    assert len(qcols["x"]) == map_voxels(client, mapping_node)


def test_save_reset_load_round_trip(client, mapping_node, frames):
    labels = TopicCapture(client, Image, "/radseg/labels")
    feed(frames, client, labels, 10, 2)
    before = map_voxels(client, mapping_node)
    assert before > 0
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="sub/office.rsmap"))
    assert res.success and res.voxels == before
    res = client.call(Trigger, "/radseg/reset_map", Trigger.Request())
    assert res.success
    assert map_voxels(client, mapping_node) == 0
    res = client.call(MapFile, "/radseg/load_map", MapFile.Request(path="sub/office.rsmap"))
    assert res.success and res.voxels == before, res.message
    assert map_voxels(client, mapping_node) == before
