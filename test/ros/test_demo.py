"""The README's main job, as a smoke run: sample bag → real node over DDS → query service → files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest


@pytest.mark.slow
def test_demo_smoke_run_leaves_images_map_ply_and_pictures(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, RADSEG_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "radseg_ros.demo", "--model", "random-tiny", "--frames", "3",
         "--output", str(out), "--query", "motorcycle", "floor", "--frame-timeout", "120"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "random weights" in proc.stdout  # the smoke run says it is not semantic
    segs = sorted((out / "segmentation").glob("*.png"))
    assert len(segs) == 3
    assert cv2.imread(str(segs[0])).shape[2] == 3
    assert (out / "maps" / "demo.rsmap").stat().st_size > 0
    assert (out / "map.ply").stat().st_size > 0
    for picture in ("map_topdown.png", "query.png"):
        assert cv2.imread(str(out / picture)) is not None, picture
    answer = json.loads((out / "query_service.json").read_text())
    assert answer["queries"] == ["motorcycle", "floor"]
    assert answer["matches"] and all(0.0 <= m["score"] <= 1.0 for m in answer["matches"])
    assert str(out) in proc.stdout  # it tells the user where the results are
