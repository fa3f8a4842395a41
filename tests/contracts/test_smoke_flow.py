"""One whole task through the market: the shape every other test takes a slice of, in ETH and in an ERC20."""

import pytest
from conftest import ACCEPTED, FINALIZED, TASK_COMPLETED

pytestmark = pytest.mark.currencies


def test_three_rounds_accept_finalize_and_pay(driver, market, contributors):
    task_id = driver.create_task()
    driver.join(task_id)
    driver.open_commit(task_id)
    results = []
    for r in range(3):
        results.append(driver.accept(task_id, r))
    assert driver.round(task_id, 2)["status"] == ACCEPTED
    assert driver.task(task_id)["status"] == TASK_COMPLETED
    for r in range(3):
        driver.finalize(task_id, r)
        assert driver.round(task_id, r)["status"] == FINALIZED
    balance = driver.balance(contributors[0])
    alloc = results[0].reward_allocations[0]
    market.claim(
        task_id, 0, 0, alloc.account, alloc.amount, results[0].reward_proof(0), {"from": contributors[0]}
    )
    assert driver.balance(contributors[0]) - balance == alloc.amount
