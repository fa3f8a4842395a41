"""`cotrain demo`: a whole network on one machine, one operating-system process per participant.

The task owner posts a built-in task, or a seed case (``--case``: a hospital, a bank, a phone fleet); each
contributor process gets a private shard of the training data (written to its own folder, never seen by the
others; a case's as the raw CSV file its owner would keep); validator processes judge and propose; everyone
settles; then an audit re-runs every round from chain events and storage alone.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils import to_checksum_address
from rich.console import Console
from rich.table import Table

from cotrain.cases import case_files, get_case
from cotrain.chain.market import Market, RoundStatus, TaskStatus
from cotrain.errors import ConfigError, CotrainError
from cotrain.learning.attacks import get_attack, live_attack_names
from cotrain.learning.data import ArrayDataset
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.local_data import load_local_data
from cotrain.learning.partition import partition_iid
from cotrain.localnet import directory_lock, local_network
from cotrain.privacy.dp import Mechanism, noise_for_epsilon
from cotrain.privacy.sealed import generate_reader_key, reader_public_hex, save_reader_key
from cotrain.progress import progress_reporter
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec, with_held_out_digest
from cotrain.roles.audit_report import audit_summary
from cotrain.roles.auditor import audit_task
from cotrain.roles.owner import post_task
from cotrain.roles.task_view import TaskView
from cotrain.roles.timings import merge

DATASETS = ("digits", "breast_cancer")
MARKER = ".cotrain-demo"


@dataclass(frozen=True)
class DemoSettings:
    """What `cotrain demo` runs."""

    contributors: int = 4
    validators: int = 3
    rounds: int = 5
    dataset: str = "digits"
    storage: str = "embedded"
    directory: Path = Path(".cotrain/demo")
    timeout_s: float = 900.0
    attackers: tuple[str, ...] = ()  # attack names, one per attacking contributor (the last ones)
    block_time: float | None = 1.0  # seconds per anvil block; None mines one block per transaction
    mixed_mining: bool = True  # with block_time, also mine each transaction as it arrives
    poll_s: float = 2.0  # longest wait between looks at the chain (the task's events wake a process at once)
    local_epochs: int | None = None  # overrides the built-in spec's (benchmarks: a heavier workload)
    # Seconds of the validation deadline and of the challenge window (which must be at least as long): short,
    # so rounds finalize quickly, yet ample for validators that judge a round in a second or two.
    window_s: int = 10
    privacy: str = ""  # "", "encrypted", "dp:EPS", "both" or "both:EPS" (see parse_privacy)
    case: str = ""  # a seed case (cotrain.cases) instead of the built-in data set


def parse_attackers(text: str, contributors: int) -> tuple[str, ...]:
    """Read ``--attackers`` (e.g. ``"sign_flip:1,free_rider:2"``) into one attack name per attacker.

    Raises
    ------
    ConfigError
        For an unknown attack, one that cannot run live, a bad count, or more attackers than contributors.
    """
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        attack = get_attack(name.strip())
        if not attack.live:
            raise ConfigError(
                f"attack {attack.name!r} needs the other contributors' updates and cannot run live; "
                f"live attacks are {', '.join(live_attack_names())}"
            )
        if count and not count.strip().isdigit():
            raise ConfigError(f"--attackers: {part!r} is not NAME or NAME:COUNT")
        names += [attack.name] * (int(count) if count else 1)
    if len(names) >= contributors:
        raise ConfigError(
            f"--attackers asks for {len(names)} attackers among {contributors} contributors; "
            "leave at least one honest contributor (raise --contributors)"
        )
    return tuple(names)


DEFAULT_DEMO_EPSILON = 8.0
DEMO_DELTA = 1e-5
DEMO_CLIP_NORM = 1.0
DP_LR = 0.5


def parse_privacy(text: str) -> tuple[bool, float | None]:
    """Read ``--privacy`` into (sealed, max epsilon or None): ``encrypted``, ``dp:EPS``, ``both`` (epsilon
    8) or ``both:EPS``; empty for public updates.

    Raises
    ------
    ConfigError
        For any other text, or an epsilon that is not a positive number.
    """
    if not text:
        return False, None
    kind, _, value = text.partition(":")
    if kind == "encrypted" and not value:
        return True, None
    if kind in ("dp", "both") and (value or kind == "both"):
        try:
            epsilon = float(value) if value else DEFAULT_DEMO_EPSILON
        except ValueError:
            epsilon = -1.0
        if not (0 < epsilon < float("inf")):
            raise ConfigError(f"--privacy {text}: epsilon must be a positive number, e.g. dp:8")
        return kind == "both", epsilon
    raise ConfigError(f"--privacy must be encrypted, dp:EPS, both or both:EPS, not {text!r}")


def demo_privacy(
    spec: TaskSpec, readers: dict[str, str], epsilon: float | None, smallest_shard: int
) -> dict | None:
    """The ``privacy`` section of the demo spec: sealed to ``readers`` (account -> public key) when given,
    and DP-SGD whose noise keeps a contributor with ``smallest_shard`` examples within ``epsilon`` over all
    the task's rounds."""
    section: dict = {}
    if readers:
        section["readers"] = [{"account": account, "key": key} for account, key in readers.items()]
    if epsilon is not None:
        batches = math.ceil(smallest_shard / spec.training.batch_size)
        steps = spec.rounds * spec.training.local_epochs * batches
        section["dp"] = {
            "mechanism": "sample",
            "noise_multiplier": noise_for_epsilon(
                epsilon, DEMO_DELTA, lambda sigma: [Mechanism.sample(sigma, 1 / batches, steps)]
            ),
            "clip_norm": DEMO_CLIP_NORM,
            "delta": DEMO_DELTA,
            "max_epsilon": epsilon,
        }
    return section or None


def demo_spec(
    settings: DemoSettings,
    arbiter: str,
    validators: list[str],
    readers: dict[str, str] | None = None,
    smallest_shard: int = 1,
) -> TaskSpec:
    """The built-in task for ``settings.dataset`` (or the seed case ``settings.case``, its held-out digest
    not yet pinned), resized to the demo's participants and rounds, with ``arbiter`` ruling on challenges
    (neither the account that posts it nor a validator), and the privacy ``settings.privacy`` asks for
    (``readers``: account -> reader public key)."""
    case = settings.case
    if case:
        if settings.privacy:
            raise ConfigError("--case runs without --privacy; leave one of them out")
        path = get_case(case).spec_path
    elif settings.dataset not in DATASETS:
        raise ConfigError(f"--dataset must be one of {DATASETS}, not {settings.dataset!r}")
    else:
        path = Path(str(files("cotrain.protocol") / "specs" / f"{settings.dataset}.yaml"))
    source = f"demo {case or settings.dataset} spec"
    data = load_spec(path, pinning_held_out=bool(case)).model_dump(mode="json")
    data["rounds"] = settings.rounds
    data["contributors"].update(min=min(2, settings.contributors), max=settings.contributors)
    data["validators"].update(addresses=validators, quorum=len(validators) // 2 + 1)
    data["arbiter"] = arbiter
    data["phases"].update(validation=settings.window_s, challenge=settings.window_s)
    if settings.local_epochs is not None:
        data["training"]["local_epochs"] = settings.local_epochs
    sealed, epsilon = parse_privacy(settings.privacy)
    if epsilon is not None:
        # DP-SGD wants other settings than plain training: plain SGD on batches of a quarter of a shard, at a
        # larger step (docs/privacy.md, accuracy against epsilon).
        data["training"].update(optimizer="sgd", lr=DP_LR, batch_size=max(1, smallest_shard // 4))
    if sealed or epsilon is not None:
        resized = validate_spec(data, source=source)
        data["privacy"] = demo_privacy(resized, (readers or {}) if sealed else {}, epsilon, smallest_shard)
    return validate_spec(data, source=source, pinning_held_out=bool(case))


def _fresh_directory(directory: Path) -> Path:
    directory = directory.resolve()
    if directory.exists():
        if any(directory.iterdir()) and not (directory / MARKER).exists():
            raise ConfigError(f"{directory} exists and is not a demo folder; pass another --dir")
        with directory_lock(directory):  # a demo still running there keeps its files
            shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).touch()
    return directory


def _spawn(command: list[str], key: str, folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    # One thread per process: the participants share this machine's cores, as they would not in real life.
    env = {
        **os.environ,
        "COTRAIN_PRIVATE_KEY": key,
        "PYTHONWARNINGS": "ignore",
        "COLUMNS": "160",
        "OMP_NUM_THREADS": "1",
    }
    log = (folder / "log.txt").open("w", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "cotrain", *command], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def run_demo(settings: DemoSettings, *, console: Console) -> dict:
    """Run the demo network to the end and return its summary (see the `--summary` option)."""
    n, v = settings.contributors, settings.validators
    directory = _fresh_directory(settings.directory)
    started = time.monotonic()
    # Dev accounts: 0 the task owner, 1 the arbiter, then the validators, then the contributors.
    first_validator, first_contributor = 2, 2 + v
    with local_network(
        directory,
        storage=settings.storage,
        accounts=2 + v + n,
        block_time=settings.block_time,
        mixed_mining=settings.mixed_mining,
        # With IPFS, every participant its own node, peered: files travel between them as between hospitals.
        participants=[*(f"validator-{i}" for i in range(v)), *(f"contributor-{i}" for i in range(n))],
    ) as net:
        owner, arbiter = net.signer(0), net.signer(1)
        validators = [net.signer(first_validator + i) for i in range(v)]
        keys = net.anvil.private_keys  # anvil's public test keys, handed to each participant's process

        market, store = net.config.connect(owner)
        plain = demo_spec(replace(settings, privacy=""), arbiter.address, [s.address for s in validators])
        data_files, sizes, held_out_file = _write_data(plain, settings, directory)
        held_out = _held_out(plain, held_out_file) if held_out_file else builtin_split(plain)[1]
        sealed, _ = parse_privacy(settings.privacy)
        reader_keys = _reader_keys(directory, arbiter.address, [s.address for s in validators], sealed)
        readers = {account: reader_public_hex(key) for account, (key, _) in reader_keys.items()}
        spec = demo_spec(
            settings,
            arbiter.address,
            [s.address for s in validators],
            readers,
            min(sizes),
        )
        if held_out_file:
            spec = with_held_out_digest(spec, dataset_digest(held_out))
        task_id, spec = post_task(market, store, spec)
        console.print(
            f"posted task {task_id} ({spec.name}): {n} contributors, {v} validators (quorum "
            f"{spec.validators.quorum}), {spec.rounds} rounds, storage {settings.storage}"
        )
        common = ["--task", str(task_id), "--poll", str(settings.poll_s)]
        processes: dict[str, subprocess.Popen] = {}
        folders: dict[str, Path] = {}
        attacks = dict(enumerate(settings.attackers, start=n - len(settings.attackers)))
        roles: dict[str, str] = {}
        for i, data_file in enumerate(data_files):
            folder = directory / f"contributor-{i}"
            folders[f"contributor-{i}"] = folder
            roles[net.signer(first_contributor + i).address.lower()] = attacks.get(i, "honest")
            attack = ["--attack", attacks[i]] if i in attacks else []
            processes[f"contributor-{i}"] = _spawn(
                [
                    "contribute",
                    *common,
                    "--network",
                    str(net.network_file(f"contributor-{i}")),
                    "--data",
                    str(data_file),
                    "--state",
                    str(folder / "state"),
                    "--timings",
                    str(folder / "timings.jsonl"),
                    *attack,
                ],
                keys[first_contributor + i],
                folder,
            )
        for i in range(v):
            folder = directory / f"validator-{i}"
            folders[f"validator-{i}"] = folder
            key_file = reader_keys.get(validators[i].address, (None, None))[1]
            processes[f"validator-{i}"] = _spawn(
                [
                    "validate",
                    *common,
                    "--network",
                    str(net.network_file(f"validator-{i}")),
                    "--timings",
                    str(folder / "timings.jsonl"),
                    "--state",
                    str(folder / "state"),
                    *(["--reader-key", str(key_file)] if key_file else []),
                    *(["--data", str(held_out_file)] if held_out_file else []),
                ],
                keys[first_validator + i],
                folder,
            )
        _print_participants(console, net.anvil.addresses, v, roles, directory)
        try:
            _watch(market, task_id, spec.rounds, processes, folders, settings.timeout_s, console)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
        escrow = market.get_task(task_id).escrow
        if escrow:
            market.withdraw_refund(task_id)
        view = TaskView(market, store, task_id)
        # The arbiter, a reader, audits fully; anyone else can run only the public checks.
        audit = audit_task(view, held_out, reader_keys.get(arbiter.address, (None, None))[0])
        summary = _summary(market, task_id, settings, audit, folders, time.monotonic() - started)
        if sealed:
            public = audit_summary(task_id, audit_task(view, held_out))
            summary["public_audit"] = {
                **{
                    key: public[key]
                    for key in ("rounds_passed", "rounds_failed", "public_checks", "needs_a_reader")
                },
                "problems": [problem for r in public["rounds"] for problem in r["problems"]],
            }
        summary["contributor_results"] = _contributor_results(roles, audit, summary["rewards"])
        summary["market_balance_wei"] = str(market.client.w3.eth.get_balance(market.address))
    _print_summary(console, summary)
    return summary


def _write_data(
    spec: TaskSpec, settings: DemoSettings, directory: Path
) -> tuple[list[Path], list[int], Path | None]:
    """Each contributor's data file in its folder and its number of examples, and the held-out file
    (``None``: the built-in split)."""
    if settings.case:
        written = case_files(settings.case, directory, settings.contributors)
        return written.shards, written.sizes, written.held_out
    train, _ = builtin_split(spec)
    paths, sizes = [], []
    for i, part in enumerate(partition_iid(len(train), settings.contributors, 0)):
        shard = train.subset(part)
        paths.append(directory / f"contributor-{i}" / "data.npz")
        paths[-1].parent.mkdir()
        np.savez(paths[-1], features=shard.features, labels=shard.labels)
        sizes.append(len(shard))
    return paths, sizes, None


def _held_out(spec: TaskSpec, path: Path) -> ArrayDataset:
    """The owner's held-out file, read through the spec's column contract."""
    return load_local_data(
        path,
        input_shape=tuple(spec.data.input_shape),
        num_classes=spec.data.num_classes,
        contract=spec.data.columns,
    )


def _reader_keys(
    directory: Path, arbiter: str, validators: list[str], sealed: bool
) -> dict[str, tuple[X25519PrivateKey, Path]]:
    """A fresh reader key for the arbiter and each validator (account -> key and its file) when the demo
    seals its updates; none otherwise."""
    if not sealed:
        return {}
    folder = directory / "reader-keys"
    folder.mkdir()
    keys = {}
    for name, account in [("arbiter", arbiter), *((f"validator-{i}", a) for i, a in enumerate(validators))]:
        key = generate_reader_key()
        keys[account] = (key, save_reader_key(folder / f"{name}.pem", key))
    return keys


def _print_participants(
    console: Console, addresses: tuple[str, ...], validators: int, roles: dict[str, str], directory: Path
) -> None:
    """Which dev account plays which part, and where each process logs."""
    table = Table(title="participants (anvil dev accounts)")
    for column in ("#", "address", "role", "log"):
        table.add_column(column, no_wrap=column != "log")
    table.add_row("0", addresses[0], "task owner", "-")
    table.add_row("1", addresses[1], "arbiter (rules on challenges; none are filed here)", "-")
    for i in range(validators):
        table.add_row(
            str(2 + i), addresses[2 + i], "validator", str(directory / f"validator-{i}" / "log.txt")
        )
    for i, (address, role) in enumerate(roles.items()):
        label = "contributor" if role == "honest" else f"contributor, attacker ({role})"
        table.add_row(
            str(2 + validators + i),
            to_checksum_address(address),
            label,
            str(directory / f"contributor-{i}" / "log.txt"),
        )
    console.print(table)


def _watch(
    market: Market,
    task_id: int,
    rounds: int,
    processes: dict[str, subprocess.Popen],
    folders: dict[str, Path],
    timeout_s: float,
    console: Console,
) -> None:
    """Show progress until every participant process has finished; fail loudly if one dies."""
    deadline = time.monotonic() + timeout_s
    with progress_reporter(console, "rounds finalized") as progress:
        while any(p.poll() is None for p in processes.values()):
            for name, process in processes.items():
                if process.poll() not in (None, 0):
                    tail = (folders[name] / "log.txt").read_text(encoding="utf-8")[-3000:]
                    raise CotrainError(
                        f"{name} exited with status {process.returncode}; its log ends:\n{tail}"
                    )
            if time.monotonic() > deadline:
                raise CotrainError(
                    f"the demo did not finish within {timeout_s:.0f} s; logs are in the demo folder"
                )
            task = market.get_task(task_id)
            done = sum(
                market.get_round(task_id, r).status == RoundStatus.FINALIZED
                for r in range(min(task.current_round + 1, rounds))
            )
            state = (
                task.status.name.lower()
                if task.status != TaskStatus.ACTIVE
                else f"round {task.current_round}"
            )
            progress.update(done, rounds, description=f"rounds finalized ({state})")
            time.sleep(0.5)


def _summary(
    market: Market,
    task_id: int,
    settings: DemoSettings,
    audit: list,
    folders: dict[str, Path],
    total_s: float,
) -> dict:
    events = market.events(task_id=task_id)
    block_time = {}
    for event in events:
        if event.name in ("RoundAccepted", "RoundFailed") and event.block not in block_time:
            block_time[event.block] = market.client.w3.eth.get_block(event.block)["timestamp"]
    starts = {}
    for event in events:
        if event.name == "RoundScheduled":
            starts[event.args["round"]] = event.args["startsAt"]  # the last schedule holds the real start
    ended = {
        e.args["round"]: block_time[e.block] for e in events if e.name in ("RoundAccepted", "RoundFailed")
    }
    timings = _timing_split(folders)
    rewards: dict[str, int] = {}
    for event in events:
        if event.name == "RewardClaimed":
            rewards[event.args["account"]] = rewards.get(event.args["account"], 0) + event.args["amount"]
    audited = audit_summary(task_id, audit)
    return {
        "task_id": task_id,
        "dataset": settings.case or settings.dataset,
        "storage": settings.storage,
        "contributors": settings.contributors,
        "validators": settings.validators,
        "total_s": round(total_s, 2),
        "rounds": [
            {
                "round": r.round,
                "status": r.status,
                "accuracy": r.accuracy,
                "metrics": r.metrics,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "model_cid": r.model_cid,
                "duration_s": ended.get(r.round, 0) - starts.get(r.round, 0) if r.round in ended else None,
                "seconds": timings.get(r.round, {}),
            }
            for r in audit
        ],
        "audit": {"rounds_passed": audited["rounds_passed"], "rounds_failed": audited["rounds_failed"]},
        "rewards": {account: str(amount) for account, amount in sorted(rewards.items())},
    }


def _contributor_results(roles: dict[str, str], audit: list, rewards: dict[str, str]) -> list[dict]:
    """Per contributor: honest or its attack, the reason of each round's verdict, the wei it claimed and
    (DP tasks) the epsilon its last update declared spent."""
    paid = {account.lower(): int(amount) for account, amount in rewards.items()}
    reasons: dict[str, list[str]] = {address: [] for address in roles}
    spent: dict[str, str | None] = {address: None for address in roles}
    for r in audit:
        judged = {u.contributor: u for u in r.updates}
        for address in roles:
            update = judged.get(address)
            reasons[address].append("-" if update is None else update.reason.value)
            if update is not None and update.epsilon is not None:
                spent[address] = update.epsilon
    return [
        {
            "address": address,
            "role": role,
            "reasons": reasons[address],
            "reward_wei": str(paid.get(address, 0)),
            "epsilon": spent[address],
        }
        for address, role in roles.items()
    ]


def _timing_split(folders: dict[str, Path]) -> dict[int, dict[str, float]]:
    """Per round, the slowest contributor's training and storage, the slowest validator's validation, and
    the slowest participant's chain time (participants work in parallel, so the slowest one sets the pace)."""
    split: dict[int, dict[str, float]] = {}
    for folder in folders.values():
        for round_, kinds in merge([folder / "timings.jsonl"]).items():
            row = split.setdefault(round_, {"training": 0.0, "storage": 0.0, "chain": 0.0, "validation": 0.0})
            for kind, seconds in kinds.items():
                row[kind] = round(max(row[kind], seconds), 3)
    return split


def _print_summary(console: Console, summary: dict) -> None:
    table = Table(title=f"task {summary['task_id']}: {summary['dataset']}, storage {summary['storage']}")
    for column in (
        "round",
        "status",
        "accuracy*",
        "accepted",
        "rejected",
        "round s",
        "train s",
        "storage s",
        "chain s",
        "validate s",
    ):
        table.add_column(column, justify="right")
    for r in summary["rounds"]:
        s = r["seconds"]
        table.add_row(
            str(r["round"]),
            r["status"],
            "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
            str(r["accepted"]),
            str(r["rejected"]),
            str(r["duration_s"]),
            *(f"{s.get(k, 0.0):.2f}" for k in ("training", "storage", "chain", "validation")),
        )
    console.print(table)
    metric_names = sorted({name for r in summary["rounds"] for name in r["metrics"]})
    if metric_names:
        metrics = Table(title="held-out metrics*")
        for column in ("round", *metric_names):
            metrics.add_column(column, justify="right")
        for r in summary["rounds"]:
            shown = (f"{r['metrics'][name]:.4f}" if name in r["metrics"] else "-" for name in metric_names)
            metrics.add_row(str(r["round"]), *shown)
        console.print(metrics)
    console.print("* advisory: the auditor's held-out metrics on this machine, not part of the record")
    rewards = Table(title="rewards claimed")
    rewards.add_column("contributor")
    rewards.add_column("wei", justify="right")
    rewards.add_column("role")
    rewards.add_column("verdict per round")
    with_dp = any(c["epsilon"] is not None for c in summary["contributor_results"])
    if with_dp:
        rewards.add_column("epsilon spent", justify="right")
    total = sum(int(c["reward_wei"]) for c in summary["contributor_results"]) or 1
    for c in summary["contributor_results"]:
        style = "green" if c["role"] == "honest" else "red"
        rewards.add_row(
            c["address"],
            c["reward_wei"],
            f"[{style}]{c['role']}[/]",
            " ".join(c["reasons"]),
            *([c["epsilon"] or "-"] if with_dp else []),
        )
    console.print(rewards)
    attacked = sum(int(c["reward_wei"]) for c in summary["contributor_results"] if c["role"] != "honest")
    if any(c["role"] != "honest" for c in summary["contributor_results"]):
        console.print(f"attackers received {attacked / total:.1%} of the rewards paid")
    audit = summary["audit"]
    console.print(
        f"audit: {audit['rounds_passed']} rounds passed, {audit['rounds_failed']} failed; "
        f"the market holds {summary['market_balance_wei']} wei; total {summary['total_s']} s"
    )
    public = summary.get("public_audit")
    if public:
        console.print(
            f"public audit (no reader key): {public['rounds_passed']} rounds passed, "
            f"{public['rounds_failed']} failed; checked: {'; '.join(public['public_checks'])}; "
            f"not checked: {'; '.join(public['needs_a_reader'])}"
        )
        for problem in public["problems"]:
            console.print(f"public audit problem: {problem}", style="red")
