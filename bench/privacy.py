"""What DP-SGD costs in accuracy and time, against plain local training on the same data.

Each built-in pair (breast_cancer with ``logistic``, flat digits with ``mlp``) is split 75/25 (stratified,
seeded) and trained from the model's initial weights for a few epochs by one contributor, plainly
(:func:`~cotrain.learning.training.train_local`) and with DP-SGD
(:func:`~cotrain.privacy.dp.train_local_dp`) at a noise multiplier chosen by Opacus for each target epsilon
at delta 1e-5 over the whole run. Accuracy is on the held-out quarter; time is one training, one core.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from cotrain.learning.aggregation import apply_delta
from cotrain.learning.data import ArrayDataset, load_builtin, split_train_test
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import train_local
from cotrain.privacy.dp import train_local_dp
from opacus.accountants.utils import get_noise_multiplier

from bench.common import progress, run_standalone, summary

CASES = (("breast_cancer", "logistic", {}), ("digits", "mlp", {"hidden": [64]}))
EPSILONS, DELTA = (1.0, 3.0, 8.0), 1e-5
EPOCHS, BATCH, LR, OPTIMIZER, CLIP = 5, 64, 0.01, "adam", 1.0
SEEDS, QUICK_SEEDS = (0, 1, 2), (0,)


def _model(name: str, params: dict[str, Any], data: ArrayDataset, seed: int) -> torch.nn.Module:
    return build_model(name, params, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed)


def _one(
    name: str, params: dict[str, Any], train: ArrayDataset, test: ArrayDataset, seed: int, sigma: float | None
):
    """(held-out accuracy, seconds, epsilon) of one training; ``sigma`` None trains without privacy."""
    start = model_state(_model(name, params, train, seed))
    hyper = {"epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "optimizer": OPTIMIZER, "seed": seed}
    clock = time.perf_counter()
    if sigma is None:
        result, spent = train_local(_model(name, params, train, seed), start, train, **hyper), math.inf
    else:
        generator = torch.Generator().manual_seed(seed)
        result, spent = train_local_dp(
            _model(name, params, train, seed),
            start,
            train,
            **hyper,
            noise_multiplier=sigma,
            max_grad_norm=CLIP,
            delta=DELTA,
            generator=generator,
        )
    seconds = time.perf_counter() - clock
    accuracy = evaluate(_model(name, params, train, seed), apply_delta(start, result.delta), test).accuracy
    return accuracy, seconds, spent


def run(quick: bool) -> dict[str, Any]:
    """Held-out accuracy, epsilon spent and training time, plain and at each target epsilon, per case.

    Parameters
    ----------
    quick : bool
        One seed; otherwise three.
    """
    torch.set_num_threads(1)
    seeds = QUICK_SEEDS if quick else SEEDS
    rows = []
    started = time.perf_counter()
    # The first training of a process pays for imports and allocator warm-up; keep that out of the timings.
    warm_train, warm_test = split_train_test(load_builtin("breast_cancer"), test_fraction=0.25, seed=0)
    for sigma in (None, 1.0):
        _one("logistic", {}, warm_train, warm_test, 0, sigma)
    with progress() as bar:
        task = bar.add_task("privacy", total=len(CASES) * len(seeds) * (1 + len(EPSILONS)))
        for dataset, name, params in CASES:
            train, test = split_train_test(load_builtin(dataset, flat=True), test_fraction=0.25, seed=0)
            steps_per_epoch = math.ceil(len(train) / BATCH)
            targets: list[float | None] = [None, *EPSILONS]
            for target in targets:
                sigma = (
                    None
                    if target is None
                    else get_noise_multiplier(
                        target_epsilon=target,
                        target_delta=DELTA,
                        sample_rate=1 / steps_per_epoch,
                        steps=EPOCHS * steps_per_epoch,
                    )
                )
                runs = []
                for seed in seeds:
                    bar.update(task, description=f"privacy: {dataset} {name}, epsilon {target}, seed {seed}")
                    runs.append(_one(name, params, train, test, seed, sigma))
                    bar.advance(task)
                rows.append(
                    {
                        "dataset": dataset,
                        "model": name,
                        "target_epsilon": target,
                        "noise_multiplier": None if sigma is None else round(sigma, 4),
                        "epsilon_spent": None
                        if sigma is None
                        else round(statistics.median(r[2] for r in runs), 3),
                        "accuracy": summary([r[0] for r in runs], 4),
                        "seconds": summary([r[1] for r in runs], 3),
                    }
                )
    return {
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "lr": LR,
        "optimizer": OPTIMIZER,
        "max_grad_norm": CLIP,
        "delta": DELTA,
        "test_fraction": 0.25,
        "seeds": list(seeds),
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The rows as a markdown table: accuracy and time against plain training."""
    lines = [
        "| data | model | target eps | sigma | eps spent | accuracy (median) | seconds (median) | x plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain: dict[str, float] = {}
    for row in result["rows"]:
        seconds = row["seconds"]["median"]
        if row["target_epsilon"] is None:
            plain[row["dataset"]] = seconds
        slowdown = seconds / plain[row["dataset"]]
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['target_epsilon'] or 'plain'} | "
            f"{row['noise_multiplier'] or '-'} | {row['epsilon_spent'] or '-'} | "
            f"{row['accuracy']['median']:.4f} | {seconds:.3f} | {slowdown:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement, write its JSON with the machine and versions, and print the markdown table."""
    run_standalone("privacy", __doc__.splitlines()[0], "One seed.", run, markdown_table, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
