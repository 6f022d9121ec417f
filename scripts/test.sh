#!/usr/bin/env bash
# The test command: set up the environment (idempotent), then lint and run every test under ROS 2
# Kilted (.venv), then the ROS tests (test/ros) again under ROS 2 Jazzy LTS (.venv-jazzy).
#   scripts/test.sh                     # everything (what CI runs)
#   scripts/test.sh test/core -k scra   # extra arguments go to pytest; Kilted only
#   RADSEG_TEST_DISTROS=jazzy scripts/test.sh test/ros/test_services.py   # choose distributions
# A failure under one distribution does not stop the other from running; the exit status is the
# first failure's.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${RADSEG_TEST_DISTROS:-}" ]; then
  DISTROS="$RADSEG_TEST_DISTROS"
elif [ $# -eq 0 ]; then
  DISTROS="kilted jazzy"
else
  DISTROS="kilted"
fi
cd "$ROOT"
status=0
fail() { if [ "$status" -eq 0 ]; then status=$1; fi; }
for distro in $DISTROS; do
  start=$SECONDS
  case "$distro" in
    kilted)
      venv="${RADSEG_VENV:-$ROOT/.venv}"
      RADSEG_ROS_DISTRO=kilted RADSEG_VENV="$venv" "$ROOT/scripts/setup_env.sh" || { fail 1; continue; }
      echo "[test] ruff check"
      "$venv/bin/ruff" check . || fail 1
      echo "[test] pytest (ROS 2 kilted)"
      # The pytest executable (not `python -m pytest`) keeps the source radseg_ros/ off sys.path, so
      # `radseg_ros.srv` comes from the built package installed in the environment.
      "$venv/bin/pytest" "$@"
      rc=$? ;;
    jazzy)
      venv="${RADSEG_JAZZY_VENV:-$ROOT/.venv-jazzy}"
      RADSEG_ROS_DISTRO=jazzy RADSEG_VENV="$venv" "$ROOT/scripts/setup_env.sh" || { fail 1; continue; }
      echo "[test] pytest (ROS 2 jazzy)"
      if [ $# -eq 0 ]; then set -- test/ros; jazzy_default=1; fi
      "$venv/bin/pytest" "$@"
      rc=$?
      if [ "${jazzy_default:-0}" = 1 ]; then set --; fi ;;
    *) echo "[test] unknown distribution '$distro' in RADSEG_TEST_DISTROS (kilted, jazzy)" >&2; rc=2 ;;
  esac
  echo "[test] ROS 2 $distro: exit $rc in $((SECONDS - start)) s"
  if [ "$rc" -ne 0 ]; then fail "$rc"; fi
done
exit $status
