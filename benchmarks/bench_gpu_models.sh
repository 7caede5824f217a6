#!/usr/bin/env bash
# GPU throughput of every registered model against U-Net (fp32, 256x256, batch 8), and FocusNet++
# with and without its fast path (FOCUSNET_FAST_PATH=0), in about 4 minutes on an H100/H200.
# Usage (repo root, CUDA machine): OUT=results/ bash benchmarks/bench_gpu_models.sh
set -u
OUT=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
R=${WORK:-/tmp/focusnet-gpu}/gpu-models
mkdir -p "$R" "$OUT"
save() { tar czf "$OUT/gpu-models.tar.gz" -C "$(dirname "$R")" gpu-models; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1
bench() {  # name timeout args...
  local name=$1 limit=$2; shift 2
  echo "== $name: focusnet benchmark $*"
  timeout "$limit" $PY -m focusnet.cli benchmark --device cuda --size 256 --batch-size 8 --quiet \
    --json-out "$R/$name.json" --markdown-out "$R/$name.md" "$@" && cat "$R/$name.md"
  save
}
M=focusnetpp:paper,focusnetpp:official,unet
bench fast-fp32 60 --models $M --repeats 5 --warmup 3
FOCUSNET_FAST_PATH=0 bench plain-fp32 60 --models $M --repeats 5 --warmup 3
bench fast-bf16-cl 60 --models $M --repeats 5 --warmup 3 --precision bf16 --channels-last
bench all-fp32 150 --models focusnetpp:paper,focusnetpp:official,focusnetpp:lite,unet,wide_unet,unetpp,attention_unet,r2unet,bcdunet,focusnet,fcn --repeats 3 --warmup 2
save && echo "results: $OUT/gpu-models.tar.gz"
