"""Seconds per training epoch of the UltraGCN backbone: batch-shared vs per-positive negatives.

Usage::

    python benchmarks/epoch_speed.py [--dataset tiktok] [--epochs 10] [--threads 1] [--negatives 50]

Fits ``UltraGCNRecommender`` (invrec defaults, no validation, no early stopping) for a fixed
number of epochs with each sampling scheme at the same number of negatives per positive, and
prints the mean seconds per epoch (the ``fit_time`` of ``history_``, first epoch dropped as warm-up)
and their ratio, with the machine's load average so that a busy machine shows. The full
benchmark (``run.py``) measures the same thing on converged fits; this script isolates it in a
minute, for a quiet-machine figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def epoch_seconds(split, sampling, epochs, negatives):
    from invrec.baselines import UltraGCNRecommender

    model = UltraGCNRecommender(negative_sampling=sampling, n_negatives=negatives, max_epochs=epochs,
                                early_stopping=False, random_state=0, device="cpu")
    model.fit(split.train, item_features=split.item_features)
    times = [h["fit_time"] for h in model.history_][1:]
    return sum(times) / len(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="tiktok", choices=["tiktok", "lastfm"])
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--negatives", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is dropped as warm-up)")

    import torch

    sys.path.insert(0, str(HERE))
    import protocol

    torch.set_num_threads(args.threads)
    folder = protocol.dataset_folder(args.dataset, args.data_dir)
    if not folder.is_dir():
        print(f"skip: {folder} does not exist")
        return 0
    split = protocol.load_split(args.dataset, args.data_dir)
    load_before = os.getloadavg()[0]
    shared = epoch_seconds(split, "shared", args.epochs, args.negatives)
    per_positive = epoch_seconds(split, "per_positive", args.epochs, args.negatives)
    row = {"dataset": args.dataset, "negatives_per_positive": args.negatives, "threads": args.threads,
           "epochs": args.epochs, "shared_s_per_epoch": round(shared, 3),
           "per_positive_s_per_epoch": round(per_positive, 3), "ratio": round(per_positive / shared, 1),
           "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
