#!/usr/bin/env bash
# Every GPU check and figure in one go, on a machine with CUDA, in a few minutes:
#   the CUDA tests (tests/test_gpu.py, marked `gpu`: AMP extraction against the CPU's codes,
#   faiss on the GPU, mixed-precision training) and the GPU figures (python -m benchmarks.gpu:
#   forward and end-to-end extraction rates, search), one markdown table per figure.
# Results go to $OUT (the device tool's folder) or gpu_results/; the exit status is non-zero if
# any check fails. Packages the machine lacks come from .whl/ (benchmarks/gpu_wheels.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_results}
mkdir -p "$out"
py=${PYTHON:-python3}
if [ -d .whl ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/ncl-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/ncl-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PROJECT_ROOT="$PWD" WANDB_MODE=offline \
  PYTHONUNBUFFERED=1 NCL_DEMO_OPENCV_DIR=""
status=0
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || status=1
timeout 300 $py -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 240 $py -m benchmarks.gpu --out "$out" 2>&1 | tee "$out/benchmarks.txt" | tail -30
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "gpu_check: $([ "$status" = 0 ] && echo passed || echo FAILED); tables in $out"
exit "$status"
