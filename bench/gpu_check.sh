#!/usr/bin/env bash
# GPU check of the what-if kernel (issue 6), for a short lease on an NVIDIA GPU (H200).
#
#   bash bench/gpu_check.sh            # from the repository root; logs go to "$OUT/"
#
# Needs about 8 minutes. With Warp importable (or installable with pip), it runs the kernel
# tests on cuda:0 and bench/bench_kernel.py --device cuda (1,024 replications x 365 days of
# HVLM). Without Warp (an offline machine: the warp-lang wheel is 150 MB), it runs
# bench/gpu_aot.py on the prebuilt CUBIN in bench/aot/ (python bench/build_aot.py) through the
# CUDA driver: agreement with the reference on the GPU, then the HVLM batch.
# HVLM is looked up in $TWIN_DATASETS, ./shared/datasets (travels with the checkout) and
# ../shared/datasets.
set -u -o pipefail
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
left() { echo $((480 - ($(date +%s) - START))); }

for d in "${TWIN_DATASETS:-}" shared/datasets ../shared/datasets; do
  if [ -n "$d" ] && [ -f "$d/smt2020/HVLM/route_3.txt" ]; then
    export TWIN_DATASETS="$(cd "$d" && pwd)"; break
  fi
done
{
  date -u; nvidia-smi; python3 --version; echo "TWIN_DATASETS=${TWIN_DATASETS:-unset}"
  git log --oneline -1 2>/dev/null
} > "$OUT/env.log" 2>&1

PY=python3
if ! $PY -c "import warp" >/dev/null 2>&1; then
  # offline machines answer at once; do not spend the lease waiting for an index
  if python3 -m venv --system-site-packages /tmp/v >>"$OUT/env.log" 2>&1 &&
     timeout 60 /tmp/v/bin/pip install -q --retries 0 --timeout 10 "warp-lang>=1.5" pytest \
       >>"$OUT/env.log" 2>&1; then
    PY=/tmp/v/bin/python
  fi
fi

if $PY -c "import warp" >/dev/null 2>&1; then
  echo "warp: $($PY -c 'import warp; print(warp.__version__)')" >> "$OUT/env.log"
  timeout 200 $PY -m pytest tests/whatif/kernel -q -x -k cuda -p no:cacheprovider \
    2>&1 | tee "$OUT/tests.log" | tail -5
  timeout "$(left)" $PY bench/bench_kernel.py --device cuda --replications 1024 --days 365 \
    2>&1 | tee "$OUT/bench.log"
else
  echo "warp: not importable, using the prebuilt CUBIN" >> "$OUT/env.log"
  CUBIN=$(ls bench/aot/*.sm90.cubin 2>/dev/null | head -1)
  if [ -z "$CUBIN" ]; then
    echo "no CUBIN in bench/aot/: run python bench/build_aot.py first" | tee "$OUT/aot.log"
    exit 1
  fi
  timeout "$(left)" $PY bench/gpu_aot.py --cubin "$CUBIN" --replications 1024 --days 365 \
    --budget "$(( $(left) - 20 ))" 2>&1 | tee "$OUT/aot.log"
fi
echo "total $(( $(date +%s) - START )) s" | tee -a "$OUT/env.log"
