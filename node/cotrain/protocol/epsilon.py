"""The epsilon a contributor declares in its update file, and the budget check validators and contributors
share (PROTOCOL.md sections 6.2 and 10.1).

Epsilon comes from a floating-point accountant, which machines need not agree on to the last bit, so it never
enters the round record as a computed number: the contributor writes it as text in its update's metadata,
validators copy that text, and the only arithmetic is an exact comparison with the spec's ``max_epsilon``.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from cotrain.consensus.exact import exact_ratio
from cotrain.errors import ConfigError

#: The update metadata key holding the declared epsilon.
EPSILON_KEY = "epsilon"
#: Decimal places a declaration keeps (rounded up, so a declaration never understates what was spent).
PLACES = 6
_DECLARED = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
_MAX_LENGTH = 40


def declare(epsilon: float) -> str:
    """``epsilon`` rounded up to :data:`PLACES` places, as the plain decimal text a file declares.

    >>> declare(2.0000001), declare(3.0), declare(0.1234561)
    ('2.000001', '3', '0.123457')
    """
    if not (isinstance(epsilon, float | int) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number of at least 0, got {epsilon!r}")
    rounded = Decimal(epsilon).quantize(Decimal(1).scaleb(-PLACES), rounding=ROUND_CEILING)
    text = format(rounded.normalize(), "f")
    return text


def parse_declared(text: object) -> Fraction | None:
    """The exact value of a declaration, or None when ``text`` is not one (plain decimal text, no exponent,
    no sign, no trailing zeros, at most 40 characters)."""
    if not isinstance(text, str) or len(text) > _MAX_LENGTH or not _DECLARED.fullmatch(text):
        return None
    return Fraction(text)


def within_budget(declared: object, max_epsilon: float) -> bool:
    """Whether a declaration is well formed and at most ``max_epsilon`` (the spec's decimal, exactly)."""
    value = parse_declared(declared)
    return value is not None and value <= exact_ratio(max_epsilon)
