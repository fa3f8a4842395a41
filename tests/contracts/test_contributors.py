"""The contributor's side of a round: join, leave, commit, reveal, and the phase() view along the way."""

from __future__ import annotations

import pytest
from conftest import (
    ACCEPTED,
    CLOSED,
    COMMIT,
    DEFAULT_PARAMS,
    EXPIRED,
    FAILED,
    JOIN,
    OPEN,
    REVEAL,
    VALIDATE,
    VOIDED,
    Update,
    digest_of,
    make_proposal,
    mine_at,
    next_block_at,
    reverts_with,
)
from cotrain.protocol.commitment import update_commitment

pytestmark = pytest.mark.currencies

STAKE = DEFAULT_PARAMS["contributorStake"]
COMMIT_DURATION = DEFAULT_PARAMS["commitDuration"]
REVEAL_DURATION = DEFAULT_PARAMS["revealDuration"]
VALIDATION_DURATION = DEFAULT_PARAMS["validationDuration"]
CHALLENGE_DURATION = DEFAULT_PARAMS["challengeDuration"]
REVEALED = "0x" + "00" * 31 + "01"
MAX_CID_BYTES = 128


# ------------------------------------------------------------------------------------------------ helpers


def commitment_of(update: Update, task_id: int, round_: int) -> bytes:
    return update_commitment(str(update.contributor), task_id, round_, update.digest, update.salt)


def reveal_one(market, task_id, round_, update: Update, **changes):
    """reveal() for one update; keyword arguments replace cid, digest, samples or salt."""
    fields = {
        "cid": update.cid,
        "digest": update.digest,
        "samples": update.samples,
        "salt": update.salt,
        **changes,
    }
    return market.reveal(
        task_id,
        round_,
        fields["cid"],
        fields["digest"],
        fields["samples"],
        fields["salt"],
        {"from": update.contributor},
    )


def end_commit_phase(driver, task_id, round_=0):
    driver.sleep_until(driver.round(task_id, round_)["commitEnd"])


def new_task(driver, joined, **params):
    """A bonded task with the given contributors joined and round 0's commit phase open."""
    task_id = driver.create_task(**params)
    driver.join(task_id, joined)
    driver.open_commit(task_id)
    return task_id


def reveal_alone(driver, task_id, round_, contributor) -> Update:
    """contributor commits and reveals in round_, nobody else commits; returns its update."""
    update = driver.updates(round_, [contributor])[0]
    driver.commit(task_id, round_, [update])
    end_commit_phase(driver, task_id, round_)
    driver.reveal(task_id, round_, [update])
    return update


def fail_round_with_no_reveals(driver, market, task_id, round_):
    """Let round_ run out of reveals and fail it (too few reveals) in its validation phase."""
    driver.sleep_until(driver.round(task_id, round_)["revealEnd"])
    market.failRound(task_id, {"from": driver.owner})
    assert driver.round(task_id, round_)["status"] == FAILED


# ------------------------------------------------------------------------------------------------ join


@pytest.mark.eth_only
@pytest.mark.parametrize("sent", [0, STAKE - 1, STAKE + 1])
def test_join_wrong_stake_reverts_wrong_amount(driver, market, contributors, sent):
    """A wrong msg.value: a token task pulls exactly the stake, and its one wrong value (ETH sent along) is
    test_tokens.py's test_paying_calls_refuse_ether_on_a_token_task."""
    task_id = driver.create_task()
    with reverts_with("WrongAmount", STAKE, sent):
        market.join(task_id, {"from": contributors[0], "value": sent})


def test_join_twice_reverts_already_joined(driver, market, contributors):
    task_id = driver.create_task()
    driver.join(task_id, contributors[:1])
    with reverts_with("AlreadyJoined"):
        market.join(task_id, driver.deposit(contributors[0], STAKE))


def test_join_by_validator_reverts_conflict_of_interest(driver, market, validators):
    task_id = driver.create_task()
    with reverts_with("ConflictOfInterest", validators[1]):
        market.join(task_id, driver.deposit(validators[1], STAKE))


def test_join_after_cancel_reverts_task_not_active(driver, market, owner, contributors):
    task_id = driver.create_task()
    market.cancelTask(task_id, {"from": owner})
    with reverts_with("TaskNotActive", task_id):
        market.join(task_id, driver.deposit(contributors[0], STAKE))


def test_join_locks_stake_and_records_contributor(driver, market, contributors):
    task_id = driver.create_task()
    before = driver.balance(contributors[0])
    tx = market.join(task_id, driver.deposit(contributors[0], STAKE))
    assert before - driver.balance(contributors[0]) == STAKE
    assert tuple(market.contributorInfo(task_id, contributors[0])) == (True, 0, 0, STAKE)
    task = driver.task(task_id)
    assert (task["activeContributors"], task["stakes"]) == (1, STAKE)
    assert dict(tx.events["ContributorJoined"]) == {
        "taskId": task_id,
        "contributor": contributors[0],
        "stake": STAKE,
    }


def test_join_below_max_contributors_keeps_join_phase(driver, market, contributors):
    task_id = driver.create_task(maxContributors=4)
    scheduled = driver.round(task_id, 0)["startsAt"]
    for contributor in contributors[:3]:
        tx = market.join(task_id, driver.deposit(contributor, STAKE))
        assert "RoundScheduled" not in tx.events
    assert driver.round(task_id, 0)["startsAt"] == scheduled
    assert market.phase(task_id) == JOIN


def test_join_of_max_contributors_opens_commit_phase_early(driver, market, contributors):
    task_id = driver.create_task(maxContributors=4)
    driver.join(task_id, contributors[:3])
    tx = market.join(task_id, driver.deposit(contributors[3], STAKE))
    now = tx.timestamp
    expected = {
        "startsAt": now,
        "commitEnd": now + COMMIT_DURATION,
        "revealEnd": now + COMMIT_DURATION + REVEAL_DURATION,
        "validateEnd": now + COMMIT_DURATION + REVEAL_DURATION + VALIDATION_DURATION,
    }
    assert dict(tx.events["RoundScheduled"]) == {"taskId": task_id, "round": 0, **expected}
    r = driver.round(task_id, 0)
    assert {name: r[name] for name in expected} == expected
    assert market.phase(task_id) == COMMIT


def test_join_after_join_phase_does_not_reschedule(driver, market, contributors):
    task_id = driver.create_task(maxContributors=4)
    driver.join(task_id, contributors[:3])
    driver.open_commit(task_id)
    before = driver.round(task_id, 0)
    tx = market.join(task_id, driver.deposit(contributors[3], STAKE))
    assert "RoundScheduled" not in tx.events
    assert driver.round(task_id, 0) == before


# ------------------------------------------------------------------------------------------------ leave


def test_leave_without_joining_reverts_not_joined(market, outsider, task_id):
    with reverts_with("NotJoined"):
        market.leave(task_id, {"from": outsider})


def test_leave_before_committing_refunds_exact_stake(driver, market, contributors, task_id):
    leaver = contributors[0]
    before = driver.balance(leaver)
    tx = market.leave(task_id, {"from": leaver})
    assert driver.balance(leaver) - before == STAKE
    assert dict(tx.events["ContributorLeft"]) == {"taskId": task_id, "contributor": leaver, "refund": STAKE}
    assert tuple(market.contributorInfo(task_id, leaver)) == (False, 0, 0, 0)
    task = driver.task(task_id)
    assert (task["activeContributors"], task["stakes"]) == (3, 3 * STAKE)


def test_leave_twice_reverts_not_joined(market, contributors, task_id):
    market.leave(task_id, {"from": contributors[0]})
    with reverts_with("NotJoined"):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_with_committed_open_round_reverts_stake_locked(driver, market, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_with_committed_round_in_validation_reverts_stake_locked(driver, market, contributors, task_id):
    driver.submit(task_id, 0)
    assert market.phase(task_id) == VALIDATE
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_with_accepted_round_reverts_stake_locked(driver, market, contributors, task_id):
    driver.accept(task_id, 0)
    assert driver.round(task_id, 0)["status"] == ACCEPTED
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_right_after_finalization_reverts_stake_locked(driver, market, contributors, task_id):
    driver.accept(task_id, 0)
    driver.finalize(task_id, 0)
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_at_end_of_slash_window_reverts_stake_locked(driver, market, contributors, task_id):
    driver.accept(task_id, 0)
    driver.finalize(task_id, 0)
    next_block_at(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION)
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_after_slash_window_refunds_stake(driver, market, contributors, task_id):
    driver.accept(task_id, 0)
    driver.finalize(task_id, 0)
    next_block_at(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    before = driver.balance(contributors[0])
    market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - before == STAKE


def test_leave_after_failed_round_refunds_stake(driver, market, contributors, task_id):
    """It revealed, but one reveal is below minContributors: the round fails and the stake is free."""
    reveal_alone(driver, task_id, 0, contributors[0])
    fail_round_with_no_reveals(driver, market, task_id, 0)
    before = driver.balance(contributors[0])
    market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - before == STAKE


def test_leave_open_round_of_cancelled_task_refunds_stake(driver, market, owner, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    market.cancelTask(task_id, {"from": owner})
    before = driver.balance(contributors[0])
    market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - before == STAKE
    assert driver.task(task_id)["stakes"] == 3 * STAKE


def test_leave_is_locked_by_earlier_accepted_round_after_later_round_fails(
    driver, market, contributors, task_id
):
    """ITrainingMarket.leave: the stake comes back once *every* round the caller committed to is settled.

    The contributor commits to round 0 (accepted, not finalized: a slash leaf for it could still be applied)
    and to round 1, which fails. Round 0 is still unsettled, so leaving must be refused.
    """
    driver.accept(task_id, 0)
    reveal_alone(driver, task_id, 1, contributors[0])
    fail_round_with_no_reveals(driver, market, task_id, 1)
    assert driver.round(task_id, 0)["status"] == ACCEPTED
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})


def test_leave_is_locked_by_accepted_round_before_a_voided_one(
    driver, market, contributors, arbiter, outsider
):
    """A halt voids the challenged round and later ones; the accepted round before them can still slash."""
    task_id = driver.create_task(arbiter=arbiter.address, numRounds=4)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    driver.accept(task_id, 1)
    driver.commit(task_id, 2, driver.updates(2, contributors[:1]))  # the stake now points at round 1
    bond = driver.params(task_id)["challengeBond"]
    market.challenge(task_id, 1, "bafkreievidence", driver.deposit(outsider, bond))
    market.resolveChallenge(task_id, 1, outsider, {"from": arbiter})
    assert (driver.round(task_id, 0)["status"], driver.round(task_id, 1)["status"]) == (ACCEPTED, VOIDED)
    # The halt came before round 2's reveal end: its unopened commitment forfeits nothing.
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 2, contributors[0], {"from": outsider})
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})
    driver.finalize(task_id, 0)
    mine_at(driver.round(task_id, 0)["finalizedAt"] + CHALLENGE_DURATION + 1)
    before = driver.balance(contributors[0])
    market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - before == STAKE


def test_rejoin_after_leave_locks_stake_again(driver, market, contributors, task_id):
    market.leave(task_id, {"from": contributors[0]})
    before = driver.balance(contributors[0])
    market.join(task_id, driver.deposit(contributors[0], STAKE))
    assert before - driver.balance(contributors[0]) == STAKE
    assert tuple(market.contributorInfo(task_id, contributors[0])) == (True, 0, 0, STAKE)
    task = driver.task(task_id)
    assert (task["activeContributors"], task["stakes"]) == (4, 4 * STAKE)


def test_rejoined_contributor_can_commit(driver, market, contributors, task_id):
    market.leave(task_id, {"from": contributors[0]})
    market.join(task_id, driver.deposit(contributors[0], STAKE))
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    assert driver.round(task_id, 0)["commits"] == 1


# ------------------------------------------------------------------------------------------------ commit


def test_commit_for_other_round_reverts_wrong_round(market, contributors, task_id):
    with reverts_with("WrongRound", 0, 1):
        market.commit(task_id, 1, digest_of("c"), {"from": contributors[0]})


def test_commit_in_join_phase_reverts_wrong_phase(driver, market, contributors):
    task_id = driver.create_task()
    driver.join(task_id, contributors[:3])
    with reverts_with("WrongPhase", COMMIT, JOIN):
        market.commit(task_id, 0, digest_of("c"), {"from": contributors[0]})


def test_commit_at_commit_end_reverts_wrong_phase(driver, market, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:3]))
    next_block_at(driver.round(task_id, 0)["commitEnd"])
    update = driver.updates(0, contributors[3:])[0]
    with reverts_with("WrongPhase", COMMIT, REVEAL):
        market.commit(task_id, 0, commitment_of(update, task_id, 0), {"from": contributors[3]})


def test_commit_one_second_before_commit_end_is_accepted(driver, market, contributors, task_id):
    next_block_at(driver.round(task_id, 0)["commitEnd"] - 1)
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    assert driver.round(task_id, 0)["commits"] == 1


def test_commit_by_outsider_reverts_not_joined(market, outsider, task_id):
    with reverts_with("NotJoined"):
        market.commit(task_id, 0, digest_of("c"), {"from": outsider})


@pytest.mark.parametrize(
    "commitment", [b"\x00" * 32, b"\x00" * 31 + b"\x01"], ids=["zero", "revealed-marker"]
)
def test_commit_empty_commitment_reverts(market, contributors, task_id, commitment):
    with reverts_with("EmptyCommitment"):
        market.commit(task_id, 0, commitment, {"from": contributors[0]})


def test_commit_twice_reverts_already_committed(driver, market, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    with reverts_with("AlreadyCommitted"):
        market.commit(task_id, 0, digest_of("another"), {"from": contributors[0]})


def test_commit_records_commitment_and_last_round(driver, market, contributors, task_id):
    update = driver.updates(0, contributors[:1])[0]
    commitment = commitment_of(update, task_id, 0)
    tx = market.commit(task_id, 0, commitment, {"from": contributors[0]})
    assert market.commitmentOf(task_id, 0, contributors[0]) == "0x" + commitment.hex()
    assert tuple(market.contributorInfo(task_id, contributors[0])) == (True, 1, 0, STAKE)
    assert driver.round(task_id, 0)["commits"] == 1
    event = tx.events["UpdateCommitted"]
    assert (event["taskId"], event["round"], event["contributor"]) == (task_id, 0, contributors[0])
    assert event["commitment"] == "0x" + commitment.hex()


def test_commit_beyond_max_contributors_is_refused(driver, market, contributors):
    """maxContributors=2 with 4 joined: the 2nd commit fills the round, so a 3rd commit is refused.

    The refusal comes as WrongPhase, not RoundFull: filling the round always closes the commit phase in the
    same transaction (commits == min(active, max)), so the RoundFull check is never reached.
    """
    task_id = new_task(driver, contributors[:2], minContributors=2, maxContributors=2)
    driver.join(task_id, contributors[2:])
    assert driver.task(task_id)["activeContributors"] == 4
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates[:2])
    with reverts_with("WrongPhase", COMMIT, REVEAL):
        driver.commit(task_id, 0, updates[2:3])
    assert driver.round(task_id, 0)["commits"] == 2


def test_commit_phase_stays_open_until_every_active_contributor_committed(
    driver, market, contributors, task_id
):
    commit_end = driver.round(task_id, 0)["commitEnd"]
    for contributor in contributors[:3]:
        tx = market.commit(task_id, 0, digest_of(f"c {contributor}"), {"from": contributor})
        assert "RoundScheduled" not in tx.events
    assert driver.round(task_id, 0)["commitEnd"] == commit_end
    assert market.phase(task_id) == COMMIT


def test_commit_phase_ends_when_all_active_below_max_committed(driver, market, contributors):
    task_id = new_task(driver, contributors[:3], maxContributors=4)
    driver.commit(task_id, 0, driver.updates(0, contributors[:2]))
    update = driver.updates(0, contributors[2:3])[0]
    tx = market.commit(task_id, 0, commitment_of(update, task_id, 0), {"from": contributors[2]})
    r = driver.round(task_id, 0)
    assert r["commitEnd"] == tx.timestamp
    assert r["revealEnd"] == tx.timestamp + REVEAL_DURATION
    assert r["validateEnd"] == tx.timestamp + REVEAL_DURATION + VALIDATION_DURATION
    assert dict(tx.events["RoundScheduled"]) == {
        "taskId": task_id,
        "round": 0,
        "startsAt": r["startsAt"],
        "commitEnd": tx.timestamp,
        "revealEnd": tx.timestamp + REVEAL_DURATION,
        "validateEnd": tx.timestamp + REVEAL_DURATION + VALIDATION_DURATION,
    }


def test_commit_phase_ends_when_max_contributors_committed(driver, market, contributors):
    task_id = new_task(driver, contributors[:2], minContributors=1, maxContributors=2)
    driver.join(task_id, contributors[2:])  # 4 active, at most 2 commits
    first = market.commit(task_id, 0, digest_of("c0"), {"from": contributors[0]})
    assert "RoundScheduled" not in first.events
    second = market.commit(task_id, 0, digest_of("c1"), {"from": contributors[1]})
    assert driver.round(task_id, 0)["commitEnd"] == second.timestamp
    assert second.events["RoundScheduled"]["commitEnd"] == second.timestamp
    assert market.phase(task_id) == REVEAL


# ------------------------------------------------------------------------------------------------ reveal


@pytest.fixture
def committed(driver, market, task_id):
    """All four contributors committed in round 0 (the commit phase closed early); returns their updates."""
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    assert market.phase(task_id) == REVEAL
    return updates


def test_reveal_in_commit_phase_reverts_wrong_phase(driver, market, contributors, task_id):
    update = driver.updates(0, contributors[:1])[0]
    driver.commit(task_id, 0, [update])
    with reverts_with("WrongPhase", REVEAL, COMMIT):
        reveal_one(market, task_id, 0, update)


def test_reveal_without_commit_reverts_not_committed(driver, market, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:3]))
    end_commit_phase(driver, task_id)
    with reverts_with("NotCommitted"):
        reveal_one(market, task_id, 0, driver.updates(0, contributors[3:])[0])


def test_reveal_twice_reverts_already_revealed(market, task_id, committed):
    reveal_one(market, task_id, 0, committed[0])
    with reverts_with("AlreadyRevealed"):
        reveal_one(market, task_id, 0, committed[0])


def test_reveal_wrong_digest_reverts_commitment_mismatch(market, task_id, committed):
    with reverts_with("CommitmentMismatch"):
        reveal_one(market, task_id, 0, committed[0], digest=digest_of("another update"))


def test_reveal_wrong_salt_reverts_commitment_mismatch(market, task_id, committed):
    with reverts_with("CommitmentMismatch"):
        reveal_one(market, task_id, 0, committed[0], salt=digest_of("another salt"))


def test_reveal_of_other_contributors_update_reverts_commitment_mismatch(market, task_id, committed):
    with reverts_with("CommitmentMismatch"):
        reveal_one(market, task_id, 0, committed[1], digest=committed[0].digest, salt=committed[0].salt)


def test_copied_commitment_cannot_be_revealed_by_copier(driver, market, contributors, task_id):
    original = driver.updates(0, contributors[:1])[0]
    copied = commitment_of(original, task_id, 0)
    market.commit(task_id, 0, copied, {"from": contributors[0]})
    market.commit(task_id, 0, copied, {"from": contributors[1]})  # accepted, but useless to the copier
    end_commit_phase(driver, task_id)
    copier = Update(contributors[1], original.digest, original.salt)
    with reverts_with("CommitmentMismatch"):
        reveal_one(market, task_id, 0, copier)
    reveal_one(market, task_id, 0, original)
    assert driver.round(task_id, 0)["reveals"] == 1


def test_reveal_zero_samples_reverts(market, task_id, committed):
    with reverts_with("ZeroSamples"):
        reveal_one(market, task_id, 0, committed[0], samples=0)


@pytest.mark.parametrize("cid", ["", "u" * (MAX_CID_BYTES + 1)], ids=["empty", "129-bytes"])
def test_reveal_bad_cid_reverts(market, task_id, committed, cid):
    with reverts_with("BadCid"):
        reveal_one(market, task_id, 0, committed[0], cid=cid)


def test_reveal_accepts_128_byte_cid(market, task_id, committed):
    tx = reveal_one(market, task_id, 0, committed[0], cid="u" * MAX_CID_BYTES)
    assert tx.events["UpdateRevealed"]["cid"] == "u" * MAX_CID_BYTES


def test_reveal_emits_update_revealed(market, task_id, committed):
    update = committed[0]
    tx = reveal_one(market, task_id, 0, update, cid="bafkreiexample", samples=1234)
    event = tx.events["UpdateRevealed"]
    assert (event["taskId"], event["round"], event["contributor"]) == (task_id, 0, update.contributor)
    assert event["cid"] == "bafkreiexample"
    assert event["updateDigest"] == "0x" + update.digest.hex()
    assert event["numSamples"] == 1234


def test_reveal_marks_commitment_revealed_and_counts(driver, market, task_id, committed):
    reveal_one(market, task_id, 0, committed[0])
    assert market.commitmentOf(task_id, 0, committed[0].contributor) == REVEALED
    assert driver.round(task_id, 0)["reveals"] == 1


def test_reveal_phase_ends_when_every_committer_revealed(driver, market, task_id, committed):
    driver.reveal(task_id, 0, committed[:3])
    assert market.phase(task_id) == REVEAL
    tx = reveal_one(market, task_id, 0, committed[3])
    r = driver.round(task_id, 0)
    assert r["revealEnd"] == tx.timestamp
    assert r["validateEnd"] == tx.timestamp + VALIDATION_DURATION
    event = tx.events["RoundScheduled"]
    assert (event["commitEnd"], event["revealEnd"], event["validateEnd"]) == (
        r["commitEnd"],
        tx.timestamp,
        tx.timestamp + VALIDATION_DURATION,
    )
    assert market.phase(task_id) == VALIDATE


def test_reveal_phase_ends_when_committers_revealed_though_others_never_committed(
    driver, market, contributors
):
    task_id = new_task(driver, contributors)
    updates = driver.updates(0, contributors[:3])
    driver.commit(task_id, 0, updates)
    end_commit_phase(driver, task_id)
    driver.reveal(task_id, 0, updates[:2])
    tx = reveal_one(market, task_id, 0, updates[2])
    assert driver.round(task_id, 0)["revealEnd"] == tx.timestamp


def test_reveal_deadline_kept_while_a_committer_has_not_revealed(driver, market, task_id, committed):
    reveal_end = driver.round(task_id, 0)["revealEnd"]
    for update in committed[:3]:
        tx = reveal_one(market, task_id, 0, update)
        assert "RoundScheduled" not in tx.events
    assert driver.round(task_id, 0)["revealEnd"] == reveal_end
    assert market.phase(task_id) == REVEAL


def test_reveal_one_second_before_deadline_is_accepted(driver, market, task_id, committed):
    driver.reveal(task_id, 0, committed[:3])
    next_block_at(driver.round(task_id, 0)["revealEnd"] - 1)
    reveal_one(market, task_id, 0, committed[3])
    assert driver.round(task_id, 0)["reveals"] == 4


def test_reveal_at_deadline_reverts_wrong_phase(driver, market, task_id, committed):
    driver.reveal(task_id, 0, committed[:3])
    next_block_at(driver.round(task_id, 0)["revealEnd"])
    with reverts_with("WrongPhase", REVEAL, VALIDATE):
        reveal_one(market, task_id, 0, committed[3])
    assert driver.round(task_id, 0)["reveals"] == 3


# ------------------------------------------------------------------------------------------------ phase()


def test_phase_walks_join_commit_reveal_validate_then_next_round(driver, market, contributors):
    task_id = driver.create_task()
    assert market.phase(task_id) == JOIN
    driver.join(task_id, contributors[:3])
    assert market.phase(task_id) == JOIN
    driver.open_commit(task_id)
    assert market.phase(task_id) == COMMIT
    updates = driver.updates(0, contributors[:3])
    driver.commit(task_id, 0, updates)
    assert market.phase(task_id) == REVEAL
    driver.reveal(task_id, 0, updates)
    assert market.phase(task_id) == VALIDATE
    each = driver.task(task_id)["roundBudget"] // len(updates)
    driver.propose(task_id, 0, make_proposal([(u.contributor, each) for u in updates]))
    assert driver.round(task_id, 0)["status"] == ACCEPTED
    assert driver.task(task_id)["currentRound"] == 1
    assert market.phase(task_id) == COMMIT


def test_phase_follows_deadlines_when_nobody_acts_early(driver, market, contributors, task_id):
    updates = driver.updates(0, contributors[:2])
    driver.commit(task_id, 0, updates)
    r = driver.round(task_id, 0)
    mine_at(r["commitEnd"] - 1)
    assert market.phase(task_id) == COMMIT
    mine_at(r["commitEnd"])
    assert market.phase(task_id) == REVEAL
    driver.reveal(task_id, 0, updates[:1])
    mine_at(r["revealEnd"])
    assert market.phase(task_id) == VALIDATE
    mine_at(r["validateEnd"] - 1)
    assert market.phase(task_id) == VALIDATE
    mine_at(r["validateEnd"])
    assert market.phase(task_id) == EXPIRED


def test_phase_after_failed_round_is_commit_of_next_round(driver, market, contributors, task_id):
    driver.commit(task_id, 0, driver.updates(0, contributors[:1]))
    fail_round_with_no_reveals(driver, market, task_id, 0)
    assert driver.task(task_id)["currentRound"] == 1
    assert driver.round(task_id, 1)["status"] == OPEN
    assert market.phase(task_id) == COMMIT


def test_phase_is_closed_after_cancel(market, owner, task_id):
    market.cancelTask(task_id, {"from": owner})
    assert market.phase(task_id) == CLOSED


def test_phase_is_closed_after_last_round(driver, market):
    task_id = driver.create_task(numRounds=1)
    driver.join(task_id)
    driver.open_commit(task_id)
    driver.accept(task_id, 0)
    assert market.phase(task_id) == CLOSED


# ------------------------------------------------------------------------------------------ forfeitUnrevealed

BOUNTY = STAKE // 10  # FORFEIT_BOUNTY_DIVISOR = 10
FORFEITED = "0x" + "00" * 31 + "02"


def assert_solvent(driver, task_id) -> None:
    """The market holds exactly the task's buckets plus the credits, in the task's currency."""
    assert driver.balance(driver.market) == driver.market.taskHoldings(task_id) + driver.total_credits()


@pytest.fixture
def unopened(driver, task_id):
    """Round 0: all four commit, contributors 1-3 reveal, contributor 0 never does; the reveal phase is over
    (round 0 is in validation). Returns contributor 0's update."""
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.reveal(task_id, 0, updates[1:])
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    return updates[0]


def test_forfeit_constants(market):
    assert market.FORFEIT_BOUNTY_DIVISOR() == 10


def test_forfeit_before_reveal_end_reverts_nothing_to_forfeit(
    driver, market, contributors, outsider, task_id
):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.reveal(task_id, 0, updates[1:])
    next_block_at(driver.round(task_id, 0)["revealEnd"] - 1)
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})


def test_forfeit_at_reveal_end_takes_the_whole_stake(driver, market, contributors, outsider, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.reveal(task_id, 0, updates[1:])
    reveal_end = driver.round(task_id, 0)["revealEnd"]
    next_block_at(reveal_end)
    before = driver.task(task_id)
    tx = market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    assert tx.timestamp == reveal_end
    after = driver.task(task_id)
    assert after["stakes"] - before["stakes"] == -STAKE
    assert after["burned"] - before["burned"] == STAKE - BOUNTY
    assert after["activeContributors"] == before["activeContributors"] - 1
    assert (driver.credits(outsider), driver.total_credits()) == (BOUNTY, BOUNTY)
    assert tuple(market.contributorInfo(task_id, contributors[0])) == (False, 1, 0, 0)
    assert market.commitmentOf(task_id, 0, contributors[0]) == FORFEITED
    assert dict(tx.events["CommitmentForfeited"]) == {
        "taskId": task_id,
        "round": 0,
        "contributor": contributors[0],
        "amount": STAKE,
        "caller": outsider,
        "bounty": BOUNTY,
    }
    assert_solvent(driver, task_id)


@pytest.mark.parametrize("role", ["validator", "contributor", "owner", "self"])
def test_anyone_may_forfeit_and_earns_the_bounty(
    driver, market, owner, validators, contributors, task_id, unopened, role
):
    caller = {
        "validator": validators[2],
        "contributor": contributors[1],
        "owner": owner,
        "self": contributors[0],
    }[role]
    tx = market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": caller})
    assert tx.events["CommitmentForfeited"]["caller"] == caller
    assert driver.credits(caller) == BOUNTY
    before = driver.balance(caller)
    driver.withdraw_credit(caller)
    assert driver.balance(caller) - before == BOUNTY


def test_forfeit_twice_reverts_nothing_to_forfeit(market, contributors, outsider, task_id, unopened):
    market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})


def test_forfeit_of_a_revealed_commitment_reverts_nothing_to_forfeit(
    market, contributors, outsider, task_id, unopened
):
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 0, contributors[1], {"from": outsider})


def test_forfeit_without_commitment_reverts_nothing_to_forfeit(
    market, contributors, outsider, task_id, unopened
):
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 1, contributors[0], {"from": outsider})
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 0, outsider, {"from": outsider})


def test_forfeit_after_the_round_failed(driver, market, contributors, outsider, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    end_commit_phase(driver, task_id)
    fail_round_with_no_reveals(driver, market, task_id, 0)
    for contributor in contributors:
        market.forfeitUnrevealed(task_id, 0, contributor, {"from": outsider})
    task = driver.task(task_id)
    assert (task["stakes"], task["activeContributors"], task["burned"]) == (0, 0, 4 * (STAKE - BOUNTY))
    assert driver.credits(outsider) == 4 * BOUNTY
    assert_solvent(driver, task_id)


def test_forfeit_after_completion_of_the_last_round(driver, market, contributors, outsider):
    task_id = new_task(driver, contributors, numRounds=1)
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.reveal(task_id, 0, updates[1:])
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    each = driver.task(task_id)["roundBudget"] // 3
    driver.propose(task_id, 0, make_proposal([(u.contributor, each) for u in updates[1:]]))
    assert driver.task(task_id)["closedAt"] > 0  # completed
    market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    assert driver.credits(outsider) == BOUNTY


def test_cancel_before_reveal_end_forfeits_nobody(driver, market, owner, contributors, outsider, task_id):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)  # the reveal phase is open, nobody revealed yet
    market.cancelTask(task_id, {"from": owner})
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"] + 1)
    with reverts_with("NothingToForfeit"):
        market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    before = driver.balance(contributors[0])
    tx = market.leave(task_id, {"from": contributors[0]})
    assert driver.balance(contributors[0]) - before == STAKE
    assert "CommitmentForfeited" not in tx.events


def test_cancel_after_reveal_end_without_reveals_still_forfeits(
    driver, market, owner, contributors, outsider, task_id
):
    updates = driver.updates(0)
    driver.commit(task_id, 0, updates)
    driver.sleep_until(driver.round(task_id, 0)["revealEnd"])
    market.cancelTask(task_id, {"from": owner})  # no reveals: allowed
    market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    assert driver.credits(outsider) == BOUNTY


def test_commit_while_previous_commitment_unopened_reverts(driver, market, contributors, task_id, unopened):
    each = driver.task(task_id)["roundBudget"] // 3
    driver.propose(task_id, 0, make_proposal([(c, each) for c in contributors[1:]]))
    assert market.phase(task_id) == COMMIT
    update = driver.updates(1, contributors[:1])[0]
    with reverts_with("UnopenedCommitment", 0):
        market.commit(task_id, 1, commitment_of(update, task_id, 1), {"from": contributors[0]})


def test_forfeited_contributor_must_join_again_to_commit(
    driver, market, contributors, outsider, task_id, unopened
):
    each = driver.task(task_id)["roundBudget"] // 3
    driver.propose(task_id, 0, make_proposal([(c, each) for c in contributors[1:]]))
    market.forfeitUnrevealed(task_id, 0, contributors[0], {"from": outsider})
    update = driver.updates(1, contributors[:1])[0]
    with reverts_with("NotJoined"):
        market.commit(task_id, 1, commitment_of(update, task_id, 1), {"from": contributors[0]})
    market.join(task_id, driver.deposit(contributors[0], STAKE))
    market.commit(task_id, 1, commitment_of(update, task_id, 1), {"from": contributors[0]})
    # Round 0 is accepted, not settled: the new stake stays locked until it is (lockedRound = 1 + 0).
    assert tuple(market.contributorInfo(task_id, contributors[0])) == (True, 2, 1, STAKE)


def test_leave_with_unopened_commitment_forfeits_the_stake(driver, market, contributors, task_id, unopened):
    leaver = contributors[0]
    before = driver.balance(leaver)
    tx = market.leave(task_id, {"from": leaver})
    assert driver.balance(leaver) == before  # nothing sent back
    assert "ContributorLeft" not in tx.events
    assert dict(tx.events["CommitmentForfeited"]) == {
        "taskId": task_id,
        "round": 0,
        "contributor": leaver,
        "amount": STAKE,
        "caller": leaver,
        "bounty": BOUNTY,
    }
    assert driver.credits(leaver) == BOUNTY  # the leaver keeps only the bounty: it loses 90% of its stake
    assert tuple(market.contributorInfo(task_id, leaver)) == (False, 1, 0, 0)
    with reverts_with("NotJoined"):
        market.leave(task_id, {"from": leaver})
    assert_solvent(driver, task_id)


def test_leave_before_reveal_end_with_unopened_commitment_reverts_stake_locked(
    driver, market, contributors, task_id
):
    driver.commit(task_id, 0, driver.updates(0))
    with reverts_with("StakeLocked", 0):
        market.leave(task_id, {"from": contributors[0]})
