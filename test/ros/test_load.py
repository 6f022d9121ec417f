"""30 Hz camera input into a node whose inference takes ~1 s: latency stays one frame, memory stays flat.

random-base (ViT-B, random weights) takes about a second per 320x240 frame on a 2-core CPU: a real and
deliberately slow configuration. The "latest frame wins" hand-off must drop the backlog instead of queueing it.
"""

from __future__ import annotations

import time

import psutil
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from harness import FramePublisher, TopicCapture, synthetic_frame

from radseg_ros.srv import TextQuery


def diagnostics(capture: TopicCapture) -> dict[str, str]:
    return {kv.key: kv.value for kv in capture.messages[-1].status[0].values}


@pytest.mark.slow
def test_slow_inference_at_30hz_keeps_latency_and_memory_bounded(client, start_node):
    node = start_node(model="random-base", crop=336, stride=224, diagnostics_period=0.5, cloud_publish_rate=0.0)
    frames = FramePublisher(client)
    frames.wait_for_node(timeout=120.0)
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    proc = psutil.Process(node.proc.pid)
    f = synthetic_frame(0, width=320, height=240)
    duration, period = 20.0, 1.0 / 30.0
    start = time.monotonic()
    rss_early = None
    query = client.node.create_client(TextQuery, "/radseg/query")
    future, asked, answered = None, 0.0, None
    i = 0
    while (now := time.monotonic()) - start < duration:
        frames.publish(500.0 + i * period, f["rgb"], f["depth_mm"], f["K"], f["position"], f["quaternion"])
        i += 1
        if rss_early is None and now - start > 10.0:  # after warm-up and the query's caches
            rss_early = proc.memory_info().rss
        # a query while frames keep coming, once a frame is in the map (an empty map is refused, and on a
        # loaded machine the first frame can take longer than 5 s)
        if future is None and now - start > 5.0 and diag.messages and int(diagnostics(diag)["integrated"]) >= 1:
            future, asked = query.call_async(TextQuery.Request(queries=["wall"], top_k=1)), now
        if future is not None and answered is None and future.done():
            answered = time.monotonic() - asked
        client.spin_for(max(0.0, start + i * period - time.monotonic()))
    rss_late = proc.memory_info().rss
    client.spin_for(1.0)
    deadline = time.monotonic() + 10.0
    while future is not None and not future.done() and time.monotonic() < deadline:
        client.spin_for(0.1)
    if future is not None and answered is None and future.done():
        answered = time.monotonic() - asked
    d = diagnostics(diag)
    processed, dropped, frames_in = int(d["integrated"]), int(d["dropped_latest_wins"]), int(d["synchronised"])
    print(f"published {i}, synchronised {frames_in}, processed {processed}, dropped {dropped}, "
          f"latency {d['latency_s']} s, encoder {d['time_encoder_s']} s, rss {rss_early} -> {rss_late}, "
          f"query answered in {answered} s")
    assert node.alive(), node.log()
    assert frames_in >= 0.5 * i  # the synchroniser keeps up with the camera
    assert processed >= 3
    assert dropped >= 0.5 * frames_in  # the backlog is dropped, not queued
    frame_time = float(d["time_encoder_s"]) + float(d["time_integration_s"]) + float(d["time_segmentation_s"])
    assert float(d["latency_s"]) <= 2.0 * frame_time + 0.5  # at most the frame in flight plus one
    assert rss_late - rss_early < 150 * 2**20
    # queries are answered while frames keep coming (the map lock covers integration, not encoding)
    assert answered is not None and future.result().success
    # memory in diagnostics: map + caches, what one voxel costs (the aligned query cache is opt-in: 0 here)
    voxels, per_voxel = int(d["voxels"]), float(d["bytes_per_voxel"])
    assert voxels > 0 and int(d["query_cache_bytes"]) == 0
    # two figures to plan with: bytes per voxel (the working set excluded) and the working set in MB
    working = float(d["working_set_mb"]) * 2**20
    assert int(d["working_set_rows"]) >= 256 and int(d["uncompensated_total"]) >= 0
    total = int(d["map_bytes"]) + int(d["label_cache_bytes"]) - working
    assert abs(per_voxel - total / voxels) < 0.1 + 0.01 * 2**20 / voxels + 1e-3 * per_voxel  # MB rounded to 0.01
