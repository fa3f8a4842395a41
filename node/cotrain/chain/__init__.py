"""The chain layer: a local anvil chain, signing keys, a JSON-RPC client and typed TrainingMarket bindings."""

from cotrain.chain.anvil import Anvil, AnvilError
from cotrain.chain.client import ChainClient, ContractRevert
from cotrain.chain.keys import Signer, load_signer, save_keystore
from cotrain.chain.market import (
    Contributor,
    Market,
    MarketEvent,
    Phase,
    Proposal,
    Round,
    RoundStatus,
    Task,
    TaskParams,
    TaskStatus,
    Validator,
    deploy_market,
)

__all__ = [
    "Anvil",
    "AnvilError",
    "ChainClient",
    "ContractRevert",
    "Contributor",
    "Market",
    "MarketEvent",
    "Phase",
    "Proposal",
    "Round",
    "RoundStatus",
    "Signer",
    "Task",
    "TaskParams",
    "TaskStatus",
    "Validator",
    "deploy_market",
    "load_signer",
    "save_keystore",
]
