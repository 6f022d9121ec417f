"""A bag mapped with ``radseg-map --view`` is viewable while it maps (issue #19).

The real command on a real rosbag2 (the sample scene written by ``export_sample``), with rerun's servers:
while frames are still coming, the page's status (what its JavaScript polls) shows the map growing and the
viewer refreshed, and the query box answers. The browser's side of drawing is test_view_browser.py's.
"""

from __future__ import annotations

import http.client
import json
import signal
import time

import pytest
from view_cli import start_radseg_map, wait_line

from radseg_core.datasets.sample import export_sample

pytest.importorskip("rerun", reason="the view needs rerun-sdk (pip install -e '.[view]')")

FRAMES = 40


def get(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict | bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if path.startswith("/api/") else data


def test_a_bag_is_viewable_and_queryable_while_it_maps(tmp_path):
    from radseg_core.view.rerun_server import free_ports

    bag = export_sample(tmp_path / "sample", n_frames=FRAMES, width=320)["bag"]
    ports = free_ports(3)
    page = ports[0]
    proc, lines = start_radseg_map(str(bag), tmp_path / "out", ports, "--classes", "chair,table")
    try:
        end = time.monotonic() + 120
        wait_line(proc, lines, "view at", timeout=120)
        status, html = get(page, "GET", "/")
        assert status == 200 and b'<iframe id="viewer"' in html

        # while mapping: two polls show frames advancing on a drawn map, and a query is answered
        seen: list[dict] = []
        while not (len(seen) >= 2 and seen[-1]["frames"] > seen[0]["frames"] and seen[-1]["drawn"] > 0):
            assert proc.poll() is None and time.monotonic() < end, "".join(lines)
            _, s = get(page, "GET", "/api/status")
            assert s["state"] in ("starting", "mapping"), s  # not "ended" yet, not "error"
            if s["state"] == "mapping" and s["voxels"] > 0:
                seen.append(s)
            time.sleep(0.05)
        assert seen[-1]["refreshes"] >= 1 and seen[-1]["frames"] < FRAMES
        status, answer = get(page, "POST", "/api/query", {"text": "chair"})
        assert status == 200 and answer["ok"], answer
        _, s = get(page, "GET", "/api/status")
        assert s["state"] == "mapping" and s["frames"] < FRAMES, f"the query was not answered mid-run: {s}"
        assert s["last_query"] == "chair"

        # the run ends; the page says so and keeps answering
        while (s := get(page, "GET", "/api/status")[1])["state"] != "ended":
            assert proc.poll() is None and time.monotonic() < end, "".join(lines)
            time.sleep(0.2)
        assert s["frames"] == FRAMES and s["voxels"] >= seen[-1]["voxels"]
        status, answer = get(page, "POST", "/api/query", {"text": "table"})
        assert status == 200 and answer["ok"], answer
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
