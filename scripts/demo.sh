#!/usr/bin/env bash
# The main job: set up the environment (idempotent), then run the Motorcycle sample through the real
# ROS 2 node (bag replay → mapping → ~/query → ~/save_map) and leave images, map, PLY and pictures
# in output/demo/.
#   scripts/demo.sh                        # c-radio_v3-b, downloaded on first use; offline it prints what
#                                          # to download and runs with random weights (NOT SEMANTIC), exit 0
#   scripts/demo.sh --require-weights      # offline: same block, then exit 3 instead of the random run
#   scripts/demo.sh --model random-tiny    # offline smoke run (random weights: NOT SEMANTIC)
#   scripts/demo.sh --help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RADSEG_VENV:-$ROOT/.venv}"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
# -P keeps the source radseg_ros/ off sys.path: the installed package carries the generated services.
exec "$VENV/bin/python" -P -m radseg_ros.demo "$@"
