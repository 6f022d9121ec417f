"""The browser view without a browser: query box to viewer log, map colours, the page's HTTP API, the relay.

The viewer is replaced by a recorder of what would be logged (``FakeRecording`` + ``FAKE_RR``), so the
logic is checked without rerun's servers; the servers themselves are checked in test_view_browser.py.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from radseg_core.cli.query import candidates_json
from radseg_core.pipeline import MapperConfig, SemanticMapper
from radseg_core.query import MAX_QUERIES, MAX_QUERY_CHARS, check_queries
from radseg_core.view import layers
from radseg_core.view.colors import BestClass, FeatureColors
from radseg_core.view.config import ViewConfig
from radseg_core.view.live import LiveView
from radseg_core.view.page import PAGE_CSP, VIEWER_CSP, PageServer
from radseg_core.visual import FeatureProjection, heat_colors, label_palette

CLASSES = ["wall", "door", "floor"]


# ------------------------------------------------------------------ a recorder in place of the viewer
def _archetype(kind: str):
    return lambda *args, **kwargs: (kind, args, kwargs)


FAKE_RR = types.SimpleNamespace(**{k: _archetype(k) for k in (
    "Points3D", "Boxes3D", "LineStrips3D", "Transform3D", "Pinhole", "EncodedImage", "Scalars",
    "AnnotationContext", "Clear")})


class FakeRecording:
    """Keeps every ``log(path, entity, static=...)``; ``gate`` (an Event) makes logging block until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.logged: list[tuple[str, tuple, bool]] = []
        self.gate = gate

    def set_time(self, timeline: str, sequence: int) -> None:
        pass

    def log(self, path: str, entity: tuple, static: bool = False) -> None:
        if self.gate is not None:
            self.gate.wait()
        self.logged.append((path, entity, static))

    def last(self, path: str) -> tuple:
        return next(e for p, e, _ in reversed(self.logged) if p == path)


# ------------------------------------------------------------------ a small map
@pytest.fixture(scope="module")
def encoder():
    from radseg_core.encoder import build_encoder

    return build_encoder("random-tiny", crop=64, stride=48)


def wall_frame(mapper: SemanticMapper, x: float = 0.0, depth_mm: int = 1500, size=(48, 64)):
    h, w = size
    rgb = np.random.default_rng(int(x * 10)).integers(0, 255, (h, w, 3), dtype=np.uint8)
    K = np.array([[50.0, 0, (w - 1) / 2], [0, 50.0, (h - 1) / 2], [0, 0, 1]])
    return mapper.make_frame(rgb, np.full((h, w), depth_mm, np.uint16), "16UC1", K, (w, h),
                             np.array([x, 0.0, 0.0]), np.array([0, 0, 0, 1.0]))


def make_mapper(encoder, mode: str = "probabilities", frames: int = 2) -> SemanticMapper:
    m = SemanticMapper(MapperConfig(model="random-tiny", device="cpu", classes=CLASSES, mode=mode,
                                    max_depth=5.0), encoder=encoder)
    for i in range(frames):
        m.process(wall_frame(m, 0.2 * i))
    return m


def attached(mapper, **limits) -> tuple[LiveView, FakeRecording]:
    lim = (limits.get("max_queries", MAX_QUERIES), limits.get("max_chars", MAX_QUERY_CHARS), limits.get("top_k", 3))
    view = LiveView(mapper, threading.Lock(), ViewConfig(max_points=limits.get("max_points", 500_000)),
                    limits=lambda: lim)
    rec = FakeRecording()
    view.rec, view._rr = rec, FAKE_RR  # logging without the worker thread (attach() starts one)
    return view, rec


# ------------------------------------------------------------------ query box → answer and viewer
def test_query_box_answers_with_the_services_code_and_logs_boxes_and_heat(encoder):
    mapper = make_mapper(encoder)
    view, rec = attached(mapper, top_k=3)
    status, answer = view.query(" wall ; door ")
    assert status == 200 and answer["ok"], answer
    expected = mapper.query(["wall", "door"], top_k=3)  # what ~/query and radseg-query compute
    assert answer["queries"] == candidates_json(expected, ["wall", "door"])
    assert answer["message"] == f"{len(expected.candidates)} candidates for 2 queries over {len(mapper)} voxels"

    kind, _, boxes = rec.last("world/query/candidates")
    assert kind == "Boxes3D"
    cands = expected.candidates
    np.testing.assert_allclose(boxes["centers"], [c.centroid for c in cands], atol=1e-6)
    np.testing.assert_allclose(boxes["half_sizes"] * 2, [np.maximum(c.extent, 0.05) for c in cands], atol=1e-6)
    first_door = next(i for i, c in enumerate(cands) if c.query_index == 1)
    assert boxes["labels"][0] == f"1: wall {cands[0].score:.2f}"
    assert boxes["labels"][first_door] == f"1: door {cands[first_door].score:.2f}"
    assert (boxes["colors"] == layers.BOX_COLOR).all()

    kind, (positions,), heat = rec.last("world/query/heat")
    np.testing.assert_allclose(positions, expected.positions)
    assert np.array_equal(heat["colors"], heat_colors(expected.scores.max(axis=0)))
    assert heat["radii"] > 0.5 * 0.05  # drawn over the map's points
    assert view.last_query == "wall; door"


@pytest.mark.parametrize("text, limits, error", [
    ("", {}, "no queries"),
    ("   ", {}, "no queries"),
    ("wall;;door", {}, "query 1 is empty"),
    ("w" * 11, {"max_chars": 10}, "query 0 has 11 characters, more than max_query_chars=10"),
    ("wall;door;floor", {"max_queries": 2}, "3 queries exceed max_queries=2"),
    ("sofa", {}, "queries ['sofa'] are not classes of this map"),
])
def test_query_box_refuses_what_the_service_refuses_and_logs_nothing(encoder, text, limits, error):
    view, rec = attached(make_mapper(encoder, frames=1), **limits)
    status, answer = view.query(text)
    assert status == 400 and not answer["ok"] and error in answer["error"]
    texts = layers.split_query(text)
    if "classes" not in error:  # the input check is the node's own function, word for word
        assert answer["error"] == check_queries(texts, limits.get("max_queries", MAX_QUERIES),
                                                limits.get("max_chars", MAX_QUERY_CHARS))
    assert rec.logged == []


def test_query_on_an_empty_map_says_so(encoder):
    view, rec = attached(make_mapper(encoder, frames=0))
    assert view.query("wall") == (400, {"ok": False, "error": "the map is empty: no frames integrated yet"})
    assert rec.logged == []


def test_features_map_answers_any_text(encoder):
    mapper = make_mapper(encoder, mode="features")
    view, rec = attached(mapper)
    status, answer = view.query("red chair")
    assert status == 200, answer
    assert answer["queries"] == candidates_json(mapper.query(["red chair"], top_k=3), ["red chair"])
    assert rec.last("world/query/candidates")[2]["labels"][0].startswith("1: red chair ")


def test_split_query():
    assert layers.split_query("chair") == ["chair"]
    assert layers.split_query(" red chair ; door") == ["red chair", "door"]
    assert layers.split_query("") == [] and layers.split_query(" \n") == []
    assert layers.split_query("a;") == ["a", ""]  # refused by check_queries as an empty text


def test_heat_cloud_subset_for_big_maps():
    from radseg_core.types import QueryResult

    rng = np.random.default_rng(0)
    result = QueryResult(["x"], rng.random((1000, 3)).astype(np.float32), rng.random((1, 1000)))
    full = layers.heat_cloud(result, 0.05)
    part = layers.heat_cloud(result, 0.05, max_points=100)
    assert len(full.positions) == 1000 and len(part.positions) == 100
    idx = [int(np.flatnonzero((result.positions == p).all(axis=1))[0]) for p in part.positions]
    assert np.array_equal(part.colors, full.colors[idx])  # the same colour scale as the full map
    assert part.radius > full.radius


# ------------------------------------------------------------------ the map in the viewer
def test_refresh_logs_the_nodes_cloud_labels_and_only_when_the_map_changed(encoder):
    mapper = make_mapper(encoder)
    view, rec = attached(mapper)
    timings = view.refresh()
    kind, (pos,), kw = rec.last("world/map")
    cloud = mapper.cloud()
    assert kind == "Points3D"
    np.testing.assert_allclose(pos, cloud["xyz"])
    assert np.array_equal(kw["class_ids"], cloud["label"])  # same labels as ~/semantic_cloud
    ctx = rec.last("world/map")  # the annotation context (names, palette) was logged with it
    assert any(p == "world/map" and e[0] == "AnnotationContext" for p, e, _ in rec.logged), ctx
    annotations = layers.class_annotations(CLASSES)
    assert annotations[2] == (2, "door", tuple(int(c) for c in label_palette(4)[2]))
    assert timings["voxels"] == len(mapper) and timings["lock_s"] <= timings["total_s"]
    n_logged = len(rec.logged)
    view._next_refresh = 0.0
    assert view.refresh() == {} and len(rec.logged) == n_logged  # nothing new: nothing sent
    mapper.process(wall_frame(mapper, 0.5, depth_mm=2500))
    view.refresh()
    _, (pos,), kw = rec.last("world/map")
    cloud = mapper.cloud()
    assert len(pos) == len(mapper) and np.array_equal(kw["class_ids"], cloud["label"])


def test_refresh_spaces_itself_by_lock_time():
    view = LiveView(types.SimpleNamespace(), config=ViewConfig(refresh_period=0.01, lock_share=0.05,
                                                                work_share=0.5))
    # a refresh that held the lock 0.1 s may come again after 2 s at the earliest (5 % of the time)
    assert view._period(lock_s=0.1, log_s=0.02) == pytest.approx(2.0)
    # ... and one that took the logger 0.4 s to send after 0.8 s (50 %, work_share)
    assert view._period(lock_s=0.0001, log_s=0.4) == pytest.approx(0.8)
    assert view._period(lock_s=0.0, log_s=0.0) == pytest.approx(0.01)


def test_the_mapping_thread_takes_the_due_snapshot_and_the_logger_sends_it(encoder):
    mapper = make_mapper(encoder)
    readers: list[str] = []

    class Watched:  # who reads the map
        config = mapper.config

        @property
        def map(self):
            readers.append(threading.current_thread().name)
            return mapper.map

        def memory_stats(self):
            return mapper.memory_stats()

    view = LiveView(Watched(), threading.Lock(), ViewConfig(image_rate=1000.0, refresh_period=60.0))
    rec = FakeRecording()
    view.attach(rec, FAKE_RR)
    f = wall_frame(mapper, 0.0)
    threading.current_thread().name = "mapping"
    view.offer(f, None)  # the first refresh is due at once
    end = time.monotonic() + 10
    while not any(p == "world/map" for p, _, _ in rec.logged) and time.monotonic() < end:
        time.sleep(0.02)
    view.offer(f, None)  # refresh_period 60 s: no second snapshot
    time.sleep(0.5)
    view.close()
    threading.current_thread().name = "MainThread"
    assert readers == ["mapping"], readers  # the snapshot ran on the mapping thread, once
    assert sum(p == "world/map" and e[0] == "Points3D" for p, e, _ in rec.logged) == 1
    assert view.last_refresh["voxels"] == len(mapper) and view.last_refresh["lock_s"] > 0


def test_big_maps_are_drawn_as_a_fixed_subset():
    keys = np.arange(200_000, dtype=np.int64) * 7919
    mask = layers.sample_mask(keys, 50_000)
    assert abs(int(mask.sum()) - 50_000) < 1_000
    grown = np.concatenate([keys, np.arange(200_000, 300_000, dtype=np.int64) * 7919])
    assert np.array_equal(layers.sample_mask(grown, 75_000)[:200_000], mask)  # same share: same voxels
    assert layers.sample_mask(keys[:10], 50_000).all()
    # spread over the map: each tenth of the keys keeps about a quarter
    shares = [mask[i * 20_000:(i + 1) * 20_000].mean() for i in range(10)]
    assert max(abs(s - 0.25) for s in shares) < 0.02


def test_big_map_refresh_draws_max_points(encoder):
    mapper = make_mapper(encoder, frames=3)
    view, rec = attached(mapper, max_points=len(mapper) // 4)
    view.refresh()
    _, (pos,), kw = rec.last("world/map")
    assert 0 < len(pos) < len(mapper) / 2 and view.drawn == len(pos) and view.voxels == len(mapper)
    assert kw["radii"] > 0.025  # fewer, larger points
    assert f"(drawing {view.drawn:,})" in view.status()["text"]


def test_cached_colours_equal_a_plain_recomputation_after_growth_and_removal(encoder):
    mapper = make_mapper(encoder, mode="features", frames=1)
    colours = FeatureColors()
    colours.update(mapper.map)
    projection = colours.projection
    mapper.process(wall_frame(mapper, 0.3, depth_mm=2000))  # new voxels
    mapper.process(wall_frame(mapper, 0.3, depth_mm=1000))  # sees through the far wall: clears voxels
    assert mapper.map.cleared > 0
    got = colours.update(mapper.map)
    assert colours.projection is projection  # fitted once: colours stay put
    assert 0 < colours.realigned < len(mapper)  # only the changed voxels were projected
    assert np.array_equal(got.numpy(), projection(mapper.map.values()))

    probs = make_mapper(encoder, frames=1)
    best = BestClass()
    best.update(probs.map)
    probs.process(wall_frame(probs, 0.3, depth_mm=2000))
    v = probs.map.values().float()
    ref = torch.where(v.max(dim=1).values > 0, v.argmax(dim=1) + 1, 0)
    assert torch.equal(best.update(probs.map).long(), ref)


def test_feature_projection_is_principal_axes_with_stable_signs():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(16, 16)))[0][:, :3].T  # three orthonormal directions
    x = (rng.normal(size=(500, 3)) * [5.0, 2.0, 0.5]) @ basis + 3.0
    p = FeatureProjection.fit(x)
    for axis, ref in zip(p.axes, basis, strict=True):
        assert abs(abs(axis @ ref) - 1) < 1e-2  # the sample's principal directions, largest first
    q = FeatureProjection.fit(-x[::-1] + 0.0)  # same cloud mirrored: same axes, same sign convention
    assert np.allclose(np.abs(q.axes), np.abs(p.axes), atol=1e-2)
    assert np.all(p.axes[np.arange(3), np.abs(p.axes).argmax(axis=1)] > 0)
    rgb = p(x)
    assert rgb.dtype == np.uint8 and rgb.shape == (500, 3) and rgb.min() == 0 and rgb.max() == 255
    assert np.abs(p(torch.as_tensor(x, dtype=torch.float32)).astype(int) - rgb).max() <= 1  # float32 on a tensor
    with pytest.raises(ValueError, match="non-empty"):
        FeatureProjection.fit(np.zeros((0, 4)))


# ------------------------------------------------------------------ the mapping thread never waits
def test_offer_never_waits_for_a_stuck_viewer_and_the_trajectory_keeps_every_frame(encoder):
    mapper = make_mapper(encoder, frames=0)
    view = LiveView(mapper, threading.Lock(), ViewConfig(image_rate=1000.0))
    gate = threading.Event()
    rec = FakeRecording(gate)  # the viewer takes no data at all until the gate opens
    view.attach(rec, FAKE_RR)
    frames = [wall_frame(mapper, 0.1 * i) for i in range(20)]
    done = threading.Event()

    def mapping() -> None:
        for f in frames:
            view.offer(f, np.zeros(f.rgb.shape[:2], np.uint16))
        done.set()

    threading.Thread(target=mapping, daemon=True).start()
    assert done.wait(10), "offer() waited for the viewer"
    assert view.frames == 20 and view._worker.dropped >= 18  # the stuck logger took at most one
    gate.set()  # the logger sends what it holds: the newest frame and the map snapshot with the trajectory
    end = time.monotonic() + 10
    while not any(p == "world/trajectory" for p, _, _ in rec.logged) and time.monotonic() < end:
        time.sleep(0.02)
    _, (strips,), _ = rec.last("world/trajectory")
    np.testing.assert_allclose(strips[0][:, 0], [0.1 * i for i in range(20)], atol=1e-6)
    view.close()


def test_frames_are_logged_with_pose_pinhole_image_and_diagnostics(encoder):
    mapper = make_mapper(encoder, frames=0)
    view = LiveView(mapper, threading.Lock(), ViewConfig(image_rate=1000.0),
                    diagnostics=lambda: {"rejected_inputs": 3})
    rec = FakeRecording()
    view.attach(rec, FAKE_RR)
    f = wall_frame(mapper, 0.7)
    view.offer(f, np.ones(f.rgb.shape[:2], np.uint16))
    end = time.monotonic() + 10
    while not any(p == "diagnostics/rejected_inputs" for p, _, _ in rec.logged) and time.monotonic() < end:
        time.sleep(0.02)
    view.close()
    _, _, tf = rec.last("world/camera")
    np.testing.assert_allclose(tf["translation"], [0.7, 0, 0])
    _, _, pinhole = next(e for p, e, _ in rec.logged if p == "world/camera/image" and e[0] == "Pinhole")
    assert (pinhole["width"], pinhole["height"]) == (64, 48)
    np.testing.assert_allclose(pinhole["image_from_camera"], f.K)
    jpeg = next(e for p, e, _ in rec.logged if p == "world/camera/image/rgb" and e[0] == "EncodedImage")[2]
    assert jpeg["media_type"] == "image/jpeg" and jpeg["contents"][:2] == b"\xff\xd8"
    assert rec.last("diagnostics/rejected_inputs")[1] == (3.0,)


def test_status_says_mapping_then_ended(encoder):
    view, _ = attached(make_mapper(encoder, frames=1))
    view.state = "mapping"
    view.refresh()
    assert view.status()["text"].startswith("waiting for frames; map: ")
    view.frames = 4
    assert view.status()["text"].startswith("mapping: frame 4, ")
    view.finish("outputs in out/")
    s = view.status()
    assert s["state"] == "ended" and s["text"].startswith("the run ended: 4 frames, ")
    assert "outputs in out/" in s["text"] and "Queries still work" in s["text"]


# ------------------------------------------------------------------ the page's HTTP API
class FakeBackend:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def status(self) -> dict:
        return {"state": "mapping", "text": "mapping: frame 1"}

    def query(self, text: str) -> tuple[int, dict]:
        self.texts.append(text)
        return (200, {"ok": True, "message": "1 candidate", "queries": []}) if text == "chair" else \
            (400, {"ok": False, "error": f"no {text}"})


@pytest.fixture
def page():
    backend = FakeBackend()
    server = PageServer(backend, port=0, title="t<b>")
    server.start()
    yield server, backend
    server.close()


def request(server: PageServer, method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def test_page_status_and_query_api(page):
    server, backend = page
    resp, html = request(server, "GET", "/")
    assert resp.status == 200 and resp.getheader("Content-Security-Policy") == PAGE_CSP
    assert b'id="q"' in html and b'<iframe id="viewer"' in html and b"t&lt;b&gt;" in html
    assert b"NOT SEMANTIC" not in html
    labelled = PageServer(backend, port=0, not_semantic=True)  # random weights: said on the page
    assert b">RANDOM WEIGHTS: NOT SEMANTIC<" in labelled.html()
    labelled.close()
    resp, data = request(server, "GET", "/api/status")
    assert json.loads(data) == {"state": "mapping", "text": "mapping: frame 1"}
    js = {"Content-Type": "application/json"}
    resp, data = request(server, "POST", "/api/query", json.dumps({"text": "chair"}), js)
    assert resp.status == 200 and json.loads(data)["ok"]
    resp, data = request(server, "POST", "/api/query", json.dumps({"text": "sofa"}), js)
    assert resp.status == 400 and json.loads(data) == {"ok": False, "error": "no sofa"}
    assert backend.texts == ["chair", "sofa"]


@pytest.mark.parametrize("path, body, headers, status, error", [
    ("/api/query", '{"text": "chair"}', {"Content-Type": "text/plain"}, 415, "application/json"),
    ("/api/query", "{not json", {"Content-Type": "application/json"}, 400, "not JSON"),
    ("/api/query", '{"texts": ["chair"]}', {"Content-Type": "application/json"}, 400, "string 'text'"),
    ("/api/query", '{"text": "' + "x" * 70_000 + '"}', {"Content-Type": "application/json"}, 413, "over"),
    ("/api/other", "{}", {"Content-Type": "application/json"}, 404, "no such endpoint"),
])
def test_page_refuses_bad_requests_without_asking_the_backend(page, path, body, headers, status, error):
    server, backend = page
    resp, data = request(server, "POST", path, body, headers)
    assert resp.status == status and error in json.loads(data)["error"]
    assert backend.texts == []
    assert request(server, "GET", "/nothing")[0].status == 404


class Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for rerun's servers: a file with a CSP of its own, and a stream sent in two parts."""

    protocol_version = "HTTP/1.1"
    second_part = threading.Event()
    seen: list[tuple[str, str, dict]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(("GET", self.path, dict(self.headers)))
        body = b"<html>viewer</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Security-Policy", "default-src *")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("POST", self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/grpc-web+proto")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"5\r\npart1\r\n")
        self.wfile.flush()
        self.second_part.wait(10)
        self.wfile.write(b"5\r\npart2\r\n0\r\n\r\n")


def test_viewer_and_its_stream_are_relayed_with_our_policy():
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    addr = ("127.0.0.1", upstream.server_address[1])
    server = PageServer(FakeBackend(), port=0, viewer=addr, grpc=addr)
    server.start()
    try:
        resp, data = request(server, "GET", "/viewer/?url=rerun%2Bhttp%3A%2F%2Fx%2Fproxy")
        assert resp.status == 200 and data == b"<html>viewer</html>"
        assert resp.getheader("Content-Security-Policy") == VIEWER_CSP  # the viewer's own is replaced
        assert "connect-src 'self';" in VIEWER_CSP and "https:" not in VIEWER_CSP
        assert Upstream.seen[-1][:2] == ("GET", "/?url=rerun%2Bhttp%3A%2F%2Fx%2Fproxy")

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/rerun.sdk_comms.v1alpha1.MessageProxyService/ReadMessages", body=b"\0\0\0\0\0",
                     headers={"Content-Type": "application/grpc-web+proto", "Origin": "http://robot:9090"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/grpc-web+proto"
        assert resp.read1(100) == b"part1"  # arrives while the upstream still holds the stream open
        Upstream.second_part.set()
        assert resp.read() == b"part2"
        method, path, headers, body = Upstream.seen[-1]
        assert body == b"\0\0\0\0\0" and "Origin" not in headers  # same-origin for rerun's CORS rules
        conn.close()
    finally:
        server.close()
        upstream.shutdown()


def test_unknown_rerun_paths_are_not_relayed(page):
    server, _ = page  # no upstream configured: nothing is forwarded anywhere
    resp, _ = request(server, "POST", "/rerun.x.Y/Z", b"", {"Content-Type": "application/grpc-web+proto"})
    assert resp.status == 404
    assert request(server, "GET", "/viewer/index.html")[0].status == 404


def test_page_port_in_use_is_a_clear_error(page):
    from radseg_core.view.rerun_server import ViewUnavailable

    server, _ = page
    with pytest.raises(ViewUnavailable, match=rf"127.0.0.1:{server.port}.*view_port"):
        PageServer(FakeBackend(), port=server.port)


# ------------------------------------------------------------------ rerun missing, limits shared
def test_missing_rerun_is_one_line_that_says_how_to_install(monkeypatch, capsys):
    from radseg_core.cli.map import main
    from radseg_core.view import INSTALL_HINT, ViewUnavailable, require_rerun

    monkeypatch.setitem(__import__("sys").modules, "rerun", None)
    with pytest.raises(ViewUnavailable) as err:
        require_rerun()
    assert str(err.value) == INSTALL_HINT and "pip install 'rerun-sdk==0.41.0'" in INSTALL_HINT
    assert main(["sample", "--view", "--model", "random-tiny", "-o", "/nonexistent/out"]) == 2
    assert capsys.readouterr().err.strip() == f"radseg-map: error: {INSTALL_HINT}"  # before any mapping


def test_view_extra_pins_the_rerun_the_code_was_written_for():
    import re
    from pathlib import Path

    from radseg_core.view import RERUN_VERSION

    repo = Path(__file__).resolve().parents[2]
    assert f'"view": ["rerun-sdk=={RERUN_VERSION}"]' in (repo / "setup.py").read_text()
    for req in ("dev.txt", "dev-jazzy.txt"):
        assert re.search(rf"^rerun-sdk=={re.escape(RERUN_VERSION)}\b", (repo / "requirements" / req).read_text(),
                         re.M), req


# ------------------------------------------------------------------ rerun's servers, the end of a run
def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (Linux /proc/net/tcp{,6}), e.g. {'127.0.0.1'}."""
    import ipaddress
    import socket as so
    import struct

    found = set()
    for name, family in (("tcp", so.AF_INET), ("tcp6", so.AF_INET6)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # LISTEN
                raw = bytes.fromhex(addr)
                if family == so.AF_INET:
                    found.add(str(ipaddress.IPv4Address(struct.unpack("<I", raw)[0])))
                else:
                    found.add(str(ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))))
    return found


def test_rerun_servers_listen_on_loopback_only_with_analytics_off_and_nothing_in_home(tmp_path, monkeypatch):
    pytest.importorskip("rerun")
    if not __import__("os").path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net/tcp")
    from radseg_core.view.rerun_server import RerunServer, free_ports

    home = tmp_path / "home"
    home.mkdir()
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home) if var == "HOME" else str(home / var.lower()))
    ports = free_ports(2)
    server = RerunServer(grpc_port=ports[0], web_port=ports[1])
    server.start()
    try:
        assert listening_addresses(ports[0]) == {"127.0.0.1"} and listening_addresses(ports[1]) == {"127.0.0.1"}
        private = server._dir
        config = json.loads((private / "config" / "rerun" / "analytics.json").read_text())
        assert config["analytics_enabled"] is False
        assert "Welcome to Rerun" not in server.log_tail(5000)  # the first-run notice: config was found
    finally:
        server.close()
    assert not private.exists() and list(home.rglob("*")) == []
    assert listening_addresses(ports[0]) == set()


def test_serving_after_the_run_ends_on_sigterm_like_on_ctrl_c(capsys):
    import os
    import signal

    from radseg_core.cli.map import serve_until_interrupted

    finished = []
    fake = types.SimpleNamespace(url="http://127.0.0.1:1/", finish=finished.append)
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    serve_until_interrupted(fake, "outputs in out/")  # returns instead of dying
    assert finished == ["outputs in out/"]
    err = capsys.readouterr().err
    assert "still serving the view at http://127.0.0.1:1/ (queries work) until Ctrl-C" in err
    assert "view stopped" in err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back


def test_a_taken_rerun_port_is_a_clear_error_and_nothing_stays_open(encoder):
    pytest.importorskip("rerun")
    import socket as so

    from radseg_core.view.rerun_server import ViewUnavailable, free_ports

    page, grpc, web = free_ports(3)
    with so.socket() as taken:
        taken.bind(("127.0.0.1", grpc))
        taken.listen()
        view = LiveView(make_mapper(encoder, frames=0), config=ViewConfig(port=page, grpc_port=grpc, web_port=web))
        with pytest.raises(ViewUnavailable, match=rf"port {grpc} on 127.0.0.1 is in use.*view_grpc_port"):
            view.start()
    assert view.state == "closed"
    with so.socket() as s:  # the page's port was given back
        s.bind(("127.0.0.1", page))


def test_rerun_servers_end_when_their_parent_is_killed(tmp_path):
    pytest.importorskip("rerun")
    import signal
    import subprocess
    import sys

    from radseg_core.view.rerun_server import free_ports

    grpc, web = free_ports(2)
    code = ("import sys, time\nfrom radseg_core.view.rerun_server import RerunServer\n"
            f"s = RerunServer(grpc_port={grpc}, web_port={web}); s.start(); print('up', flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "up"
        assert listening_addresses(grpc) == {"127.0.0.1"}
        parent.send_signal(signal.SIGKILL)  # no close(), no atexit: only the pipe's end tells the child
        parent.wait(10)
        end = time.monotonic() + 10
        while (listening_addresses(grpc) or listening_addresses(web)) and time.monotonic() < end:
            time.sleep(0.2)
        assert listening_addresses(grpc) == set() and listening_addresses(web) == set(), "rerun outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
