"""The node's ``view`` parameter: the page is served, fed by the worker, and its query box answers with
the same candidates and the same refusals as ``~/query`` (one code path: SemanticMapper.query and
check_queries). The browser itself is tested in test/core/test_view_browser.py."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from harness import FramePublisher

from radseg_core.view.rerun_server import free_ports
from radseg_ros.srv import TextQuery

pytest.importorskip("rerun")


def http_json(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_view_parameter_serves_the_page_and_answers_like_the_query_service(client, start_node):
    page, grpc, web = free_ports(3)
    node = start_node(view=True, view_port=page, view_grpc_port=grpc, view_web_port=web, crop=112, stride=96,
                      max_depth=10.0, classes=["wall", "red patch", "blue patch"], max_queries=2, default_top_k=3)
    frames = FramePublisher(client)
    frames.wait_for_node()
    for i in range(3):
        frames.publish_synthetic(i)
        client.spin_for(0.7)
    assert f"view: open http://127.0.0.1:{page}/ in a browser" in node.log()
    end, status = time.monotonic() + 30, {}
    while time.monotonic() < end:  # the worker fed the view; the logger refreshed the map
        _, status = http_json(page, "GET", "/api/status")
        if status["frames"] >= 1 and status["voxels"] > 0:
            break
        client.spin_for(0.3)
    assert status["state"] == "mapping" and status["text"].startswith("mapping: frame "), status
    client.spin_for(1.5)  # the last frame is integrated: both answers see the same map

    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["red patch"], top_k=3), proc=node)
    code, answer = http_json(page, "POST", "/api/query", {"text": "red patch"})
    assert res.success and code == 200, (res.message, answer)
    cands = answer["queries"][0]["candidates"]
    service_positions = [x for p in res.positions for x in (p.x, p.y, p.z)]
    assert [x for c in cands for x in c["centroid"]] == pytest.approx(service_positions)
    assert [c["score"] for c in cands] == pytest.approx(list(res.scores))

    for texts in (["a", "b", "c"], ["a", ""], []):  # over max_queries, an empty text, nothing
        res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=texts), proc=node)
        code, answer = http_json(page, "POST", "/api/query", {"text": ";".join(texts)})
        assert not res.success and code == 400 and answer["error"] == res.message, (texts, res.message, answer)

    assert node.stop() == 0
    assert not any(port_open(p) for p in (page, grpc, web)), "a view server outlived the node"


def test_view_without_rerun_stops_the_node_with_the_line_that_installs_it(start_node, tmp_path, monkeypatch):
    from radseg_core.view import INSTALL_HINT

    shadow = tmp_path / "no_rerun" / "rerun"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('rerun is not installed (test shadow)')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    node = start_node(view=True, view_port=free_ports(1)[0])
    assert node.proc.wait(60) == 2
    assert f"radseg_node: {INSTALL_HINT}" in node.log()
