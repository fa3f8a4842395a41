"""cotrain: decentralized federated training with on-chain rewards and auditable aggregation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cotrain")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
