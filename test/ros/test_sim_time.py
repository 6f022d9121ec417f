"""use_sim_time: the node's clock follows /clock (published here), timers run on it, and a simulator
reset (clock and stamps jumping back) keeps the node mapping and publishing."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from harness import FramePublisher, TopicCapture
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image


def test_clock_drives_the_node_and_a_reset_keeps_mapping(client, start_node):
    node = start_node(use_sim_time=True, crop=112, stride=96, max_depth=10.0, diagnostics_period=0.5,
                      cloud_publish_rate=0.0, classes=["wall", "red patch"])
    clock = client.node.create_publisher(Clock, "/clock", 10)
    frames = FramePublisher(client)
    frames.wait_for_node()
    labels = TopicCapture(client, Image, "/radseg/labels")
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")

    def run_sim(start: float, seconds: float, frames_at: tuple[float, ...] = ()) -> None:
        """Advance /clock from ``start`` in 0.1 s steps; publish a frame at each sim time given."""
        pending = list(frames_at)
        for k in range(int(seconds * 10)):
            t = start + 0.1 * k
            clock.publish(Clock(clock=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)) % 1_000_000_000)))
            while pending and pending[0] <= t + 1e-9:
                frames.publish_synthetic(0, stamp_s=pending.pop(0))
            client.spin_for(0.02)

    run_sim(5000.0, 4.0, frames_at=(5001.0, 5002.0))
    labels.wait(2)
    diag.wait(1)
    stamp = diag.messages[-1].header.stamp.sec
    assert 5000 <= stamp <= 5010, f"diagnostics stamped {stamp}: not the simulated clock"
    # simulator reset: clock and data restart at 100 s
    n_diag = len(diag.messages)
    run_sim(100.0, 4.0, frames_at=(101.0, 102.0))
    labels.wait(4)
    diag.wait(n_diag + 1)
    values = {kv.key: kv.value for kv in diag.messages[-1].status[0].values}
    assert 100 <= diag.messages[-1].header.stamp.sec <= 110
    assert int(values["time_jumps_back"]) == 1 and int(values["integrated"]) == 4
    assert node.alive()
