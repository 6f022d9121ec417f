"""The package builds with colcon as a user would build it in a workspace, and installs what it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_colcon_build_installs_package(tmp_path):
    colcon = Path(sys.prefix) / "bin" / "colcon"
    if not colcon.exists():
        colcon = Path(shutil.which("colcon") or "colcon")
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    os.symlink(REPO, ws / "src" / "radseg_ros")
    env = dict(os.environ, AMENT_PREFIX_PATH=os.environ.get("AMENT_PREFIX_PATH", sys.prefix),
               CMAKE_PREFIX_PATH=os.environ.get("CMAKE_PREFIX_PATH", sys.prefix))
    proc = subprocess.run(
        [str(colcon), "build", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prefix = ws / "install" / "radseg_ros"
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "radseg_ros" / "srv" / "_text_query.py").is_file()
    assert (site / "radseg_ros" / "node.py").is_file()
    assert (site / "radseg_core" / "pipeline.py").is_file()
    assert os.access(prefix / "lib" / "radseg_ros" / "radseg_node", os.X_OK)
    for rel in ("launch/radseg.launch.py", "config/radseg.yaml", "rviz/radseg.rviz", "package.xml"):
        assert (prefix / "share" / "radseg_ros" / rel).is_file(), rel
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "radseg_ros").is_file()

    # the built service types import from the install space in a fresh interpreter
    check = subprocess.run(
        [sys.executable, "-P", "-c", "from radseg_ros.srv import MapFile, TextQuery; print(TextQuery.Request())"],
        env=dict(env, PYTHONPATH=f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}",
                 LD_LIBRARY_PATH=f"{prefix / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"),
        capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert "queries=[]" in check.stdout
