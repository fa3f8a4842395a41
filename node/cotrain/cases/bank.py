"""The bank case: card-fraud detection across banks that may not share their customers' transactions.

The transactions come from a seeded numpy generator, documented here so anyone can judge what it makes. Each
bank has its own customers and fraud rate (``BANKS``): a city bank with young, online-shopping customers and
1.2% fraud, a rural one with older customers buying groceries and fuel and 0.5% fraud, a travel bank with 1.8%
and a savings bank with 0.8%. A transaction is first drawn fraudulent or not at its bank's rate, then:

- ``amount``: log-normal, median e^3.5 (about 33) for legitimate ones, e^4.3 (about 74) for fraud, sigma 1;
- ``hour``: legitimate ones around 14h (normal, sd 4); half of the frauds uniform over the day, half around
  2h (sd 2); wrapped to 0-23;
- ``merchant`` (categorical): the bank's mix for legitimate ones, mostly online, electronics and travel for
  fraud;
- ``distance_km`` from home: exponential, mean 8 km, or 40 km for fraud;
- ``card_present`` (categorical ``yes``/``no``): yes for 75% of legitimate ones, 30% of frauds;
- ``customer_age``: the bank's customers' (normal, sd 12, within 18-90), whatever the transaction.

No feature gives fraud away alone, and fraud is rare everywhere (under 2% overall), so accuracy says little:
validators report average precision (``auprc``) and the share of frauds caught when flagging at most 1% of
legitimate transactions (``recall_at_fpr:0.01``); local training weighs fraud 25 times (``class_weights``).
The held-out set is the owner's audit sample: transactions drawn alike from every bank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cotrain.cases import CaseData, Table, check_contributors

SUMMARY = "card fraud (about 1% positives) at banks with their own customers and fraud rates; AUPRC"
MERCHANTS = ("grocery", "fuel", "restaurant", "online", "travel", "electronics")
FRAUD_MERCHANTS = (0.05, 0.05, 0.05, 0.45, 0.15, 0.25)
HEADER = ["amount", "hour", "merchant", "distance_km", "card_present", "customer_age", "fraud"]
TRANSACTIONS_PER_BANK = 5000
HELD_OUT_PER_BANK = 1500
SEED = 0


@dataclass(frozen=True)
class Bank:
    """A bank's customers: its fraud rate, their mean age and where they shop (``MERCHANTS`` order)."""

    name: str
    fraud_rate: float
    age_mean: float
    merchants: tuple[float, ...]


BANKS = (
    Bank("city", 0.012, 32.0, (0.20, 0.05, 0.25, 0.35, 0.05, 0.10)),
    Bank("rural", 0.005, 55.0, (0.45, 0.30, 0.10, 0.07, 0.03, 0.05)),
    Bank("travel", 0.018, 44.0, (0.15, 0.10, 0.20, 0.15, 0.35, 0.05)),
    Bank("savings", 0.008, 62.0, (0.40, 0.15, 0.20, 0.15, 0.05, 0.05)),
)


def transactions(bank: Bank, count: int, seed: int) -> Table:
    """``count`` transactions of ``bank`` drawn with ``seed``, as CSV text (label ``fraud``: yes or no)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    fraud = rng.random(count) < bank.fraud_rate
    amount = np.exp(rng.normal(np.where(fraud, 4.3, 3.5), 1.0))
    night = rng.random(count) < 0.5
    fraud_hour = np.where(night, rng.normal(2.0, 2.0, count), rng.uniform(0.0, 24.0, count))
    hour = np.floor(np.where(fraud, fraud_hour, rng.normal(14.0, 4.0, count))).astype(np.int64) % 24
    merchant = np.where(
        fraud,
        rng.choice(len(MERCHANTS), count, p=FRAUD_MERCHANTS),
        rng.choice(len(MERCHANTS), count, p=bank.merchants),
    )
    distance = rng.exponential(np.where(fraud, 40.0, 8.0))
    present = rng.random(count) < np.where(fraud, 0.30, 0.75)
    age = np.clip(np.round(rng.normal(bank.age_mean, 12.0, count)), 18, 90).astype(np.int64)
    rows = [
        [
            f"{amount[i]:.2f}",
            str(hour[i]),
            MERCHANTS[merchant[i]],
            f"{distance[i]:.1f}",
            "yes" if present[i] else "no",
            str(age[i]),
            "yes" if fraud[i] else "no",
        ]
        for i in range(count)
    ]
    return list(HEADER), rows


def case_data(contributors: int) -> CaseData:
    """One bank per contributor (``BANKS`` in order), and a held-out sample from every bank."""
    check_contributors(contributors, [bank.name for bank in BANKS], "banks")
    shards = [
        transactions(bank, TRANSACTIONS_PER_BANK, SEED + i) for i, bank in enumerate(BANKS[:contributors])
    ]
    held_out: list[list[str]] = []
    for i, bank in enumerate(BANKS):
        held_out += transactions(bank, HELD_OUT_PER_BANK, SEED + 100 + i)[1]
    return CaseData(shards, (list(HEADER), held_out))
