"""The hospital case: breast-cancer diagnosis from raw measurements, one hospital per contributor.

The data is the Wisconsin breast cancer set bundled with scikit-learn (569 patients, 30 measurements each),
written as a hospital keeps it: raw values, the diagnosis as text. A seeded quarter is the task owner's
held-out set; the rest is divided among up to four hospitals with a Dirichlet(1) label skew (Hsu et al. 2019),
so each sees its own share of malignant cases. The spec's column contract pins the standardization (each
column's mean and population standard deviation over the whole set), so every hospital scales its raw file
alike; validators report AUROC beside accuracy.
"""

from __future__ import annotations

import numpy as np

from cotrain.cases import CaseData, Table, check_contributors
from cotrain.learning.partition import partition_dirichlet

SUMMARY = "breast-cancer diagnosis from raw measurements, one hospital each; AUROC"
HOSPITALS = ("north", "south", "east", "west")
LABEL = "diagnosis"
SEED = 0
HELD_OUT_FRACTION = 0.25


def raw_table() -> Table:
    """The whole set as a CSV table: the 30 measurements as exact float64 text, then ``diagnosis``."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    header = [*(str(name) for name in bunch.feature_names), LABEL]
    rows = [
        [*(repr(float(value)) for value in x), str(bunch.target_names[y])]
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]
    return header, rows


def case_data(contributors: int) -> CaseData:
    """The held-out quarter and ``contributors`` hospitals' label-skewed shares of the rest."""
    check_contributors(contributors, HOSPITALS, "hospitals")
    header, rows = raw_table()
    order = np.random.Generator(np.random.PCG64(SEED)).permutation(len(rows))
    cut = round(len(rows) * HELD_OUT_FRACTION)
    held_out, train = order[:cut], order[cut:]
    labels = np.array([rows[i][-1] == "benign" for i in train], dtype=np.int64)
    parts = partition_dirichlet(labels, contributors, alpha=1.0, seed=SEED, min_size=40)
    shards = [(header, [rows[train[j]] for j in part]) for part in parts]
    return CaseData(shards, (header, [rows[i] for i in sorted(held_out)]))
