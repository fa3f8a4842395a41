"""The consensus core: the pure, exact arithmetic from pinned inputs to what validators agree on.

Nothing here imports :mod:`cotrain.chain`, :mod:`cotrain.storage`, :mod:`cotrain.roles` or torch, so every
function can be specified in PROTOCOL.md and ported to another language, or, one coordinate at a time, to the
EVM (``contracts/libraries/CoordinateRules.sol`` computes :mod:`.coordinate` bit for bit).
"""
