"""What a node needs to know about its chain to survive it: finality depth, fees, retries and log paging.

A local anvil chain answers every request, never reorganises and mines on arrival; the defaults keep that
path as fast as it was (no extra request per step). A public chain or a hosted endpoint drops requests,
rate-limits them, caps ``eth_getLogs`` ranges, leaves underpriced transactions pending and reorganises its
newest blocks: each field below is the knob for one of those.
"""

from __future__ import annotations

from dataclasses import dataclass

#: geth refuses a replacement transaction unless both fee caps rise by at least 10%; most providers ask 12.5%.
MIN_FEE_BUMP = 0.125


@dataclass(frozen=True)
class ChainSettings:
    """A chain client's tolerance of a real chain (all durations in seconds, fees in wei).

    Attributes
    ----------
    confirmations : int
        Blocks on top of a transaction's or a log's block before it counts as final (the deepest reorg
        expected). 0 trusts the newest block, as a local chain allows.
    retry_budget : float
        Longest time one read or send keeps retrying transport errors, HTTP 429/5xx and rate-limit
        answers before giving up with a one-line error.
    retry_backoff : float
        Pause before the first retry; doubled after each, up to ``retry_backoff_cap``, with jitter.
    retry_backoff_cap : float
        Longest pause between two retries.
    stuck_after : float
        A sent transaction still pending after this long is replaced (same nonce, fees raised by
        ``fee_bump``); again after each further ``stuck_after``.
    fee_bump : float
        Fraction both EIP-1559 fee caps rise by at each replacement (at least :data:`MIN_FEE_BUMP`).
    max_fee_per_gas : int
        The highest ``maxFeePerGas`` a replacement may offer; a transaction at the cap is left to wait.
    log_page_blocks : int
        Blocks per ``eth_getLogs`` request at first; halved on a provider's range or result-count limit,
        doubled back after each page that passed.
    """

    confirmations: int = 0
    retry_budget: float = 10.0
    retry_backoff: float = 0.05
    retry_backoff_cap: float = 2.0
    stuck_after: float = 60.0
    fee_bump: float = 0.25
    max_fee_per_gas: int = 1_000 * 10**9
    log_page_blocks: int = 2000

    def __post_init__(self) -> None:
        if self.confirmations < 0:
            raise ValueError(f"confirmations must be 0 or more, not {self.confirmations}")
        if self.retry_budget < 0 or self.retry_backoff < 0 or self.retry_backoff_cap < self.retry_backoff:
            raise ValueError(
                "retry_budget and retry_backoff must be >= 0, retry_backoff_cap >= retry_backoff"
            )
        if self.stuck_after <= 0:
            raise ValueError(f"stuck_after must be positive, not {self.stuck_after}")
        if self.fee_bump < MIN_FEE_BUMP:
            raise ValueError(f"fee_bump must be at least {MIN_FEE_BUMP} (nodes refuse smaller replacements)")
        if self.max_fee_per_gas < 1:
            raise ValueError(f"max_fee_per_gas must be positive, not {self.max_fee_per_gas}")
        if self.log_page_blocks < 1:
            raise ValueError(f"log_page_blocks must be at least 1, not {self.log_page_blocks}")
