#!/usr/bin/env bash
# GPU check of the what-if kernel (issue 6), for a short lease on an NVIDIA GPU (H200).
#
#   bash bench/gpu_check.sh            # from the repository root; logs go to "$OUT/"
#
# Needs 8 minutes at most. It runs bench/gpu_aot.py on the prebuilt CUBIN in bench/aot/
# (python bench/build_aot.py, on any machine with Warp) through the CUDA driver, so Warp need
# not be installed there (offline machines; the warp-lang wheel is 150 MB): agreement with the
# reference on the GPU, then 1,024 replications of HVLM (365 days if the lease allows, else as
# long as it does, scaled and said so). Where Warp is importable (or pip can install it), the
# kernel tests then run on cuda:0 too.
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

HAVE_WARP=0
if $PY -c "import warp" >/dev/null 2>&1; then
  HAVE_WARP=1
  echo "warp: $($PY -c 'import warp; print(warp.__version__)')" >> "$OUT/env.log"
fi
CUBIN=$(ls bench/aot/*.sm90.cubin 2>/dev/null | head -1)
RESERVE=$((HAVE_WARP * 170))  # the Warp tests compile the kernel with NVRTC first
if [ -n "$CUBIN" ]; then
  # agreement on the GPU and the HVLM batch, sized to what is left of the 8 minutes
  timeout "$(( $(left) - RESERVE ))" $PY bench/gpu_aot.py --cubin "$CUBIN" \
    --replications 1024 --days 365 --budget "$(( $(left) - RESERVE - 25 ))" \
    2>&1 | tee "$OUT/aot.log"
elif [ "$HAVE_WARP" = 1 ]; then
  timeout "$(( $(left) - RESERVE ))" $PY bench/bench_kernel.py --device cuda \
    --replications 1024 --days 30 2>&1 | tee "$OUT/bench.log"
else
  echo "neither Warp nor a CUBIN in bench/aot/ (python bench/build_aot.py)" | tee "$OUT/aot.log"
fi
if [ "$HAVE_WARP" = 1 ]; then
  timeout "$(( $(left) - 5 ))" $PY -m pytest tests/whatif/kernel -q -x -k cuda \
    -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -5
fi
echo "total $(( $(date +%s) - START )) s" | tee -a "$OUT/env.log"
