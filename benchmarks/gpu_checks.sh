#!/usr/bin/env bash
# Every GPU check of the training path in one run, for a lent CUDA machine:
#   1. the CUDA tests (graph vs eager training with both LSTM paths, bf16, resume with the
#      fused LSTM's cuDNN dropout, fused vs per-layer outputs and gradients, masks advancing
#      between graph replays, NaN, fast);
#   2. bench_train.py without the time-to-target part (JSON). Targets (issue 18):
#      train_batch4096_bf16_vs_resident_plain ratio >= 1.0 (was 0.74 with one nn.LSTM per
#      layer); train_batch32 ratio >= 5; train_batch4096_bf16_fused_vs_layers shows the gain;
#   3. full seed-recipe pre-training of a 200,020-row simulated vitals2024 file with the
#      step replayed as a CUDA graph (fused LSTM: the default on CUDA), timed end to end:
#      target <= 45 s wall (was 71 s); its best validation loss is reported (was 0.0022);
#   4. the same file with --fast (the large-batch recipe): wall time and best validation
#      loss against step 3's.
# Usage: OUT=DIR bash benchmarks/gpu_checks.sh   (from the repository root; needs the
# package importable, e.g. PYTHONPATH=src, and python3 with torch + CUDA)
# STEPS="1 2" or STEPS="3 4" runs a part (default: all), to fit one 10-minute call each.
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

STEPS=${STEPS:-1 2 3 4}
want() { [[ " $STEPS " == *" $1 "* ]]; }

if want 1; then
log "1. CUDA tests"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/training/test_cuda_graph.py \
    tests/training/test_graphstep.py tests/training/test_fused_lstm_cuda.py \
    tests/models/test_autoencoder.py >"$OUT/tests.log" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/summary.txt"
grep -E "FAILED|ERROR" "$OUT/tests.log" | head -20 | tee -a "$OUT/summary.txt"
tail -4 "$OUT/tests.log" | tee -a "$OUT/summary.txt"
fi

if want 2; then
log "2. bench_train (no time-to-target)"
timeout 240 $PY benchmarks/bench_train.py --no-target --repeats 3 --out "$OUT/bench_train.json" \
    >"$OUT/bench.log" 2>&1
echo "bench rc=$?" | tee -a "$OUT/summary.txt"
$PY - "$OUT/bench_train.json" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import json, sys
for r in json.load(open(sys.argv[1])):
    print(f"{r['name']:32s} {r['value']:>12,.0f} {r['unit']:10s} ratio {r.get('ratio')}")
EOF
fi

if want 3 || want 4; then

log "3/4. full pre-training, 200,020 rows"
DATA=$(mktemp -d)
$PY -m vitalsentry.cli simulate --schema vitals2024 --rows 200020 --out "$DATA/v.csv" >/dev/null
$PY -m vitalsentry.cli prepare "$DATA/v.csv" --out "$DATA/prep" | tail -2
pretrain() {  # name, extra options
    local name=$1; shift
    local start end rc
    start=$(date +%s.%N)
    timeout 200 $PY -m vitalsentry.cli pretrain "$DATA/prep" --out "$DATA/$name" \
        --accelerator cuda --quiet "$@" >"$OUT/pretrain200k-$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    echo "pretrain $name ($*) rc=$rc wall $($PY -c "print(round($end - $start, 1))") s" \
        | tee -a "$OUT/summary.txt"
    tail -5 "$OUT/pretrain200k-$name.log" | tee -a "$OUT/summary.txt"
    if [ -f "$DATA/$name/manifest.json" ]; then
        cp "$DATA/$name/manifest.json" "$OUT/manifest200k-$name.json"
        cp "$DATA/$name/curve.json" "$OUT/curve200k-$name.json"
    fi
}
if want 3; then pretrain seed --cuda-graph; fi
if want 4; then pretrain fast --fast; fi
fi
log "done"
