"""Fixtures for tests that run the real node in another process."""

from __future__ import annotations

import pytest
import rclpy
from harness import Client, NodeProcess


@pytest.fixture(scope="module")
def client():
    c = Client()
    yield c
    c.close()
    if rclpy.ok():
        rclpy.shutdown()


@pytest.fixture
def start_node(tmp_path):
    """Start the node with given parameters; stops it (and shows its log on failure) afterwards."""
    started: list[NodeProcess] = []

    def _start(namespace: str = "", **params) -> NodeProcess:
        params.setdefault("model", "random-tiny")
        params.setdefault("device", "cpu")
        params.setdefault("map_directory", str(tmp_path / "maps"))
        params.setdefault("text_cache_dir", str(tmp_path / "text_cache"))
        proc = NodeProcess(params, tmp_path, namespace=namespace)
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        code = proc.stop()
        print(f"--- node log (exit {code}) ---\n{proc.log()}")


@pytest.fixture(scope="module")
def mapping_node(tmp_path_factory, client):
    """One node shared by a module's tests (start-up costs seconds); small windows for speed."""
    workdir = tmp_path_factory.mktemp("node")
    proc = NodeProcess(
        {"model": "random-tiny", "device": "cpu", "map_directory": str(workdir / "maps"),
         "text_cache_dir": str(workdir / "text_cache"),
         "cloud_publish_rate": 5.0, "diagnostics_period": 0.5, "classes": ["wall", "red patch", "blue patch"],
         "crop": 112, "stride": 96, "max_depth": 10.0},
        workdir,
    )
    yield proc
    code = proc.stop()
    print(f"--- node log (exit {code}) ---\n{proc.log()}")


@pytest.fixture(scope="module")
def frames(client, mapping_node):
    from harness import FramePublisher

    pub = FramePublisher(client)
    pub.wait_for_node()
    return pub
