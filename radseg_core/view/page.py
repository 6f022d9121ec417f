"""The view's own web page: a query box and the run's status above an iframe of the rerun web viewer.

rerun's viewer takes no input that reaches Python, so text queries need a page of ours. One HTTP server
serves it:

  GET  /              the page
  GET  /api/status    JSON: state (starting | mapping | ended), a status line, counts
  POST /api/query     JSON {"text": "chair; red door"} → the answer, or {"ok": false, "error": ...}
  GET  /viewer/...    rerun's web viewer, relayed from its server on loopback
  POST /rerun.*/...   the viewer's gRPC-web calls, relayed (streamed) to rerun's gRPC server on loopback

Everything the browser needs comes from this one server: rerun's servers stay on loopback whatever
address the page is bound to, and the viewer's calls are same-origin, so no CORS rule has to admit a
robot's host name. The viewer's responses carry our Content-Security-Policy, which lets it talk to
this server only: its analytics call and the web font it links are blocked (nothing leaves the
machine; it works offline). The query API accepts only ``Content-Type: application/json``, which a
form on another web site cannot send without a CORS preflight that this server never grants.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

MAX_BODY = 64 * 1024  # bytes of a query request (the longest allowed query is far shorter)
_GRPC_PATH = re.compile(r"^/rerun\.[A-Za-z0-9_.]+/[A-Za-z0-9_]+$")  # /package.Service/Method
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authenticate", "proxy-authorization", "content-security-policy", "content-length",
               "host", "origin", "referer"}


class ViewBackend(Protocol):
    """What the page asks of the running view."""

    def status(self) -> dict: ...

    def query(self, text: str) -> tuple[int, dict]: ...


PAGE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "frame-src 'self'; connect-src 'self'; img-src 'self' data:")


VIEWER_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; "
              "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
              "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'")


class PageServer:
    """Threaded HTTP server for the page, its JSON API and the relayed viewer."""

    def __init__(self, backend: ViewBackend, *, bind: str = "127.0.0.1", port: int = 9090,
                 viewer: tuple[str, int] | None = None, grpc: tuple[str, int] | None = None,
                 title: str = "radseg", not_semantic: bool = False) -> None:
        self.backend = backend
        self.viewer = viewer  # rerun's web-viewer server (host, port)
        self.grpc = grpc  # rerun's gRPC server (host, port)
        self.title = title
        self.not_semantic = not_semantic
        handler = type("Handler", (_Handler,), {"page": self})
        try:
            self._httpd = ThreadingHTTPServer((bind, int(port)), handler)
        except OSError as exc:
            from radseg_core.view.rerun_server import ViewUnavailable

            raise ViewUnavailable(f"cannot serve the view page on {bind}:{port} ({exc.strerror}): choose "
                                  "another port (radseg-map --view-port, node parameter view_port)") from None
        self._httpd.daemon_threads = True
        self.bind = bind
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        from radseg_core.view.rerun_server import local_address

        host = local_address(self.bind)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="radseg-view-page", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only when it runs
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def html(self) -> bytes:
        banner = '<span id="not-semantic">RANDOM WEIGHTS: NOT SEMANTIC</span>' if self.not_semantic else ""
        return _PAGE.replace("__TITLE__", _escape(self.title)).replace("__BANNER__", banner).encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Handler(BaseHTTPRequestHandler):
    page: PageServer
    protocol_version = "HTTP/1.1"
    server_version = "radseg-view"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # a browser polls every second: no access log on the terminal

    def _send(self, status: int, body: bytes, content_type: str, csp: str = PAGE_CSP) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, self.page.html(), "text/html; charset=utf-8")
        elif path == "/api/status":
            self._json(200, self.page.backend.status())
        elif path.startswith("/viewer/") and self.page.viewer is not None:
            self._relay(self.path[len("/viewer"):])
        else:
            self._json(404, {"ok": False, "error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if _GRPC_PATH.match(self.path) and self.page.grpc is not None:
            self._relay_grpc()
            return
        if self.path.split("?", 1)[0] != "/api/query":
            self._json(404, {"ok": False, "error": f"no such endpoint: {self.path}"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(415, {"ok": False, "error": "send the query as application/json: {\"text\": \"...\"}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"ok": False, "error": "Content-Length required"})
            return
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._json(413, {"ok": False, "error": f"request body over {MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._json(400, {"ok": False, "error": f"the body is not JSON: {exc}"})
            return
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            self._json(400, {"ok": False, "error": "expected a JSON object with a string 'text'"})
            return
        status, answer = self.page.backend.query(body["text"])
        self._json(status, answer)

    def _relay(self, path: str) -> None:
        """GET ``path`` from rerun's web-viewer server; stream it back with our CSP."""
        try:
            upstream = http.client.HTTPConnection(*self.page.viewer, timeout=30)
            upstream.request("GET", path or "/", headers={"Accept-Encoding": "identity"})
            resp = upstream.getresponse()
        except OSError as exc:
            self._json(502, {"ok": False, "error": f"the rerun viewer server does not answer: {exc}"})
            return
        self._stream_back(upstream, resp, VIEWER_CSP)

    def _relay_grpc(self) -> None:
        """A gRPC-web call of the viewer, passed to rerun's gRPC server; its (endless) stream passed back."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._json(413, {"ok": False, "error": "gRPC request without a usable Content-Length"})
            return
        body = self.rfile.read(length)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = http.client.HTTPConnection(*self.page.grpc, timeout=None)  # streams last the whole run
            upstream.request("POST", self.path, body=body, headers=headers)
            resp = upstream.getresponse()
        except OSError as exc:
            self._json(502, {"ok": False, "error": f"the rerun gRPC server does not answer: {exc}"})
            return
        self._stream_back(upstream, resp, PAGE_CSP)

    def _stream_back(self, upstream: http.client.HTTPConnection, resp: http.client.HTTPResponse, csp: str) -> None:
        """Relay a response as it arrives (chunked), so a stream reaches the browser message by message."""
        try:
            self.send_response(resp.status)
            for name, value in resp.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := resp.read1(1 << 16):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # the browser went away (page closed), or rerun's server did
        finally:
            upstream.close()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
html, body { margin: 0; height: 100%; background: #121212; color: #ddd; font: 14px system-ui, sans-serif; }
body { display: flex; flex-direction: column; }
#bar { display: flex; gap: 10px; align-items: center; padding: 6px 10px 2px; background: #1d1d1d; }
#bar b { color: #fff; white-space: nowrap; }
#not-semantic { background: #b00; color: #fff; font-weight: bold; padding: 2px 6px; white-space: nowrap; }
#query { display: flex; gap: 6px; flex: 1; margin: 0; }
#q { flex: 1; padding: 4px 6px; background: #000; color: #eee; border: 1px solid #555; }
#status { padding: 2px 10px 4px; background: #1d1d1d; color: #9c9; white-space: nowrap; overflow: hidden;
          text-overflow: ellipsis; }
#status[data-state="ended"] { color: #fc6; }
#status[data-state="error"] { color: #f66; }
#answer { padding: 4px 10px; height: 3.4em; overflow: auto; white-space: pre-wrap; }  /* fixed: no jumping */
#answer.error { color: #f66; }
iframe { flex: 1; border: 0; width: 100%; }
</style></head>
<body>
<div id="bar"><b>__TITLE__</b>__BANNER__
<form id="query"><input id="q" name="q" autocomplete="off"
 placeholder="what to look for, e.g. chair (several: chair; door)"><button id="ask">query</button></form></div>
<div id="status" data-state="starting">connecting...</div>
<div id="answer"></div>
<iframe id="viewer" title="rerun viewer"></iframe>
<script>
document.getElementById("viewer").src =  // the viewer streams from this page's own server (relayed)
  "/viewer/?url=" + encodeURIComponent("rerun+" + location.origin + "/proxy");
const statusEl = document.getElementById("status"), answerEl = document.getElementById("answer");
async function poll() {
  try {
    const s = await (await fetch("/api/status", {cache: "no-store"})).json();
    statusEl.textContent = s.text; statusEl.title = s.text; statusEl.dataset.state = s.state;
  } catch (e) {
    statusEl.textContent = "the view server has stopped"; statusEl.dataset.state = "error";
  }
  setTimeout(poll, 1000);
}
function show(a) {
  answerEl.className = a.ok ? "" : "error";
  if (!a.ok) { answerEl.textContent = "error: " + a.error; return; }
  const lines = [a.message];
  for (const q of a.queries) {
    const c = q.candidates.map((c, i) => (i + 1) + ": " + c.score.toFixed(3) + " at [" +
      c.centroid.map(x => x.toFixed(2)).join(", ") + "] (" + c.voxels + " voxels)");
    lines.push("'" + q.query + "': " + (c.length ? c.join("; ") : "no candidates"));
  }
  answerEl.textContent = lines.join("\\n");
}
document.getElementById("query").addEventListener("submit", async (e) => {
  e.preventDefault();
  answerEl.className = ""; answerEl.textContent = "asking...";
  try {
    const r = await fetch("/api/query", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({text: document.getElementById("q").value})});
    show(await r.json());
  } catch (err) {
    show({ok: false, error: "no answer from the view server (" + err + ")"});
  }
});
poll();
</script>
</body></html>
"""
