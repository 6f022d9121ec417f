"""Shared test set-up: ROS 2 isolation (domain, logs, transport) and the torchvision workaround."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

from radseg_core.compat import patch_torchvision

patch_torchvision()

# As in an activated environment: installed executables (the node's `#!/usr/bin/env python3`) resolve
# to this interpreter, and the ament index finds the package built into it.
os.environ["PATH"] = os.path.join(sys.prefix, "bin") + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

# Each pytest run gets its own DDS domain and log folder, so parallel runs and other ROS processes on
# the machine do not see each other, and nothing is written to ~/.ros.
_ROS_TMP = tempfile.mkdtemp(prefix="radseg-test-ros-")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ["ROS_HOME"] = _ROS_TMP
os.environ["ROS_LOG_DIR"] = os.path.join(_ROS_TMP, "log")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Fast DDS' default transports drop or delay large messages (images, clouds) between processes.
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
# ... and a lost fragment waits for the next heartbeat (3 s by default): the package's profile shortens it.
os.environ.setdefault(
    "FASTDDS_DEFAULT_PROFILES_FILE",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "fastdds_large_images.xml"),
)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: many mid-sized tensor ops run several times slower split over 2
    threads on a shared 2-core machine (measured: 234 s vs 65 s for the free-space clearing tests)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
