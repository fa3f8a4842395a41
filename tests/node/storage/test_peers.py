"""One js-ipfs daemon per participant (cotrain.storage.jsipfs.PeerGroup), peered over loopback: a file added
to one node is fetched through another by bitswap, pinned where it was fetched, and still served after its
author's node goes offline; a file nobody else holds is reported missing within the store's timeout."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ipfshttpclient
import pytest
from cotrain.errors import StorageError
from cotrain.learning.tensor_files import RejectReason, UpdateRejected
from cotrain.protocol.round_outcome import RevealedUpdate
from cotrain.roles.validator import verified_fetch
from cotrain.storage.base import ContentNotFoundError, fetch_verified
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.jsipfs import JsIpfsDaemon, PeerGroup, free_port
from cotrain.storage.unixfs import canonical_cid

NAMES = ["author", "validator", "auditor"]
TIMEOUT_S = 3.0
DEADLINE_S = 4.0


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerGroup]:
    with PeerGroup(tmp_path_factory.mktemp("peers"), NAMES) as group:
        yield group


def _store(daemon: JsIpfsDaemon) -> IpfsStore:
    return IpfsStore(daemon.api_multiaddr, timeout=TIMEOUT_S, retries=0)


def _client(daemon: JsIpfsDaemon) -> ipfshttpclient.Client:
    """A bare client, to ask a daemon things independently of the code under test."""
    return ipfshttpclient.Client(daemon.api_multiaddr, timeout=10)


def _pinned(daemon: JsIpfsDaemon) -> set[str]:
    return {canonical_cid(cid) for cid in _client(daemon).pin.ls(type="recursive")["Keys"]}


def test_the_peers_see_each_other_and_nothing_beyond_loopback(peers: PeerGroup) -> None:
    for name in NAMES:
        identity = _client(peers[name]).id()
        assert identity["Addresses"] and all(
            a.startswith("/ip4/127.0.0.1/tcp/") for a in identity["Addresses"]
        )
        connected = {peer["Peer"] for peer in _client(peers[name]).swarm.peers()["Peers"]}
        others = {peers[other].swarm_multiaddr.rsplit("/", 1)[1] for other in NAMES if other != name}
        assert connected == others, name


def test_a_fetched_file_outlives_its_authors_node(peers: PeerGroup, make_file: Callable[..., bytes]) -> None:
    # Prepare: the author adds two files; the validator fetches only the first.
    author, validator, auditor = (_store(peers[name]) for name in NAMES)
    fetched, never_fetched = make_file(600_000, seed=1), make_file(1_000, seed=2)
    fetched_cid, lonely_cid = author.add(fetched), author.add(never_fetched)
    assert fetch_verified(validator, fetched_cid, None, max_size=10**6) == fetched
    assert canonical_cid(fetched_cid) in _pinned(peers["validator"])

    # Execute: the author's node goes offline.
    peers["author"].stop()

    # Assert: the auditor gets the fetched file from the validator's node; the other is missing, in time.
    assert auditor.get(fetched_cid, max_size=10**6) == fetched
    started = time.monotonic()
    with pytest.raises(ContentNotFoundError):
        auditor.get(lonely_cid, max_size=10**6)
    assert time.monotonic() - started < TIMEOUT_S + 5


def test_a_file_whose_only_node_is_gone_is_missing_by_the_validation_deadline(
    tmp_path: Path, make_file: Callable[..., bytes]
) -> None:
    with PeerGroup(tmp_path, ["author", "validator"]) as pair:
        # Prepare: the author adds its update and reveals it; nobody else fetched it.
        update = make_file(50_000, seed=3)
        cid = IpfsStore(pair["author"].api_multiaddr, retries=0).add(update)
        revealed = RevealedUpdate("0x" + "11" * 20, cid, hashlib.sha256(update).digest(), 10)
        # The validator's store would wait a minute for the file; the validation phase ends sooner.
        validator = IpfsStore(pair["validator"].api_multiaddr, timeout=60.0, retries=0)
        pair["author"].stop()

        # Execute
        started = time.monotonic()
        with pytest.raises(UpdateRejected) as caught:
            verified_fetch(validator, 10**6, deadline=started + DEADLINE_S)(revealed)
        waited = time.monotonic() - started

    # Assert: `missing` (the record's `unavailable`) by the deadline, not after the store's minute.
    assert caught.value.reason == RejectReason.MISSING
    assert cid in caught.value.detail
    assert DEADLINE_S - 0.5 < waited < DEADLINE_S + 5


def test_an_offline_daemon_cannot_join_peers(tmp_path: Path) -> None:
    alone = JsIpfsDaemon(tmp_path / "alone", api_port=free_port(), gateway_port=free_port(), swarm_port=1)
    other = JsIpfsDaemon(tmp_path / "other", api_port=free_port(), gateway_port=free_port(), swarm_port=2)

    with pytest.raises(StorageError, match="only online daemons connect: start both with online=True"):
        alone.connect(other)


def test_a_peer_group_needs_distinct_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distinct names"):
        PeerGroup(tmp_path, ["a", "a"])
