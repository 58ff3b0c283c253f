#!/usr/bin/env bash
# The CUDA path in one run, for one call of a lent GPU machine (bench/README.md, "GPU check"):
#
#   bash bench/gpu_check.sh [--smoke | --cpu | --budget-s N | --work DIR]
#
# 1. When rasterio cannot be imported (the GPU image has no GDAL/rasterio), installs the wheels
#    carried in .whl/ (rasterio with its bundled GDAL, affine, cligj, click-plugins) into
#    /tmp/site, without an index (the GPU machine reaches no registry).
# 2. Runs `python -m bench.gpu_check`: one JSON report, $OUT/gpu_check.json when OUT is set
#    (the device tool brings back what is under $OUT), else bench/work/gpu_check.json, and the
#    log next to it (gpu_check.log). Without CUDA it runs the CPU plan (1k x 1k raster).
# Exit status: that of bench.gpu_check (0 = every stage ran, 1 = a stage failed: see the JSON).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
report_dir=${OUT:-bench/work}
mkdir -p "$report_dir"
log="$report_dir/gpu_check.log"
need_wheels=0
"$PY" -c "import rasterio, affine" 2>/dev/null || need_wheels=1
{
  echo "gpu_check: $(date -u +%FT%TZ) on $(uname -n), python: $PY ($("$PY" --version 2>&1))"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
  if [ "$need_wheels" = 1 ]; then
    if ls .whl/*.whl >/dev/null 2>&1; then
      echo "gpu_check: installing $(ls .whl/*.whl | xargs -n1 basename | tr '\n' ' ')into /tmp/site"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || echo "gpu_check: wheel install FAILED"
    else
      echo "gpu_check: rasterio is missing and there is no .whl/ folder (bench/README.md)"
    fi
  fi
} 2>&1 | tee "$log"
[ "$need_wheels" = 1 ] && export PYTHONPATH="$PYTHONPATH:/tmp/site"
"$PY" -m bench.gpu_check "$@" 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
