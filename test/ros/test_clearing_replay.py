"""A removed object replayed through the node over DDS: after the same views without it, neither the map
nor ``~/query`` has anything where it stood above the floor layer (issue #22; before, its bottom 15-20 cm).

The model is random-tiny (random weights): the check is geometric (which voxels exist where), the labels
and scores mean nothing.
"""

from __future__ import annotations

import math

import numpy as np
from harness import FramePublisher, TopicCapture
from sensor_msgs.msg import Image

from radseg_core.datasets.change_scene import look_at, room, view
from radseg_core.datasets.synthetic_room import Box
from radseg_ros.conversions import read_cloud
from radseg_ros.srv import TextQuery

HW = (120, 160)
BOX = Box("cabinet", (6.513, 2.762, 0.0), (7.013, 3.262, 0.5))  # 0.5 m, 0.5 m in front of the far wall


def quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method, largest diagonal first)."""
    t = np.trace(R)
    if t > 0:
        s = 2.0 * math.sqrt(1.0 + t)
        return ((R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s)
    i = int(np.argmax(np.diag(R)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * math.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
    q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
    q[i], q[j], q[k] = 0.25 * s, (R[j, i] + R[i, j]) / s, (R[k, i] + R[i, k]) / s
    return tuple(q)


def where_it_stood(client) -> tuple[int, list]:
    """Voxels of ``~/query``'s cloud inside the box above the floor layer, and matches placed there."""
    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["cabinet"], top_k=5))
    assert res.success, res.message
    cols = read_cloud(res.cloud)
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    lo, hi = np.array(BOX.lo) + [0.0, 0.0, 0.05], np.array(BOX.hi)
    inside = np.all((xyz >= lo) & (xyz <= hi), axis=1)
    matches = [p for p in res.positions if lo[0] <= p.x <= hi[0] and lo[1] <= p.y <= hi[1] and lo[2] <= p.z <= hi[2]]
    return int(inside.sum()), matches


def test_removed_box_leaves_nothing_for_the_query(client, start_node):
    node = start_node(mode="probabilities", classes=["floor", "wall", "cabinet"], max_depth=8.0, crop=112,
                      stride=96, cloud_publish_rate=0.0)
    frames = FramePublisher(client)
    frames.wait_for_node()
    labels = TopicCapture(client, Image, "/radseg/labels")
    centre = (np.array(BOX.lo) + np.array(BOX.hi)) / 2
    poses = []
    for i in range(12):  # the views: 2-3 m away, camera at 0.55 m, on a 30 degree arc
        a, d = math.radians(180 + 30 * (i / 11 - 0.5)), 2.0 + (i % 4) / 3
        poses.append(look_at(centre + [d * math.cos(a), d * math.sin(a), 0.55 - centre[2]], centre))
    stamp = 1000.0
    for phase, scene in enumerate((room([BOX], hw=HW, size=(8.0, 6.0, 3.0)), room([], hw=HW, size=(8.0, 6.0, 3.0)))):
        for T in poses:
            f, _ = view(scene, T)
            seen = len(labels.messages)
            frames.publish(stamp, f.rgb, f.depth.astype(np.float32), f.K, T[:3, 3], quaternion(T[:3, :3]),
                           depth_encoding="32FC1")
            labels.wait(seen + 1, timeout=60)
            stamp += 0.1
        voxels, matches = where_it_stood(client)
        if phase == 0:
            assert voxels > 50, voxels  # the box is in the map
        else:
            assert (voxels, matches) == (0, []), (voxels, len(matches))
    assert node.alive(), node.log()
