"""Privacy for tasks whose updates must not be public: sealed update files readable only by named readers.

Submodules are imported by name (``cotrain.privacy.sealed``); this package imports nothing itself.
"""
