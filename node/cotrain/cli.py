"""The `cotrain` command line: one subcommand per participant role, plus a local network and a demo."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from cotrain import __version__
from cotrain.errors import ChainError, ConfigError, CotrainError, StorageError
from cotrain.network import DEFAULT_PATH, NetworkConfig
from cotrain.progress import progress_reporter
from cotrain.roles.node_state import DEFAULT_STATE_ROOT

app = typer.Typer(
    name="cotrain",
    help="Train one model with many parties; rewards and aggregation are checked on-chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
task_app = typer.Typer(help="Post and inspect training tasks (as a task owner).", no_args_is_help=True)
app.add_typer(task_app, name="task")
experiment_app = typer.Typer(help="Simulated networks in one process (no chain).", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
console = Console(stderr=True)

NETWORK = typer.Option(DEFAULT_PATH, "--network", help="Network config written by `cotrain up`.")
TASK = typer.Option(..., "--task", help="The task id.")
FOLLOW = typer.Option(True, "--follow/--once", help="Keep acting on chain events until the task is done.")
POLL = typer.Option(
    1.0,
    "--poll",
    help="Longest wait between looks at the chain; the task's events wake a node at once where the RPC "
    "endpoint serves WebSocket subscriptions.",
)
READER_KEY = typer.Option(
    None,
    "--reader-key",
    help="Your reader key file (`cotrain reader-key`), for a task that seals its updates to its readers.",
)
LABEL_COLUMN = typer.Option(
    None,
    "--label-column",
    help="Label column of a CSV file (default: label, or the one the task's data.columns names).",
)
STATE = typer.Option(
    DEFAULT_STATE_ROOT,
    "--state",
    help="Where nodes keep their state: one folder per chain, market, task and account.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cotrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every step."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """Train one model with many parties; rewards and aggregation are checked on-chain."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
    )
    for noisy in ("urllib3", "web3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def run() -> None:
    """Entry point: CotrainErrors become one clear line and exit status 1, not a traceback."""
    try:
        app()
    except CotrainError as error:
        # Not markup (a path or message may hold brackets) and not wrapped (one line stays one line).
        console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        raise SystemExit(1) from None


def _connect(network: Path, *, signed: bool = True):
    from cotrain.chain.keys import load_signer

    config = NetworkConfig.load(network)
    return config.connect(load_signer(config.keystore) if signed else None)


def _node_state(view, root: Path):
    """The signer's locked state folder for the viewed task (one process per account and task)."""
    from cotrain.roles.node_state import open_node_state

    return open_node_state(view, view.market.client.signing_address(), root)


#: The task events after which a node may have something to do: phase changes (each is a RoundScheduled,
#: mined with the transaction that caused it), outcomes, challenges and the task's end. Other participants'
#: commits, reveals and claims are left out: each would wake every node of the task for nothing (the
#: deadlines they may pass are still seen by the --poll look).
WAKE_EVENTS = (
    "RoundScheduled",
    "RoundAccepted",
    "RoundFailed",
    "RoundVoided",
    "RoundFinalized",
    "RoundChallenged",
    "ChallengeResolved",
    "ChallengesDismissed",
    "TaskCancelled",
    "TaskCompleted",
    "TaskHalted",
)


def _events(market, task: int, *also: str):
    """A subscription to the task's :data:`WAKE_EVENTS` (and ``also``) for :func:`_follow`."""
    from cotrain.chain.watch import TaskEvents

    return TaskEvents(market.client.rpc_url, market.address, task, market.event_topics([*WAKE_EVENTS, *also]))


def _follow(step, follow: bool, poll: float, *, wait=time.sleep, max_failures: int = 10) -> None:
    """Call ``step`` until it reports done (or once), calling ``wait(poll)`` between steps (a
    :meth:`TaskEvents.wait` returns early when the task's next event is mined). An unreachable chain or store
    is retried with exponential backoff; after ``max_failures`` failures in a row the error is raised."""
    from cotrain.chain.client import ContractRevert

    failures = 0
    while True:
        try:
            if step() or not follow:
                return
            failures = 0
            wait(poll)
        except ContractRevert:
            raise  # the market said no: asking again gets the same answer
        except (ChainError, StorageError) as error:
            failures += 1
            if not follow or failures > max_failures:
                raise
            delay = min(30.0, poll * 2**failures)
            logging.getLogger("cotrain").warning("%s; retrying in %.1f s", error, delay)
            time.sleep(delay)


# ---------------------------------------------------------------- network


# Not 8545: anvil, Hardhat, Ganache and geth all default to it, so another dev chain often holds it.
UP_PORT = 8645


@app.command()
def up(
    directory: Path = typer.Option(Path(".cotrain"), "--dir", help="Where chain, storage and config live."),
    port: int = typer.Option(UP_PORT, "--port", help="Port for the local anvil chain (0: a free one)."),
    storage: str = typer.Option("embedded", "--storage", help="embedded, or ipfs (starts a js-ipfs daemon)."),
    block_time: float = typer.Option(1.0, "--block-time", help="Seconds per block."),
    mixed_mining: bool = typer.Option(
        True,
        "--mixed-mining/--interval-mining",
        help="Mine each transaction as it arrives (blocks still come every --block-time), or only on the "
        "interval, as a real chain does.",
    ),
) -> None:
    """Start a local network: an anvil chain, a content store and a deployed market (until Ctrl-C or SIGTERM).

    One network per --dir: a second `up` there is refused while the first runs. On Ctrl-C or SIGTERM the
    chain (and the js-ipfs daemon) are stopped; the chain's state is discarded.
    """
    from cotrain.localnet import local_network, stop_signals_interrupt

    with stop_signals_interrupt():
        try:
            with local_network(
                directory, port=port, storage=storage, block_time=block_time, mixed_mining=mixed_mining
            ) as net:
                if net.replaced:
                    console.print(f"note: {net.replaced}", soft_wrap=True, markup=False)
                _print_dev_accounts(net)
                console.print(
                    f"config written to {directory / 'network.json'}; storage {net.config.storage}",
                    soft_wrap=True,
                    markup=False,
                )
                console.print(
                    f"ready: market {net.config.market} on {net.config.rpc_url} (Ctrl-C or SIGTERM stops it)",
                    soft_wrap=True,
                )
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped; the chain's state is discarded")


@app.command()
def deploy(
    rpc_url: str = typer.Option(..., "--rpc", help="The chain's JSON-RPC endpoint (http:// or https://)."),
    storage: str = typer.Option(
        ...,
        "--storage",
        help="Your store: ipfs:http://127.0.0.1:5001 (your IPFS node's API), or embedded:DIR.",
    ),
    confirmations: int = typer.Option(
        2,
        "--confirmations",
        min=0,
        help="Blocks on top of a transaction before it counts as done: more than the chain's deepest reorg.",
    ),
    keystore: Path | None = typer.Option(
        None,
        "--keystore",
        help="The deployer's encrypted key (else COTRAIN_KEYSTORE, or COTRAIN_PRIVATE_KEY); its password "
        "from COTRAIN_KEYSTORE_PASSWORD or a prompt.",
    ),
    out: Path = typer.Option(DEFAULT_PATH, "--out", help="Where to write the network config."),
    force: bool = typer.Option(False, "--force", help="Replace an existing config at --out."),
) -> None:
    """Deploy the market to an EVM chain and write the network config that participants start from.

    Each participant copies it and sets its own rpc_url, storage and keystore; market, deploy_block,
    chain_id and chain (confirmations, fees, retries) are the network's (docs/deploy.md).
    """
    from cotrain.chain.client import ChainClient
    from cotrain.chain.keys import load_signer
    from cotrain.chain.market import deploy_market
    from cotrain.storage.base import open_store

    if out.exists() and not force:
        raise ConfigError(f"{out} already exists (another deployment's?): pass --force or another --out")
    signer = load_signer(keystore)
    open_store(storage).add(b"")  # fails now, before any gas is spent, if the store does not answer
    client = ChainClient(rpc_url, signer, confirmations=confirmations)
    if (
        int(client.read("eth_getBalance", [signer.address, "latest"], "reading the deployer's balance"), 16)
        == 0
    ):
        raise ChainError(f"the deployer {signer.address} holds nothing on chain {client.chain_id} to pay gas")
    console.print(f"deploying from {signer.address} on chain {client.chain_id}", soft_wrap=True, markup=False)
    market = deploy_market(client)
    config = NetworkConfig(
        rpc_url=rpc_url,
        market=market.address,
        deploy_block=market.deploy_block,
        storage=storage,
        chain_id=client.chain_id,
        keystore=None if keystore is None else str(keystore.resolve()),
        chain=client.settings,
    )
    config.save(out)
    console.print(
        f"market {market.address} deployed in block {market.deploy_block} on chain {client.chain_id} "
        f"({confirmations} confirmations); config written to {out}",
        soft_wrap=True,
        markup=False,
    )


def _print_dev_accounts(net) -> None:
    """The dev accounts' addresses and the part each plays with the built-in specs (keys stay in a file)."""
    from importlib.resources import files

    from cotrain.localnet import dev_account_roles
    from cotrain.protocol.task_spec import load_spec

    specs = [
        load_spec(Path(str(p)))
        for p in (files("cotrain.protocol") / "specs").iterdir()
        if p.name.endswith(".yaml")
    ]
    roles = dev_account_roles(net.anvil.addresses, specs)
    table = Table(title="dev accounts for the built-in specs")
    table.add_column("#", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("role", overflow="fold")
    for index, (address, role) in enumerate(zip(net.anvil.addresses, roles, strict=True)):
        table.add_row(str(index), address, role)
    console.print(table)
    console.print(
        f"their private keys: {net.accounts_file} (mode 0600); anvil's public test keys, for local use only",
        soft_wrap=True,
        markup=False,
    )


# ---------------------------------------------------------------- task owner


@task_app.command("post")
def task_post(
    spec_path: Path = typer.Argument(..., help="Task spec (YAML or JSON)."),
    held_out: Path = typer.Option(
        None, "--held-out", help="The held-out set validators must use: its digest is pinned in the spec."
    ),
    label_column: str | None = LABEL_COLUMN,
    token: str | None = typer.Option(
        None,
        "--token",
        help="An ERC20 token address: the budget, stakes and bonds are in it (approved first); default ETH.",
    ),
    network: Path = NETWORK,
):
    """Store the spec and initial model, escrow the budget and create the task; print its id."""
    from eth_utils import is_address

    from cotrain.chain.market import ZERO_ADDRESS
    from cotrain.protocol.task_spec import load_spec
    from cotrain.roles.currency import task_unit
    from cotrain.roles.owner import post_task

    # A bad spec is reported before any connection is tried.
    spec = load_spec(spec_path, pinning_held_out=held_out is not None)
    if held_out is not None:
        spec = _pin_held_out(spec, held_out, label_column)
    if token is not None and not is_address(token):
        raise ConfigError(f"--token {token!r} is not an address (0x and 40 hex digits)")
    market, store = _connect(network)
    task_id, spec = post_task(market, store, spec, token=token or ZERO_ADDRESS)
    console.print(
        f"posted task {task_id}: {spec.name}, {spec.rounds} rounds, "
        f"budget {spec.budget_wei} {task_unit(market, task_id)}"
    )
    typer.echo(task_id)


CONTRACT_HEADER = """\
# The data block for {name}: replace the spec's data block with it, then post with
# `cotrain task post SPEC --held-out FILE` to pin the held-out set. Numeric columns are
# standardized with the pinned mean and std; add min and max to bound one (clip: true clips
# rather than refuses) and impute: VALUE to fill its empty cells. Categorical columns are
# one-hot (encoding: index makes one number of each); impute: CATEGORY fills their empty cells.
"""


@task_app.command("contract")
def task_contract(
    csv_path: Path = typer.Option(..., "--csv", help="A sample of the task's data: CSV with a header row."),
    label: str = typer.Option(..., "--label", help="The label column."),
    classes: str = typer.Option(
        None,
        "--classes",
        help="Class names in index order, comma-separated (default: the labels present, sorted).",
    ),
    categorical: list[str] = typer.Option(
        None, "--categorical", help="A column to treat as categorical though its values are numbers (repeat)."
    ),
    bounds: str = typer.Option(
        "none",
        "--bounds",
        help="none, or refuse or clip: pin each numeric column's sample min and max, and refuse or clip "
        "values outside them.",
    ),
) -> None:
    """Print the spec's `data` block for a CSV sample: its column contract (each column's type and pinned
    statistics, the label's classes) with the input shape and classes it gives."""
    import yaml

    from cotrain.learning.data_contract import fit_contract

    contract = fit_contract(
        csv_path,
        label,
        classes=None if classes is None else [name.strip() for name in classes.split(",")],
        categorical=categorical or (),
        bounds=bounds,
    )
    block = {
        "data": {
            "input_shape": [contract.width],
            "num_classes": len(contract.label.classes),
            "columns": contract.model_dump(mode="json", exclude_defaults=True),
        }
    }
    typer.echo(
        CONTRACT_HEADER.format(name=csv_path.name)
        + yaml.safe_dump(block, sort_keys=False, default_flow_style=None, width=1000, allow_unicode=True),
        nl=False,
    )


@task_app.command("status")
def task_status(task_id: int = typer.Argument(..., help="The task id."), network: Path = NETWORK) -> None:
    """Show a task's state and each round's status, forfeits and challenges."""
    from cotrain.chain.market import RoundStatus
    from cotrain.roles.challenges import challenges_of, forfeits, round_challenges
    from cotrain.roles.task_view import TaskView

    market, store = _connect(network, signed=False)
    market.require_task(task_id)
    task = market.get_task(task_id)
    view = TaskView(market, store, task_id)
    view.refresh()
    results: dict[int, set[bytes]] = {}
    for event in view.events("RoundProposed"):
        results.setdefault(event.args["round"], set()).add(event.args["proposalHash"])
    challenges = challenges_of(view)
    rounds = [
        market.get_round(task_id, r) for r in range(min(task.current_round + 1, task.params.num_rounds))
    ]
    accepted = sum(r.status in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED) for r in rounds)
    table = Table(
        title=f"task {task_id}: {task.status.name.lower()}, round {task.current_round}; "
        f"{accepted} of {task.params.num_rounds} rounds accepted; amounts in {view.unit}"
    )
    columns = (
        "round",
        "status",
        "commits",
        "reveals",
        "forfeited",
        "results proposed",
        "challenges",
        "reward total",
        "claimed",
    )
    for column in columns:
        table.add_column(column)
    for round_, r in enumerate(rounds):
        proposed = len(results.get(round_, ()))
        status = r.status.name.lower()
        if r.status == RoundStatus.FAILED and proposed > 1:
            status += " (validators disagreed)"
        lost = forfeits(view, round_)
        table.add_row(
            str(round_),
            status,
            str(r.commits),
            str(r.reveals),
            f"{len(lost)} ({sum(amount for _, amount in lost)})" if lost else "-",
            str(proposed),
            round_challenges(view, round_, challenges),
            str(r.reward_total),
            str(r.reward_claimed),
        )
    Console().print(table)
    if task.burned:
        Console().print(
            f"burned in task {task_id}: {task.burned} {view.unit} "
            "(forfeits, slashed bonds, rejected challenges)"
        )


@app.command()
def status(
    account: str = typer.Option(None, "--account", help="The address to report (default: your key's)."),
    tasks: list[int] = typer.Option(None, "--task", help="Only these tasks (repeat); default: all yours."),
    json_path: Path = typer.Option(None, "--json", help="Write the same numbers as JSON here."),
    network: Path = NETWORK,
) -> None:
    """Show an account's verdicts, rewards, slashes, claims, stake and bond in each of its tasks."""
    from cotrain.chain.keys import load_signer
    from cotrain.roles.account_status import account_standing, checksum_account
    from cotrain.roles.status_report import print_status, status_summary

    if account:
        address = checksum_account(account)
    else:
        try:
            address = load_signer().address
        except ConfigError as error:
            raise ConfigError(f"{error}; or pass --account ADDRESS to report any account") from None
    market, store = _connect(network, signed=False)
    standings = account_standing(market, store, address, tasks or None)
    print_status(Console(), address, standings)
    if json_path:
        json_path.write_text(
            json.dumps(status_summary(address, standings), indent=2) + "\n", encoding="utf-8"
        )


# ---------------------------------------------------------------- participants


@app.command()
def contribute(
    task: int = TASK,
    data: Path = typer.Option(..., "--data", help="Your private data: .npz, .csv or an image folder."),
    label_column: str | None = LABEL_COLUMN,
    state: Path = STATE,
    timings: Path = typer.Option(None, "--timings", help="Append per-round timings (JSON lines) here."),
    attack: str = typer.Option(
        None,
        "--attack",
        help="Act as a simulated attacker (demos, experiments): sign_flip, gaussian+jitter, ...",
    ),
    device: str = typer.Option(
        "cpu", "--device", help="Where to train: cpu, cuda, cuda:N, or auto (a CUDA GPU if torch sees one)."
    ),
    network: Path = NETWORK,
    follow: bool = FOLLOW,
    poll: float = POLL,
) -> None:
    """Join a task and train on local data each round; commit, reveal and claim rewards."""
    from cotrain.chain.market import TaskStatus
    from cotrain.learning.attacks import get_attack
    from cotrain.learning.device import resolve_device
    from cotrain.roles.contributor import ContributorNode
    from cotrain.roles.task_view import TaskView
    from cotrain.roles.timings import Timings

    training_device = resolve_device(device)
    market, store = _connect(network)
    market.require_task(task)
    address = market.client.address
    current = market.get_task(task)
    if current.status != TaskStatus.ACTIVE and not market.contributor_info(task, address).joined:
        raise ConfigError(
            f"task {task} is {current.status.name.lower()} and {address} holds no stake in it: there is "
            "nothing to contribute (`cotrain status` shows what it earned)"
        )
    node_state = _node_state(TaskView(market, store, task), state)
    node = ContributorNode(
        market,
        store,
        task,
        node_state.journal,
        timings=Timings(timings),
        attack=None if attack is None else get_attack(attack),
        device=training_device,
    )
    node.data = _local_data(node.view.spec, data, label_column)
    console.print(
        f"contributing {len(node.data)} local examples to task {task} as {address} "
        f"(training on {training_device})"
    )
    console.print(f"state in {node_state.folder}")
    with (
        progress_reporter(console, "training", hide_when_done=True) as progress,
        _events(market, task) as events,
    ):
        node.progress = progress.update
        _follow(node.step, follow, poll, wait=events.wait)


@app.command()
def validate(
    task: int = TASK,
    data: Path = typer.Option(None, "--data", help="Held-out data (default: the spec's built-in split)."),
    label_column: str | None = LABEL_COLUMN,
    timings: Path = typer.Option(None, "--timings", help="Append per-round timings (JSON lines) here."),
    reader_key: Path = READER_KEY,
    state: Path = STATE,
    network: Path = NETWORK,
    follow: bool = FOLLOW,
    poll: float = POLL,
) -> None:
    """Bond, then judge, aggregate and propose every round; finalize and apply slashes."""
    from cotrain.roles.timings import Timings
    from cotrain.roles.validator import ValidatorNode

    market, store = _connect(network)
    market.require_task(task)
    address = market.client.signing_address()
    validators = market.validators_of(task)
    if address.lower() not in {v.lower() for v in validators}:
        raise ConfigError(
            f"{address} is not a validator of task {task} (its validators are {', '.join(validators)}): "
            "use the key of one of them"
        )
    from cotrain.roles.task_view import TaskView

    view = TaskView(market, store, task)
    _node_state(view, state)  # held until this process ends
    held_out = _held_out(view.spec, data, label_column)
    node = ValidatorNode(
        market, store, task, held_out, timings=Timings(timings), reader_key=_reader_key(reader_key)
    )
    console.print(
        f"validating task {task} as {market.client.address} on {len(node.held_out)} held-out examples"
    )
    with _events(market, task, "RoundProposed") as events:
        _follow(node.step, follow, poll, wait=events.wait)


@app.command()
def claim(task: int = TASK, network: Path = NETWORK, state: Path = STATE) -> None:
    """Claim every reward of finalized rounds owed to this account, take back challenge bonds the market
    returns, and withdraw the account's credits in the task's currency (upheld challenges' payouts, forfeit
    bounties)."""
    from cotrain.roles.challenges import withdraw_challenge_bonds
    from cotrain.roles.contributor import ContributorNode
    from cotrain.roles.currency import withdraw_credits

    market, store = _connect(network)
    market.require_task(task)
    address = market.client.address
    from cotrain.roles.task_view import TaskView

    node = ContributorNode(market, store, task, _node_state(TaskView(market, store, task), state).journal)
    node.view.refresh()
    claimed = node.claim_rewards(market.get_task(task).current_round)
    unit = node.view.unit
    console.print(f"claimed {claimed} {unit} for {address}")
    for round_, bond in withdraw_challenge_bonds(node.view):
        console.print(f"took back the challenge bond of round {round_}: {bond} {unit}")
    credits = withdraw_credits(market, task)
    if credits:
        console.print(f"withdrew {credits} {unit} of credits (challenge payouts, forfeit bounties)")


@app.command()
def audit(
    task: int = TASK,
    data: Path = typer.Option(None, "--data", help="Held-out data (default: the spec's built-in split)."),
    label_column: str | None = LABEL_COLUMN,
    json_path: Path = typer.Option(None, "--json", help="Write a JSON summary here."),
    html_path: Path = typer.Option(None, "--html", help="Write an HTML report with plots here."),
    challenge: bool = typer.Option(
        False,
        "--challenge",
        help="Challenge the first failed round still open to challenge, with the task's bond.",
    ),
    reader_key: Path = READER_KEY,
    network: Path = NETWORK,
) -> None:
    """Rebuild the task's history from chain events, re-run every round and check every digest. A task
    that seals its updates is re-run only with a reader key; without one, the public checks run."""
    from cotrain.roles.audit_report import audit_summary, print_audit, write_html
    from cotrain.roles.auditor import audit_task
    from cotrain.roles.task_view import TaskView

    market, store = _connect(network, signed=challenge)
    market.require_task(task)
    view = TaskView(market, store, task)
    rounds = audit_task(view, _held_out(view.spec, data, label_column), _reader_key(reader_key))
    print_audit(Console(), task, rounds, view.unit)
    summary = audit_summary(task, rounds)
    if json_path:
        json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if html_path:
        write_html(html_path, task, rounds, view.unit)
    failed = [r for r in rounds if r.passed is False]
    if challenge and failed:
        from cotrain.chain.market import RoundStatus
        from cotrain.roles.challenges import file_challenge

        # The earliest failed round that can still be challenged; upholding it voids every later one.
        open_rounds = [r for r in failed if market.get_round(task, r.round).status == RoundStatus.ACCEPTED]
        chosen = (open_rounds or failed)[0]
        console.print(file_challenge(view, chosen.round, chosen.problems), soft_wrap=True, markup=False)
    raise typer.Exit(1 if failed else 0)


@app.command()
def arbitrate(
    task: int = TASK,
    round_: int = typer.Option(..., "--round", help="The challenged round."),
    winner: str = typer.Option(None, "--winner", help="Uphold this challenger's challenge (the task halts)."),
    reject: bool = typer.Option(
        False,
        "--reject",
        help="Reject every challenge of the round (after its challenge window; bonds burn).",
    ),
    network: Path = NETWORK,
) -> None:
    """As the task's arbiter, rule on a round's challenges: uphold one (--winner) or reject all (--reject)."""
    from cotrain.roles.challenges import arbitrate as rule
    from cotrain.roles.task_view import TaskView

    if (winner is None) == (not reject):
        raise ConfigError(
            "pass either --winner ADDRESS (uphold that challenge) or --reject (reject them all)"
        )
    market, store = _connect(network)
    market.require_task(task)
    console.print(rule(TaskView(market, store, task), round_, winner), soft_wrap=True, markup=False)


def _reader_key(path: Path | None):
    """The reader key at ``path``, or None."""
    from cotrain.privacy.sealed import load_reader_key

    return None if path is None else load_reader_key(path)


@app.command("reader-key")
def reader_key_new(
    path: Path = typer.Argument(..., help="Where to write the new private key (created with mode 0600)."),
) -> None:
    """Create a reader key for tasks that seal their updates; print its public key for the task spec's
    ``privacy.readers``."""
    from cotrain.privacy.sealed import generate_reader_key, reader_public_hex, save_reader_key

    key = generate_reader_key()
    saved = save_reader_key(path, key)
    console.print(f"wrote a reader key to {saved}; give the task owner its public key:")
    typer.echo(reader_public_hex(key))


def _local_data(spec, path: Path, label_column: str | None):
    """The data at ``path``, read through the task's column contract if it has one, checked against its
    schema."""
    from cotrain.learning.local_data import load_local_data

    return load_local_data(
        path,
        input_shape=tuple(spec.data.input_shape),
        num_classes=spec.data.num_classes,
        label_column=label_column,
        contract=spec.data.columns,
    )


def _held_out(spec, data: Path | None, label_column: str | None):
    """The validator's or auditor's held-out set: ``data``, or the spec's built-in split; refused unless it
    has the digest the spec pins."""
    from cotrain.protocol.task_model import builtin_split, check_held_out

    if data is not None:
        return check_held_out(spec, _local_data(spec, data, label_column), str(data))
    if spec.data.builtin is None:
        raise ConfigError("this task has no built-in data set: pass --data with the task's held-out set")
    split = builtin_split(spec)[1]
    if spec.data.validation.held_out_digest is None:
        return split  # the split is what the spec pins
    return check_held_out(spec, split, f"the built-in {spec.data.builtin} split")


def _pin_held_out(spec, data: Path, label_column: str | None):
    """``spec`` pinning the held-out set at ``data`` (which must match a digest the spec already pins)."""
    from cotrain.learning.dataset_digest import dataset_digest
    from cotrain.protocol.task_model import check_held_out
    from cotrain.protocol.task_spec import with_held_out_digest

    held_out = _local_data(spec, data, label_column)
    if spec.data.validation.held_out_digest is not None:
        check_held_out(spec, held_out, str(data))
    return with_held_out_digest(spec, dataset_digest(held_out))


# ---------------------------------------------------------------- demo


@app.command()
def demo(
    contributors: int = typer.Option(4, "--contributors", min=1, max=50),
    validators: int = typer.Option(3, "--validators", min=1, max=32),
    rounds: int = typer.Option(5, "--rounds", min=1, max=100),
    dataset: str = typer.Option("digits", "--dataset", help="digits or breast_cancer."),
    case: str = typer.Option(
        "",
        "--case",
        help="A seed case instead of --dataset: hospital, bank or phone (each contributor its raw CSV file).",
    ),
    storage: str = typer.Option("embedded", "--storage", help="embedded, or ipfs (a js-ipfs daemon)."),
    summary: Path = typer.Option(None, "--summary", help="Write a JSON summary here."),
    directory: Path = typer.Option(Path(".cotrain/demo"), "--dir", help="Work directory (replaced)."),
    attackers: str = typer.Option(
        "",
        "--attackers",
        help="Make the last contributors attackers, e.g. scaled:1,free_rider:1 (see docs/robustness.md).",
    ),
    privacy: str = typer.Option(
        "",
        "--privacy",
        help="encrypted (updates sealed to the validators and the arbiter), dp:EPS (DP-SGD within epsilon "
        "EPS per contributor), or both[:EPS] (see docs/privacy.md).",
    ),
) -> None:
    """Run a whole network on this machine, one process per participant: train, validate, claim, audit."""
    from cotrain.demo import DemoSettings, parse_attackers, parse_privacy, run_demo

    settings = DemoSettings(
        contributors,
        validators,
        rounds,
        dataset,
        storage,
        directory,
        attackers=parse_attackers(attackers, contributors),
        privacy=privacy,
        case=case,
    )
    parse_privacy(privacy)  # a bad value is refused before anything starts
    if case:
        from cotrain.cases import check_contributors, get_case

        check_contributors(contributors, get_case(case).owners, "data owners")
    out = Console()
    from cotrain.localnet import stop_signals_interrupt

    with stop_signals_interrupt():  # SIGTERM, like Ctrl-C, stops the chain and every participant
        result = run_demo(settings, console=out if out.is_terminal else Console(width=120))
    if summary:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if result["audit"]["rounds_failed"]:
        raise typer.Exit(1)


# ---------------------------------------------------------------- benchmarks


def bench_checkout(candidates: list[Path] | None = None) -> Path:
    """The source checkout whose ``bench/`` suite `cotrain bench` runs: the current directory, else the
    checkout this package was installed from (an editable install).

    Raises
    ------
    ConfigError
        When none of them holds ``bench/run.py`` (an installed package carries no benchmarks).
    """
    roots = candidates if candidates is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        if (root / "bench" / "run.py").is_file():
            return root
    raise ConfigError(
        "no bench/run.py in "
        + " or ".join(str(root) for root in roots)
        + ": the benchmarks live in the source repository; run `cotrain bench` (or `make bench`) there"
    )


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="The reduced versions (under 5 minutes)."),
    only: str = typer.Option("", "--only", help="Sections: overhead,gas,scale,storage,accuracy,fixed_point."),
) -> None:
    """Run the benchmark suite of this checkout; results go to bench/results (see BENCHMARKS.md)."""
    import subprocess
    import sys

    root = bench_checkout()
    command = [
        sys.executable,
        "-m",
        "bench.run",
        *(["--quick"] if quick else []),
        *(["--only", only] * bool(only)),
    ]
    raise typer.Exit(subprocess.run(command, cwd=root, check=False).returncode)


# ---------------------------------------------------------------- experiments


def _run_experiment(label: str, experiment, quick: bool, out: Path) -> dict[str, Path]:
    """Run an experiment module's QUICK or FULL configuration with a progress bar; return its files."""
    import torch

    # One thread: faster for these small models, and the results do not depend on the core count.
    torch.set_num_threads(1)
    config = experiment.QUICK if quick else experiment.FULL
    total = experiment.step_count(config)
    started = time.monotonic()
    with progress_reporter(console, label, transient=False) as progress:
        done = 0

        def report(description: str) -> None:
            nonlocal done
            progress.update(done, total, description=description)
            done += 1

        paths = experiment.run(config, out, report)
        progress.update(total, total, description=f"{label}: done")
    console.print(f"done in {time.monotonic() - started:.0f} s")
    return paths


@experiment_app.command("privacy")
def experiment_privacy(
    quick: bool = typer.Option(False, "--quick", help="A small run (seconds) instead of the full one."),
    out: Path = typer.Option(Path("reports/privacy"), "--out", help="Directory for the results."),
) -> None:
    """Measure what updates and models leak: gradient inversion and membership inference, with and without
    DP or sealing, and accuracy against epsilon; write results.json, table.md and inversion.png."""
    from cotrain.experiments import privacy

    paths = _run_experiment("privacy", privacy, quick, out)
    for path in paths.values():
        console.print(f"wrote {path}")
    typer.echo(paths["table"].read_text(encoding="utf-8"))


@experiment_app.command("use-cases")
def experiment_use_cases(
    quick: bool = typer.Option(False, "--quick", help="2 participants, 1 round, 1 seed (about a minute)."),
    out: Path = typer.Option(Path("reports/use-cases"), "--out", help="Directory for the results."),
    doc: Path = typer.Option(
        None, "--doc", help="Also copy the table here (the full run: docs/use-cases.md)."
    ),
) -> None:
    """For each seed case: each participant alone, the federated model and a pooled one, several seeds;
    write results.json and use-cases.md."""
    from cotrain.experiments import use_cases

    paths = _run_experiment("use cases", use_cases, quick, out)
    text = paths["table"].read_text(encoding="utf-8")
    if doc is not None:
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text, encoding="utf-8")
        console.print(f"wrote {doc}")
    for path in paths.values():
        console.print(f"wrote {path}")
    typer.echo(text)


@experiment_app.command("robustness")
def experiment_robustness(
    quick: bool = typer.Option(False, "--quick", help="A small grid (minutes) instead of the full one."),
    non_iid: bool = typer.Option(
        False,
        "--non-iid",
        help="Instead of attacks: FedAvg against FedProx and server momentum, IID and Dirichlet(0.3), "
        "no attackers; write JSON and a table.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Directory for the results (default: reports/robustness, with --non-iid reports/non-iid).",
    ),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Cells run at once, in processes."),
    fresh: bool = typer.Option(False, "--fresh", help="Forget earlier results in --out instead of resuming."),
) -> None:
    """Attack simulated networks judged by the validator's own code; write JSON, a table and a heat-map.

    Results are appended to OUT/runs.jsonl as cells finish, and a rerun skips the cells already there.
    """
    import torch

    from cotrain.experiments.robustness import (
        FULL_GRID,
        NON_IID_GRID,
        QUICK_GRID,
        QUICK_NON_IID_GRID,
        cell_key,
        load_results,
        run_grid,
        write_non_iid_outputs,
        write_outputs,
    )

    # One thread: faster for these tiny models, and the per-cell results do not depend on the core count.
    torch.set_num_threads(1)
    grids = {False: (FULL_GRID, QUICK_GRID), True: (NON_IID_GRID, QUICK_NON_IID_GRID)}
    grid = grids[non_iid][quick]
    if out is None:
        out = Path("reports/non-iid" if non_iid else "reports/robustness")
    runs = out / "runs.jsonl"
    if fresh and runs.exists():
        runs.unlink()
    total = len(grid.cells())
    earlier = load_results(runs)
    done = sum(cell_key(cell, grid) in earlier for cell in grid.cells())
    started = time.monotonic()
    with progress_reporter(console, "robustness grid", transient=False) as progress:
        finished = done

        def report(cell, result) -> None:
            nonlocal finished
            finished += 1
            progress.update(
                finished,
                total,
                description=f"{cell.dataset} {cell.partition} {cell.pipeline}: {cell.attack} "
                f"{cell.fraction:.0%} -> {result['accuracy']:.3f}",
            )

        progress.update(done, total)
        results = run_grid(grid, runs, workers=workers, on_result=report)
    paths = write_non_iid_outputs(results, grid, out) if non_iid else write_outputs(results, grid, out)
    console.print(f"{total} cells in {time.monotonic() - started:.0f} s")
    for path in paths.values():
        console.print(f"wrote {path}")
    typer.echo(paths["table" if non_iid else "headline"].read_text(encoding="utf-8"))
