"""Differential privacy for contributors: noise on what they publish, and the budget it spends.

Two mechanisms, both Gaussian, both accounted with Opacus's RDP accountant:

- ``"user"`` (DP-FedAvg, McMahan et al. 2018): :func:`clip_and_noise` scales the whole update to L2 norm at
  most ``C`` and adds N(0, (sigma C)^2) to every coordinate. It protects the contributor's whole local data of
  the round, and any model trains with it.
- ``"sample"`` (DP-SGD, Abadi et al. 2016): :func:`train_local_dp` clips every example's gradient, adds noise
  to every step and samples batches by Poisson sampling, through Opacus. It protects one example at a time.

A :class:`PrivacyLedger` composes the rounds of one contributor in one task. Both mechanisms are accounted
under add/remove adjacency, as Opacus does: "user" compares the update with no update at all; if one example
can be swapped for another, the user mechanism's sensitivity is ``2C``, not ``C``.

What a validator can check: it sees one noisy vector per contributor, so it cannot tell whether noise was
added at all, and can check the clip bound only up to the noise (the norm of a noised update of dimension
``d`` is about ``sqrt(C^2 + d (sigma C)^2)``). The guarantee is the contributor's own doing.

The noise comes from ``torch.Generator`` (not a cryptographic generator) seeded from the OS by
:func:`fresh_generator`: nobody else can reproduce it, which a generator seeded from the task spec would
allow, and subtracting reproduced noise would undo the protection.
"""

from __future__ import annotations

import functools
import math
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.device import CPU
from cotrain.learning.models import Position, TokenEmbedding
from cotrain.learning.state import float32_state
from cotrain.learning.training import (
    TrainResult,
    check_hyperparameters,
    deterministic_torch,
    load_start,
    make_optimizer,
    state_delta,
)

LEDGER_VERSION = 1


@functools.cache
def load_opacus() -> None:
    """Import Opacus (about 2 s of CPU, so only a node that trains with DP pays it) and register per-example
    gradients for the two layers of cotrain.learning.models that hold parameters of their own and are not one
    of its module types. (Its fallback, functorch's vmap, cannot run the embedding's id check.)"""
    from opacus.grad_sample import register_grad_sampler
    from opacus.grad_sample.embedding import compute_embedding_grad_sample

    @register_grad_sampler(TokenEmbedding)
    def _token_embedding_grad_sample(
        layer: TokenEmbedding, activations: list[torch.Tensor], backprops: torch.Tensor
    ) -> dict[nn.Parameter, torch.Tensor]:
        # The layer's input is float32 ids (checked in its forward); Opacus's Embedding sampler wants int64.
        return compute_embedding_grad_sample(layer, [activations[0].long()], backprops)

    @register_grad_sampler(Position)
    def _position_grad_sample(
        layer: Position, activations: list[torch.Tensor], backprops: torch.Tensor
    ) -> dict[nn.Parameter, torch.Tensor]:
        # y = x + weight: each example's gradient for the weight is its gradient for y, (B, T, F).
        return {layer.weight: backprops} if layer.weight.requires_grad else {}


def _device_generator(source: torch.Generator, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=source))
    return torch.Generator(device=device).manual_seed(seed)


def fresh_generator() -> torch.Generator:
    """A CPU generator seeded with 63 bits from the OS, for noise nobody else can reproduce."""
    return torch.Generator().manual_seed(secrets.randbits(63))


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "at least 0" if allow_zero else "greater than 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_delta(delta: float) -> None:
    if not isinstance(delta, float) or not 0 < delta < 1:
        raise ConfigError(f"delta must be a float in (0, 1), got {delta!r}")


def clip_and_noise(
    delta: Mapping[str, torch.Tensor], clip_norm: float, noise_multiplier: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The user-level Gaussian mechanism on a whole update (DP-FedAvg).

    Scales ``delta`` (all tensors flattened together) to L2 norm at most ``clip_norm``, then adds
    N(0, (noise_multiplier * clip_norm)^2) to every coordinate.

    Parameters
    ----------
    delta : Mapping[str, torch.Tensor]
        The update; it is not modified.
    clip_norm : float
        ``C``, the bound on the update's L2 norm (its sensitivity).
    noise_multiplier : float
        ``sigma``; 0 clips without noise (and without privacy).
    generator : torch.Generator
        The noise source: :func:`fresh_generator` on a node, a seeded one in tests.

    Returns
    -------
    dict[str, torch.Tensor]
        The noised update, float32, in sorted key order.
    """
    _positive("clip_norm", clip_norm)
    _positive("noise_multiplier", noise_multiplier, allow_zero=True)
    state = float32_state(delta)
    norm = math.sqrt(sum(float(t.double().square().sum()) for t in state.values()))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    std = noise_multiplier * clip_norm
    noised = {}
    for key, tensor in state.items():
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
        noised[key] = tensor * scale + noise * std
    return noised


@dataclass(frozen=True)
class Mechanism:
    """One round's privacy mechanism as the accountant sees it: a sampled Gaussian mechanism.

    Attributes
    ----------
    kind : "user" or "sample"
        The update noised once (:func:`clip_and_noise`) or DP-SGD (:func:`train_local_dp`).
    noise_multiplier : float
        Noise standard deviation over sensitivity.
    sample_rate : float
        The Poisson sampling rate ``q`` (1 for "user").
    steps : int
        Noised steps in the round (1 for "user").
    """

    kind: Literal["user", "sample"]
    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if self.kind not in ("user", "sample"):
            raise ConfigError(f"mechanism must be 'user' or 'sample', got {self.kind!r}")
        _positive("noise_multiplier", self.noise_multiplier)
        _positive("sample_rate", self.sample_rate)
        if self.sample_rate > 1:
            raise ConfigError(f"sample_rate must be at most 1, got {self.sample_rate!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
        if self.kind == "user" and (self.sample_rate != 1 or self.steps != 1):
            raise ConfigError("a 'user' mechanism has sample_rate 1 and one step")

    @classmethod
    def user(cls, noise_multiplier: float) -> Mechanism:
        """The Gaussian mechanism on the whole update, once per round."""
        return cls("user", noise_multiplier, 1.0, 1)

    @classmethod
    def sample(cls, noise_multiplier: float, sample_rate: float, steps: int) -> Mechanism:
        """DP-SGD: ``steps`` sampled Gaussian steps with rate ``sample_rate``."""
        return cls("sample", noise_multiplier, sample_rate, steps)


def epsilon(mechanisms: list[Mechanism], delta: float) -> float:
    """The epsilon at ``delta`` of running ``mechanisms`` one after the other, by Opacus's RDP accountant
    (its default orders and RDP-to-DP conversion); 0 for none."""
    _check_delta(delta)
    if not mechanisms:
        return 0.0
    # RDPAccountant.get_epsilon's arithmetic, with each mechanism's one-step RDP computed once: Opacus's
    # fractional orders cost up to a few tenths of a second per (noise, rate), and the same ones come back
    # (every round of a ledger, every step of a search for the noise that spends a budget).
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as privacy_analysis

    rdp = sum([_rdp_of_one_step(m.noise_multiplier, m.sample_rate) * m.steps for m in mechanisms])
    spent, _ = privacy_analysis.get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(spent)


@functools.lru_cache(maxsize=8192)
def _rdp_of_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp as privacy_analysis

    rdp: np.ndarray = privacy_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
    )
    rdp.setflags(write=False)
    return rdp


#: The noise multipliers :func:`noise_for_epsilon` chooses from: 0.2 to about 580, 1% apart.
NOISE_LOWEST, NOISE_RATIO, NOISE_POINTS = 0.2, 1.01, 800


def noise_for_epsilon(target: float, delta: float, schedule: Callable[[float], list[Mechanism]]) -> float:
    """The smallest noise multiplier of the lattice ``NOISE_LOWEST * NOISE_RATIO**k`` (``k`` up to
    ``NOISE_POINTS``) whose run ``schedule(noise_multiplier)`` spends at most ``target`` at ``delta`` (a
    task's whole run: every round of every mechanism it spends).

    A fixed lattice rather than a free bisection lets searches at one sampling rate share the accountant's
    cached work; its 1% spacing puts the epsilon spent within about 1% below ``target``.

    Raises
    ------
    ConfigError
        If even the largest noise multiplier of the lattice spends more than ``target``.
    """
    _positive("target", target)

    def noise(k: int) -> float:
        return NOISE_LOWEST * NOISE_RATIO**k

    def over(k: int) -> bool:
        with warnings.catch_warnings():
            # Opacus warns when a probe's optimal RDP order is at the end of its range: that probe's bound is
            # loose, which only makes the search pick a little more noise.
            warnings.simplefilter("ignore", UserWarning)
            return epsilon(schedule(noise(k)), delta) > target

    low, high = 0, NOISE_POINTS
    if over(high):
        raise ConfigError(f"no noise multiplier up to {noise(high):.0f} spends at most epsilon {target}")
    if not over(low):
        return noise(low)
    while high - low > 1:  # over(low) and not over(high)
        middle = (low + high) // 2
        if over(middle):
            low = middle
        else:
            high = middle
    return noise(high)


class PrivacyLedger:
    """The privacy one contributor has spent in one task: each round it trained and its mechanism.

    A node checks :meth:`spent_with` the next round before training it, refuses the round if that passes the
    task's maximum epsilon, and :meth:`record` s it once trained; :meth:`to_json` is what it journals.
    """

    def __init__(self, rounds: Mapping[int, Mechanism] | None = None) -> None:
        self._rounds: dict[int, Mechanism] = {}
        for round_, mechanism in sorted((rounds or {}).items()):
            self.record(round_, mechanism)

    @property
    def rounds(self) -> dict[int, Mechanism]:
        """A copy of ``{round: mechanism}`` in round order."""
        return dict(self._rounds)

    def record(self, round_: int, mechanism: Mechanism) -> None:
        """Add the round ``round_`` trained with ``mechanism``; a round is recorded once."""
        if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 0:
            raise ConfigError(f"round must be a non-negative integer, got {round_!r}")
        if round_ in self._rounds:
            raise ConfigError(f"round {round_} is already in the privacy ledger")
        self._rounds[round_] = mechanism

    def spent(self, delta: float) -> float:
        """The epsilon at ``delta`` of all recorded rounds together."""
        return epsilon(list(self._rounds.values()), delta)

    def spent_with(self, round_: int, mechanism: Mechanism, delta: float) -> float:
        """The epsilon at ``delta`` once round ``round_`` is trained with ``mechanism`` too (a round already
        recorded, retrained after a crash, counts once)."""
        return epsilon(list({**self._rounds, round_: mechanism}.values()), delta)

    def to_json(self) -> dict[str, Any]:
        """The ledger as plain JSON values."""
        return {
            "version": LEDGER_VERSION,
            "rounds": [
                {
                    "round": round_,
                    "mechanism": m.kind,
                    "noise_multiplier": m.noise_multiplier,
                    "sample_rate": m.sample_rate,
                    "steps": m.steps,
                }
                for round_, m in self._rounds.items()
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> PrivacyLedger:
        """Read a ledger written by :meth:`to_json`; ConfigError if it is not one."""
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
            raise ConfigError(f"not a version-{LEDGER_VERSION} privacy ledger")
        rounds = data.get("rounds")
        if not isinstance(rounds, list):
            raise ConfigError("privacy ledger: 'rounds' must be a list")
        ledger = cls()
        fields = {"round", "mechanism", "noise_multiplier", "sample_rate", "steps"}
        for entry in rounds:
            if not isinstance(entry, dict) or set(entry) != fields:
                raise ConfigError(f"privacy ledger: each round needs exactly {sorted(fields)}, got {entry!r}")
            mechanism = Mechanism(
                entry["mechanism"], entry["noise_multiplier"], entry["sample_rate"], entry["steps"]
            )
            ledger.record(entry["round"], mechanism)
        return ledger


@dataclass(frozen=True)
class DPTrainResult(TrainResult):
    """A :class:`TrainResult` of DP-SGD, with the mechanism to record in the :class:`PrivacyLedger`."""

    mechanism: Mechanism


def train_local_dp(
    model: nn.Module,
    global_state: Mapping[str, torch.Tensor],
    dataset: ArrayDataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    seed: int,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: torch.device = CPU,
) -> tuple[DPTrainResult, float]:
    """DP-SGD with Opacus: :func:`~cotrain.learning.training.train_local` with per-example clipping, noise
    and Poisson sampling.

    Every step draws each example with probability ``q = 1 / ceil(N / batch_size)`` (Opacus's rate for a
    loader of ``batch_size``), clips each example's gradient to ``max_grad_norm``, adds
    N(0, (noise_multiplier * max_grad_norm)^2) to the sum and divides by the expected batch size;
    ``ceil(N / batch_size)`` steps make an epoch.

    Parameters
    ----------
    model, global_state, dataset, epochs, batch_size, lr, optimizer, seed, progress, device
        As for ``train_local``; ``seed`` now seeds only the model's own randomness, not the batches.
    noise_multiplier : float
        ``sigma`` of every step.
    max_grad_norm : float
        The per-example gradient clip ``C``.
    delta : float
        The delta at which the round's epsilon is reported.
    generator : torch.Generator, optional
        Draws the batches and the noise; :func:`fresh_generator` when omitted, which a node must use
        (batches and noise others can reproduce void the guarantee). Tests pass a seeded one. On a GPU the
        noise comes from a generator on that device seeded from this one.

    Returns
    -------
    tuple[DPTrainResult, float]
        The result (whose ``mechanism`` the ledger records) and this round's epsilon at ``delta`` alone.

    Raises
    ------
    ConfigError
        For invalid hyper-parameters, an empty data set, or a model Opacus cannot compute per-example
        gradients for.
    IntegrityError
        If ``global_state`` does not fit ``model``.
    """
    check_hyperparameters(epochs, batch_size, lr, optimizer, seed)
    _positive("noise_multiplier", noise_multiplier)
    _positive("max_grad_norm", max_grad_norm)
    _check_delta(delta)
    load_opacus()
    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    # ModuleValidator.fix would swap layers (BatchNorm for GroupNorm) and so the state the task averages.
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ConfigError(f"model cannot be trained with DP-SGD: {errors[0]}")
    start = load_start(model, global_state, dataset)
    model.to(device)
    source = generator if generator is not None else fresh_generator()
    # Opacus draws the noise on the gradients' device, which needs a generator of that device.
    noise = source if device.type == "cpu" else _device_generator(source, device)
    examples = TensorDataset(torch.from_numpy(dataset.features), torch.from_numpy(dataset.labels))
    loader = DataLoader(examples, batch_size=batch_size, generator=source)
    loss_fn = nn.CrossEntropyLoss()
    epoch_loss = 0.0
    with deterministic_torch(seed, device):
        engine = PrivacyEngine(accountant="rdp")
        private_model, private_opt, private_loader = engine.make_private(
            module=model,
            optimizer=make_optimizer(model, optimizer, lr),
            criterion=loss_fn,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            noise_generator=noise,
        )
        try:
            private_model.train()
            total = epochs * len(private_loader)
            step = 0
            for _ in range(epochs):
                loss_sum, seen = 0.0, 0
                for batch_features, batch_labels in private_loader:
                    features, labels = batch_features.to(device), batch_labels.to(device)
                    private_opt.zero_grad(set_to_none=True)
                    loss = loss_fn(private_model(features), labels)
                    loss.backward()
                    private_opt.step()
                    # An empty Poisson batch still takes a (pure noise) step; its loss is NaN.
                    if len(labels):
                        loss_sum += loss.item() * len(labels)
                        seen += len(labels)
                    step += 1
                    if progress is not None:
                        progress(step, total)
                epoch_loss = loss_sum / seen if seen else math.nan
        finally:
            private_model.to_standard_module()
    [(sigma, rate, steps)] = engine.accountant.history
    mechanism = Mechanism.sample(float(sigma), float(rate), int(steps))
    result = DPTrainResult(
        delta=state_delta(model, start), samples=len(dataset), loss=epoch_loss, mechanism=mechanism
    )
    return result, epsilon([mechanism], delta)
