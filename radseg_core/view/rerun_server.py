"""The rerun servers behind the browser view: one ``rerun`` child process, bound where we say.

rerun-sdk's in-process ``serve_grpc`` / ``serve_web_viewer`` listen on every interface and have no
bind argument; the ``rerun`` executable shipped in the same wheel has ``--bind``. So the servers run in
a child process (``rerun --serve-web --bind 127.0.0.1``), always on loopback: the browser reaches them
through the view's page server (:mod:`radseg_core.view.page`), and this process logs over gRPC. The child
gets a private configuration directory that says ``analytics_enabled: false``: no usage data is sent and
nothing is written into the user's home (a first rerun run would otherwise write
``~/.config/rerun/analytics.json`` and print a notice). The directory is removed on :meth:`close`.
The child runs under a small bash watchdog that ends it when this process goes away, however it goes
(a SIGKILLed mapper must not leave rerun holding the ports).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RERUN_VERSION = "0.41.0"  # pinned: the child's command line and the viewer's URL scheme are per version
INSTALL_HINT = (f"the browser view needs rerun-sdk {RERUN_VERSION}: "
                f"pip install 'rerun-sdk=={RERUN_VERSION}'  (or: pip install -e '.[view]')")


class ViewUnavailable(RuntimeError):
    """The view cannot start (rerun missing, a port taken, the child died); the message says why."""


def require_rerun():
    """The ``rerun`` module of the pinned version, or ViewUnavailable with the one line that installs it."""
    try:
        import rerun
    except ImportError:
        raise ViewUnavailable(INSTALL_HINT) from None
    major_minor = ".".join(rerun.__version__.split(".")[:2])
    if major_minor != ".".join(RERUN_VERSION.split(".")[:2]):
        raise ViewUnavailable(f"rerun-sdk {rerun.__version__} is installed; {INSTALL_HINT}")
    return rerun


def rerun_executable() -> Path:
    """The ``rerun`` binary of the installed rerun-sdk wheel (package ``rerun_cli``)."""
    spec = importlib.util.find_spec("rerun_cli")
    if spec is None or not spec.submodule_search_locations:
        raise ViewUnavailable(INSTALL_HINT)
    exe = Path(next(iter(spec.submodule_search_locations))) / "rerun"
    if not exe.is_file():
        raise ViewUnavailable(f"{exe} is missing from the rerun-sdk installation; {INSTALL_HINT}")
    return exe


def local_address(bind: str) -> str:
    """Where this machine reaches a server bound to ``bind`` (a wildcard is reached on loopback)."""
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::", "[::]") else bind


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` ports free on ``host`` just now (tests, benchmarks: several views side by side)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_port(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    """True once ``host:port`` accepts a TCP connection (False after ``timeout`` or when not ``alive()``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# Runs rerun and ends it when our end of its stdin closes: on close(), and when this process dies however
# it dies (SIGKILL, a crash), so no orphan keeps the ports. Exits when rerun exits (alive() sees that).
_WATCHDOG = """
"$@" </dev/null & child=$!
trap 'kill "$child" 2>/dev/null' TERM INT HUP
while kill -0 "$child" 2>/dev/null; do
  read -r -t 1 _; status=$?
  if [ "$status" -ne 0 ] && [ "$status" -le 128 ]; then kill "$child" 2>/dev/null; break; fi
done
wait "$child"
"""


class RerunServer:
    """``rerun --serve-web`` in a child process: the gRPC message proxy and the web viewer's files."""

    bind = "127.0.0.1"

    def __init__(self, *, grpc_port: int = 9876, web_port: int = 9091, memory_limit: str = "512MiB") -> None:
        self.grpc_port, self.web_port = int(grpc_port), int(web_port)
        self.memory_limit = memory_limit
        self._proc: subprocess.Popen | None = None
        self._dir: Path | None = None

    @property
    def grpc_url(self) -> str:
        """What an SDK in this process connects to."""
        return f"rerun+http://{self.bind}:{self.grpc_port}/proxy"

    @property
    def grpc_address(self) -> tuple[str, int]:
        return self.bind, self.grpc_port

    @property
    def web_address(self) -> tuple[str, int]:
        return self.bind, self.web_port

    def start(self, timeout: float = 30.0) -> None:
        exe = rerun_executable()
        for port, what in ((self.grpc_port, "grpc"), (self.web_port, "web")):
            if not port_is_free(self.bind, port):
                raise ViewUnavailable(f"port {port} on {self.bind} is in use: choose another with "
                                      f"radseg-map --view-{what}-port or the node parameter view_{what}_port")
        self._dir = Path(tempfile.mkdtemp(prefix="radseg-view-"))
        env = dict(os.environ, XDG_CONFIG_HOME=str(self._dir / "config"), XDG_DATA_HOME=str(self._dir / "data"),
                   RUST_LOG=os.environ.get("RADSEG_VIEW_RUST_LOG", "warn"))
        env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
        config = self._dir / "config" / "rerun" / "analytics.json"
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({
            "analytics_enabled": False, "analytics_id": "radseg-view", "metadata": {},
            "config_file_path": str(config), "data_dir_path": str(self._dir / "data" / "rerun" / "analytics"),
        }))
        cmd = [str(exe), "--serve-web", "--bind", self.bind, "--port", str(self.grpc_port),
               "--web-viewer-port", str(self.web_port), "--server-memory-limit", self.memory_limit,
               "--hide-welcome-screen"]
        self._log = open(self._dir / "rerun.log", "wb")  # noqa: SIM115 - closed in close()
        bash = shutil.which("bash")
        launch = [bash, "-c", _WATCHDOG, "radseg-view-watchdog", *cmd] if bash else cmd
        self._proc = subprocess.Popen(launch, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, cwd=self._dir, start_new_session=True)
        ok = all(wait_for_port(self.bind, p, timeout, alive=lambda: self._proc.poll() is None)
                 for p in (self.grpc_port, self.web_port))
        if not ok:
            tail = self.log_tail()
            self.close()
            raise ViewUnavailable(f"rerun servers did not start ({' '.join(cmd)}): {tail or 'no output'}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        try:
            return (self._dir / "rerun.log").read_text(errors="replace")[-chars:].strip() if self._dir else ""
        except OSError:
            return ""

    def close(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # the watchdog ends rerun and itself
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:  # no watchdog (no bash) or stuck: the whole session
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(OSError):
                        os.killpg(self._proc.pid, sig)
                    try:
                        self._proc.wait(5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            self._proc = None
            self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
