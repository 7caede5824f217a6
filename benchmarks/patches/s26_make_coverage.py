"""Soft training targets for the head-to-head (session 26's ablation, with ``s26-soft-training-targets.patch``).

Writes, for the head-to-head's 350 training ids, each mask's coverage at 128x128
(:func:`focusnet.data.preprocess.mask_coverage`: the cache's anti-aliased resize, *not* binarised), and checks that
binarising it at 0.5 gives the prepared cache's mask. The patched engine reads the file named by
``$FOCUSNET_SOFT_TRAIN_MASKS`` in place of the training masks (validation and test keep the binary masks).

Usage:
    python benchmarks/patches/s26_make_coverage.py --out /tmp/coverage_train_128.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from focusnet.data.paths import data_root  # noqa: E402
from focusnet.data.preprocess import mask_coverage, resize_mask  # noqa: E402
from focusnet.data.readers import get_reader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write (ids, coverage)")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    ids = json.loads((ROOT / "benchmarks/splits/isic_head_to_head.json").read_text())["train"]
    items = {it.id: it for it in get_reader("isic2018").list_items(data_root() / "isic2018_task1_512crop_all").items}
    coverage = np.zeros((len(ids), args.size, args.size), np.float32)
    for k, item_id in enumerate(ids):
        _, mask = items[item_id].load()
        coverage[k] = mask_coverage(mask, args.size)
        if not np.array_equal(coverage[k] >= 0.5, resize_mask(mask, args.size)):
            raise SystemExit(f"{item_id}: the binarised coverage differs from the cache's mask")
    fractional = float(((coverage > 0.02) & (coverage < 0.98)).mean())
    np.savez(args.out, ids=np.array(ids), coverage=coverage)
    print(f"wrote {args.out}: {len(ids)} masks, {fractional:.1%} of the pixels fractional")


if __name__ == "__main__":
    main()
