#!/usr/bin/env bash
# Every GPU check of the training path in one run, for a lent CUDA machine:
#   1. the CUDA tests (graph vs eager training, bf16, resume, NaN, fast);
#   2. bench_train.py without the time-to-target part (JSON);
#   3. full seed-recipe pre-training of a 200,020-row simulated vitals2024 file with the
#      step replayed as a CUDA graph, timed end to end.
# Usage: OUT=DIR bash benchmarks/gpu_checks.sh   (from the repository root; needs the
# package importable, e.g. PYTHONPATH=src, and python3 with torch + CUDA)
set -u
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }

log "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/summary.txt"
$PY -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'lightning', lightning.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee -a "$OUT/summary.txt"

log "1. CUDA tests"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/training/test_cuda_graph.py \
    tests/training/test_graphstep.py >"$OUT/tests.log" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/summary.txt"
tail -4 "$OUT/tests.log" | tee -a "$OUT/summary.txt"

log "2. bench_train (no time-to-target)"
timeout 180 $PY benchmarks/bench_train.py --no-target --repeats 3 --out "$OUT/bench_train.json" \
    >"$OUT/bench.log" 2>&1
echo "bench rc=$?" | tee -a "$OUT/summary.txt"
$PY - "$OUT/bench_train.json" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import json, sys
for r in json.load(open(sys.argv[1])):
    print(f"{r['name']:32s} {r['value']:>12,.0f} {r['unit']:10s} ratio {r.get('ratio')}")
EOF

log "3. full pre-training, 200,020 rows, seed recipe, CUDA graph"
DATA=$(mktemp -d)
$PY -m vitalsentry.cli simulate --schema vitals2024 --rows 200020 --out "$DATA/v.csv" >/dev/null
$PY -m vitalsentry.cli prepare "$DATA/v.csv" --out "$DATA/prep" | tail -2
start=$(date +%s.%N)
timeout 200 $PY -m vitalsentry.cli pretrain "$DATA/prep" --out "$DATA/b" --accelerator cuda \
    --cuda-graph --quiet >"$OUT/pretrain200k.log" 2>&1
rc=$?
end=$(date +%s.%N)
echo "pretrain rc=$rc wall $($PY -c "print(round($end - $start, 1))") s" | tee -a "$OUT/summary.txt"
tail -5 "$OUT/pretrain200k.log" | tee -a "$OUT/summary.txt"
[ -f "$DATA/b/manifest.json" ] && cp "$DATA/b/manifest.json" "$OUT/manifest200k.json" && cp "$DATA/b/curve.json" "$OUT/curve200k.json"
log "done"
