"""What sealing updates to a task's readers costs, against the compute of a round.

For each built-in demo task (digits with its cnn, breast_cancer with logistic), one interleaved run: a
contributor trains one round on a demo-sized shard and encodes its update, then seals it to the task's
readers (3 validators and the arbiter); a validator judges a round of 10 such updates from plain files, and
again opening each sealed file first (the two alternate which goes first). Reported: the medians, and
sealing's share of the contributor's compute (seal / (train + encode)) and of the validator's (10 opens /
the plain judge). The difference of the two judge timings is also there, but on a shared machine it is mostly
noise: it is a difference of two 20-100 ms timings.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cotrain.learning.tensor_files import encode_update
from cotrain.privacy.sealed import generate_reader_key, open_sealed, reader_public, seal
from cotrain.protocol.round_judge import RevealedUpdate, file_ref, judge, model_file
from cotrain.protocol.task_model import builtin_split, initial_state, train_round
from cotrain.protocol.task_spec import FileRef, TaskSpec, load_spec
from cotrain.protocol.update_binding import update_metadata
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.common import progress, run_standalone, summary

SPECS = Path(__file__).resolve().parents[1] / "node" / "cotrain" / "protocol" / "specs"
CASES = ("digits", "breast_cancer")
UPDATES, READERS, SHARDS = 10, 4, 4  # the demo: 4 contributors' shards; 3 validators and the arbiter read
REPEATS, QUICK_REPEATS = 7, 2


def _timed(work: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    clock = time.perf_counter()
    value = work(*args, **kwargs)
    return time.perf_counter() - clock, value


def _round(
    spec: TaskSpec,
    base: FileRef,
    base_arrays: dict[str, np.ndarray],
    delta: dict[str, torch.Tensor],
    keys: list[X25519PrivateKey],
    times: dict[str, list[float]],
    seed: int,
) -> None:
    """One round of ``UPDATES`` updates near ``delta``: encode and seal each, then judge them plain and
    sealed, one after the other."""
    readers = [reader_public(key) for key in keys]
    rng = np.random.default_rng(seed)
    plain, sealed, revealed = {}, {}, []
    for i in range(UPDATES):
        who = f"0x{i + 1:040x}"
        binding = update_metadata(1, 0, who, base.digest, 100)
        noise = {
            k: torch.from_numpy(rng.standard_normal(v.shape).astype(np.float32)) for k, v in delta.items()
        }
        noised = {k: v + 0.01 * noise[k] for k, v in delta.items()}
        seconds, data = _timed(encode_update, noised, binding)
        times["encode"].append(seconds)
        seconds, envelope = _timed(seal, data, readers, binding)
        times["seal"].append(seconds)
        ref = file_ref(envelope)
        plain[ref.cid], sealed[ref.cid] = data, envelope
        revealed.append(RevealedUpdate(who, ref.cid, hashlib.sha256(data).digest(), 100, i))

    def opened(update: RevealedUpdate) -> bytes:
        expected = {
            **update_metadata(1, 0, update.contributor, base.digest, update.samples),
            "plaintext_digest": "0x" + update.digest.hex(),
        }
        seconds, data = _timed(open_sealed, sealed[update.cid], keys[0], expected, 10**9, readers=readers)
        times["open"].append(seconds)
        return data

    order = [("judge", lambda u: plain[u.cid]), ("judge_sealed", opened)]
    for name, fetch in order if seed % 2 == 0 else order[::-1]:
        seconds, _ = _timed(judge, spec, 1, 0, 10**18, base, base_arrays, revealed, fetch)
        times[name].append(seconds)
    times["update_bytes"] = [len(data)]


def _case(dataset: str, repeats: int, advance: Callable[[], None]) -> dict[str, Any]:
    spec = load_spec(SPECS / f"{dataset}.yaml")
    train = builtin_split(spec)[0]
    shard = train.subset(list(range(len(train) // SHARDS)))
    base_state = initial_state(spec)
    base_arrays = {name: tensor.numpy() for name, tensor in base_state.items()}
    base = file_ref(model_file(1, -1, base_arrays))
    keys = [generate_reader_key() for _ in range(READERS)]
    times: dict[str, list[float]] = {name: [] for name in ("train", "encode", "seal", "open", "judge")}
    times["judge_sealed"] = []
    for repeat in range(repeats):
        seconds, result = _timed(train_round, spec, base_state, shard, repeat)
        times["train"].append(seconds)
        _round(spec, base, base_arrays, result.delta, keys, times, repeat)
        advance()
    size = int(times.pop("update_bytes")[0])
    medians = {name: summary(values, 6) for name, values in times.items()}
    contributor = medians["train"]["median"] + medians["encode"]["median"]
    validator = medians["judge"]["median"]
    return {
        "dataset": dataset,
        "model": spec.model.name,
        "shard_examples": len(shard),
        "update_bytes": size,
        "updates": UPDATES,
        "readers": READERS,
        "seconds": medians,
        "contributor_share": round(medians["seal"]["median"] / contributor, 6),
        "validator_share": round(UPDATES * medians["open"]["median"] / validator, 6),
    }


def run(quick: bool) -> dict[str, Any]:
    """Sealing's cost per case (see the module docstring); ``quick``: two repetitions instead of seven."""
    torch.set_num_threads(1)
    repeats = QUICK_REPEATS if quick else REPEATS
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("sealing", total=len(CASES) * repeats)
        rows = [_case(dataset, repeats, lambda: bar.advance(task)) for dataset in CASES]
    return {"repeats": repeats, "rows": rows, "seconds": round(time.perf_counter() - started, 1)}


def markdown_table(result: dict[str, Any]) -> str:
    """One row per case: the medians and sealing's share of each side's round."""
    lines = [
        "| data | model | update bytes | train s | seal ms | contributor share | judge 10 s | open ms | "
        "judge 10 sealed s | validator share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        s = {name: value["median"] for name, value in row["seconds"].items()}
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['update_bytes']} | {s['train']:.3f} | "
            f"{1000 * s['seal']:.2f} | {row['contributor_share']:.2%} | {s['judge']:.3f} | "
            f"{1000 * s['open']:.2f} | {s['judge_sealed']:.3f} | {row['validator_share']:.2%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement, write its JSON with the machine and versions, and print the markdown table."""
    run_standalone("sealing", __doc__.splitlines()[0], "Two repetitions.", run, markdown_table, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
