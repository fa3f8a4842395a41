"""The task owner: stores the initial model and the spec, then posts the task with its escrowed budget."""

from __future__ import annotations

import hashlib

from cotrain.chain.market import ZERO_ADDRESS, Market, TaskParams
from cotrain.errors import ConfigError
from cotrain.protocol.round_outcome import model_file
from cotrain.protocol.task_model import check_held_out_pin, initial_state
from cotrain.protocol.task_spec import (
    TaskSpec,
    spec_bytes,
    spec_digest,
    task_params,
    with_initial_model,
)
from cotrain.storage.base import ContentStore


def check_arbiter(spec: TaskSpec, owner: str) -> None:
    """Refuse, in one line, a spec whose arbiter is the account about to post it (the market would too).

    Raises
    ------
    ConfigError
        If ``spec.arbiter`` is ``owner``.
    """
    if spec.arbiter.lower() == owner.lower():
        raise ConfigError(
            f"the spec's arbiter {spec.arbiter} is the account posting the task: a task owner may not rule "
            "on challenges of its own task; name another account in `arbiter`, one that is not a validator"
        )


def post_task(
    market: Market,
    store: ContentStore,
    spec: TaskSpec,
    *,
    owner: str | None = None,
    token: str = ZERO_ADDRESS,
) -> tuple[int, TaskSpec]:
    """Store what participants need, create the task; return its id and the spec as posted.

    With an ERC20 ``token`` (not the zero address), the budget (``spec.budget_wei`` units of it), stakes and
    bonds are in that token; the market is approved for exactly the budget first.

    A spec without ``initial_model`` gets the registry model built from ``training.seed``. A built-in data
    set's ``held_out_digest``, when given, must be its split's, and the arbiter must not be ``owner`` (the
    market's signing account unless given), both checked before anything is stored.
    """
    check_arbiter(spec, owner or market.client.signing_address())
    check_held_out_pin(spec)
    if spec.initial_model is None:
        model = model_file(0, -1, initial_state(spec))
        spec = with_initial_model(spec, store.add(model), hashlib.sha256(model).digest())
    spec_cid = store.add(spec_bytes(spec))
    digest = spec_digest(spec)
    params = TaskParams(*task_params(spec, digest).values())
    validators, budget = spec.validators.addresses, spec.budget_wei
    if token == ZERO_ADDRESS:  # what every market binding offers (the brownie scripts' too)
        task_id = market.create_task(params, spec_cid, validators, budget)
    else:
        task_id = market.create_token_task(params, spec_cid, validators, token, budget)
    return task_id, spec
