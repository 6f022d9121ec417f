"""``radseg-map --view`` as a child process, for the tests that drive it end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def default_sigint() -> None:
    """Ctrl-C must reach radseg-map even when the tests run in the background, where the shell starts them
    (and so their children) with SIGINT ignored and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_radseg_map(source: str, out: Path, ports: list[int], *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """random-tiny in probabilities mode on ``source`` with the view on ``ports`` (page, gRPC, web);
    stderr lines collect in the returned list as they come."""
    page, grpc, web = ports
    cmd = [sys.executable, "-m", "radseg_core.cli.map", source, "--model", "random-tiny", "--mode", "probabilities",
           *extra, "--no-segmentation", "--no-progress", "-o", str(out), "--view", "--view-port", str(page),
           "--view-grpc-port", str(grpc), "--view-web-port", str(web)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            preexec_fn=default_sigint)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, lines


def wait_line(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in list(lines):
            if m := re.search(pattern, line):
                return m
        assert proc.poll() is None, f"radseg-map exited {proc.returncode}:\n{''.join(lines)}"
        time.sleep(0.2)
    raise AssertionError(f"radseg-map never printed {pattern!r}:\n{''.join(lines)}")
