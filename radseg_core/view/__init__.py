"""The live view in a browser: the map, the camera and a query box (rerun's web viewer + a page of ours).

``radseg-map INPUT --view`` and the node's ``view`` parameter start it; both print the page's URL.
Needs the ``view`` extra (rerun-sdk, pinned); without it :func:`require_rerun` raises
:class:`ViewUnavailable` with the one line that installs it.
"""

from radseg_core.view.config import ViewConfig
from radseg_core.view.rerun_server import INSTALL_HINT, RERUN_VERSION, ViewUnavailable, require_rerun


def __getattr__(name: str):
    if name == "LiveView":  # torch and the map come with it: imported when asked for
        from radseg_core.view.live import LiveView

        return LiveView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["INSTALL_HINT", "RERUN_VERSION", "LiveView", "ViewConfig", "ViewUnavailable", "require_rerun"]
