"""`cotrain status` and cotrain.roles.account_status against a real task on a local chain.

One breast-cancer task runs two rounds with two honest contributors and a free rider (nodes stepped in this
process, as in test_e2e_audit.py). Its last round is read once finalized and slashed but before anyone
claimed, then again once everyone claimed and left; every number must equal what the chain says (events,
``contributorInfo``, ``validatorInfo``). A second task, joined by one contributor only, checks which tasks
an account is found in. The command line must print and write the same numbers, signed or not.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from chain_clock import ChainClock
from cotrain.chain.market import Market, RoundStatus
from cotrain.demo import DemoSettings, demo_spec
from cotrain.errors import ConfigError
from cotrain.learning.attacks import get_attack
from cotrain.learning.partition import partition_iid
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import TaskSpec
from cotrain.roles.account_status import RoundResult, TaskStanding, account_standing, describe, tasks_of
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.status_report import status_summary
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import ValidatorNode
from cotrain.storage.base import ContentStore
from e2e_helpers import RunCli, run_until

ROUNDS = 2
LAST = ROUNDS - 1
ATTACKS = (None, None, "free_rider")  # the contributors, in account order
ENV = {"COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@dataclass
class Run:
    """A finished task, and every participant's standing read before and after the last round's claims."""

    net: LocalNetwork
    market: Market
    store: ContentStore
    task_id: int
    other_task: int  # joined by the first contributor only
    spec: TaskSpec
    contributors: list[str]
    validator: str
    bonded: TaskStanding  # the validator's, while it judged the last round
    before: dict[str, TaskStanding]  # last round finalized and slashed, nothing of it claimed
    stakes_before: dict[str, int]  # contributorInfo's stakes then
    after: dict[str, TaskStanding]  # everyone claimed and left

    @property
    def network(self) -> Path:
        return self.net.accounts_file.parent / "network.json"

    @property
    def free_rider(self) -> str:
        return self.contributors[ATTACKS.index("free_rider")]

    @property
    def honest(self) -> list[str]:
        return [a for a, attack in zip(self.contributors, ATTACKS, strict=True) if attack is None]

    def event_sums(self, name: str, field: str) -> Counter[str]:
        """Wei per account over the task's ``name`` events."""
        sums: Counter[str] = Counter()
        for event in self.market.events(name, task_id=self.task_id):
            sums[event.args[field]] += event.args["amount"]
        return sums


def standings(market: Market, store: ContentStore, accounts: list[str], task_id: int) -> dict:
    return {a: account_standing(market, store, a, [task_id])[0] for a in accounts}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("status")
    contributors = len(ATTACKS)
    # Dev accounts: 0 the owner, 1 the validator, then the contributors, then the arbiter.
    with local_network(directory / "net", storage="embedded", block_time=1, accounts=3 + contributors) as net:
        owner = net.signer(0)
        market, store = net.config.connect(owner)
        validator = net.anvil.addresses[1]
        settings = DemoSettings(contributors, 1, ROUNDS, "breast_cancer")
        spec = demo_spec(settings, net.anvil.addresses[-1], [validator])
        task_id, spec = post_task(market, store, spec)
        train, held_out = builtin_split(spec)
        nodes = []
        for i, part in enumerate(partition_iid(len(train), contributors, 0)):
            c_market, c_store = net.config.connect(net.signer(2 + i))
            attack = None if ATTACKS[i] is None else get_attack(ATTACKS[i])
            journal = Journal(directory / f"contributor-{i}")
            nodes.append(
                ContributorNode(c_market, c_store, task_id, journal, data=train.subset(part), attack=attack)
            )
        checker = ValidatorNode(*net.config.connect(net.signer(1)), task_id, held_out)
        accounts = [node.address for node in nodes]

        def last_round_revealed() -> bool:
            return market.get_round(task_id, LAST).reveals == contributors

        def last_round_settled() -> bool:
            slashed = market.events("ContributorSlashed", task_id=task_id)
            finalized = market.get_round(task_id, LAST).status == RoundStatus.FINALIZED
            return finalized and any(e.args["round"] == LAST for e in slashed)

        everyone = [n.step for n in nodes] + [checker.step]
        clock = ChainClock(net.anvil, market, task_id, [*accounts, validator])
        run_until(
            "every update of the last round was revealed", everyone, last_round_revealed, after_pass=clock
        )
        (bonded,) = account_standing(market, store, validator, [task_id])
        # Only the validator acts now: the last round is judged, finalized and slashed, but not claimed.
        run_until(
            "the last round was finalized and slashed", [checker.step], last_round_settled, after_pass=clock
        )
        before = standings(market, store, accounts, task_id)
        stakes_before = {a: market.contributor_info(task_id, a).stake for a in accounts}
        run_until("every participant settled", everyone, after_pass=clock)
        after = standings(market, store, [*accounts, validator], task_id)

        other_task, _ = post_task(market, store, spec)
        nodes[0].market.join(other_task)
        yield Run(
            net,
            market,
            store,
            task_id,
            other_task,
            spec,
            accounts,
            validator,
            bonded,
            before,
            stakes_before,
            after,
        )


def test_status_before_claims_shows_verdicts_slashes_and_what_is_claimable(run: Run) -> None:
    market, task_id = run.market, run.task_id
    params = market.get_task(task_id).params
    slash = run.spec.rewards.slash_rejected_wei
    assert slash > 0
    slashed = run.event_sums("ContributorSlashed", "contributor")
    assert slashed == {run.free_rider: ROUNDS * slash}, "the free rider loses its slash each round"

    view = TaskView(market, run.store, task_id)
    last = view.record(LAST)
    assert last is not None
    for account in run.honest:
        standing = run.before[account]
        assert (standing.task_status, standing.roles, standing.joined) == (
            "completed",
            ("contributor",),
            True,
        )
        assert standing.stake_wei == run.stakes_before[account] == params.contributor_stake
        (entry,) = [u for u in last.updates if u.contributor == account.lower()]
        result = standing.rounds[LAST]
        assert result == RoundResult(
            round=LAST,
            status="finalized",
            verdict="accepted",
            reason="ok",
            score=entry.score,
            reward_wei=entry.reward,
            slash_wei=0,
            slashed_wei=0,
            claimed=False,
            claimable_wei=entry.reward,
        )
        assert entry.reward > 0
        assert describe(result, "wei").endswith(f", reward {entry.reward} wei (claimable)")
        # Round 0 finalized while the contributors still stepped: claimed or not, nothing is lost.
        first = standing.rounds[0]
        assert (first.verdict, first.status) == ("accepted", "finalized")
        assert first.claimed_wei + first.claimable_wei == first.reward_wei > 0
        assert standing.claimable_wei == first.claimable_wei + entry.reward
        assert standing.slashed_wei == 0

    rider = run.before[run.free_rider]
    assert [(r.verdict, r.reason) for r in rider.rounds] == [("rejected", "free_rider")] * ROUNDS
    assert [(r.reward_wei, r.slash_wei, r.slashed_wei) for r in rider.rounds] == [(0, slash, slash)] * ROUNDS
    assert (rider.rewarded_wei, rider.claimable_wei, rider.claimed_wei) == (0, 0, 0)
    assert rider.slashed_wei == slashed[run.free_rider]
    assert rider.unit == "wei"
    assert rider.stake_wei == run.stakes_before[run.free_rider]
    assert rider.stake_wei == params.contributor_stake - ROUNDS * slash
    line = describe(rider.rounds[LAST], rider.unit)
    assert line.startswith(f"round {LAST}: rejected: free_rider, score ") and line.endswith(
        f", slashed {slash} wei"
    ), line

    checker = run.bonded
    assert (checker.roles, checker.rounds, checker.bond_slashed_wei) == (("validator",), (), 0)
    assert checker.bond_wei == params.validator_bond > 0


def test_status_after_claims_matches_the_chain(run: Run) -> None:
    market, task_id = run.market, run.task_id
    claimed = run.event_sums("RewardClaimed", "account")
    slashed = run.event_sums("ContributorSlashed", "contributor")
    round_budget = market.get_task(task_id).round_budget
    assert sum(run.after[a].rewarded_wei for a in run.contributors) == ROUNDS * round_budget
    for account in run.contributors:
        standing, earlier = run.after[account], run.before[account]
        assert standing.claimable_wei == 0
        assert standing.claimed_wei == standing.rewarded_wei == claimed[account]
        assert standing.slashed_wei == slashed[account]
        info = market.contributor_info(task_id, account)
        assert (standing.joined, standing.stake_wei) == (info.joined, info.stake) == (False, 0)
        # The last round's reward, claimable before, is now claimed, to the wei.
        result = standing.rounds[LAST]
        assert result.claimed_wei == earlier.rounds[LAST].claimable_wei == result.reward_wei
        assert result.claimed is (result.reward_wei > 0)
        assert [r.verdict for r in standing.rounds] == [r.verdict for r in earlier.rounds]
    assert sorted(claimed) == sorted(run.honest)
    for account in run.honest:
        line = describe(run.after[account].rounds[LAST], run.after[account].unit)
        assert line.endswith(f", reward {run.after[account].rounds[LAST].reward_wei} wei (claimed)"), line
    checker = run.after[run.validator]
    assert checker.bond_wei == market.validator_info(task_id, run.validator).bond == 0
    (withdrawn,) = market.events("BondWithdrawn", task_id=task_id)
    assert withdrawn.args["amount"] == run.bonded.bond_wei


def test_tasks_are_found_from_the_account_s_events(run: Run) -> None:
    first, *others = run.contributors
    market, store = run.market, run.store
    assert tasks_of(market, first) == [run.task_id, run.other_task]
    assert all(tasks_of(market, account) == [run.task_id] for account in others)
    assert tasks_of(market, run.validator) == [run.task_id, run.other_task], "listed in both"
    assert tasks_of(market, run.net.anvil.addresses[0]) == [], "the owner took part in none"

    found = account_standing(market, store, first.lower())
    assert [s.task_id for s in found] == [run.task_id, run.other_task]
    assert found[0] == run.after[first]
    joined = found[1]
    assert (joined.task_status, joined.roles, joined.joined) == ("active", ("contributor",), True)
    assert joined.stake_wei == market.contributor_info(run.other_task, first).stake > 0
    (open_round,) = joined.rounds
    assert (open_round.status, open_round.verdict, open_round.claimable_wei) == ("open", "-", 0)
    assert describe(open_round, joined.unit) == "round 0: open, nothing sent by this account"

    with pytest.raises(ConfigError, match="is not an account address"):
        account_standing(market, store, first[:-1])
    with pytest.raises(ConfigError, match="no task 99 on market"):
        account_standing(market, store, first, [99])


def test_cli_writes_the_same_numbers_unsigned_and_signed(
    run: Run, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("COTRAIN_PRIVATE_KEY", "COTRAIN_KEYSTORE"):
        monkeypatch.delenv(variable, raising=False)
    rider = run.free_rider
    out = tmp_path / "rider.json"
    result = run_cli("status", "--account", rider.lower(), "--json", out, "--network", run.network, env=ENV)
    assert result.returncode == 0, result.explain()
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary == status_summary(rider, [run.after[rider]])
    (task,) = summary["tasks"]
    slash = str(run.spec.rewards.slash_rejected_wei)
    assert [(r["verdict"], r["reason"], r["slashed_wei"]) for r in task["rounds"]] == [
        ("rejected", "free_rider", slash)
    ] * ROUNDS
    assert task["totals"]["slashed_wei"] == str(run.event_sums("ContributorSlashed", "contributor")[rider])
    assert result.stdout.count("free_rider") == ROUNDS, result.explain()
    assert f"task {run.task_id}: rewarded 0 wei, claimed 0 wei, claimable 0 wei" in result.stdout

    honest = run.honest[0]
    index = run.contributors.index(honest)
    key = {"COTRAIN_PRIVATE_KEY": run.net.anvil.private_keys[2 + index]}
    out = tmp_path / "honest.json"
    args = ("status", "--task", run.task_id, "--json", out, "--network", run.network)
    result = run_cli(*args, env={**ENV, **key})
    assert result.returncode == 0, result.explain()
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary == status_summary(honest, [run.after[honest]])
    claimed = run.event_sums("RewardClaimed", "account")[honest]
    assert summary["tasks"][0]["totals"]["claimed_wei"] == str(claimed) != "0"

    result = run_cli("status", "--network", run.network, env=ENV)
    assert result.returncode == 1, result.explain()
    assert "Traceback" not in result.output, result.explain()
    assert "no signing key" in result.stderr and "pass --account ADDRESS" in result.stderr, result.explain()


def test_describe_says_what_happened_in_one_line() -> None:
    def result(**changes: object) -> RoundResult:
        fields: dict = dict(round=2, status="finalized", verdict="accepted", reason="ok", score="0.930000")
        fields.update(reward_wei=123, slash_wei=0, slashed_wei=0, claimed=False, claimable_wei=123)
        return RoundResult(**{**fields, **changes})

    assert describe(result(), "wei") == "round 2: accepted, score 0.93, reward 123 wei (claimable)"
    assert describe(result(claimed=True, claimable_wei=0), "wei") == (
        "round 2: accepted, score 0.93, reward 123 wei (claimed)"
    )
    assert describe(result(status="accepted", claimable_wei=0), "wei") == (
        "round 2: accepted, score 0.93, reward 123 wei (claimable once the round is finalized)"
    )
    rejected = result(verdict="rejected", reason="free_rider", score="0.000000", reward_wei=0, slash_wei=50)
    assert (
        describe(rejected, "wei")
        == "round 2: rejected: free_rider, score 0, slash of 50 wei not applied (yet)"
    )
    assert describe(replace(rejected, slashed_wei=50), "wei") == (
        "round 2: rejected: free_rider, score 0, slashed 50 wei"
    )
    in_token = "units of token 0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert describe(replace(rejected, slashed_wei=50), in_token) == (
        f"round 2: rejected: free_rider, score 0, slashed 50 {in_token}"
    )
    assert describe(result(verdict="not revealed", reason="-", score=None, reward_wei=0), "wei") == (
        "round 2: committed but not revealed (round finalized)"
    )
    assert describe(result(status="open", verdict="revealed", score=None), "wei") == (
        "round 2: revealed, awaiting the verdict"
    )
    assert describe(result(status="failed", verdict="-", score=None), "wei") == (
        "round 2: round failed, no rewards or slashes"
    )
