"""The account the project's scripts sign with (deploy.py, post_task.py, cancel_task.py).

On a local development network it is the first unlocked account; on a live network it is the account
named by COTRAIN_DEPLOYER in brownie's encrypted keystore (`brownie accounts new <id>`; brownie asks for
its password).
"""

import os

from brownie import accounts, network


def sender():
    """The account that signs this run's transactions."""
    if network.show_active() in ("development", "anvil") or network.show_active().startswith("dev"):
        return accounts[0]
    account_id = os.environ.get("COTRAIN_DEPLOYER")
    if not account_id:
        raise SystemExit(
            "Set COTRAIN_DEPLOYER to a keystore account id (create one with `brownie accounts new <id>`)."
        )
    return accounts.load(account_id)
