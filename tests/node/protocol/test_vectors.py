"""The protocol test vectors (tests/vectors/) recomputed with the package: every output must match.

The one field that comes from numpy's kernels (cotrain.protocol.vectors.MACHINE_DEPENDENT: the built-in
split's digest) is compared in a test of its own, so a machine whose kernels round differently fails only that
test, not the others.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cotrain.chain.market import Proposal
from cotrain.protocol.round_record import RECORD_VERSION
from cotrain.protocol.vectors import HANDLERS, MACHINE_DEPENDENT, run_vector

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
FILES = sorted(VECTORS.rglob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS).with_suffix(""))


def test_there_are_vectors_of_every_handler() -> None:
    # Prepare / Execute
    handlers = {_load(path)["handler"] for path in FILES}

    # Assert
    assert handlers == set(HANDLERS)


def test_the_vectors_stay_small() -> None:
    assert sum(path.stat().st_size for path in FILES) < 250_000


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_vector(path: Path) -> None:
    # Prepare
    vector = _load(path)
    skip = MACHINE_DEPENDENT.get(vector["handler"], ())

    # Execute
    output = run_vector(vector)

    # Assert
    expected = {key: value for key, value in vector["output"].items() if key not in skip}
    assert {key: value for key, value in output.items() if key not in skip} == expected


@pytest.mark.parametrize("path", [p for p in FILES if _load(p)["handler"] in MACHINE_DEPENDENT], ids=_id)
def test_machine_dependent_fields_on_this_machine(path: Path) -> None:
    # Prepare
    vector = _load(path)

    # Execute
    output = run_vector(vector)

    # Assert
    for key in MACHINE_DEPENDENT[vector["handler"]]:
        assert output[key] == vector["output"][key], f"{key} differs (torch/numpy kernels on this machine)"


@pytest.mark.parametrize("path", [p for p in FILES if _load(p)["handler"] == "round"], ids=_id)
def test_round_vector_is_consistent(path: Path) -> None:
    """The stated digests are those of the stated bytes, so an implementation can check either."""
    # Prepare
    output = _load(path)["output"]

    # Execute
    record = output["record"].encode("utf-8")
    model = bytes.fromhex(output["model_file"][2:])

    # Assert
    assert "0x" + hashlib.sha256(record).hexdigest() == output["record_digest"]
    assert "0x" + hashlib.sha256(model).hexdigest() == output["model_digest"]
    stated = json.loads(record)
    assert stated["version"] == RECORD_VERSION
    assert "metrics" not in stated, "the held-out metrics are advisory, beside the record"
    assert stated["rewards_root"] == output["rewards_root"]
    assert stated["slash_root"] == output["slash_root"]
    assert stated["new_model"] == {"cid": output["model_cid"], "digest": output["model_digest"]}


@pytest.mark.parametrize("path", [p for p in FILES if _load(p)["handler"] == "proposal_hash"], ids=_id)
def test_the_market_client_hashes_proposals_as_the_vectors_do(path: Path) -> None:
    # Prepare
    vector = _load(path)
    fields = {
        key: bytes.fromhex(value[2:]) for key, value in vector["input"].items() if key != "reward_total"
    }

    # Execute
    proposal = Proposal(
        **fields, reward_total=int(vector["input"]["reward_total"]), model_cid="", record_cid=""
    )

    # Assert
    assert "0x" + proposal.proposal_hash().hex() == vector["output"]["proposal_hash"]
