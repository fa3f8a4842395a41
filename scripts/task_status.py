"""Show a task's state, money and rounds:

    brownie run scripts/task_status.py main MARKET_ADDRESS TASK_ID --network <network>

Returns the same as a dict: status, current_round, phase, buckets (wei) and the rounds started so far.
"""

from brownie import TrainingMarket
from cotrain.chain.market import Phase, RoundStatus, TaskStatus, snake_case

# The Task struct's money buckets, by ABI name; together they are what the market holds for the task
# (burned: forfeited stakes, the burned part of slashed bonds, rejected challenge bonds; nobody collects it).
BUCKETS = ("escrow", "reserved", "unclaimed", "stakes", "bonds", "challengeBonds", "burned")
ROUND_FIELDS = ("commits", "reveals", "rewardTotal", "rewardClaimed")
ROW = "  {:>5}  {:<9}  {:>7}  {:>7}  {:>24}  {}"  # round, status, then ROUND_FIELDS


def status_of(market, task_id: int) -> dict:
    """The task and its rounds by name: enums as lower-case names, amounts in wei."""
    task = market.getTask(task_id)  # reverts with UnknownTask for an unknown id
    rounds = []
    for round_ in range(min(task["currentRound"] + 1, task["params"]["numRounds"])):
        r = market.getRound(task_id, round_)
        rounds.append(
            {"round": round_, "status": RoundStatus(r["status"]).name.lower()}
            | {snake_case(name): r[name] for name in ROUND_FIELDS}
        )
    return {
        "task_id": task_id,
        "status": TaskStatus(task["status"]).name.lower(),
        "current_round": task["currentRound"],
        "phase": Phase(market.phase(task_id)).name.lower(),
        "buckets": {snake_case(name): task[name] for name in BUCKETS},
        "rounds": rounds,
    }


def main(market_address, task_id):
    """Print the task's status and return it as a dict."""
    status = status_of(TrainingMarket.at(market_address), int(task_id))
    print(
        f"task {status['task_id']}: {status['status']}, "
        f"round {status['current_round']}, phase {status['phase']}"
    )
    buckets = status["buckets"].items()
    print("  " + ", ".join(f"{name.replace('_', ' ')} {wei} wei" for name, wei in buckets))
    print(ROW.format("round", "status", "commits", "reveals", "reward total (wei)", "claimed (wei)"))
    for r in status["rounds"]:
        print(ROW.format(*r.values()))
    return status
