"""Run the installed radseg_node in its own process and talk to it over DDS from the test process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.node import Node

NODE_NAME = "radseg"


def node_executable() -> Path:
    """The executable `ros2 run radseg_ros radseg_node` would start (found through the ament index)."""
    from ament_index_python.packages import get_package_prefix

    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    return Path(get_package_prefix("radseg_ros")) / "lib" / "radseg_ros" / "radseg_node"


class NodeProcess:
    """The node under test, started with a parameters file and stopped with SIGINT like ros2 run."""

    def __init__(self, params: dict[str, Any], workdir: Path, namespace: str = "") -> None:
        self.workdir = workdir
        self.log_path = workdir / "node.log"
        params_file = workdir / "params.yaml"
        params_file.write_text(yaml.safe_dump({NODE_NAME: {"ros__parameters": params}}))
        cmd = [str(node_executable()), "--ros-args", "--params-file", str(params_file)]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=workdir)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Client:
    """A plain rclpy node in the test process: service calls and topic captures with timeouts."""

    def __init__(self, name: str = "radseg_test_client") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = Node(name)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def call(
        self, srv_type: type, name: str, request: Any, timeout: float = 60.0, proc: NodeProcess | None = None
    ) -> Any:
        """Call a service; with ``proc``, fail at once (with its log) if that process has died."""
        cli = self.node.create_client(srv_type, name)
        try:
            end = time.monotonic() + timeout
            while not cli.wait_for_service(timeout_sec=0.5):
                if proc is not None and not proc.alive():
                    raise RuntimeError(f"node exited with {proc.proc.returncode}:\n{proc.log()}")
                if time.monotonic() > end:
                    raise TimeoutError(f"service {name} did not appear within {timeout} s")
            future = cli.call_async(request)
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
            if not future.done():
                raise TimeoutError(f"service {name} did not answer within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(cli)

    def close(self) -> None:
        self.node.destroy_node()
