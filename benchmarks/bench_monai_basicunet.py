"""Real-data baseline: MONAI BasicUNet on ISIC 2018 at 128x128, under a time budget.

The other side of ``bench_isic_train.py`` (FocusNet++), with the same data: the split comes from
its :func:`seeded_split` (sorted ids of ``$FOCUSNET_DATA/isic2018_task1_512crop`` permuted with
``numpy.random.default_rng(--seed)``; 300 train, 50 val, 50 test) and the pixels from focusnet's
prepared cache (:func:`focusnet.engine.train.load_split_tensors`: the engine's resize, per-image
min-max normalisation and mask rule), written under ``--work``.

Model: ``monai.networks.nets.BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)`` (default
features, ~2.0M parameters). Training: a plain PyTorch loop, Adam ``--lr`` (1e-3, constant),
``monai.losses.DiceCELoss(sigmoid=True)``, batch ``--batch-size`` (8) in the engine's per-epoch
shuffle order, random horizontal and vertical flips (p=0.5 each, the engine's ``augment_batch``).
``--minutes`` is checked after each epoch; ``--epochs`` is the cap. The weights with the best
validation per-image mean Dice are kept and scored on the test split at model resolution
(probability > 0.5, :mod:`focusnet.metrics`, an empty prediction of an empty mask scores 1).

Prints epochs, wall time and test per-image mean Dice; writes JSON to
``benchmarks/results/monai-basicunet-<date>.json`` (``--out`` to change).

Usage:
    python benchmarks/bench_monai_basicunet.py --minutes 25 --threads 1     # the real benchmark
    python benchmarks/bench_monai_basicunet.py --smoke                      # 1 epoch, 8/4/4 images, 32x32
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _train_common import add_isic_protocol_args  # noqa: E402
from bench_isic_train import DATASET, seeded_split  # noqa: E402
from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402
from focusnet.engine.callbacks import EpochShuffleSampler  # noqa: E402
from focusnet.engine.config import TrainConfig  # noqa: E402
from focusnet.engine.module import augment_batch  # noqa: E402
from focusnet.engine.train import SplitTensors, load_split_tensors  # noqa: E402
from focusnet.metrics import confusion_counts, metrics_from_counts, summarize  # noqa: E402
from focusnet.runtime import tune_cpu_allocator  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THRESHOLD = 0.5
FLIPS = {"enabled": True, "hflip": 0.5, "vflip": 0.5, "rot90": 0.0}


@torch.inference_mode()
def counts_of(model: nn.Module, data: SplitTensors, device: torch.device, batch: int = 16) -> torch.Tensor:
    """Per-image TP, FP, FN, TN (N, 4) of ``sigmoid(model) > 0.5`` against the masks, as ``evaluate_run``."""
    model.eval()
    out = []
    for s in range(0, len(data), batch):
        probs = torch.sigmoid(model(data.images[s : s + batch].to(device)).float())
        out.append(confusion_counts(probs > THRESHOLD, data.masks[s : s + batch].to(device) > 0.5).cpu())
    return torch.cat(out)


def train_epoch(model: nn.Module, data: SplitTensors, order: list[int], batch: int, loss_fn: nn.Module,
                opt: torch.optim.Optimizer, device: torch.device) -> float:
    """One pass over ``order`` in batches (a last batch of one image is dropped, as the engine does); mean loss."""
    model.train()
    n = len(order)
    stop = n - 1 if n > batch and n % batch == 1 else n
    total, seen = 0.0, 0
    for s in range(0, stop, batch):
        idx = torch.tensor(order[s : min(s + batch, stop)])
        x, y = augment_batch(data.images[idx], data.masks[idx].float(), FLIPS)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, seen = total + float(loss) * len(idx), seen + len(idx)
    return total / max(seen, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_isic_protocol_args(p, DATASET, minutes=25.0, threads=1)
    p.add_argument("--work", type=Path, default=None, help="folder for the split and cache (default benchmarks/results/work)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/monai-basicunet-<date>.json)")
    p.add_argument("--smoke", action="store_true", help="tiny check: 8/4/4 images, 32x32, 1 epoch, no budget")
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.val, args.test, args.size, args.epochs, args.minutes = 8, 4, 4, 32, 1, None
    try:
        import monai
        from monai.losses import DiceCELoss
        from monai.networks.nets import BasicUNet
    except ImportError:
        print("MONAI is not installed: pip install monai")
        return 2

    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # as bench_isic_train.py: same allocator for both models
    stamp = time.strftime("%Y%m%d-%H%M%S")
    source = (args.source or data_root() / DATASET).resolve()
    work = (args.work or RESULTS / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    ids = get_reader("isic2018").list_items(source).ids
    split = seeded_split(ids, (args.train, args.val, args.test), args.seed)
    split_file = work / f"isic-split-{args.train}-{args.val}-{args.test}-seed{args.seed}.json"
    split_file.write_text(json.dumps(split, indent=1) + "\n")
    budget = "no time budget (--epochs only)" if args.minutes is None else f"{args.minutes} min (checked after each epoch)"
    print(f"ISIC 2018 {source}: {len(ids)} pairs; split {args.train}/{args.val}/{args.test} -> {split_file}")
    print(f"budget: {budget}")

    # The same cache settings as bench_isic_train (channels 3, normalization minmax, mask_rule binary).
    config = TrainConfig(
        data={"format": "isic2018", "source": str(source), "split": str(split_file), "cache_dir": str(work / "prepared")},
        size=args.size,
    )
    data = load_split_tensors(config, split, parts=("train", "val", "test"))
    train_data, val_data, test_data = data["train"], data["val"], data["test"]

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1).to(device)
    params = sum(q.numel() for q in model.parameters())
    loss_fn = DiceCELoss(sigmoid=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sampler = EpochShuffleSampler(len(train_data), args.seed)

    best_dice, best_epoch, best_state = -1.0, 0, None
    history = []
    t0 = time.perf_counter()
    epoch = 0
    while epoch < args.epochs:
        sampler.set_epoch(epoch)
        loss = train_epoch(model, train_data, list(sampler), args.batch_size, loss_fn, opt, device)
        val_dice = float(metrics_from_counts(counts_of(model, val_data, device), empty_score=1.0)["dice"].mean())
        epoch += 1
        elapsed = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": round(loss, 5), "val_dice": round(val_dice, 5), "wall_s": round(elapsed, 1)})
        print(f"epoch {epoch}: train loss {loss:.4f}, val Dice {val_dice:.4f}, {elapsed:.0f} s", flush=True)
        if val_dice > best_dice:
            best_dice, best_epoch = val_dice, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if args.minutes is not None and elapsed >= args.minutes * 60:
            break
    train_s = time.perf_counter() - t0

    model.load_state_dict(best_state)
    summary = summarize(counts_of(model, test_data, device), test_data.ids, empty_score=1.0,
                        protocol={"split": "test", "resolution": f"{args.size}x{args.size} (model input)", "threshold": THRESHOLD})
    mean, std = summary["mean"], summary["std"]
    result = {
        "benchmark": "monai-basicunet",
        "date": stamp,
        "data": str(source),
        "split_file": str(split_file),
        "counts": {"train": args.train, "val": args.val, "test": args.test},
        "model": "monai.BasicUNet",
        "params": params,
        "size": args.size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "loss": "DiceCELoss(sigmoid=True)",
        "flips": True,
        "threads": args.threads,
        "device": args.device,
        "budget_minutes": args.minutes,
        "epochs": epoch,
        "best_epoch": best_epoch,
        "best_val_dice": best_dice,
        "train_wall_s": round(train_s, 1),
        "test_mean_dice": mean["dice"],
        "test_std_dice": std["dice"],
        "test_mean_jaccard": mean["jaccard"],
        "test_std_jaccard": std["jaccard"],
        "test_pooled_dice": summary["pooled"]["dice"],
        "test_thresholded_jaccard": summary["thresholded_jaccard"],
        "threshold": THRESHOLD,
        "aggregation": "per-image mean",
        "empty_score": 1.0,
        "history": history,
        "torch": torch.__version__,
        "monai": monai.__version__,
    }
    out = args.out or RESULTS / f"monai-basicunet-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"epochs {epoch} (best {best_epoch}), training wall time {train_s:.1f} s; BasicUNet {params / 1e6:.2f}M params")
    print(f"test per-image mean Dice: {mean['dice']:.4f} (std {std['dice']:.4f}), pooled {summary['pooled']['dice']:.4f} "
          f"at {args.size}x{args.size}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
