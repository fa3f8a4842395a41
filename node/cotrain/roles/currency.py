"""A task's currency as its nodes meet it: ETH, counted in wei, or the ERC20 token the task was created with,
counted in that token's smallest unit. Every amount of a task (budget, stakes, bonds, rewards, slashes, the
round record's numbers) is in its currency; this names the unit and withdraws this account's credits in it."""

from __future__ import annotations

from cotrain.chain.market import ZERO_ADDRESS, Market


def unit_name(token: str) -> str:
    """What amounts in ``token`` are counted in: ``wei`` for ETH (the zero address), else ``units of token
    0x...``."""
    return "wei" if token == ZERO_ADDRESS else f"units of token {token}"


def task_unit(market: Market, task_id: int) -> str:
    """What the amounts of task ``task_id`` are counted in (see :func:`unit_name`)."""
    return unit_name(market.token_of(task_id))


def withdraw_credits(market: Market, task_id: int) -> int:
    """Withdraw this account's credits (upheld challenges' payouts, forfeit bounties) in the currency of task
    ``task_id``, from every task in that currency; return the amount withdrawn (0 when there was none).

    Raises
    ------
    ContractRevert
        If the market refuses (e.g. another transaction of this account withdrew them in between).
    """
    account = market.client.signing_address()
    token = market.token_of(task_id)
    if token == ZERO_ADDRESS:
        amount = market.credits(account)
        if amount:
            market.withdraw_credit()
    else:
        amount = market.token_credits(token, account)
        if amount:
            market.withdraw_token_credit(token)
    return amount
