"""A contributor never sends an update the validators would reject out_of_range (and slash the stake for)."""

from __future__ import annotations

import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.roles.contributor import check_update_fits


def test_an_update_inside_q32_24_passes() -> None:
    # Prepare: the largest and smallest values the format holds
    delta = {"b": torch.tensor([127.99999237060547, -128.0]), "a": torch.zeros(2, 2)}

    # Execute / Assert: no error
    check_update_fits(delta, "q32.24")


def test_an_update_beyond_q32_24_is_refused_with_one_line_naming_the_count() -> None:
    # Prepare
    delta = {"b": torch.tensor([128.0, 0.5]), "a": torch.tensor([[-200.0, 1.0]])}

    # Execute
    with pytest.raises(ConfigError) as error:
        check_update_fits(delta, "q32.24")

    # Assert
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("the trained update has 2 value(s) of magnitude 128 or more")
    assert "out_of_range" in message
