"""Deploy the TrainingMarket: `brownie run scripts/deploy.py --network <network>`.

On a live network brownie signs with the account named by COTRAIN_DEPLOYER (an account in brownie's encrypted
keystore: `brownie accounts new <id>`); on the local development network it uses the first unlocked account.
"""

from brownie import TrainingMarket, network

from scripts._accounts import sender


def main():
    """Deploy and print the market's address."""
    market = TrainingMarket.deploy({"from": sender()})
    print(f"TrainingMarket deployed at {market.address} on {network.show_active()}")
    return market
