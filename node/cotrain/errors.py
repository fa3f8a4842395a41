"""The exceptions cotrain raises. Every one derives from :class:`CotrainError` and from the builtin it
refines, so callers can catch either. Messages say what was wrong and what to do about it."""


class CotrainError(Exception):
    """Root of every error cotrain raises on purpose."""


class ConfigError(CotrainError, ValueError):
    """A task spec, command-line option or configuration file is invalid."""


class StorageError(CotrainError, OSError):
    """The content store could not add or return a file."""


class IntegrityError(CotrainError, ValueError):
    """A file does not match its digest or CID, or is malformed; it was not parsed further."""


class ChainError(CotrainError, RuntimeError):
    """The chain could not be reached or refused a transaction."""


class NodeStateError(CotrainError, RuntimeError):
    """A node's local state contradicts the chain; the node stops rather than act on it."""
