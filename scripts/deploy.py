"""Deploy the TrainingMarket: `brownie run scripts/deploy.py --network <network>`.

On a live network brownie signs with the account named by COTRAIN_DEPLOYER (an account in brownie's encrypted
keystore: `brownie accounts new <id>`); on the local development network it uses the first unlocked account.
"""

import os

from brownie import TrainingMarket, accounts, network


def deployer():
    """The account that pays for deployment."""
    if network.show_active() in ("development", "anvil") or network.show_active().startswith("dev"):
        return accounts[0]
    account_id = os.environ.get("COTRAIN_DEPLOYER")
    if not account_id:
        raise SystemExit(
            "Set COTRAIN_DEPLOYER to a keystore account id (create one with `brownie accounts new <id>`)."
        )
    return accounts.load(account_id)


def main():
    """Deploy and print the market's address."""
    market = TrainingMarket.deploy({"from": deployer()})
    print(f"TrainingMarket deployed at {market.address} on {network.show_active()}")
    return market
