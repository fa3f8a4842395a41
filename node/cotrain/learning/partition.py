"""Splitting one data set among simulated clients, for experiments and tests.

Both partitioners return sorted int64 index arrays that are disjoint and together cover every example; the
same arguments give the same partition, drawn from ``numpy.random.Generator(PCG64(seed))``.
"""

from __future__ import annotations

import numpy as np

from cotrain.errors import ConfigError

MAX_DIRICHLET_DRAWS = 1000


def _check_parts(n: int, parts: int) -> None:
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ConfigError(f"parts must be a positive integer, got {parts!r}")
    if n < parts:
        raise ConfigError(f"cannot give each of {parts} parts an example from only {n}")


def partition_iid(n: int, parts: int, seed: int) -> list[np.ndarray]:
    """Split ``range(n)`` uniformly at random into ``parts`` parts whose sizes differ by at most one.

    Parameters
    ----------
    n : int
        The number of examples.
    parts : int
        The number of clients.
    seed : int
        Seeds the shuffle.

    Returns
    -------
    list[numpy.ndarray]
        ``parts`` sorted int64 index arrays.
    """
    _check_parts(n, parts)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return [np.sort(chunk).astype(np.int64) for chunk in np.array_split(order, parts)]


def partition_dirichlet(
    labels: np.ndarray, parts: int, alpha: float, seed: int, min_size: int = 1
) -> list[np.ndarray]:
    """Split examples among ``parts`` clients with label skew drawn from a symmetric Dirichlet distribution.

    For each class, the share each client gets is drawn from ``Dir(alpha, ..., alpha)`` and the class's
    shuffled examples are cut at those shares (Hsu, Qi and Brown, "Measuring the Effects of Non-Identical Data
    Distribution for Federated Visual Classification", 2019). Small ``alpha`` gives each client few classes;
    large ``alpha`` approaches an IID split. The whole draw is repeated until every client holds at least
    ``min_size`` examples.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer class labels, shaped ``(N,)``.
    parts : int
        The number of clients.
    alpha : float
        The Dirichlet concentration, greater than 0.
    seed : int
        Seeds every draw.
    min_size : int
        The fewest examples any client may get.

    Returns
    -------
    list[numpy.ndarray]
        ``parts`` sorted int64 index arrays.

    Raises
    ------
    ConfigError
        For invalid arguments, or when no draw within :data:`MAX_DIRICHLET_DRAWS` gives every client
        ``min_size`` examples (raise ``alpha`` or lower ``min_size``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ConfigError("labels must be a one-dimensional integer array")
    _check_parts(len(labels), parts)
    if not alpha > 0 or not np.isfinite(alpha):
        raise ConfigError(f"alpha must be a finite number greater than 0, got {alpha!r}")
    if min_size < 0 or min_size * parts > len(labels):
        raise ConfigError(f"min_size={min_size} for {parts} parts needs more than the {len(labels)} examples")
    rng = np.random.Generator(np.random.PCG64(seed))
    for _ in range(MAX_DIRICHLET_DRAWS):
        assigned: list[list[np.ndarray]] = [[] for _ in range(parts)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(parts, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
            for part, chunk in enumerate(np.split(members, cuts)):
                assigned[part].append(chunk)
        result = [np.sort(np.concatenate(chunks)).astype(np.int64) for chunks in assigned]
        if min(len(indices) for indices in result) >= min_size:
            return result
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) draw in {MAX_DIRICHLET_DRAWS} gave each of {parts} parts at least "
        f"{min_size} examples; raise alpha or lower min_size"
    )
