#!/usr/bin/env bash
# The prepared GPU check: run it at once on a lent GPU machine (see README "GPU check").
#
#   here:   bash benchmarks/gpu_wheels.sh          # PyPI wheels the device image lacks -> .whl/
#   device: bash benchmarks/gpu_check.sh           # (run with carry [".whl"]); reports land in $OUT
#
# In one run of at most 8 minutes it runs tests/test_gpu.py on the GPU, bench_gpu.py at 720p, 1080p
# and 4K, and a 1080p `vbg --backend cuda` conversion against the CPU path, and writes
# gpu_check.json and gpu_check.md. Without a GPU it says so in one line and writes reports that say
# so (a dry run). It installs nothing from the network: the device has none.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${GPU_CHECK_OUT:-${OUT:-gpu-check-out}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vbg-site \
        .whl/*.whl && export PYTHONPATH="/tmp/vbg-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" --budget "${GPU_CHECK_BUDGET:-470}" "$@"
