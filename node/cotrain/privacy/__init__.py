"""Privacy for contributors: sealed update files readable only by a task's named readers
(:mod:`cotrain.privacy.sealed`), and differential privacy with its accounting (:mod:`cotrain.privacy.dp`).

Submodules are imported by name; this package imports nothing itself.
"""
