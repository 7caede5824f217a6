#!/usr/bin/env bash
# GPU speed of FocusNet++ against U-Net with CUDA graphs (issue 19), in about 4 minutes on an H200:
#   1. the CUDA equivalence tests (tests/engine/test_cuda_graphs.py);
#   2. `focusnet benchmark` (CUDA graphs on, as focusnet train runs): FocusNet++ paper, lite,
#      official and U-Net at 256x256, batch 8, fp32 and bf16 autocast, training and inference;
#   3. benchmarks/bench_gpu_step.py: eager vs graphed vs the layer-by-layer path at batch 8, a
#      batch-size sweep (16, 32, 64), the kernel profile of one training step;
#   4. a 2-epoch `focusnet train` on CUDA (ISIC 2018 crops, 256x256, batch 8, fp32): its
#      train_seconds per epoch against the training images / the benchmark's img/s.
# Usage (repo root, CUDA machine): OUT=dir ISIC=/path/isic2018_task1_512crop bash benchmarks/bench_gpu_fast.sh
set -u
OUT=${OUT:-benchmarks/results/gpu-fast}
ISIC=${ISIC:-${FOCUSNET_DATA:-../shared/data}/isic2018_task1_512crop}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
T0=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" >> "$OUT/gpu.txt"
cat "$OUT/gpu.txt"

timeout 90 $PY -m pytest -q -p no:cacheprovider tests/engine/test_cuda_graphs.py 2>&1 | tail -n 6 | tee "$OUT/tests.txt"
elapsed tests

M=focusnetpp:paper,focusnetpp:lite,focusnetpp:official,unet
for prec in 32-true bf16-mixed; do
  timeout 100 $PY -m focusnet.cli benchmark --device cuda --size 256 --batch-size 8 --precision $prec \
    --models $M --repeats 5 --warmup 3 --min-repeat-time 0.5 --quiet \
    --json-out "$OUT/benchmark-$prec-b8.json" --markdown-out "$OUT/benchmark-$prec-b8.md" && cat "$OUT/benchmark-$prec-b8.md"
  elapsed "benchmark $prec"
done

timeout 150 $PY benchmarks/bench_gpu_step.py --out "$OUT" --iters 8 --repeats 3 --skip grouped --profile-bf16 \
  --models focusnetpp:paper,unet --variants eager,graphed,graphed-plain-cl --sweep-batches 16,32,64 \
  2>&1 | grep -v "^ *[0-9.]* us " | tee "$OUT/step.txt"
elapsed step

RUN=${WORK:-/tmp}/focusnet-gpu-train
rm -rf "$RUN"
timeout 120 $PY -m focusnet.cli train configs/isic2018_focusnetpp.yaml epochs=2 data.source="$ISIC" \
  data.cache_dir="${WORK:-/tmp}/prepared" --out "$RUN" > "$OUT/train.txt" 2>&1
echo "train rc=$?"; tail -n 4 "$OUT/train.txt"
cp "$RUN/logs/metrics.csv" "$OUT/train-metrics.csv" 2>/dev/null
$PY - "$RUN" "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path
run, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [r for r in csv.DictReader(open(run / "logs" / "metrics.csv")) if r.get("train_seconds")]
n_train = len(json.load(open(run / "split.json"))["train"]) if (run / "split.json").exists() else None
bench = json.load(open(out / "benchmark-32-true-b8.json"))
ips = next(r["train"]["images_per_s"]["median"] for r in bench["rows"] if r["label"].startswith("focusnetpp") and "paper" in r["label"])
res = {"train_images": n_train, "benchmark_img_s": ips, "epochs": []}
for r in rows:
    sec = float(r["train_seconds"])
    res["epochs"].append({"epoch": int(r["epoch"]), "train_seconds": sec,
                          "predicted_seconds": n_train / ips if n_train else None,
                          "img_s": n_train / sec if n_train else None})
print(json.dumps(res, indent=1))
(out / "train-vs-benchmark.json").write_text(json.dumps(res, indent=1))
PY
elapsed train
