"""The view's settings (no heavy imports: the command-line tools read the defaults for --help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ViewConfig:
    """Where the view listens and how much it may cost."""

    bind: str = "127.0.0.1"  # the page listens here (0.0.0.0: reachable from other machines)
    port: int = 9090  # the page (the URL to open); the browser needs no other port
    grpc_port: int = 9876  # rerun's gRPC server, on loopback (the page relays the viewer's stream)
    web_port: int = 9091  # rerun's web-viewer files, on loopback (relayed by the page)
    max_points: int = 500_000  # voxels drawn at most; a bigger map shows a fixed subset of this size
    refresh_period: float = 1.0  # seconds between map refreshes, at least
    lock_share: float = 0.05  # share of time refreshes may hold the map lock
    work_share: float = 0.25  # share of time the logger thread may spend on map refreshes
    image_rate: float = 3.0  # camera frames sent per second, at most
    memory_limit: str = "512MiB"  # rerun server's buffer for viewers that connect late
    title: str = "radseg"
    not_semantic: bool = False  # random weights: the page says so in red, as every picture of such a run
