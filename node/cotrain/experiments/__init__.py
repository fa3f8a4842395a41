"""Experiments that run simulated networks in one process, with the same learning and validator code as a real
network but no chain and no storage daemon: :mod:`cotrain.experiments.robustness` measures the validator's
pipeline against attacks."""
