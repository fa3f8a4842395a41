"""The overhead section's Flower baseline: the same task as a Flower simulation (``flwr[simulation]``, ray).

Flower's own requirements pin ``rich<15`` and an older ``typer`` than cotrain's, so it is not installed into
the project's environment: :func:`environment` builds a separate virtual environment under
``.cotrain/bench/flwr-venv`` whose ``.pth`` file puts the project's site-packages *after* its own (Flower's
rich and typer win there; torch, numpy and cotrain come from the project). Each Flower client runs the
project's own ``train_round`` on the shard ``cotrain demo`` gives that contributor, with the same seed, and
Flower's FedAvg averages the weights by sample count; the server evaluates on the same held-out split.

Run inside that environment as ``python -m bench.flower '{"contributors": 10, ...}'``: prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, WORK

VENV = WORK / "flwr-venv"
REQUIREMENT = "flwr[simulation]==1.42.0"


class FlowerUnavailable(RuntimeError):
    """Flower could not be installed or run here; the message says why."""


def environment() -> Path:
    """The Python of the Flower environment, built on first use (pip, from the package registry).

    Raises
    ------
    FlowerUnavailable
        If the environment cannot be built or Flower does not import in it.
    """
    python = VENV / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        _check([base, "-m", "venv", str(VENV)], "creating the Flower virtual environment")
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # addsitedir, not a bare path: the project's own .pth files (the editable cotrain) must run too.
        project = sysconfig.get_paths()["purelib"]
        Path(site, "zz_cotrain_project.pth").write_text(f"import site; site.addsitedir({project!r})\n")
        _check(
            [str(python), "-m", "pip", "install", "--quiet", REQUIREMENT],
            f"pip install {REQUIREMENT}",
        )
    _check([str(python), "-c", "import flwr, ray, cotrain"], "importing flwr, ray and cotrain")
    return python


def _check(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FlowerUnavailable(f"{what} failed (status {done.returncode}): {done.stderr.strip()[-1500:]}")


def simulate(settings: Any) -> dict[str, Any]:
    """Run the Flower simulation of ``settings`` (a DemoSettings) in the Flower environment.

    Returns
    -------
    dict
        ``{"rounds": [...], "total_s", "startup_s"}`` shaped like the overhead section's other runs.
    """
    python = environment()
    arguments = {
        "contributors": settings.contributors,
        "validators": settings.validators,
        "rounds": settings.rounds,
        "local_epochs": settings.local_epochs,
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "bench.flower", json.dumps(arguments)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    total = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise FlowerUnavailable(
            f"the Flower simulation failed (status {done.returncode}): {done.stderr.strip()[-1500:]}"
        )
    result = json.loads(lines[-1])
    result["total_s"] = total
    return result


def main(arguments: dict[str, Any]) -> dict[str, Any]:
    """Inside the Flower environment: run the simulation and return per-round seconds and accuracy."""
    import torch
    from cotrain.demo import DemoSettings
    from cotrain.learning.evaluation import evaluate
    from cotrain.learning.partition import partition_iid
    from cotrain.protocol.task_model import builtin_split, initial_state, task_model, train_round
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    from bench.overhead import _spec

    settings = DemoSettings(
        contributors=arguments["contributors"],
        validators=arguments["validators"],
        rounds=arguments["rounds"],
        local_epochs=arguments["local_epochs"],
    )
    spec, _ = _spec(settings)
    train, held_out = builtin_split(spec)
    shards = [train.subset(part) for part in partition_iid(len(train), settings.contributors, 0)]
    client = ClientApp()

    @client.train()
    def fit(msg: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        shard = shards[int(context.node_config["partition-id"])]
        state = msg.content["arrays"].to_torch_state_dict()
        round_ = int(msg.content["config"]["server-round"]) - 1
        clock = time.perf_counter()
        result = train_round(spec, state, shard, round_)
        seconds = time.perf_counter() - clock
        trained = {key: state[key] + result.delta[key] for key in result.delta}
        metrics = MetricRecord({"num-examples": result.samples, "train-s": seconds})
        return Message(content=RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics}), reply_to=msg)

    trained_s: list[float] = []

    def total_training(records: list[RecordDict], weighting_key: str) -> MetricRecord:
        seconds = sum(float(r["metrics"]["train-s"]) for r in records)  # type: ignore[arg-type]
        trained_s.append(seconds)
        return MetricRecord({"train-s": seconds})

    evaluated: list[tuple[float, float, float]] = []  # (when, accuracy, seconds evaluating)

    def evaluate_global(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        clock = time.perf_counter()
        metrics = evaluate(task_model(spec), arrays.to_torch_state_dict(), held_out)
        now = time.perf_counter()
        evaluated.append((now, metrics.accuracy, now - clock))
        return MetricRecord({"accuracy": metrics.accuracy})

    server = ServerApp()

    @server.main()
    def serve(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=settings.contributors,
            min_available_nodes=settings.contributors,
            train_metrics_aggr_fn=total_training,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_state(spec)),
            num_rounds=settings.rounds,
            evaluate_fn=evaluate_global,
        )

    started = time.perf_counter()
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=settings.contributors,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 1, "include_dashboard": False},
        },
    )
    # evaluated[0] is the initial model, before round 1: everything until then is start-up.
    rounds = [
        {
            "round": i,
            "wall_s": evaluated[i + 1][0] - evaluated[i][0],
            "training_s": trained_s[i],
            "storage_s": 0.0,
            "chain_s": 0.0,
            "validation_s": evaluated[i + 1][2],
            "accuracy": evaluated[i + 1][1],
        }
        for i in range(settings.rounds)
    ]
    return {"rounds": rounds, "startup_s": evaluated[0][0] - started}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
