"""Signing accounts for a node: from an encrypted JSON keystore or from ``COTRAIN_PRIVATE_KEY``.

A key never leaves :class:`Signer` except as a signature: its ``repr``/``str`` show the address only, it
refuses to be pickled, and no error message built here contains the key or the keystore password.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount

from cotrain.errors import ConfigError

KEY_ENV = "COTRAIN_PRIVATE_KEY"
KEYSTORE_ENV = "COTRAIN_KEYSTORE"
PASSWORD_ENV = "COTRAIN_KEYSTORE_PASSWORD"


class TransactionSigner(Protocol):
    """What :class:`cotrain.chain.client.ChainClient` needs from an account (eth-account's too)."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, transaction_dict: Mapping[str, Any]) -> SignedTransaction: ...


class Signer:
    """An account that signs transactions and never shows its private key.

    Build one with :func:`load_signer`, :meth:`from_key` or :meth:`generate`.

    Parameters
    ----------
    account : LocalAccount
        The eth-account account holding the key.
    source : str
        Where the key came from (e.g. ``"keystore /path"``), shown by ``repr``.
    """

    __slots__ = ("_account", "_source")

    def __init__(self, account: LocalAccount, source: str) -> None:
        self._account = account
        self._source = source

    @classmethod
    def from_key(cls, private_key: str | bytes, *, source: str = "private key") -> Signer:
        """Wrap a raw private key (32 bytes, or 64 hex digits with or without ``0x``).

        Raises
        ------
        ConfigError
            If the key is malformed; the message does not repeat it.
        """
        try:
            account = Account.from_key(private_key.strip() if isinstance(private_key, str) else private_key)
        except Exception:
            # `from None`: the underlying error may quote the key.
            raise ConfigError(
                f"the {source} is not a valid private key: expected 32 bytes as 64 hex digits"
            ) from None
        return cls(account, source)

    @classmethod
    def generate(cls) -> Signer:
        """Create a fresh random account (save it with :func:`save_keystore`)."""
        return cls(Account.create(), "generated")

    @property
    def address(self) -> str:
        """The checksummed address."""
        return self._account.address

    @property
    def source(self) -> str:
        """Where the key came from."""
        return self._source

    def sign_transaction(self, transaction_dict: Mapping[str, Any]) -> SignedTransaction:
        """Sign a complete transaction (nonce, gas, fee fields, chain id) for ``send_raw_transaction``."""
        return self._account.sign_transaction(dict(transaction_dict))

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, source={self._source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signer) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __reduce__(self) -> Any:
        raise TypeError("a Signer cannot be pickled; load the key in the process that signs")


def load_signer(
    keystore: str | os.PathLike[str] | None = None,
    *,
    password: str | None = None,
    prompt: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Signer:
    """Load the node's signing account.

    The first source that is set wins: ``keystore`` (or env ``COTRAIN_KEYSTORE``), then env
    ``COTRAIN_PRIVATE_KEY``. A keystore's password is ``password``, else env ``COTRAIN_KEYSTORE_PASSWORD``,
    else a prompt on the terminal.

    Parameters
    ----------
    keystore : path-like, optional
        An encrypted JSON keystore (Web3 Secret Storage, as written by :func:`save_keystore`, geth or clef).
    password : str, optional
        The keystore password; prefer the env var or the prompt to a command-line option.
    prompt : bool, optional
        Whether to ask for a missing password; by default only when stdin is a terminal.
    environ : Mapping[str, str], optional
        Environment to read instead of ``os.environ``.

    Returns
    -------
    Signer

    Raises
    ------
    ConfigError
        If no source is set, the keystore is unreadable or the password is wrong, or the key is malformed.
    """
    env = os.environ if environ is None else environ
    path = keystore if keystore is not None else env.get(KEYSTORE_ENV) or None
    if path is not None:
        path = Path(path)
        data = _read_keystore(path)
        if password is None:
            password = env.get(PASSWORD_ENV)
        if password is None:
            if not (sys.stdin.isatty() if prompt is None else prompt):
                raise ConfigError(
                    f"keystore {path} needs a password: set {PASSWORD_ENV} or run interactively"
                )
            password = getpass.getpass(f"Password for keystore {path}: ")
        try:
            key = Account.decrypt(data, password)
        except ValueError:
            raise ConfigError(f"cannot decrypt keystore {path}: wrong password") from None
        except (KeyError, TypeError):
            raise ConfigError(f"keystore {path} is damaged or in an unknown format") from None
        return Signer(Account.from_key(key), f"keystore {path}")
    key_text = env.get(KEY_ENV)
    if key_text:
        return Signer.from_key(key_text, source=f"{KEY_ENV} variable")
    raise ConfigError(f"no signing key: pass a keystore file (or set {KEYSTORE_ENV}), or set {KEY_ENV}")


def save_keystore(
    signer: Signer,
    path: str | os.PathLike[str],
    password: str,
    *,
    kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
    iterations: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Encrypt ``signer``'s key into a JSON keystore readable only by its owner (mode 0600).

    Parameters
    ----------
    signer : Signer
        The account to store.
    path : path-like
        Where to write; the file is written whole or not at all.
    password : str
        Encryption password.
    kdf : {"scrypt", "pbkdf2"}
        Key derivation function.
    iterations : int, optional
        KDF work factor (scrypt ``n``, a power of two, or pbkdf2 rounds); eth-account's default when None.
        Lower it only for tests.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The keystore's path.

    Raises
    ------
    ConfigError
        If the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"keystore {path} already exists; choose another path or pass overwrite=True")
    encrypted = Account.encrypt(signer._account.key, password, kdf=kdf, iterations=iterations)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(encrypted, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return path


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"keystore {path} is not JSON; pass an encrypted JSON keystore file") from None
    if not isinstance(data, dict) or "crypto" not in {key.lower() for key in data}:
        raise ConfigError(f"keystore {path} has no 'crypto' section; pass an encrypted JSON keystore file")
    return data
