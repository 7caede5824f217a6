#!/usr/bin/env bash
# GPU figures for issue 7, in one call (about 8 minutes on an H100/H200):
#   1. `focusnet benchmark` FocusNet++ (paper, official) vs U-Net at 256x256: fp32, bf16 autocast
#      + channels_last (batch 8 and 32), and torch.compile;
#   2. the accuracy effect of bf16 mixed precision: the ISIC training benchmark
#      (bench_isic_train.py: 300/50/50 pairs of isic2018_task1_512crop at 128x128, 14 epochs,
#      Adam 1e-3 cosine, flips) trained twice, 32-true and bf16-mixed, same seed.
# Usage (repo root, CUDA machine): OUT=results/ [WORK=/tmp] ISIC=/path/isic2018_task1_512crop bash benchmarks/bench_gpu.sh
set -u
OUT=${OUT:-benchmarks/results/gpu}
ISIC=${ISIC:-${FOCUSNET_DATA:-../shared/data}/isic2018_task1_512crop}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
R=${WORK:-/tmp/focusnet-gpu}/gpu
mkdir -p "$R" "$OUT"
save() { tar czf "$OUT/gpu.tar.gz" -C "$(dirname "$R")" --exclude "work-*" gpu; }  # after every step: a killed call keeps what finished
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$R/gpu.txt"
M=focusnetpp:paper,focusnetpp:official,unet
bench() {  # name timeout args...
  local name=$1 limit=$2; shift 2
  echo "== $name: focusnet benchmark $*"
  timeout "$limit" $PY -m focusnet.cli benchmark --device cuda --size 256 --repeats 5 --warmup 3 \
    --json-out "$R/$name.json" --markdown-out "$R/$name.md" "$@" && cat "$R/$name.md"
  save
}
bench fp32-b8 90 --models $M --batch-size 8
bench bf16-cl-b8 90 --models $M --batch-size 8 --precision bf16 --channels-last
for p in 32-true bf16-mixed; do
  echo "== ISIC accuracy, precision $p"
  timeout 120 $PY benchmarks/bench_isic_train.py --source "$ISIC" --device cuda --precision $p \
    --epochs 14 --minutes 30 --lr 1e-3 --lr-schedule cosine --flips --work "$R/work-$p" --out "$R/isic-$p.json" 2>&1 | tail -n 15
  save
done
bench bf16-cl-b32 90 --models $M --batch-size 32 --precision bf16 --channels-last
bench compile-bf16-cl-b8 150 --models focusnetpp:paper,unet --batch-size 8 --precision bf16 --channels-last --compile --repeats 3
save && echo "results: $OUT/gpu.tar.gz"
