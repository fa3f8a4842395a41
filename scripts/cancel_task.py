"""Cancel a task and take back its escrow, as its owner:

    brownie run scripts/cancel_task.py main MARKET_ADDRESS TASK_ID --network <network>

An active task is cancelled, which refunds the escrow no accepted round has earned; escrow that is left,
or that came in later (validator slashes at finalization, voided rounds), is withdrawn: run it again to
collect that. Prints and returns the wei refunded.
"""

from brownie import TrainingMarket
from cotrain.chain.market import TaskStatus

from scripts._accounts import sender


def refunded_by(tx) -> int:
    """Wei a transaction refunded to the owner (its EscrowRefunded event, if any)."""
    return tx.events["EscrowRefunded"]["amount"] if "EscrowRefunded" in tx.events else 0


def main(market_address, task_id):
    """Cancel (if still active) and withdraw what is left; print and return the wei refunded."""
    market, task_id = TrainingMarket.at(market_address), int(task_id)
    status = TaskStatus(market.getTask(task_id)["status"])  # reverts with UnknownTask for an unknown id
    owner = sender()
    refunded = 0
    if status == TaskStatus.ACTIVE:
        refunded += refunded_by(market.cancelTask(task_id, {"from": owner}))
        print(f"task {task_id} cancelled")
    else:
        print(f"task {task_id} was already {status.name.lower()}")
    if market.getTask(task_id)["escrow"]:
        refunded += refunded_by(market.withdrawRefund(task_id, {"from": owner}))
    print(f"refunded {refunded} wei to {owner}")
    return refunded
