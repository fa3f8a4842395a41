"""The market's state machine (test_stateful.py) with every task paid in the standard ERC20 ``TestToken``: the
same rules, model and invariant, per currency. A file of its own so that it runs beside the ETH machine."""

from test_stateful import run_machine


def test_market_state_machine_in_a_token(market, token):
    run_machine(market, token, in_token=True)
