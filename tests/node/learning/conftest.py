"""Shared data for the learning tests: loaded once per session, never modified by a test."""

import pytest
from cotrain.learning.data import ArrayDataset, load_breast_cancer, load_digits


@pytest.fixture(scope="session")
def digits() -> ArrayDataset:
    return load_digits(flat=False)


@pytest.fixture(scope="session")
def breast_cancer() -> ArrayDataset:
    return load_breast_cancer()
