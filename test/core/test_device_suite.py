"""The device suite's CPU dry run (benchmarks/device_suite.sh --device cpu --quick), so it cannot rot.

It runs as on the lent GPU machine's image: the repository root on PYTHONPATH and nothing of ROS. rclpy
and the built radseg_ros are made unimportable (stand-in packages that raise first on the path), so a ROS
import anywhere in the suite fails this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_ros(tmp_path) -> Path:
    blocked = tmp_path / "blocked"
    for name in ("rclpy", "radseg_ros", "rosidl_runtime_py"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: the device suite must run without ROS')\n")
    return blocked


def test_device_suite_dry_run_on_the_cpu(tmp_path, no_ros):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "suite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "ROS_", "RADSEG_"))}
    env |= {"PYTHON": sys.executable, "PYTHONPATH": str(no_ros), "OMP_NUM_THREADS": "2"}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_suite.sh"), "--device", "cpu", "--quick",
                          "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    log = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, log
    suite = ET.parse(out / "cuda_tests.xml").getroot().find("testsuite")
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] >= 9 and counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == 1, log  # only the GPU-only copy check
    result = json.loads((out / "device_suite.json").read_text())
    assert result["device"] == "cpu" and result["machine"]["card"]
    modes = {(r["preset"], r["mode"], r["dtype"]) for r in result["encoder"] if "ms" in r}
    assert {("default", "eager", "fp32"), ("jetson", "eager", "bf16"), ("default", "compile", "fp32"),
            ("default", "onnxruntime", "fp32")} <= modes, modes
    assert not [r for r in result["encoder"] if "error" in r]
    assert {r["what"] for r in result["map"] + result["query"]} == {
        "integrate", "integrate+clearing", "clearing", "query align per query", "query cached"}
    table = (out / "device_suite.md").read_text()
    assert result["machine"]["card"] in table and "| default 336/224 | 6 | fp32 | eager |" in table
    assert "| jetson 336/336 | 4 |" in table
