"""Attacks on federated training: what a malicious or lazy contributor submits instead of its honest update.

Every attack is a pure function of what one attacking node has: the delta it trained honestly (or its
local data, for data poisoning), its own seeded ``numpy.random.Generator``, and the honest updates it knows:
those of the round for the omniscient attacks, of the previous round for the stale ones. They return float32
deltas with the honest delta's keys and shapes, ready for :func:`cotrain.learning.tensor_files.encode_update`;
nothing here touches a chain or a store, so the simulation harness and live attacker nodes share them.

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
- ``inflate``: the honest delta, revealed with 100 times the sample count trained on (sample counts are
  weights in FedAvg and in rewards, and nobody can check them).

:data:`VARIANTS` derives adaptive versions of them, named ``BASE+VARIANT`` (:func:`attack_names` lists all):

- ``+jitter``: each attacker adds its own noise of :data:`JITTER_RELATIVE_NORM` times the crafted vector's
  norm, so that coordinated attackers are no longer near-copies of each other;
- ``+evade``: the noise norm is the honest updates' spread (:func:`honest_spread`), so the crafted vector
  sits as far from the others as an honest update typically does;
- ``+stale``: an omniscient attack crafted from the previous round's honest updates (what commit-reveal made
  public), plus the jitter; what a real attacker can do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

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
# An over-claimer reveals this many times its real sample count, for this much weight in FedAvg and rewards.
INFLATE_FACTOR = 100
# Measured: at this share of its norm, a near-copy escapes the validator's 0.1 relative-distance duplicate
# screen, so coordinated attackers no longer collapse into one accepted update and duplicates.
JITTER_RELATIVE_NORM = 0.15


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


def _flat(delta: Delta) -> np.ndarray:
    return np.concatenate([array.ravel() for array in _float64(delta).values()])


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


# ---------------------------------------------------------------- adaptive noise


def perturb(delta: Delta, norm: float, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``delta`` plus noise of exactly ``norm``: a standard normal draw per coordinate (keys in sorted
    order), scaled as a whole to that norm, i.e. a uniformly random direction."""
    draws = {key: rng.standard_normal(size=tuple(delta[key].shape)) for key in sorted(delta)}
    length = math.sqrt(sum(float(np.square(draw).sum()) for draw in draws.values()))
    factor = norm / length if length > 0 else 0.0
    return _float32({key: array + factor * draws[key] for key, array in _float64(delta).items()})


def jitter(
    crafted: Delta, rng: np.random.Generator, relative_norm: float = JITTER_RELATIVE_NORM
) -> dict[str, torch.Tensor]:
    """``crafted`` plus the attacker's own noise of ``relative_norm`` times its norm (see :func:`perturb`)."""
    return perturb(crafted, relative_norm * delta_norm(crafted), rng)


def honest_spread(known: Sequence[Delta]) -> float:
    """How far an honest update typically sits from the others: the median over ``known`` of each update's
    L2 distance to their coordinate-wise median (0 for a single update)."""
    _need_known(known, "the honest spread")
    flat = np.stack([_flat(delta) for delta in known])
    return float(np.median(np.linalg.norm(flat - np.median(flat, axis=0), axis=1)))


def evade(crafted: Delta, known: Sequence[Delta], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``crafted`` plus noise of norm :func:`honest_spread` of ``known``.

    Aimed at the screening itself: any test for updates closer to each other, or to the consensus, than
    honest ones are sees the crafted vector at the honest distance.
    """
    return perturb(crafted, honest_spread(known), rng)


# ---------------------------------------------------------------- the registry


#: What an attacker knows of the other contributors' updates when it crafts its own: the round's honest
#: updates (omniscient), the previous round's (public after its reveals; none in round 0), or nothing.
Sight = Literal["round", "previous_round", "none"]
Craft = Callable[[Delta, Sequence[Delta], np.random.Generator, int, int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Attack:
    """One attack, as a node or the harness runs it.

    Attributes
    ----------
    name : str
        The key in :data:`ATTACKS`, or ``BASE+VARIANT`` (:func:`attack_names`).
    craft : Craft
        ``craft(own, known, rng, total, attackers)`` returns the delta to submit, from the delta the node
        trained (``own``), the honest updates it knows (``known``, per ``sees``: see :meth:`known`), its own
        seeded generator, and the numbers of contributors and attackers in the round.
    poison : Callable[[ArrayDataset], ArrayDataset] | None
        Applied to the node's data before it trains, for data-poisoning attacks.
    sees : Sight
        Which honest updates ``craft`` needs.
    trains : bool
        Whether ``craft`` uses ``own``; when it does not, a node need not train and may pass a zero delta
        with the model's layout.
    commits_last : bool
        Whether the node commits after the honest ones (a copycat must see what it copies).
    claims : int
        How many times its real sample count the node reveals (sample counts are claims nobody can check).
    """

    name: str
    craft: Craft
    poison: Callable[[ArrayDataset], ArrayDataset] | None = None
    sees: Sight = "none"
    trains: bool = True
    commits_last: bool = False
    claims: int = 1

    @property
    def omniscient(self) -> bool:
        """Whether ``craft`` needs the honest updates of the round itself."""
        return self.sees == "round"

    @property
    def live(self) -> bool:
        """Whether a live node can run it: it needs nothing but the node's own work."""
        return self.sees == "none"

    def known(self, this_round: Sequence[Delta], previous_round: Sequence[Delta]) -> list[Delta]:
        """Of the honest updates of this round and of the previous one, those the attacker knows."""
        seen = {"round": this_round, "previous_round": previous_round, "none": ()}
        return list(seen[self.sees])


ATTACKS: dict[str, Attack] = {
    attack.name: attack
    for attack in (
        Attack("label_flip", lambda own, known, rng, n, f: dict(own), poison=flip_labels),
        Attack("sign_flip", lambda own, known, rng, n, f: sign_flip(own)),
        Attack("gaussian", lambda own, known, rng, n, f: gaussian_noise(own, rng)),
        Attack("scaled", lambda own, known, rng, n, f: scale(own)),
        Attack(
            "alie", lambda own, known, rng, n, f: little_is_enough(known, n, f), sees="round", trains=False
        ),
        Attack(
            "ipm",
            lambda own, known, rng, n, f: inner_product_manipulation(known),
            sees="round",
            trains=False,
        ),
        Attack(
            "ipm_large",
            lambda own, known, rng, n, f: inner_product_manipulation(known, IPM_LARGE_EPSILON),
            sees="round",
            trains=False,
        ),
        Attack("free_rider", lambda own, known, rng, n, f: free_ride(own), trains=False),
        Attack(
            "copycat",
            lambda own, known, rng, n, f: copy_update(known, rng),
            sees="round",
            trains=False,
            commits_last=True,
        ),
        Attack("disguised_free_rider", lambda own, known, rng, n, f: disguised_free_ride(own, rng)),
        Attack("inflate", lambda own, known, rng, n, f: dict(own), claims=INFLATE_FACTOR),
    )
}


# free_rider's vector is zero, so its jitter would be zero too; noise on a free ride is disguised_free_rider.
_UNJITTERED = frozenset({"free_rider"})


def _jittered(base: Attack) -> Attack | None:
    if base.name in _UNJITTERED:
        return None

    def craft(
        own: Delta, known: Sequence[Delta], rng: np.random.Generator, total: int, attackers: int
    ) -> dict[str, torch.Tensor]:
        return jitter(base.craft(own, known, rng, total, attackers), rng)

    return replace(base, name=f"{base.name}+jitter", craft=craft)


def _evading(base: Attack) -> Attack:
    def craft(
        own: Delta, known: Sequence[Delta], rng: np.random.Generator, total: int, attackers: int
    ) -> dict[str, torch.Tensor]:
        return evade(base.craft(own, known, rng, total, attackers), known, rng)

    # The spread comes from the round's honest updates, so every evading attacker is omniscient.
    return replace(base, name=f"{base.name}+evade", craft=craft, sees="round")


def _stale(base: Attack) -> Attack | None:
    if not base.omniscient:
        return None

    def craft(
        own: Delta, known: Sequence[Delta], rng: np.random.Generator, total: int, attackers: int
    ) -> dict[str, torch.Tensor]:
        # In round 0 nothing is public yet: the attacker's own honest delta is all it knows.
        return jitter(base.craft(own, list(known) or [own], rng, total, attackers), rng)

    return replace(
        base, name=f"{base.name}+stale", craft=craft, sees="previous_round", trains=True, commits_last=False
    )


#: Each variant's suffix and how it derives an attack from a base one (None where it does not apply).
VARIANTS: dict[str, Callable[[Attack], Attack | None]] = {
    "jitter": _jittered,
    "evade": _evading,
    "stale": _stale,
}

_VARIANT_ATTACKS: dict[str, Attack] = {
    variant.name: variant
    for derive in VARIANTS.values()
    for base in ATTACKS.values()
    if (variant := derive(base)) is not None
}


def attack_names() -> tuple[str, ...]:
    """Every attack: the base ones of :data:`ATTACKS`, then their variants, variant by variant."""
    return (*ATTACKS, *_VARIANT_ATTACKS)


def live_attack_names() -> tuple[str, ...]:
    """The attacks a live node can run (:attr:`Attack.live`)."""
    return tuple(name for name in attack_names() if get_attack(name).live)


def base_name(name: str) -> str:
    """The base attack of ``name`` (``alie+stale`` -> ``alie``)."""
    return name.partition("+")[0]


def get_attack(name: str) -> Attack:
    """Look an attack up by name, a base one or ``BASE+VARIANT``.

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    attack = ATTACKS.get(name) or _VARIANT_ATTACKS.get(name)
    if attack is None:
        raise ConfigError(
            f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}, or one of them with a variant "
            f"{', '.join('+' + v for v in VARIANTS)} (see docs/robustness.md)"
        )
    return attack
