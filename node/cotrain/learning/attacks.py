"""Attacks on federated training: what a malicious or lazy contributor submits instead of its honest update.

Every attack is a pure function of what one attacking node has: the delta it trained honestly (or its
local data, for data poisoning), a seeded ``numpy.random.Generator``, and, for the omniscient attacks, the
honest updates of the round it is assumed to know. They return float32 deltas with the honest delta's keys
and shapes, ready for :func:`cotrain.learning.tensor_files.encode_update`; nothing here touches a chain or
a store, so the simulation harness and live attacker nodes share them.

:data:`ATTACKS` names each one with a uniform :class:`Attack` interface:

- ``label_flip``: train honestly on labels ``y -> C - 1 - y`` (data poisoning; Biggio et al. 2012).
- ``sign_flip``: ``-delta`` (Damaskinos et al. 2018).
- ``gaussian``: Gaussian noise with the honest delta's expected norm (Blanchard et al. 2017).
- ``scaled``: ``100 x delta``, the model-replacement boost (Bagdasaryan et al. 2020).
- ``alie``: "A Little Is Enough" (Baruch, Baruch and Goldberg, NeurIPS 2019), ``mean - z * std``.
- ``ipm``, ``ipm_large``: Inner Product Manipulation (Xie, Koyejo and Gupta, UAI 2020), ``-epsilon * mean``
  with epsilon 0.1 and 10.
- ``free_rider``: a zero delta, i.e. the global model resubmitted.
- ``copycat``: another contributor's delta, submitted under the attacker's identity and committed last.
- ``disguised_free_rider``: zero plus small Gaussian noise (Lin, Du and Liu, "Free-riders in Federated
  Learning: Attacks and Defenses", 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset

Delta = Mapping[str, torch.Tensor]

SCALE_FACTOR = 100.0
IPM_EPSILON = 0.1
IPM_LARGE_EPSILON = 10.0
# A disguised free-rider's noise norm as a share of an honest update's: small enough to cost it nothing,
# which is the point of free-riding; Lin et al. likewise keep the noise far below the updates' scale.
DISGUISE_RELATIVE_NORM = 0.1


def _float32(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        key: torch.from_numpy(np.ascontiguousarray(arrays[key], dtype=np.float32)) for key in sorted(arrays)
    }


def _float64(delta: Delta) -> dict[str, np.ndarray]:
    return {key: delta[key].detach().cpu().numpy().astype(np.float64) for key in sorted(delta)}


def delta_norm(delta: Delta) -> float:
    """The L2 norm of a whole delta, all entries flattened together, in float64."""
    return math.sqrt(sum(float(np.square(array).sum()) for array in _float64(delta).values()))


def _size(delta: Delta) -> int:
    return sum(tensor.numel() for tensor in delta.values())


def _stack(known: Sequence[Delta], key: str) -> np.ndarray:
    return np.stack([delta[key].detach().cpu().numpy().astype(np.float64) for delta in known])


def _need_known(known: Sequence[Delta], attack: str) -> None:
    if not known:
        raise ConfigError(f"{attack} needs the honest updates of the round; none were given")


# ---------------------------------------------------------------- data poisoning


def flip_labels(dataset: ArrayDataset) -> ArrayDataset:
    """Return ``dataset`` with every label ``y`` replaced by ``C - 1 - y`` (``C`` classes).

    The attacker then trains on it with the ordinary local training, so its update looks like honest work
    in size and shape but teaches the wrong classes.
    """
    flipped = (dataset.num_classes - 1 - dataset.labels).astype(np.int64)
    return ArrayDataset(dataset.features, flipped, dataset.classes)


# ---------------------------------------------------------------- model poisoning


def sign_flip(delta: Delta, factor: float = 1.0) -> dict[str, torch.Tensor]:
    """``-factor * delta``: the honest direction reversed (factor 1 keeps the honest norm)."""
    return _float32({key: -factor * array for key, array in _float64(delta).items()})


def scale(delta: Delta, factor: float = SCALE_FACTOR) -> dict[str, torch.Tensor]:
    """``factor * delta``: one boosted update dominates a plain mean."""
    return _float32({key: factor * array for key, array in _float64(delta).items()})


def gaussian_noise(
    delta: Delta, rng: np.random.Generator, relative_norm: float = 1.0
) -> dict[str, torch.Tensor]:
    """Pure noise ``N(0, sigma^2)`` per coordinate, with ``sigma = relative_norm * ||delta|| / sqrt(d)``.

    With ``d`` coordinates the noise's expected squared norm is ``(relative_norm * ||delta||)^2``, so at the
    default it is as large as the honest update it replaces. Keys are drawn in sorted order.
    """
    sigma = relative_norm * delta_norm(delta) / math.sqrt(max(_size(delta), 1))
    return _float32({key: rng.normal(0.0, sigma, size=tuple(delta[key].shape)) for key in sorted(delta)})


def alie_z(total: int, attackers: int) -> float:
    """The z of "A Little Is Enough" for ``total`` workers of which ``attackers`` are malicious.

    Baruch et al. (2019), Algorithm 3: ``s = floor(n / 2 + 1) - f`` honest workers must be won over, and
    ``z = Phi^-1((n - s) / n)``, the largest shift that keeps the crafted value closer to the mean than that
    many honest values are, per coordinate. E.g. ``n = 10``: ``f = 1`` gives 0, ``f = 3`` gives 0.5244.

    Raises
    ------
    ConfigError
        Unless ``1 <= attackers < total``.
    """
    if not 1 <= attackers < total:
        raise ConfigError(f"need 1 <= attackers < total, got {attackers} of {total}")
    needed = math.floor(total / 2 + 1) - attackers
    return NormalDist().inv_cdf((total - needed) / total)


def little_is_enough(known: Sequence[Delta], total: int, attackers: int) -> dict[str, torch.Tensor]:
    """``mean - z * std`` of the known honest updates, coordinate by coordinate (Baruch et al. 2019).

    ``std`` is the sample standard deviation (``ddof=1``; 0 for a single update) and ``z`` is
    :func:`alie_z`. Every attacker sends the same vector: a small, coordinated shift that stays inside the
    spread of honest values, where median- and distance-based rules cannot see it.
    """
    _need_known(known, "A Little Is Enough")
    z = alie_z(total, attackers)
    result = {}
    for key in sorted(known[0]):
        stacked = _stack(known, key)
        std = stacked.std(axis=0, ddof=1) if len(known) > 1 else np.zeros(stacked.shape[1:])
        result[key] = stacked.mean(axis=0) - z * std
    return _float32(result)


def inner_product_manipulation(
    known: Sequence[Delta], epsilon: float = IPM_EPSILON
) -> dict[str, torch.Tensor]:
    """``-epsilon * mean`` of the known honest updates (Xie et al. 2020).

    A small epsilon keeps the update close to the origin, where median and Krum pick it, while its inner
    product with the true descent direction is negative; a large one simply pushes the mean backwards.
    """
    _need_known(known, "inner product manipulation")
    return _float32({key: -epsilon * _stack(known, key).mean(axis=0) for key in sorted(known[0])})


# ---------------------------------------------------------------- free-riding


def free_ride(delta: Delta) -> dict[str, torch.Tensor]:
    """A zero delta: the global model sent back unchanged, claiming the reward for no work."""
    return _float32({key: np.zeros(tuple(tensor.shape)) for key, tensor in delta.items()})


def copy_update(known: Sequence[Delta], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """An exact copy of one known update, chosen by ``rng``: the copycat re-binds it to its own identity."""
    _need_known(known, "copycat")
    victim = known[int(rng.integers(len(known)))]
    return {key: victim[key].detach().clone().to(torch.float32) for key in sorted(victim)}


def disguised_free_ride(
    delta: Delta, rng: np.random.Generator, relative_norm: float = DISGUISE_RELATIVE_NORM
) -> dict[str, torch.Tensor]:
    """Zero plus Gaussian noise of expected norm ``relative_norm * ||delta||`` (Lin et al. 2019).

    A real free-rider does not train; it would estimate the scale from the public change of the global model
    between rounds. Taking it from an honest delta is the free-rider's best case.
    """
    return gaussian_noise(delta, rng, relative_norm)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Attack:
    """One attack, as a node or the harness runs it.

    Attributes
    ----------
    name : str
        The key in :data:`ATTACKS`.
    craft : Callable
        ``craft(own, known, rng, total, attackers)`` returns the delta to submit, from the delta the node
        trained (``own``), the round's honest updates (``known``, used only when ``omniscient``), a seeded
        generator, and the numbers of contributors and attackers in the round.
    poison : Callable[[ArrayDataset], ArrayDataset] | None
        Applied to the node's data before it trains, for data-poisoning attacks.
    omniscient : bool
        Whether ``craft`` needs the honest updates of the round.
    trains : bool
        Whether ``craft`` uses ``own``; when it does not, a node need not train and may pass a zero delta
        with the model's layout.
    commits_last : bool
        Whether the node commits after the honest ones (a copycat must see what it copies).
    """

    name: str
    craft: Callable[[Delta, Sequence[Delta], np.random.Generator, int, int], dict[str, torch.Tensor]]
    poison: Callable[[ArrayDataset], ArrayDataset] | None = None
    omniscient: bool = False
    trains: bool = True
    commits_last: bool = False


ATTACKS: dict[str, Attack] = {
    attack.name: attack
    for attack in (
        Attack("label_flip", lambda own, known, rng, n, f: dict(own), poison=flip_labels),
        Attack("sign_flip", lambda own, known, rng, n, f: sign_flip(own)),
        Attack("gaussian", lambda own, known, rng, n, f: gaussian_noise(own, rng)),
        Attack("scaled", lambda own, known, rng, n, f: scale(own)),
        Attack(
            "alie", lambda own, known, rng, n, f: little_is_enough(known, n, f), omniscient=True, trains=False
        ),
        Attack(
            "ipm",
            lambda own, known, rng, n, f: inner_product_manipulation(known),
            omniscient=True,
            trains=False,
        ),
        Attack(
            "ipm_large",
            lambda own, known, rng, n, f: inner_product_manipulation(known, IPM_LARGE_EPSILON),
            omniscient=True,
            trains=False,
        ),
        Attack("free_rider", lambda own, known, rng, n, f: free_ride(own), trains=False),
        Attack(
            "copycat",
            lambda own, known, rng, n, f: copy_update(known, rng),
            omniscient=True,
            trains=False,
            commits_last=True,
        ),
        Attack("disguised_free_rider", lambda own, known, rng, n, f: disguised_free_ride(own, rng)),
    )
}


def get_attack(name: str) -> Attack:
    """Look an attack up by name.

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    return ATTACKS[name]
