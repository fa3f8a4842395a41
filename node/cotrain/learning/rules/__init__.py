"""Aggregation rules, one module each, and their registry (see :mod:`.registry`).

Importing the package registers the ``RULE`` of every public module in it, in module-name order.
"""

from __future__ import annotations

import importlib
import pkgutil

from cotrain.learning.rules.registry import Aggregate, Rule, get_rule, register, rule_names, unregister

__all__ = ["Aggregate", "Rule", "get_rule", "register", "rule_names", "unregister"]

_NOT_RULES = frozenset({"params", "registry"})

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_") and _module not in _NOT_RULES:
        register(importlib.import_module(f"{__name__}.{_module}").RULE)
