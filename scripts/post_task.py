"""Post a training task from a spec file, as its owner:

    brownie run scripts/post_task.py main SPEC_PATH MARKET_ADDRESS [STORE_URL] --network <network>

The same steps as `cotrain task post` (`cotrain.roles.owner.post_task`): validate the spec, store the
initial model (built from the model registry when the spec names none) and the spec's canonical bytes,
then create the task escrowing `budget_wei`. STORE_URL is `embedded:PATH` (default
`embedded:.cotrain/store`, the store `cotrain up` uses) or `ipfs:http://127.0.0.1:5001`. The spec's
validators still have to bond before round 0.
"""

from dataclasses import astuple

from brownie import TrainingMarket
from cotrain.protocol.task_spec import load_spec
from cotrain.roles.owner import post_task
from cotrain.storage.base import open_store

from scripts._accounts import sender

DEFAULT_STORE = "embedded:.cotrain/store"


class BrownieMarket:
    """The part of cotrain's `Market` that `post_task` uses, sending through brownie (the owner is passed to
    `post_task` explicitly, since this has no client to ask)."""

    def __init__(self, contract, account):
        self.contract = contract
        self.account = account
        self.created = None  # the TaskCreated event, once create_task ran

    def create_task(self, params, spec_cid, validators, budget_wei) -> int:
        tx = self.contract.createTask(
            astuple(params), spec_cid, list(validators), {"from": self.account, "value": budget_wei}
        )
        self.created = tx.events["TaskCreated"]
        return self.created["taskId"]


def main(spec_path, market_address, store_url=DEFAULT_STORE):
    """Post the task; print and return its id."""
    # A ConfigError names every invalid field, before anything is stored or sent.
    spec = load_spec(spec_path)
    account = sender()
    market = BrownieMarket(TrainingMarket.at(market_address), account)
    task_id, posted = post_task(market, open_store(store_url), spec, owner=str(account))
    print(
        f"posted task {task_id}: {posted.name}, {posted.rounds} rounds, budget {posted.budget_wei} wei\n"
        f"  spec {market.created['specCid']}, initial model {posted.initial_model.cid}"
    )
    return task_id
