"""Local training: one contributor's work in one round.

Training starts from the round's global state, never from whatever the model object held, and returns the
difference it made. On CPU, the same model, state, data, hyper-parameters, seed and thread count give the same
delta bit for bit: deterministic algorithms are switched on for the duration, the global RNG is forked and
seeded, and batches are shuffled by a local generator. Different thread counts or machines may round
differently; only aggregation promises bit-identical results everywhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.device import CPU
from cotrain.learning.state import float32_state, load_state, model_state

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainResult:
    """What local training produced.

    Attributes
    ----------
    delta : dict[str, torch.Tensor]
        ``trained - global`` for every state entry, float32, in sorted key order.
    samples : int
        The number of training examples, the weight FedAvg gives this update.
    loss : float
        The mean training loss (cross-entropy, class-weighted when asked, without any proximal term) over the
        examples of the last epoch.
    """

    delta: dict[str, torch.Tensor]
    samples: int
    loss: float


_GLOBAL_TORCH_STATE = threading.RLock()


@contextmanager
def deterministic_torch(seed: int, device: torch.device = CPU) -> Iterator[None]:
    """Run the body with deterministic algorithms on and the global RNG seeded, restoring both afterwards.

    On a GPU an operation without a deterministic kernel warns instead of failing: only CPU training promises
    bit-identical deltas (see the module's docstring).
    """
    # The flag and the RNG are process-wide: one training at a time, or threads would restore each other's.
    with _GLOBAL_TORCH_STATE:
        previous = torch.are_deterministic_algorithms_enabled()
        previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
            try:
                yield
            finally:
                torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


def check_hyperparameters(
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    seed: int,
    *,
    proximal_mu: float = 0.0,
    class_weights: Sequence[float] | None = None,
) -> None:
    """Raise ConfigError unless the hyper-parameters of local training are usable."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"lr must be a finite number greater than 0, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if (
        isinstance(proximal_mu, bool)
        or not isinstance(proximal_mu, (int, float))
        or not math.isfinite(proximal_mu)
        or proximal_mu < 0
    ):
        raise ConfigError(f"proximal_mu must be a finite number of at least 0, got {proximal_mu!r}")
    if class_weights is not None and not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0
        for w in class_weights
    ):
        raise ConfigError(f"class_weights must be finite numbers above 0, got {list(class_weights)!r}")


def load_start(
    model: nn.Module, global_state: Mapping[str, torch.Tensor], dataset: ArrayDataset
) -> dict[str, torch.Tensor]:
    """Load ``global_state`` into ``model`` and return it as the float32 state the delta is taken from.

    Raises
    ------
    ConfigError
        For an empty data set.
    IntegrityError
        If ``global_state`` does not fit ``model``.
    """
    if len(dataset) == 0:
        raise ConfigError("cannot train on an empty data set")
    start = float32_state(global_state)
    load_state(model, start)
    return start


def make_optimizer(model: nn.Module, optimizer: str, lr: float) -> torch.optim.Optimizer:
    """A fresh ``"sgd"`` (plain, no momentum) or ``"adam"`` optimizer over ``model``'s parameters."""
    if optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    return torch.optim.Adam(model.parameters(), lr=lr)


def proximal_term(model: nn.Module, anchor: Sequence[torch.Tensor]) -> torch.Tensor:
    """``||w - w_global||**2`` over ``model``'s parameters, with ``anchor`` the global values in the same
    order (FedProx's penalty before its factor ``mu / 2``)."""
    return torch.stack(
        [(param - start).pow(2).sum() for param, start in zip(model.parameters(), anchor, strict=True)]
    ).sum()


def state_delta(model: nn.Module, start: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``trained - start`` for every entry of ``model``'s state, float32, in sorted key order."""
    trained = model_state(model)
    return {key: trained[key] - start[key] for key in trained}


def train_local(
    model: nn.Module,
    global_state: Mapping[str, torch.Tensor],
    dataset: ArrayDataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    seed: int,
    proximal_mu: float = 0.0,
    class_weights: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: torch.device = CPU,
) -> TrainResult:
    """Train ``model`` on ``dataset`` starting from ``global_state`` and return the change in its weights.

    Each epoch visits every example once in an order drawn from ``torch.Generator().manual_seed(seed)``, in
    mini-batches of ``batch_size`` (the last one smaller), minimising the mean cross-entropy, plus FedProx's
    proximal term ``(proximal_mu / 2) * ||w - w_global||**2`` over the parameters when ``proximal_mu > 0``
    (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"). With ``class_weights`` the
    cross-entropy is weighted per class (each example's term times its class's weight, divided by the sum of
    the batch's weights, as ``torch.nn.CrossEntropyLoss(weight=...)``), so rare classes count more. The
    optimizer starts fresh.

    Parameters
    ----------
    model : torch.nn.Module
        A registry model of the task's architecture; its weights are overwritten with ``global_state`` and
        then trained in place.
    global_state : Mapping[str, torch.Tensor]
        The round's starting weights; it is not modified.
    dataset : ArrayDataset
        The contributor's local training data.
    epochs, batch_size : int
        Passes over the data and examples per step.
    lr : float
        The learning rate.
    optimizer : str
        ``"sgd"`` (plain, no momentum) or ``"adam"``.
    seed : int
        Seeds the shuffling and any randomness in the model.
    proximal_mu : float
        FedProx's ``mu`` (at least 0); 0 trains exactly as without the term, bit for bit.
    class_weights : Sequence[float], optional
        One weight above 0 per class, in class-index order; ``None`` weighs every class alike.
    progress : Callable[[int, int], None], optional
        Called as ``progress(step, total)`` after every optimizer step, e.g. to draw a progress bar.
    device : torch.device
        Where the model and batches live while training (see :func:`~cotrain.learning.device.resolve_device`);
        the delta is CPU float32 whatever it is.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        For invalid hyper-parameters or an empty data set.
    IntegrityError
        If ``global_state`` does not fit ``model``.
    """
    check_hyperparameters(
        epochs, batch_size, lr, optimizer, seed, proximal_mu=proximal_mu, class_weights=class_weights
    )
    start = load_start(model, global_state, dataset)
    model.to(device)
    # With mu = 0 nothing is added to the graph, so the steps are those of plain training, bit for bit.
    anchor = [param.detach().clone() for param in model.parameters()] if proximal_mu > 0 else None
    features = torch.from_numpy(dataset.features).to(device)
    labels = torch.from_numpy(dataset.labels).to(device)
    count = len(dataset)
    steps_per_epoch = math.ceil(count / batch_size)
    total = epochs * steps_per_epoch
    if class_weights is not None and len(class_weights) != dataset.num_classes:
        raise ConfigError(
            f"{len(class_weights)} class_weights for {dataset.num_classes} classes; give one per class"
        )
    weight = (
        None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=device)
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    epoch_loss = 0.0
    with deterministic_torch(seed, device):
        shuffle = torch.Generator().manual_seed(seed)
        opt = make_optimizer(model, optimizer, lr)
        model.train()
        step = 0
        for _ in range(epochs):
            order = torch.randperm(count, generator=shuffle)
            loss_sum = 0.0
            for begin in range(0, count, batch_size):
                batch = order[begin : begin + batch_size].to(device)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(features[batch]), labels[batch])
                if anchor is None:
                    loss.backward()
                else:
                    (loss + proximal_mu / 2 * proximal_term(model, anchor)).backward()
                opt.step()
                loss_sum += loss.item() * len(batch)
                step += 1
                if progress is not None:
                    progress(step, total)
            epoch_loss = loss_sum / count
    return TrainResult(delta=state_delta(model, start), samples=count, loss=epoch_loss)
