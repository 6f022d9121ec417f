#!/usr/bin/env bash
# One command for a lent GPU machine: the cuda tests, then every GPU number (benchmarks/device_suite.py).
#
#   benchmarks/device_suite.sh                        # on the GPU: <= 8 min on an H100
#   benchmarks/device_suite.sh --device cpu --quick   # dry run on the CPU (CI runs it: test_device_suite.py)
#   benchmarks/device_suite.sh --out DIR              # results: DIR/device_suite.{json,md}, cuda_tests.xml,
#                                                     #   per_frame_copies.json (default benchmarks/out/device_suite)
#
# Needs python3 with torch, timm, einops, transformers, numpy, pyyaml, pytest (+ onnx, onnxscript,
# onnxruntime for the onnxruntime rows): the device image's interpreter as it is. No ROS and no project
# virtual environment: the repository root goes on PYTHONPATH. Wheels missing there can travel in .whl/
# (see docs/deploy.md); they are installed into a temporary folder first. PYTHON=... picks the interpreter.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=cuda
QUICK=()
OUT="$ROOT/benchmarks/out/device_suite"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=(--quick); shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "device_suite.sh: unknown argument '$1' (--device cuda|cpu, --quick, --out DIR)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  SITE="$(mktemp -d /tmp/radseg-suite-site.XXXXXX)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$ROOT"/.whl/*.whl \
    || { echo "device_suite.sh: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 RADSEG_CUDA_TESTS_DEVICE="$DEVICE" RADSEG_SUITE_REPORT_DIR="$OUT"
cd "$ROOT" || exit 2
start=$SECONDS
echo "[suite] pytest -m cuda on $DEVICE"
"$PY" -m pytest -m cuda test/cuda -q -p no:cacheprovider -rs --junitxml="$OUT/cuda_tests.xml"
tests=$?
echo "[suite] cuda tests: exit $tests in $((SECONDS - start)) s"
"$PY" benchmarks/device_suite.py --device "$DEVICE" "${QUICK[@]}" --out "$OUT/device_suite.json"
bench=$?
echo "[suite] benchmarks: exit $bench; total $((SECONDS - start)) s; results in $OUT"
if [ "$tests" -ne 0 ]; then exit "$tests"; fi
exit "$bench"
