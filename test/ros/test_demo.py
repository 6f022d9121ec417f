"""The README's main job offline: the real model cannot be had here, so the demo must say what to download,
then run the pipeline with random weights and label every output NOT SEMANTIC (or stop: --require-weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
from PIL import Image as PILImage

from radseg_ros.demo import parse_args, tagged, weights_block


def run_demo(tmp_path, *extra: str, timeout: float = 600):
    """The demo with the default real model and a checkpoint path that does not exist: the loader refuses
    (ModelLoadError) before any network access, the same as an offline machine with no weights."""
    env = dict(os.environ, RADSEG_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-P", "-m", "radseg_ros.demo", "--radio-checkpoint", str(tmp_path / "absent.pth.tar"),
           "--output", str(tmp_path / "demo"), "--query", "motorcycle", "floor", "--frame-timeout", "120", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_weights_block(stdout: str) -> None:
    assert stdout.count("REAL MODEL NOT AVAILABLE") == 1  # one block, not one per attempt
    assert "absent.pth.tar does not exist" in stdout  # the loader's reason
    assert "huggingface-cli download nvidia/C-RADIOv3-B c-radio_v3-b_half.pth.tar" in stdout  # what
    assert "--local-dir ~/radseg_weights" in stdout  # where
    assert ("scripts/demo.sh --model c-radio_v3-b --radio-repo-dir ~/radseg_weights/RADIO "
            "--radio-checkpoint ~/radseg_weights/c-radio_v3-b_half.pth.tar") in stdout  # the command to rerun


@pytest.mark.slow
def test_offline_demo_falls_back_to_random_weights_and_labels_every_output(tmp_path):
    out = tmp_path / "demo"
    proc = run_demo(tmp_path, "--frames", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_weights_block(proc.stdout)
    assert "RESULT: NOT SEMANTIC" in proc.stdout  # terminal summary
    files = [p for p in out.rglob("*") if p.is_file() and p.parent.name != "ros_log" and p.parent.name != "text_cache"]
    results = [p for p in files if p.name not in ("summary.json", "node.log", "node_params.yaml")]
    assert results and all("_NOT_SEMANTIC" in p.name for p in results), [p.name for p in results]
    segs = sorted((out / "segmentation").glob("*.png"))
    assert len(segs) == 2
    for picture in (*segs, out / "map_topdown_NOT_SEMANTIC.png", out / "query_NOT_SEMANTIC.png"):
        img = cv2.imread(str(picture))
        assert img is not None, picture
        red = (img[:3, :, 2] > 150) & (img[:3, :, :2] < 60).all(axis=-1)
        assert red.mean() > 0.95, picture  # red banner across the top (the white text may touch it)
        assert PILImage.open(picture).text["radseg:semantic"] == "false", picture
    from radseg_core.map_io import load_map

    vmap = load_map(out / "maps" / "demo_NOT_SEMANTIC.rsmap")
    assert len(vmap) > 0 and vmap.metadata["semantic"] is False and "RANDOM WEIGHTS" in vmap.metadata["warning"]
    assert (out / "map_NOT_SEMANTIC.ply").stat().st_size > 0
    answer = json.loads((out / "query_service_NOT_SEMANTIC.json").read_text())
    assert answer["semantic"] is False and answer["model"] == "random-tiny"
    assert answer["queries"] == ["motorcycle", "floor"] and answer["matches"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["semantic"] is False and summary["requested_model"] == "c-radio_v3-b"
    assert "does not exist" in summary["fallback_reason"]
    assert str(out) in proc.stdout  # it tells the user where the results are


def test_require_weights_stops_with_the_same_block_and_no_results(tmp_path):
    proc = run_demo(tmp_path, "--frames", "1", "--require-weights", timeout=300)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_weights_block(proc.stdout)
    assert "stopping without a demo run" in proc.stdout
    out = tmp_path / "demo"
    assert not list(out.glob("*.png")) and not list((out / "segmentation").glob("*.png"))
    assert not (out / "summary.json").exists()


def test_results_of_a_real_run_keep_their_names_and_random_ones_are_tagged():
    assert tagged("map.ply", True) == "map.ply"
    assert tagged("map.ply", False) == "map_NOT_SEMANTIC.ply"
    assert tagged("000003.png", False) == "000003_NOT_SEMANTIC.png"


def test_block_for_a_model_without_a_download_recipe_repeats_the_loaders_advice():
    block = weights_block("hf:/data/radio", "no adaptor\n  do this: fetch X", require=False)
    assert "Reason: no adaptor" in block and "do this: fetch X" in block
    assert "scripts/demo.sh --model hf:/data/radio --require-weights" in block
    assert "NOT SEMANTIC" in block


def test_require_weights_with_a_random_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--model", "random-tiny", "--require-weights"])
    assert exc.value.code == 2 and "random weights" in capsys.readouterr().err
